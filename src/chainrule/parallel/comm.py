"""MPI point-to-point and collectives that never hang: every wait has a deadline.

Every blocking operation is posted non-blocking and completed by polling (``Test``) until a
deadline. While polling, a rank also watches for an *abort notice* from any other rank (a
rank that fails sends one to every peer before it exits), so an error on one rank becomes a
clear error on every rank within the poll interval, and a rank that dies or hangs becomes a
:class:`PeerTimeout` naming the peer and what was awaited, instead of a hang. (A rank killed
by a signal is also seen by ``mpiexec`` itself, which then ends the whole job.)

``mpi4py`` is imported only when a :class:`Comm` is made; the rest of chainrule does not need it.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from chainrule.core.errors import ChainruleError, ShapeError

ABORT_TAG = 32000  # an abort notice: (failed rank, "Type: message", exit code, sending rank)
DEFAULT_TIMEOUT = float(os.environ.get("CHAINRULE_MPI_TIMEOUT", "120"))


class ParallelError(ChainruleError, RuntimeError):
    """A failure of the parallel run (on this rank or reported by a peer)."""


class PeerTimeout(ParallelError):
    """A peer did not send, receive or join a collective within the deadline: it died or hung."""


class PeerFailed(ParallelError):
    """Another rank reported an error and is exiting: ``origin`` failed with ``text`` (exit ``code``)."""

    def __init__(self, origin: int, text: str, code: int = 1) -> None:
        super().__init__(f"stopping because rank {origin} failed: {text}")
        self.origin, self.text, self.code = origin, text, code


def launched_ranks() -> int:
    """How many ranks the launcher (mpiexec) started, from its environment; 1 outside a launcher.

    Read without initializing MPI, so it is safe to call anywhere.
    """
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_SIZE"):
        text = os.environ.get(name, "")
        if text.isdigit():
            return max(int(text), 1)
    return 1


def mpi() -> Any:
    """The ``mpi4py.MPI`` module, or a clear error if the ``mpi`` extra is not installed."""
    try:
        from mpi4py import MPI
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ParallelError(
            "parallel training needs mpi4py and an MPI library: pip install 'chainrule[mpi]' "
            "(mpi4py and mpich), then run under mpiexec -n N"
        ) from exc
    return MPI


class Comm:
    """A communicator whose waits time out; counts the bytes this rank sends and receives."""

    def __init__(self, comm: Any = None, timeout: float | None = None) -> None:
        MPI = mpi()
        self.MPI = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank: int = self.comm.Get_rank()
        self.size: int = self.comm.Get_size()
        self.timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
        self.sent_bytes = 0  # payload bytes this rank handed to MPI (point-to-point and collectives)
        self.recv_bytes = 0
        self._pending: list[tuple[Any, Any, str]] = []  # sends not yet completed (request, buffer, what)

    # --- waiting --------------------------------------------------------------------------
    def _check_abort(self) -> None:
        MPI = self.MPI
        status = MPI.Status()
        if self.comm.Iprobe(source=MPI.ANY_SOURCE, tag=ABORT_TAG, status=status):
            notice = self.comm.recv(source=status.Get_source(), tag=ABORT_TAG)
            failed, text, code = _parse_notice(notice, status.Get_source())
            raise PeerFailed(failed, text, code)

    def _poll(self, done: Callable[[], bool], what: str, budget: float | None = None) -> bool:
        """Drive MPI progress until ``done()``; abort notices and the deadline are checked meanwhile.

        MPI moves a large message only while both ends are inside MPI calls, so the first
        millisecond is a tight loop, then the thread yields, and only a long wait sleeps (0.2 ms
        steps). With ``budget`` (seconds), give up quietly after that long and return False.
        """
        start = time.monotonic()
        deadline = start + self.timeout
        while not done():
            self._check_abort()
            self._progress_sends()
            now = time.monotonic()
            if budget is not None and now - start > budget:
                return False
            if now > deadline:
                raise PeerTimeout(
                    f"rank {self.rank}: {what} did not complete within {self.timeout:g} s: a peer died, hung, "
                    f"or is not running the same step (set CHAINRULE_MPI_TIMEOUT to wait longer)"
                )
            waited = now - start
            if waited > 0.02:
                time.sleep(2e-4)
            elif waited > 0.001:
                os.sched_yield()
        return True

    def wait(self, request: Any, what: str) -> None:
        self._poll(request.Test, what)

    def _progress_sends(self) -> bool:
        """Retire the pending sends that have completed; True when none is left."""
        if self._pending:
            self._pending = [p for p in self._pending if not p[0].Test()]
        return not self._pending

    def flush(self) -> None:
        """Complete every send posted so far (before a step ends or a buffer is reused).

        The polling loop itself retires completed sends (:meth:`_progress_sends`), so the list
        is only ever filtered, never popped by position: a send that completes while another
        one is being waited for is simply gone from it (popping "the first" would then remove
        a send still in flight, or fail on an empty list).
        """
        if self._pending:
            self._poll(self._progress_sends, self._pending[0][2])

    # --- point to point -------------------------------------------------------------------
    def send(self, array: np.ndarray[Any, Any], dest: int, tag: int, what: str = "message") -> None:
        """Send an array (its shape and dtype first); returns at once, completed by later polling."""
        array = np.ascontiguousarray(array)
        header = (array.shape, array.dtype.str, what)
        self.comm.send(header, dest=dest, tag=tag)  # small: sent eagerly
        request = self.comm.Isend(array, dest=dest, tag=tag)
        self.sent_bytes += array.nbytes
        # Help the transfer along while the receiver is (probably) waiting for it. Stop as soon as
        # the receiver is itself sending to us (then it must first receive ours: 1F1B does this
        # every step) or after a short budget, so that two ranks can never wait on each other.
        done = [False]

        def sent_or_peer_sending() -> bool:
            done[0] = bool(request.Test())
            return done[0] or bool(self.comm.Iprobe(source=dest, tag=self.MPI.ANY_TAG))

        self._poll(sent_or_peer_sending, f"sending {what} to rank {dest}", budget=0.05)
        if not done[0]:
            self._pending.append((request, array, f"sending {what} to rank {dest}"))

    def recv(
        self, source: int, tag: int, what: str = "message", shape: tuple[int, ...] | None = None
    ) -> np.ndarray[Any, Any]:
        """Receive an array sent with :meth:`send`; ``shape``: what this rank expects (checked)."""
        self._poll(lambda: bool(self.comm.Iprobe(source=source, tag=tag)), f"waiting for {what} from rank {source}")
        got_shape, dtype, their_what = self.comm.recv(source=source, tag=tag)
        if shape is not None and tuple(shape) != tuple(got_shape):
            raise ShapeError(
                f"rank {self.rank}: expected {what} of shape {tuple(shape)} from rank {source}, "
                f"it sent {their_what} of shape {tuple(got_shape)}: the stages disagree"
            )
        buffer = np.empty(got_shape, dtype=np.dtype(dtype))
        request = self.comm.Irecv(buffer, source=source, tag=tag)
        self.wait(request, f"receiving {what} from rank {source}")
        self.recv_bytes += buffer.nbytes
        return buffer

    def send_object(self, obj: Any, dest: int, tag: int, what: str = "object") -> None:
        """Send a picklable object (e.g. a dict of arrays); waits, with the deadline, until it is received."""
        self.wait(self.comm.isend(obj, dest=dest, tag=tag), f"sending {what} to rank {dest}")

    def recv_object(self, source: int, tag: int, what: str = "object") -> Any:
        """Receive what :meth:`send_object` sent."""
        self._poll(lambda: bool(self.comm.Iprobe(source=source, tag=tag)), f"waiting for {what} from rank {source}")
        return self.comm.recv(source=source, tag=tag)

    # --- collectives ----------------------------------------------------------------------
    def allreduce_(self, buffer: np.ndarray[Any, Any], what: str = "allreduce") -> np.ndarray[Any, Any]:
        """Sum ``buffer`` over all ranks, in place."""
        request = self.comm.Iallreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        self.wait(request, what)
        self.sent_bytes += buffer.nbytes
        self.recv_bytes += buffer.nbytes
        return buffer

    def bcast_(self, buffer: np.ndarray[Any, Any], root: int = 0, what: str = "broadcast") -> np.ndarray[Any, Any]:
        request = self.comm.Ibcast(buffer, root=root)
        self.wait(request, what)
        if self.rank == root:
            self.sent_bytes += buffer.nbytes
        else:
            self.recv_bytes += buffer.nbytes
        return buffer

    def barrier(self, what: str = "barrier") -> None:
        self.wait(self.comm.Ibarrier(), what)

    def bcast_object(self, obj: Any, root: int = 0, what: str = "broadcast") -> Any:
        """Every rank gets ``root``'s picklable ``obj`` (its size, then its bytes: two deadline-bound Ibcasts)."""
        data = pickle.dumps(obj) if self.rank == root else b""
        size = self.bcast_(np.array([len(data)], np.int64), root, what=f"{what} (size)")
        if self.rank == root:
            buffer = np.frombuffer(data, np.uint8).copy()
        else:
            buffer = np.empty(int(size[0]), np.uint8)
        self.bcast_(buffer, root, what=what)
        return obj if self.rank == root else pickle.loads(buffer.tobytes())

    def allgather_bytes(self, data: bytes, what: str = "allgather") -> list[bytes]:
        """Every rank's ``data``, in rank order, on every rank (deadline-bound Iallgather and Iallgatherv)."""
        sizes = np.zeros(self.size, np.int64)
        self.wait(self.comm.Iallgather(np.array([len(data)], np.int64), sizes), f"{what} (sizes)")
        offsets = [0, *np.cumsum(sizes).tolist()]
        gathered = np.empty(max(offsets[-1], 1), np.uint8)
        counts = [int(n) for n in sizes]
        mine = np.frombuffer(data, np.uint8) if data else np.empty(0, np.uint8)
        request = self.comm.Iallgatherv(mine, [gathered, (counts, offsets[:-1]), self.MPI.BYTE])
        self.wait(request, what)
        self.sent_bytes += len(data)
        self.recv_bytes += offsets[-1]
        return [gathered[offsets[r] : offsets[r + 1]].tobytes() for r in range(self.size)]

    def blocking(self, what: str, call: Callable[[], Any], group: Any = None) -> Any:
        """Run a blocking collective of ``group`` (default: this communicator) within the deadline.

        MPI has no non-blocking communicator split or shared-memory window allocation. So the
        ranks first meet in a polled barrier (a peer that is absent or failed is a
        :class:`PeerTimeout` or :class:`PeerFailed` here, as for any wait); the call then only
        has its own work to do, and runs under a watchdog: if it has not returned within the
        deadline (a peer died in between), this rank says so in one line and exits, which ends
        the job (``mpiexec`` stops every rank when one exits without finalizing MPI).
        """
        self.wait((group if group is not None else self.comm).Ibarrier(), f"{what} (every rank arriving)")
        watchdog = threading.Timer(self.timeout, self._expired, args=(what,))
        watchdog.daemon = True
        watchdog.start()
        try:
            return call()
        finally:
            watchdog.cancel()

    def _expired(self, what: str) -> None:
        """The watchdog of :meth:`blocking`: the call is stuck in MPI, so only exiting can end it."""
        write_line(
            f"chainrule: rank {self.rank} failed: PeerTimeout: {what} did not complete within {self.timeout:g} s: "
            f"a peer died or hung (set CHAINRULE_MPI_TIMEOUT to wait longer)"
        )
        os._exit(1)

    # --- failure --------------------------------------------------------------------------
    def notify_failure(self, text: str, code: int = 1, failed: int | None = None) -> None:
        """Tell every other rank that rank ``failed`` (default: this one) failed with ``text``.

        Best effort, never blocks for long (a dead peer must not stop the others being told).
        Rank 0 also sends one for a peer's failure it is about to report (``failed`` = that
        peer): the failing rank then knows its message is printed and stays quiet.
        """
        notice = (self.rank if failed is None else failed, text, int(code), self.rank)
        requests = []
        for r in range(self.size):
            if r != self.rank:
                try:
                    requests.append(self.comm.isend(notice, dest=r, tag=ABORT_TAG))
                except Exception:  # noqa: BLE001 - a dead peer must not stop the others being told
                    pass
        deadline = time.monotonic() + 2.0
        while requests and time.monotonic() < deadline:
            requests = [q for q in requests if not q.Test()]
            time.sleep(0.005)

    def notice_from(self, source: int) -> tuple[int, str, int] | None:
        """A failure notice already sent by ``source`` (failed rank, text, code), or None; never waits."""
        if not self.comm.Iprobe(source=source, tag=ABORT_TAG):
            return None
        return _parse_notice(self.comm.recv(source=source, tag=ABORT_TAG), source)


def write_line(line: str) -> None:
    """``line`` on stderr in one write: lines from several ranks never interleave within a line."""
    try:
        sys.stderr.flush()
        os.write(sys.stderr.fileno(), (line + "\n").encode(errors="replace"))
    except (OSError, ValueError, AttributeError):  # no usable stderr: nothing more to do
        pass


def _parse_notice(notice: Any, source: int) -> tuple[int, str, int]:
    """(failed rank, text, exit code) of an abort notice; a malformed one still names its sender."""
    if isinstance(notice, tuple) and len(notice) == 4 and isinstance(notice[0], int) and isinstance(notice[2], int):
        return notice[0], str(notice[1]), notice[2]
    return source, str(notice), 1
