"""The Trainer's --microbatches and --parallel options on real Fashion-MNIST: same parameters as one process."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chainrule.checkpoint import load_checkpoint
from chainrule.data.fashion_mnist import DEBIAN_DIR
from chainrule.training import Config, Trainer, UsageError, validate_config

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
from test_parallel_mpi import MPIEXEC, SRC, launch, needs_mpi  # noqa: E402

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
@pytest.mark.parametrize("mode", ["data", "pipeline"])
def test_trainer_parallel_equals_single_process(tmp_path: Path, mode: str) -> None:
    assert MPIEXEC is not None
    Trainer(small(), tmp_path / "one", quiet=True).run()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "CHAINRULE_MPI_TIMEOUT": "60"}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    out = tmp_path / mode
    proc = launch([MPIEXEC, "-n", "2", sys.executable, str(HERE), mode, str(out)], env, 240)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    assert_close(params_of(out), params_of(tmp_path / "one"))


if __name__ == "__main__":
    cfg = small(parallel=sys.argv[1], microbatches=2 if sys.argv[1] == "pipeline" else 1)
    trainer = Trainer(cfg, sys.argv[2], quiet=True)
    trainer.run()
    assert asdict(trainer.cfg)["parallel"] == sys.argv[1]
