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
import pytest

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for conftest
from test_parallel_mpi import MPIEXEC, launch, mpi_env, needs_mpi  # noqa: E402

from chainrule.data.fashion_mnist import DEBIAN_DIR  # noqa: E402

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


# --- the messages, without MPI ------------------------------------------------------------------
def test_disagreement_names_every_differing_setting_and_rank() -> None:
    from chainrule.parallel.agree import disagreement

    every = [{"--seed": 0, "--lr": 0.1, "--model": "mlp"}, {"--seed": 0, "--lr": 0.1, "--model": "mlp"}]
    assert disagreement(every) == ""
    every += [{"--seed": 2, "--lr": 0.1, "--model": "section"}]
    assert disagreement(every) == (
        "MPI ranks disagree on --seed: rank 0 has 0, rank 2 has 2; --model: rank 0 has mlp, rank 2 has section "
        "(start every rank with the same options)"
    )
    assert "--extra: rank 0 has (not set), rank 1 has 1" in disagreement([{}, {"--extra": 1}])


def test_failure_lines_and_exit_codes() -> None:
    from chainrule.parallel import PeerFailed, PeerTimeout, RankFailed, RanksDisagree
    from chainrule.parallel.failure import failure_code, failure_text
    from chainrule.train.config import UsageError

    try:
        [].pop()
    except IndexError as exc:
        text = failure_text(exc)
    assert text.startswith("IndexError: pop from empty list (at test_parallel_failures.py:") and text.endswith(
        " in test_failure_lines_and_exit_codes)"
    )
    assert failure_text(UsageError("--lr 0: must be positive")) == "UsageError: --lr 0: must be positive"
    assert str(PeerFailed(1, "ShapeError: x", 2)) == "stopping because rank 1 failed: ShapeError: x"
    codes = [UsageError("u"), RanksDisagree("d"), PeerTimeout("t"), PeerFailed(1, "x", 2), RankFailed("r")]
    assert [failure_code(e) for e in codes] == [2, 2, 1, 2, 1]
    assert failure_code(FloatingPointError("diverged")) == 1 and failure_code(RuntimeError("bug")) == 1


# --- ranks started with different settings ---------------------------------------------------
TINY = ["--model", "mlp", "--hidden", "16", "--limit-train", "202", "--limit-test", "50", "--batch-size", "101"]
TINY += ["--epochs", "1", "--quiet"]
needs_data = pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="dataset-fashion-mnist is installed by .ci/run")


@needs_mpi
@needs_data
@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--seed", "1", "--seed: rank 0 has 0, rank 1 has 1"),
        ("--lr", "0.2", "--lr: rank 0 has 0.1, rank 1 has 0.2"),
        ("--hidden", "32", "--hidden: rank 0 has 16, rank 1 has 32"),
        ("--limit-train", "303", "--limit-train: rank 0 has 202, rank 1 has 303"),
    ],
)
def test_ranks_with_different_settings_fail_fast(tmp_path: Path, flag: str, value: str, message: str) -> None:
    """``mpiexec -n 1 chainrule train ... : -n 1 chainrule train ... FLAG VALUE``: one line naming the
    setting and both values, exit code 2, within 10 s; no traceback, nothing trained."""
    assert MPIEXEC is not None
    train = [sys.executable, "-m", "chainrule", "train", *TINY, "--parallel", "data", "--out", str(tmp_path / "run")]
    start = time.monotonic()
    proc = launch([MPIEXEC, "-n", "1", *train, ":", "-n", "1", *train, flag, value], mpi_env(), 60)
    seconds = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr
    assert seconds < 10, seconds
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [f"chainrule: error: MPI ranks disagree on {message} (start every rank with the same options)"]
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


@needs_mpi
@needs_data
def test_every_rank_raises_the_disagreement(tmp_path: Path) -> None:
    """Through the Trainer: both ranks raise RanksDisagree (a usage error) naming both settings."""
    assert MPIEXEC is not None
    proc = launch([MPIEXEC, "-n", "2", sys.executable, str(HERE), "disagree", str(tmp_path)], mpi_env(), 60)
    assert proc.returncode == 0, proc.stderr
    want = (
        "MPI ranks disagree on --seed: rank 0 has 0, rank 1 has 1; --weight-decay: rank 0 has 0.0001, "
        "rank 1 has 0.0 (start every rank with the same options)"
    )
    for rank in (0, 1):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result == {"type": "RanksDisagree", "usage": True, "message": want}, rank


def _small_config(**changes: Any) -> Any:
    from chainrule.train.config import Config

    base = dict(
        model="mlp", hidden=16, optimizer="adam", lr=0.01, limit_train=202, limit_test=50, batch_size=101, epochs=2,
        parallel="data",
    )  # fmt: skip
    return Config(**{**base, **changes})


def _disagree_worker(out: str) -> None:
    from chainrule.parallel import Comm
    from chainrule.train.trainer import Trainer

    rank = Comm().rank
    result: dict[str, Any] = {"type": None}
    try:
        Trainer(_small_config(seed=rank, weight_decay=0.0 if rank else 1e-4), Path(out) / "run", quiet=True)
    except Exception as exc:  # noqa: BLE001 - the test looks at what was raised
        result = {"type": type(exc).__name__, "usage": isinstance(exc, ValueError), "message": str(exc)}
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(result))


