"""Data and pipeline parallelism over 2 MPI ranks equal single-process training; failures do not hang.

Each test starts ``mpiexec -n 2 python tests/parallel/test_parallel_mpi.py <mode> <out>`` (this file is also
the worker) with a timeout, then compares what rank 0 saved with a single-process run here.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

HERE = Path(__file__).resolve()
SRC = HERE.parents[2] / "src"
STEPS, BATCH, WIDTH, DEPTH, LR = 3, 24, 16, 4, 0.1


def _mpiexec() -> str | None:
    found = shutil.which("mpiexec")
    if found is None:
        candidate = Path(sys.executable).parent / "mpiexec"
        found = str(candidate) if candidate.exists() else None
    return found


MPIEXEC = _mpiexec()
try:
    import mpi4py  # noqa: F401
except ImportError:  # pragma: no cover
    MPIEXEC = None
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason="needs mpi4py and mpiexec (the mpi extra)")


def build(seed: int = 0) -> Any:
    from chainrule import nn

    rng = np.random.default_rng(seed)
    layers: list[nn.Module] = [nn.Linear(12, WIDTH, rng=rng), nn.Tanh()]
    for _ in range(DEPTH - 2):
        layers += [nn.Linear(WIDTH, WIDTH, rng=rng), nn.Tanh()]
    layers.append(nn.Linear(WIDTH, 5, rng=rng))
    return nn.Sequential(*layers)


def batches() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(42)
    return [
        (rng.standard_normal((BATCH + 1, 12)).astype(np.float32), rng.integers(0, 5, BATCH + 1)) for _ in range(STEPS)
    ]  # an odd batch: the shards and microbatches differ in size


def single_process(microbatches: int = 1, adam: bool = False) -> dict[str, np.ndarray]:
    import chainrule.nn.functional as F
    from chainrule.optim import SGD, Adam
    from chainrule.parallel import accumulate

    model = build()
    opt = Adam(model.parameters(), 0.01) if adam else SGD(model.parameters(), LR)

    def step(x: Any, y: Any) -> Any:
        logits = model(x)
        J = F.cross_entropy(logits, y)
        J.backward()
        return J, logits

    for x, y in batches():
        opt.zero_grad()
        accumulate(step, model.parameters(), x, y, microbatches)
        opt.step()
    return model.state_dict()


# --- the worker (run under mpiexec) -------------------------------------------------------------
def worker(mode: str, out: str) -> None:
    import chainrule.nn.functional as F
    from chainrule.optim import SGD
    from chainrule.parallel import Comm, DataParallel, Pipeline, accumulate, failing_together, shard

    comm = Comm(timeout=float(os.environ.get("CHAINRULE_MPI_TIMEOUT", "30")))
    with failing_together(comm, linger=2.0):
        model = build(seed=comm.rank)  # different on each rank: the broadcast must fix that
        DataParallel(model.parameters(), comm).broadcast_parameters()
        opt = SGD(model.parameters(), LR)

        def step(x: Any, y: Any) -> Any:
            logits = model(x)
            J = F.cross_entropy(logits, y)
            J.backward()
            return J, logits

        if mode == "data":
            dp = DataParallel(model.parameters(), comm)
            for x, y in batches():
                opt.zero_grad()
                part = shard(len(x), comm.rank, comm.size)
                accumulate(step, model.parameters(), x[part], y[part], 2, total=len(x))
                dp.allreduce_gradients(1.0)
                opt.step()
        elif mode.startswith("sharded"):  # Adam's state sharded over the ranks, gradients via shared memory
            from chainrule.optim import Adam
            from chainrule.parallel import ShardedDataParallel

            sdp = ShardedDataParallel(model.parameters(), Adam(model.parameters(), 0.01), comm)
            assert sdp.local_size == (1 if mode == "sharded-hosts" else 2)  # CHAINRULE_RANKS_PER_HOST=1: 2 "hosts"
            for x, y in batches():
                sdp.zero_grad()
                part = shard(len(x), comm.rank, comm.size)
                loss, _ = accumulate(step, model.parameters(), x[part], y[part], 2)
                w = (part.stop - part.start) / len(x)
                total = sdp.reduce_gradients(w, [w * loss, 1.0])
                assert total[1] == comm.size  # the statistics are summed over the ranks
                sdp.step()
            state = sdp.state_dict()  # gathered in the single-process layout on rank 0
            if comm.rank == 0:
                np.savez(out.replace(".npz", "-adam.npz"), **{k: np.asarray(v) for k, v in state.items()})
        else:
            schedule = "gpipe" if mode == "gpipe" else "1f1b"
            if mode == "shape" and comm.rank == 1:
                from chainrule import nn

                model.layers[len(model.layers) - 1] = nn.Linear(WIDTH + 1, 5)  # disagrees with stage 0
            pipe = Pipeline(model, comm, bounds=[(0, 4), (4, len(model.layers))], schedule=schedule)
            opt = SGD(pipe.params, LR)
            for k, (x, y) in enumerate(batches()):
                if mode == "kill" and comm.rank == 1 and k == 1:
                    os.kill(os.getpid(), signal.SIGKILL)
                if mode == "hang" and comm.rank == 1 and k == 1:
                    time.sleep(600)
                opt.zero_grad()
                pipe.step(x, y, F.cross_entropy, microbatches=3)
                opt.step()
            pipe.sync_parameters(model)
        if comm.rank == 0:
            np.savez(out, **model.state_dict())
        comm.barrier()


def run(mode: str, tmp_path: Path, timeout: float = 120, env_extra: dict[str, str] | None = None) -> Any:
    assert MPIEXEC is not None
    out = tmp_path / f"{mode}.npz"
    env = mpi_env(**(env_extra or {}))
    start = time.monotonic()
    proc = launch([MPIEXEC, "-n", "2", sys.executable, str(HERE), mode, str(out)], env, timeout)
    return proc, out, time.monotonic() - start


def mpi_env(**extra: str) -> dict[str, str]:
    """The environment of an mpiexec job: one BLAS thread per rank, this checkout's chainrule first."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", **extra}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    return env


