"""cr.plan.fit_budget: the chosen plan's measured peak stays within budget; the choice is the cheapest that fits."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from chainrule.cli.measure import build_mlp
from chainrule.measure import memory
from chainrule.models.objective import objective
from chainrule.nn import Sequential
from chainrule.optim import SGD
from chainrule.parallel import accumulate
from chainrule.plan.candidates import Estimator
from chainrule.plan.planner import MemoryBudgetError, fit_budget, parse_size
from chainrule.plan.timing import StepTimer, calibrate
from chainrule.transforms.remat import sqrt_segments

B, D = 128, 32


def mlp(depth: int, width: int) -> Sequential:
    model: Sequential = build_mlp(depth, width, np.float32, inputs=D, outputs=10)
    return model


def measured_peak(model: Sequential, opt: SGD, microbatches: int, batch: int = B) -> int:
    """One training step with the plan applied (checkpoint_every already set on the model), measured."""
    rng = np.random.default_rng(1)
    x = rng.random((batch, D), dtype=np.float32)
    y = rng.integers(0, 10, batch)

    def grads(xt: Any, yt: Any) -> Any:
        J, logits = objective(model, xt, yt)
        J.backward()
        return J, logits

    def step(x: Any, y: Any) -> None:
        opt.zero_grad()
        accumulate(grads, opt.params, x, y, microbatches)
        opt.step()

    return memory.profile(step, x, y, model=model, optimizer=opt, warmup=1).peak


@pytest.fixture(autouse=True)
def _quiet() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.mark.parametrize("depth,width", [(2, 64), (6, 32)])
def test_measured_peak_never_exceeds_the_budget(depth: int, width: int) -> None:
    model = mlp(depth, width)
    opt = SGD(model.parameters(), 0.1)
    full = fit_budget(model, (D,), B, 10**12, optimizer=opt, max_microbatches=8)
    lo = min(c.needs for c in full.candidates)
    hi = max(c.needs for c in full.candidates)
    chosen = set()
    for budget in np.linspace(lo, hi, 6).astype(int):
        report = fit_budget(model, (D,), B, int(budget), optimizer=opt, max_microbatches=8)
        assert report.plan is not None
        report.plan.apply_to(model)
        peak = measured_peak(model, opt, report.plan.microbatches)
        chosen.add((report.plan.microbatches, report.plan.checkpoint_every))
        assert peak <= budget, f"budget {budget:,}: measured {peak:,}\n{report.table()}"
    assert len(chosen) >= 2  # the sweep really moves between plans


def test_no_fit_names_the_smallest_budget_and_that_budget_fits() -> None:
    model = mlp(3, 32)
    opt = SGD(model.parameters(), 0.1)
    with pytest.raises(MemoryBudgetError, match="smallest budget that fits is") as info:
        fit_budget(model, (D,), B, 1000, optimizer=opt)
    smallest = info.value.smallest
    assert f"{smallest:,} bytes" in str(info.value)
    assert fit_budget(model, (D,), B, smallest, optimizer=opt).plan is not None
    with pytest.raises(MemoryBudgetError):
        fit_budget(model, (D,), B, smallest - 1, optimizer=opt)


def test_chosen_is_the_fastest_fitting_candidate() -> None:
    model = mlp(4, 32)
    opt = SGD(model.parameters(), 0.1)
    n = len(model.layers)
    full = fit_budget(model, (D,), B, 10**12, optimizer=opt)
    assert {c.checkpoint_every for c in full.candidates} >= {0, 1, sqrt_segments(n)}
    for c in full.candidates:
        assert c.seconds > 0 and np.isfinite(c.seconds)
        assert (c.recompute > 0) == (c.checkpoint_every > 0)
    budgets = sorted({c.needs for c in full.candidates})
    for budget in budgets[:: max(1, len(budgets) // 8)]:
        report = fit_budget(model, (D,), B, budget, optimizer=opt)
        best = min(c.seconds for c in report.candidates if c.needs <= budget)
        assert report.chosen is not None and report.chosen.needs <= budget
        assert report.chosen.seconds == best
        assert "| yes |" in report.table() and "**yes**" in report.table()


def test_checkpointing_is_chosen_when_it_alone_fits_and_really_fits() -> None:
    model = mlp(8, 64)
    opt = SGD(model.parameters(), 0.1)
    full = fit_budget(model, (D,), 512, 10**12, optimizer=opt, max_microbatches=1)
    plain = next(c for c in full.candidates if c.checkpoint_every == 0)
    ckpt = min((c for c in full.candidates if c.checkpoint_every), key=lambda c: c.needs)
    assert ckpt.needs < plain.needs  # checkpointing saves memory on this deep narrow net
    report = fit_budget(model, (D,), 512, ckpt.needs, optimizer=opt, max_microbatches=1)
    assert report.plan is not None and report.plan.microbatches == 1 and report.plan.checkpoint_every > 0
    report.plan.apply_to(model)
    assert measured_peak(model, opt, 1, batch=512) <= ckpt.needs  # and the checkpointed step really fits


def test_calibration_and_time_model_are_consistent() -> None:
    cal = calibrate()
    for name in ("forward_node", "backward_node", "step_fixed", "copy_bytes_per_second"):
        value = getattr(cal, name)
        assert value > 0 and np.isfinite(value), name
    assert all(t > 0 for _, t in cal.elementwise)
    assert cal.elementwise_seconds(10**7) > cal.elementwise_seconds(10**3) > 0
    assert calibrate() is cal  # cached
    model = mlp(3, 64)
    opt = SGD(model.parameters(), 0.1)
    est = Estimator(model, (D,), opt, np.float32, np.int64)
    timer = StepTimer(model, (D,), np.float32, np.int64, est.shapes, cal)
    n = len(model.layers)
    small, large = (sum(timer.seconds(0, n, b, True)[:2]) for b in (16, 4096))
    assert 0 < small < large  # 256x the examples: more time (measured products, so only far apart sizes compare)
    plain, none = timer.step_seconds([128], 0)
    ckpt, recompute = timer.step_seconds([128], 2)
    assert none == 0 and recompute > 0 and ckpt == pytest.approx(plain + recompute)
    four = timer.step_seconds([32] * 4, 0)[0]
    assert four >= 4 * cal.step_fixed + 4 * timer.accumulate_seconds() > 0  # four microbatches pay the fixed costs 4x


def test_parse_size() -> None:
    assert parse_size("200MB") == 200 * 10**6
    assert parse_size("1.5GiB") == int(1.5 * 2**30)
    assert parse_size("123456") == 123456
    assert parse_size("64 kib") == 65536
    for bad in ("", "abc", "12XB", "-5MB", "0", "1e3", "MB"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_bad_arguments_name_the_operation() -> None:
    model = mlp(2, 32)
    with pytest.raises(ValueError, match="plan.fit_budget: ranks must be a positive integer, got 0"):
        fit_budget(model, (D,), B, 10**9, ranks=0)
    with pytest.raises(ValueError, match="'none' is one process"):
        fit_budget(model, (D,), B, 10**9, ranks=2, parallel=("none",))
    with pytest.raises(ValueError, match="parallel modes must be among"):
        fit_budget(model, (D,), B, 10**9, ranks=2, parallel=("model",))
    with pytest.raises(ValueError, match="at least ranks=9 layers, got Sequential of 5 layers"):
        fit_budget(model, (D,), B, 10**9, ranks=9, parallel=("pipeline",))
