"""MPI failures end every rank quickly and readably: Comm.flush's race, ranks that disagree, a rank dying
in the final save, ``--resume`` of a single-process run under mpiexec.

The MPI tests start ``mpiexec -n 2`` (this file is also the worker, as in test_parallel_mpi.py).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
from test_parallel_mpi import MPIEXEC, launch, mpi_env, needs_mpi  # noqa: E402

FLUSH_ROUNDS, FLUSH_FLOATS = 40, 1 << 20  # 4 MiB: too big to be sent eagerly, so the send stays pending


# --- Comm.flush --------------------------------------------------------------------------------
class _Request:
    """An MPI request that completes on its ``n``-th Test (and stays complete, as MPI's do)."""

    def __init__(self, n: int) -> None:
        self.n, self.tests = n, 0

    def Test(self) -> bool:  # noqa: N802 - mpi4py's name
        self.tests += 1
        return self.tests >= self.n


class _QuietComm:
    """The few mpi4py calls the polling loop makes, with no message ever waiting."""

    def Iprobe(self, **kwargs: Any) -> bool:  # noqa: N802 - mpi4py's name
        return False


def _comm_with_pending(*requests: _Request) -> Any:
    from chainrule.parallel.comm import Comm

    comm = object.__new__(Comm)  # no MPI: only the bookkeeping of pending sends is exercised
    comm.comm, comm.rank, comm.size, comm.timeout = _QuietComm(), 0, 2, 5.0
    comm.MPI = SimpleNamespace(Status=lambda: None, ANY_SOURCE=-1, ANY_TAG=-1)
    comm._pending = [(r, np.zeros(1), f"send {i}") for i, r in enumerate(requests)]
    return comm


def test_flush_survives_a_send_completing_inside_the_polling_loop() -> None:
    """The first Test (flush's own) says "not yet", the loop's Test retires it: nothing left to pop.

    The old flush then did ``pop(0)`` on an empty list (IndexError), as rank 1 did at a final save."""
    first = _Request(2)
    comm = _comm_with_pending(first)
    comm.flush()
    assert comm._pending == [] and first.tests >= 2


def test_flush_waits_for_every_send_even_when_an_earlier_one_completes_first() -> None:
    """Two sends: the first completes inside the loop; the second must still be waited for, not popped."""
    first, second = _Request(2), _Request(6)
    comm = _comm_with_pending(first, second)
    comm.flush()
    assert comm._pending == [] and second.tests >= 6  # the old flush dropped the second send in flight


@needs_mpi
def test_flush_with_a_late_receiver(tmp_path: Path) -> None:
    """Rank 1 receives 60 ms after rank 0 sent 4 MiB: the send is pending when flush starts, and MPI
    may complete it inside flush's polling loop. The old code failed 3 of 20 such flushes here."""
    assert MPIEXEC is not None
    out = tmp_path / "flush.json"
    proc = launch([MPIEXEC, "-n", "2", sys.executable, str(HERE), "flush", str(out)], mpi_env(), 120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text()) == {"rounds": FLUSH_ROUNDS, "received": FLUSH_ROUNDS}


def _flush_worker(out: str) -> None:
    from chainrule.parallel.comm import Comm

    comm = Comm(timeout=30)
    received = 0
    for k in range(FLUSH_ROUNDS):
        if comm.rank == 0:
            comm.send(np.full(FLUSH_FLOATS, k, np.float32), 1, 7, what="payload")
            comm.flush()
            assert comm._pending == []
        else:
            time.sleep(0.06)
            got = comm.recv(0, 7, what="payload")
            received += int(got.shape == (FLUSH_FLOATS,) and bool((got == k).all()))
        comm.barrier()
    if comm.rank == 1:
        Path(out).write_text(json.dumps({"rounds": FLUSH_ROUNDS, "received": received}))


def worker(mode: str, out: str) -> None:
    """Under mpiexec: one of the scenarios above."""
    if mode == "flush":
        _flush_worker(out)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    os.environ.setdefault("CHAINRULE_MPI_TIMEOUT", "30")
    worker(sys.argv[1], sys.argv[2])