def launch(cmd: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run an mpiexec job in its own process group; on timeout the whole group is killed (no orphans)."""
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    ) as p:
        try:
            stdout, stderr = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            raise
    return subprocess.CompletedProcess(cmd, p.returncode, stdout, stderr)


def assert_same(got: Any, want: dict[str, np.ndarray]) -> None:
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


@needs_mpi
def test_data_parallel_equals_single_process(tmp_path: Path) -> None:
    proc, out, _ = run("data", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_same(np.load(out), single_process())


def single_process_adam_state() -> dict[str, np.ndarray]:
    """Parameters and Adam's state after the single-process run (for the sharded comparison)."""
    import chainrule.nn.functional as F
    from chainrule.optim import Adam

    model = build()
    opt = Adam(model.parameters(), 0.01)
    for x, y in batches():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return {**model.state_dict(), **{f"optim/{k}": np.asarray(v) for k, v in opt.state_dict().items()}}


@needs_mpi
@pytest.mark.parametrize("mode", ["sharded", "sharded-hosts"])
def test_sharded_data_parallel_equals_single_process(tmp_path: Path, mode: str) -> None:
    """Adam's state sharded over 2 ranks (one host: shared memory; two pretend hosts: Allreduce)."""
    env = {"CHAINRULE_RANKS_PER_HOST": "1"} if mode == "sharded-hosts" else {}
    proc, out, _ = run(mode, tmp_path, env_extra=env)
    assert proc.returncode == 0, proc.stderr
    want = single_process_adam_state()
    got = dict(np.load(out))
    got |= {f"optim/{k}": v for k, v in np.load(str(out).replace(".npz", "-adam.npz")).items()}
    assert got.keys() == want.keys()  # the same checkpoint layout as one process
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-6, err_msg=name)


@needs_mpi
@pytest.mark.parametrize("schedule", ["1f1b", "gpipe"])
def test_pipeline_equals_single_process(tmp_path: Path, schedule: str) -> None:
    proc, out, _ = run(schedule, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_same(np.load(out), single_process())


@needs_mpi
def test_killed_rank_ends_the_job_within_seconds(tmp_path: Path) -> None:
    proc, _, seconds = run("kill", tmp_path, timeout=60, env_extra={"CHAINRULE_MPI_TIMEOUT": "10"})
    assert proc.returncode != 0
    assert seconds < 30
    text = proc.stdout + proc.stderr
    assert "Killed" in text or "rank 0" in text, text


@needs_mpi
def test_hung_rank_gives_a_clear_timeout(tmp_path: Path) -> None:
    proc, _, seconds = run("hang", tmp_path, timeout=60, env_extra={"CHAINRULE_MPI_TIMEOUT": "4"})
    assert proc.returncode != 0
    assert seconds < 30
    assert "PeerTimeout: rank 0" in proc.stderr and "from rank 1" in proc.stderr, proc.stderr


@needs_mpi
def test_shape_mismatch_is_reported_on_every_rank(tmp_path: Path) -> None:
    proc, _, seconds = run("shape", tmp_path, timeout=60, env_extra={"CHAINRULE_MPI_TIMEOUT": "20"})
    assert proc.returncode != 0
    assert seconds < 30
    assert "rank 1 failed: ShapeError" in proc.stderr, proc.stderr
    assert "rank 0 failed: PeerFailed" in proc.stderr or "stopping because rank 1 failed" in proc.stderr, proc.stderr


if __name__ == "__main__":
    sys.path.insert(0, str(SRC))
    worker(sys.argv[1], sys.argv[2])
