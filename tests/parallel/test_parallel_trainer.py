"""The Trainer's --microbatches and --parallel options on real Fashion-MNIST: same parameters as one process."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chainrule.data.fashion_mnist import DEBIAN_DIR
from chainrule.train.config import Config, UsageError, validate_config
from chainrule.train.snapshot import load_checkpoint
from chainrule.train.trainer import Trainer

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for conftest
from test_parallel_mpi import MPIEXEC, launch, mpi_env, needs_mpi  # noqa: E402

pytestmark = pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="dataset-fashion-mnist is installed by .ci/run")


def small(**changes: Any) -> Config:
    base = dict(
        model="mlp", hidden=32, optimizer="momentum", lr=0.05, init="he", epochs=1,
        limit_train=505, limit_test=200, batch_size=101,
    )  # fmt: skip
    return Config(**{**base, **changes})


def params_of(run: Path) -> dict[str, np.ndarray]:
    arrays, _ = load_checkpoint(run / "checkpoint.npz")
    return {k: v for k, v in arrays.items() if k.startswith("param/")}


def assert_close(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_trainer_microbatches_equal_whole_batch(tmp_path: Path) -> None:
    runs = {}
    for k in (1, 4):
        Trainer(small(microbatches=k), tmp_path / str(k), quiet=True).run()
        runs[k] = params_of(tmp_path / str(k))
    assert_close(runs[4], runs[1])


def test_options_are_validated() -> None:
    with pytest.raises(UsageError, match="microbatches"):
        validate_config(small(microbatches=0), check_memory=False)
    with pytest.raises(UsageError, match="microbatches"):
        validate_config(small(microbatches=500), check_memory=False)
    with pytest.raises(UsageError, match="pipeline"):
        validate_config(small(model="section", parallel="pipeline"), check_memory=False)
    with pytest.raises(UsageError, match="parallel"):
        validate_config(small(parallel="tensor"), check_memory=False)


def test_cli_options_parse_into_the_config() -> None:
    import argparse

    from chainrule.cli.parallel import add_train_options, is_worker

    parser = argparse.ArgumentParser()
    parser.add_argument("command")
    add_train_options(parser)
    args = parser.parse_args(["train", "--microbatches", "4", "--parallel", "pipeline", "--pipeline-schedule", "gpipe"])
    assert (args.microbatches, args.parallel, args.pipeline_schedule) == (4, "pipeline", "gpipe")
    assert not is_worker(parser.parse_args(["train"]))  # no --parallel: never touches MPI
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--parallel", "tensor"])


@needs_mpi
@pytest.mark.parametrize("mode", ["data", "pipeline", "data-dropout"])
def test_trainer_parallel_equals_single_process(tmp_path: Path, mode: str) -> None:
    """Same parameters as one process; with dropout too (each rank draws its rows of the batch's mask)."""
    assert MPIEXEC is not None
    Trainer(small(dropout=0.3 if mode == "data-dropout" else 0.0), tmp_path / "one", quiet=True).run()
    env = mpi_env(CHAINRULE_MPI_TIMEOUT="60")
    out = tmp_path / mode
    proc = launch([MPIEXEC, "-n", "2", sys.executable, str(HERE), mode, str(out)], env, 240)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    assert_close(params_of(out), params_of(tmp_path / "one"))


@needs_mpi
@pytest.mark.parametrize("reduce", ["shared", "allreduce", "pipeline"])
def test_killed_rank_then_resume_equals_uninterrupted_run(tmp_path: Path, reduce: str) -> None:
    """Rank 1 dies in the middle of epoch 2: the job ends within 30 s; resuming finishes the run exactly.

    Data parallel (both reductions) and the pipeline, whose checkpoint gathers every stage's Adam state.
    """
    import time

    assert MPIEXEC is not None
    Trainer(small(epochs=2, optimizer="adam", lr=0.01), tmp_path / "one", quiet=True).run()
    env = mpi_env(CHAINRULE_MPI_TIMEOUT="20")
    out = tmp_path / "two"
    start = time.monotonic()
    proc = launch([MPIEXEC, "-n", "2", sys.executable, str(HERE), f"kill-{reduce}", str(out)], env, 120)
    assert proc.returncode != 0 and time.monotonic() - start < 30, proc.stderr
    _, meta = load_checkpoint(out / "checkpoint.npz")
    assert meta["state"]["epoch"] == 1  # the checkpoint of epoch 1 survived the crash
    proc = launch([MPIEXEC, "-n", "2", sys.executable, str(HERE), f"resume-{reduce}", str(out)], env, 240)
    assert proc.returncode == 0, proc.stderr
    got, _ = load_checkpoint(out / "checkpoint.npz")
    want, _ = load_checkpoint(tmp_path / "one" / "checkpoint.npz")
    assert got.keys() == want.keys()  # parameters and Adam's state, in the single-process layout
    for k in want:  # Adam divides by √v: where v ≈ 0 the sum order's rounding shows at ~1e-5 (lr is 1e-2)
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-4, err_msg=k)


