"""cr.plan.fit_budget(..., ranks=2): a pipeline plan for a step that does not fit one process, run for real.

The test plans in this process, then runs the plan with ``mpiexec -n 2 python
tests/plan/test_planner_mpi.py <budget> <out>`` (this file is also the worker): every rank plans
again (the same plan), runs its stage with the plan's microbatches and schedule, and measures
its step's peak with ``cr.memory.profile`` (tracemalloc), which must stay under the budget.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

HERE = Path(__file__).resolve()
SRC = HERE.parents[2] / "src"
BATCH, D, WIDTH, BUDGET = 256, 32, 128, 1_000_000

sys.path.insert(0, str(HERE.parents[1]))  # tests/, for conftest
sys.path.insert(0, str(HERE.parents[1] / "parallel"))  # the MPI job helpers of test_parallel_mpi
from test_parallel_mpi import MPIEXEC, launch, mpi_env, needs_mpi  # noqa: E402


def build() -> Any:
    from chainrule import nn

    rng = np.random.default_rng(0)
    layers: list[nn.Module] = [nn.Linear(D, WIDTH, rng=rng), nn.Tanh()]
    for _ in range(4):
        layers += [nn.Linear(WIDTH, WIDTH, rng=rng), nn.Tanh()]
    layers.append(nn.Linear(WIDTH, 10, rng=rng))
    return nn.Sequential(*layers)


def pipeline_plan(model: Any, budget: int) -> Any:
    from chainrule.plan.planner import fit_budget

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_budget(model, (D,), BATCH, budget, ranks=2, parallel=("pipeline",), max_microbatches=16)


def worker(budget: int, out: str) -> None:
    import chainrule.nn.functional as F
    from chainrule.measure import memory
    from chainrule.optim import SGD
    from chainrule.parallel import Comm, Pipeline, failing_together

    comm = Comm(timeout=30)
    with failing_together(comm, linger=2.0):
        model = build()
        report = pipeline_plan(model, budget)
        chosen = comm.comm.bcast(report.plan, root=0)
        pipe = Pipeline(model, comm, bounds=chosen.stages, schedule=chosen.schedule)
        opt = SGD(pipe.params, 0.01)
        rng = np.random.default_rng(1)
        x = rng.standard_normal((BATCH, D)).astype(np.float32)
        y = rng.integers(0, 10, BATCH)

        def step(x: Any, y: Any) -> None:
            opt.zero_grad()
            pipe.step(x, y, F.cross_entropy, chosen.microbatches)
            opt.step()

        prof = memory.profile(step, x, y, params=model.parameters(), optimizer=opt, warmup=1)
        peaks = comm.comm.gather(prof.peak, root=0)
        if comm.rank == 0:
            Path(out).write_text(
                json.dumps(
                    {
                        "peaks": peaks,
                        "predicted": report.chosen.peak,
                        "microbatches": chosen.microbatches,
                        "stages": chosen.stages,
                        "schedule": chosen.schedule,
                        "in_flight": pipe.max_in_flight,
                    }
                )
            )
        comm.barrier()


@needs_mpi
def test_pipeline_plan_fits_where_one_process_does_not(tmp_path: Path) -> None:
    from chainrule.plan.planner import fit_budget

    model = build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        single = fit_budget(model, (D,), BATCH, 10**12, max_microbatches=1)
    plain = next(c for c in single.candidates if c.checkpoint_every == 0)
    assert plain.needs > BUDGET  # the plain single-process step does not fit
    report = pipeline_plan(model, BUDGET)
    assert report.plan is not None and report.plan.parallel == "pipeline"
    assert report.chosen is not None and report.chosen.needs <= BUDGET
    assert report.plan.stages is not None and len(report.plan.stages) == 2
    assert "bubble" in report.why() and "bytes sent per step" in report.why()

    assert MPIEXEC is not None
    out = tmp_path / "peaks.json"
    env = mpi_env()
    proc = launch([MPIEXEC, "-n", "2", sys.executable, str(HERE), str(BUDGET), str(out)], env, 180)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(out.read_text())
    assert got["stages"] == [list(s) for s in report.plan.stages]
    assert len(got["peaks"]) == 2
    for rank, peak in enumerate(got["peaks"]):
        assert 0 < peak <= BUDGET, f"rank {rank}: measured {peak:,} > budget {BUDGET:,}\n{report.table()}"


def test_ranks_plan_weighs_data_and_pipeline() -> None:
    model = build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = plan_both(model)
    modes = {c.parallel for c in report.candidates}
    assert modes == {"data", "pipeline"}
    for c in report.candidates:
        if c.parallel == "pipeline":
            assert c.bubble == pytest.approx(1 / (c.microbatches + 1))
            assert c.comm_bytes == 2 * BATCH * WIDTH * 4  # one boundary: activations forward, gradients back
        else:
            n_params = sum(p.size for p in model.parameters())
            assert c.comm_bytes == int(2 * (2 - 1) / 2 * n_params * 4)  # ring Allreduce, 2(P-1)/P x gradients
    pipe = [c for c in report.candidates if c.parallel == "pipeline"]
    for m in {c.microbatches for c in pipe}:
        one_f, gp = (next(c for c in pipe if c.microbatches == m and c.schedule == s) for s in ("1f1b", "gpipe"))
        assert one_f.peak <= gp.peak  # 1F1B holds at most S microbatches, GPipe all M


def plan_both(model: Any) -> Any:
    from chainrule.plan.planner import fit_budget

    return fit_budget(model, (D,), BATCH, 10**12, ranks=2, max_microbatches=8)


if __name__ == "__main__":
    sys.path.insert(0, str(SRC))
    worker(int(sys.argv[1]), sys.argv[2])
