"""One rank's failure ends every rank, with one readable line for it.

The protocol (every MPI wait in :class:`~chainrule.parallel.comm.Comm` also watches for it):

* A rank that fails sends an *abort notice* (its rank, ``"Type: message"``, an exit code) to
  every peer. A peer sees it at its next poll and raises :class:`PeerFailed`.
* **Rank 0 reports.** It prints its own failure, or the peer's (``stopping because rank 1
  failed: ...``); for a peer's failure it first sends every rank an acknowledgement.
* A rank other than 0 prints only if rank 0 says nothing within a few seconds (rank 0 hung or
  died): when several ranks fail for the same cause (a bad configuration, which every rank
  finds), or one rank fails and rank 0 reports it, the job prints one line, not one per rank.
* Then the rank exits with ``os._exit(code)`` after its stderr is flushed: ``mpiexec`` ends the
  job as soon as one rank exits without finalizing MPI, so no rank is left waiting, and no
  ``MPI_Abort`` banner follows the message.

An error that is not chainrule's own (a bug: ``IndexError``...) becomes :class:`RankFailed`,
one line naming the exception and where it was raised, instead of a traceback per rank.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

from chainrule.core.errors import ChainruleError
from chainrule.parallel.comm import Comm, ParallelError, PeerFailed, write_line

# what ``chainrule train`` reports as a usage or run error; any other exception is a bug: RankFailed
EXPECTED = (ChainruleError, ValueError, KeyError, OSError, FloatingPointError)
QUIET_WAIT = 5.0  # seconds a failed rank other than 0 waits for rank 0 to report before printing itself


class RankFailed(ParallelError):
    """An unexpected error (not a chainrule error) on this rank, as one line: type, message, where."""


class RanksDisagree(ParallelError, ValueError):
    """The ranks were started with different settings (a usage error: exit code 2)."""


def failure_text(exc: BaseException) -> str:
    """``"Type: message"``, plus where it was raised for an exception that is not chainrule's."""
    if isinstance(exc, PeerFailed | RankFailed):
        return str(exc)
    text = f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, EXPECTED):
        frames = traceback.extract_tb(exc.__traceback__)
        if frames:
            last = frames[-1]
            text += f" (at {os.path.basename(last.filename)}:{last.lineno} in {last.name})"
    return text


def failure_code(exc: BaseException | None, default: int = 1) -> int:
    """The exit code of a failed run: as ``chainrule train`` (2 bad usage or input, 1 failure while running)."""
    if isinstance(exc, PeerFailed):
        return exc.code
    if isinstance(exc, RanksDisagree):
        return 2
    if isinstance(exc, ParallelError | OSError | FloatingPointError):
        return 1
    if isinstance(exc, ChainruleError | ValueError | KeyError):
        return 2
    if isinstance(exc, SystemExit) and isinstance(exc.code, int):
        return exc.code
    return default if exc is None else 1


def notified(exc: BaseException) -> bool:
    """Whether the peers were already told of ``exc`` (by :func:`failing_together`)."""
    return bool(getattr(exc, "_chainrule_notified", False)) or isinstance(exc, PeerFailed)


def tell_peers(comm: Comm, exc: BaseException) -> None:
    """Send the abort notice for ``exc`` (once); rank 0 acknowledges a peer's failure it will report."""
    if getattr(exc, "_chainrule_notified", False):
        return
    if isinstance(exc, PeerFailed):
        if comm.rank == 0:  # "rank 0 reports this one": the failed rank need not print it too
            comm.notify_failure(exc.text, exc.code, failed=exc.origin)
    else:
        comm.notify_failure(failure_text(exc), failure_code(exc))
    try:
        exc._chainrule_notified = True  # type: ignore[attr-defined]
    except AttributeError:  # pragma: no cover - an exception type without a __dict__
        pass


@contextmanager
def failing_together(comm: Comm, linger: float = 1.0, abort: bool = True) -> Iterator[None]:
    """Run a block so that an error on this rank reaches every rank (see the module's protocol).

    With ``abort`` (the default, for scripts), the error is reported as the protocol says and
    the job ends. With ``abort=False`` the peers are told and the error is re-raised for the
    caller to report (``chainrule train`` prints it and ends the job with :func:`end_job`); an
    error that is not chainrule's is re-raised as :class:`RankFailed`. ``linger`` is how long
    rank 0 waits after printing before ending the job. Signals (``KeyboardInterrupt``) pass through.
    """
    try:
        yield
    except KeyboardInterrupt:  # a signal (SIGINT/SIGTERM reach every rank): the caller saves and exits
        raise
    except SystemExit as exc:
        if not exc.code:
            raise
        tell_peers(comm, exc)
        if abort:
            end_job(comm, exc, printed=False, linger=linger)
        raise
    except BaseException as exc:
        tell_peers(comm, exc)
        if abort:
            end_job(comm, exc, printed=False, linger=linger)
        if isinstance(exc, EXPECTED):
            raise
        failed = RankFailed(failure_text(exc))
        failed._chainrule_notified = True  # type: ignore[attr-defined]
        raise failed from exc


def end_job(comm: Comm, exc: BaseException | None, printed: bool, linger: float = 0.2, code: int | None = None) -> None:
    """End the whole job after ``exc`` on this rank; never returns.

    ``printed``: the caller has already printed the error (rank 0 under ``chainrule train``).
    """
    code = failure_code(exc) if code is None else code
    _default_signals()  # this rank is ending: a signal now ends it at once (no checkpoint to save)
    if exc is not None:
        tell_peers(comm, exc)
    if comm.rank == 0:
        if not printed and exc is not None:
            if isinstance(exc, PeerFailed):
                write_line(f"chainrule: rank 0: {exc}")
            else:
                write_line(f"chainrule: rank 0 failed: {failure_text(exc)}")
        time.sleep(linger)
    elif exc is not None and not isinstance(exc, PeerFailed) and not _rank0_speaks(comm):
        write_line(f"chainrule: rank {comm.rank} failed: {failure_text(exc)}")
    else:  # rank 0 reports; give it the time to do so, then end the job ourselves if it has not
        time.sleep(QUIET_WAIT)
    _exit(code)


def _rank0_speaks(comm: Comm) -> bool:
    """Wait up to :data:`QUIET_WAIT` s for a notice from rank 0 (its own failure, or our failure acknowledged)."""
    deadline = time.monotonic() + QUIET_WAIT
    while time.monotonic() < deadline:
        if comm.notice_from(0) is not None:
            return True
        time.sleep(0.01)
    return False


def _default_signals() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (ValueError, OSError):  # not the main thread: leave the handlers
            pass


def _exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(code)