# --- a rank dying in the final save ------------------------------------------------------------
@needs_mpi
@needs_data
@pytest.mark.parametrize("how", ["kill", "raise"])
def test_a_rank_dying_in_the_final_save_ends_the_job_with_the_metrics_written(tmp_path: Path, how: str) -> None:
    """``chainrule train --parallel data --epochs 2 --optimizer adam``: rank 1 is killed (SIGKILL), or
    raises IndexError, as Adam's state is gathered for the checkpoint after the last epoch. The job ends
    within 30 s; metrics.csv and metrics.json hold both epochs; the checkpoint of epoch 1 is intact; a
    raise is one line on stderr, exit code 1."""
    from chainrule.train.snapshot import load_checkpoint

    assert MPIEXEC is not None
    run = tmp_path / "run"
    start = time.monotonic()
    proc = launch(
        [MPIEXEC, "-n", "2", sys.executable, str(HERE), f"save-{how}", str(run)],
        mpi_env(CHAINRULE_MPI_TIMEOUT="60"),
        90,
    )
    seconds = time.monotonic() - start
    assert proc.returncode != 0 and seconds < 30, (seconds, proc.stderr)
    report = json.loads((run / "metrics.json").read_text())
    assert [e["epoch"] for e in report["epochs"]] == [1, 2]
    assert len((run / "metrics.csv").read_text().splitlines()) == 3
    _, meta = load_checkpoint(run / "checkpoint.npz")
    assert meta["state"]["epoch"] == 1
    if how == "raise":
        assert proc.returncode == 1
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(
            "chainrule: error: stopping because rank 1 failed: IndexError: pop from empty list (at "
        ), proc.stderr
        assert "Traceback" not in proc.stderr


def _dying_save_worker(how: str, out: str) -> int:
    import signal

    from chainrule.cli.main import main
    from chainrule.train.trainer import Trainer

    save = Trainer.save

    def dying_save(self: Trainer) -> Path:
        if self.rank == 1 and self.state.epoch == self.cfg.epochs:
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise IndexError("pop from empty list")
        return save(self)

    Trainer.save = dying_save  # type: ignore[method-assign]
    argv = ["train", *TINY[:-3], "--epochs", "2", "--optimizer", "adam", "--quiet", "--parallel", "data", "--out", out]
    return main(argv)


# --- --resume under mpiexec of a single-process run -----------------------------------------------
@needs_mpi
@needs_data
def test_resume_of_a_single_process_run_under_mpiexec_is_refused(tmp_path: Path) -> None:
    """Each rank would train the run alone and rank 1 would write into rank 0's folder: every rank refuses,
    one line says how to resume it instead, exit code 2, and the run folder is left exactly as it was."""
    from chainrule.train.trainer import Trainer

    run = tmp_path / "one"
    Trainer(_small_config(parallel="none", epochs=1), run, quiet=True).run()
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert MPIEXEC is not None
    start = time.monotonic()
    train = [sys.executable, "-m", "chainrule", "train", "--resume", str(run), "--epochs", "2"]
    proc = launch([MPIEXEC, "-n", "2", *train], mpi_env(), 60)
    assert proc.returncode == 2 and time.monotonic() - start < 30, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [
        f"chainrule: error: --resume {run}: the run was made as a single process (no --parallel), so under "
        f"mpiexec -n 2 every rank would train it alone; resume it without mpiexec: chainrule train --resume {run}"
    ]
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


# --- one line per failure; blocking calls with a deadline -------------------------------------------
@needs_mpi
def test_an_error_every_rank_finds_is_printed_once(tmp_path: Path) -> None:
    """Both ranks reject ``--model section --parallel pipeline``: one whole line, no Abort(N) lines, exit 2
    (the 4-rank pipeline error used to print once per rank, two of them on one line, then MPI_Abort's)."""
    assert MPIEXEC is not None
    train = [sys.executable, "-m", "chainrule", "train", "--model", "section", "--parallel", "pipeline"]
    proc = launch([MPIEXEC, "-n", "2", *train, "--out", str(tmp_path / "run")], mpi_env(), 60)
    assert proc.returncode == 2
    assert proc.stderr == "chainrule: error: --parallel pipeline: pipeline needs a sequential model: --model mlp\n"


@needs_mpi
def test_a_blocking_call_that_never_returns_ends_the_job(tmp_path: Path) -> None:
    """Comm.blocking: rank 1 passes the barrier, then stalls before the blocking collective; rank 0's
    watchdog ends the job after the deadline (2 s here) with one line naming what was awaited."""
    assert MPIEXEC is not None
    start = time.monotonic()
    proc = launch([MPIEXEC, "-n", "2", sys.executable, str(HERE), "watchdog", str(tmp_path)], mpi_env(), 60)
    assert proc.returncode == 1 and time.monotonic() - start < 15, proc.stderr
    assert "chainrule: rank 0 failed: PeerTimeout: a blocking barrier did not complete within 2 s" in proc.stderr


def _watchdog_worker() -> None:
    from chainrule.parallel import Comm

    comm = Comm(timeout=2)

    def barrier() -> None:
        if comm.rank == 1:
            time.sleep(30)
        comm.comm.Barrier()

    comm.blocking("a blocking barrier", barrier)


def worker(mode: str, out: str) -> None:
    """Under mpiexec: one of the scenarios above."""
    if mode == "flush":
        _flush_worker(out)
    elif mode == "disagree":
        _disagree_worker(out)
    elif mode == "watchdog":
        _watchdog_worker()
    elif mode.startswith("save-"):
        sys.exit(_dying_save_worker(mode.split("-")[1], out))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    os.environ.setdefault("CHAINRULE_MPI_TIMEOUT", "30")
    worker(sys.argv[1], sys.argv[2])
