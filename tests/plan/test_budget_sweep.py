"""The memory budget is a promise: a small version of benchmarks/budget_sweep.py (see benchmarks/BUDGET.md).

Each run goes through ``chainrule train --memory-budget`` and every step's peak, from step 1, is
measured in NumPy's tracemalloc domain, independently of the planner.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from chainrule.cli.measure import build_mlp
from chainrule.plan.planner import MemoryBudgetError, fit_budget

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sweep():
    spec = importlib.util.spec_from_file_location("budget_sweep", ROOT / "benchmarks" / "budget_sweep.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["budget_sweep"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["budget_sweep"]


@pytest.mark.parametrize(
    "model,batch,optimizer",
    [((64, 4, 16), 512, "sgd"), ((784, 1, 16), 64, "adam"), ((784, 0, 16), 128, "momentum")],
    ids=["64-in-4x16-sgd", "784-in-1x16-adam", "section-784-16-momentum"],
)
def test_every_step_stays_within_the_budget_from_the_smallest_named_to_the_plain_peak(sweep, model, batch, optimizer):
    rows = sweep.sweep([model], [batch], (0.0, 0.5, 1.0), optimizer)
    assert len(rows) == 3
    for r in rows:
        assert r["code"] == 0, r
        assert len(r["peaks"]) == 2 and all(p > 0 for p in r["peaks"]), r
        assert r["worst"] <= r["budget"], r  # the overshoot was 4-12x


def test_the_smallest_named_budget_is_attainable_and_below_it_nothing_fits(sweep):
    low, _ = sweep.smallest_and_plain((64, 4, 16), 512)
    assert sweep.run((64, 4, 16), 512, low)["code"] == 0
    assert sweep.run((64, 4, 16), 512, low - 1)["code"] == 2


def test_input_dominated_step_is_named_instead_of_512_microbatches():
    """784 inputs, 256 hidden, batch 4096: the batch is most of the memory; microbatching is not the answer."""
    from chainrule.optim import SGD

    model = build_mlp(1, 256, np.float32, inputs=784)
    with pytest.raises(MemoryBudgetError) as info:
        fit_budget(model, (784,), 4096, 1000, optimizer=SGD(model.parameters(), 0.1))
    first = str(info.value).splitlines()[0]
    assert "the step is input-dominated, use a smaller batch size" in first, first
    assert "12,877,824 bytes of it" in first  # 4096 x (784 x 4 + 8): the batch and its labels
    assert all(c.microbatches <= 64 for c in info.value.report.candidates)


def test_an_outside_tracer_changes_nothing(sweep, tmp_path):
    """A caller already tracing (measuring the run from outside) gets the same plan and the same named budget."""
    import tracemalloc

    from chainrule.plan.budget import fixed_overhead

    untraced = sweep.smallest_and_plain((64, 4, 16), 512)
    fixed_overhead.cache_clear()
    tracemalloc.start()
    try:
        traced = sweep.smallest_and_plain((64, 4, 16), 512)  # the overhead is measured in a child process
        with sweep.swapped((64, 4, 16), 1024):
            argv = ["train", "--model", "mlp", "--hidden", "16", "--epochs", "1", "--batch-size", "512", "--quiet"]
            code = sweep.cli([*argv, "--memory-budget", str(traced[0]), "--out", str(tmp_path / "r")])
    finally:
        tracemalloc.stop()
        fixed_overhead.cache_clear()
    assert traced == untraced and code == 0