@needs_mpi
def test_command_line_parallel_run_resumes_and_a_failing_rank_ends_the_job(tmp_path: Path) -> None:
    """`mpiexec -n 2 chainrule train --parallel data`, then `--resume` under mpiexec (the mode comes from the
    checkpoint), then a rank that fails before MPI starts (its run folder is taken): the job ends, no rank waits."""
    import time

    assert MPIEXEC is not None
    env = mpi_env(CHAINRULE_MPI_TIMEOUT="20")
    run = tmp_path / "run"
    train = [MPIEXEC, "-n", "2", sys.executable, "-m", "chainrule", "train"]
    tiny = ["--model", "mlp", "--hidden", "32", "--limit-train", "404", "--limit-test", "100", "--batch-size", "101"]
    proc = launch([*train, *tiny, "--epochs", "1", "--parallel", "data", "--out", str(run)], env, 120)
    assert proc.returncode == 0, proc.stderr
    proc = launch([*train, "--resume", str(run), "--epochs", "2"], env, 120)
    assert proc.returncode == 0, proc.stderr
    _, meta = load_checkpoint(run / "checkpoint.npz")
    assert meta["state"]["epoch"] == 2 and meta["config"]["parallel"] == "data"
    start = time.monotonic()
    proc = launch([*train, *tiny, "--parallel", "data", "--out", str(run)], env, 60)  # the folder exists
    assert proc.returncode != 0 and time.monotonic() - start < 30
    assert "already" in proc.stderr or "exists" in proc.stderr or "in use" in proc.stderr, proc.stderr


def worker(mode: str, out: str) -> None:
    """Under mpiexec: train (``data``/``pipeline``), die in epoch 2 (``kill-*``) or resume (``resume-*``)."""
    import signal

    if mode.startswith("resume-"):
        Trainer.resume(out, quiet=True).run()
        return
    if mode.startswith("kill-"):
        how = mode.split("-")[1]
        cfg = small(epochs=2, optimizer="adam", lr=0.01, parallel="pipeline" if how == "pipeline" else "data")
        if how == "pipeline":
            cfg.microbatches = 2
        else:
            cfg.data_reduce = how
        trainer = Trainer(cfg, out, quiet=True)
        step = trainer._step

        def dying_step(*args: Any) -> Any:
            if trainer.rank == 1 and trainer.state.epoch == 1 and trainer.state.batch == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return step(*args)

        trainer._step = dying_step  # type: ignore[method-assign]
        trainer.run()
        return
    if mode == "data-dropout":
        cfg = small(parallel="data", dropout=0.3, microbatches=2)
    else:
        cfg = small(parallel=mode, microbatches=2 if mode == "pipeline" else 1)
    trainer = Trainer(cfg, out, quiet=True)
    trainer.run()
    assert asdict(trainer.cfg)["parallel"] == mode.split("-")[0]


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2])
