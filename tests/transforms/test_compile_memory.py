"""cr.compile's buffer plan as a memory prediction (``program.memory``), checked against what we did not
write: the peak NumPy reports to ``tracemalloc`` during one replay, and ``cr.memory.estimate`` of the
same step run eagerly.

What the plan cannot see, and so the stated tolerance above the prediction (never below it):

- the replay's Python objects, which ``tracemalloc`` also traces: array headers, NumPy scalars, the
  frame (about 100 bytes each; ``PY_SLACK`` for a few dozen of them);
- a ufunc's iterator buffers: when it broadcasts an operand (the bias add), casts one (a float times a
  bool mask) or iterates a fancy index (the cross-entropy's label column), NumPy allocates buffers of up
  to ``np.getbufsize()`` elements per buffered operand inside the call and frees them before it
  returns (``BUFFER_SLACK``: two of them at the widest item size, 8 bytes).

An elementwise chain without broadcasts or casts has no iterator buffers: it is held to ``PY_SLACK``.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
from chainrule import nn
from chainrule.measure.shapes import ShapeDtype

PY_SLACK = 4096
BUFFER_SLACK = 2 * np.getbufsize() * 8


def _replay_peak(compiled: Any, args: tuple[Any, ...], params: list[cr.Tensor]) -> int:
    """The bytes ``tracemalloc`` saw at the peak of one call of ``compiled``, beyond what existed before it."""
    for p in params:
        p.grad = None  # the plan assumes zero_grad(): a gradient handed to an empty .grad stays as it is
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        compiled(*args)
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def _check(
    name: str, step: Callable[..., Any], args: tuple[Any, ...], params: list[cr.Tensor], slack: int
) -> tuple[int, int]:
    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc is already tracing")
    compiled = cr.compile(step)
    for p in params:
        p.grad = None
    compiled(*args)  # the capture: plans the buffers
    first = _replay_peak(compiled, args, params)  # the first replay allocates the planned buffers
    steady = _replay_peak(compiled, args, params)  # later ones reuse them
    plan = compiled.memory(*args)
    program = next(iter(compiled.programs.values()))
    assert program.memory is plan
    assert plan.buffers == sum(b.nbytes for b in program.buffers)
    assert plan.leaving <= plan.transient
    assert plan.transient <= steady <= plan.transient + slack, (name, plan, steady)
    assert plan.peak <= first <= plan.peak + slack, (name, plan, first)

    eager = cr.memory.estimate(step, *[ShapeDtype(a.shape, a.dtype, a.requires_grad) for a in args], params=params)
    given = sum(p._data.nbytes for p in params) + sum(a._data.nbytes for a in args if all(a is not p for p in params))
    compiled_total = given + plan.peak
    print(
        f"{name}: plan buffers {plan.buffers} B, transient {plan.transient} B (measured {steady} B, "
        f"first replay {first} B vs {plan.peak} B); with inputs and parameters {compiled_total} B, "
        f"eager estimate peak {eager.peak} B"
    )
    assert compiled_total <= eager.peak, (name, compiled_total, eager.peak)
    return plan.transient, steady


def test_plan_predicts_the_d2l_mlp_replay() -> None:
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(784, 64, rng=rng), nn.ReLU(), nn.Linear(64, 10, rng=rng))
    x, y = cr.tensor(rng.random((16, 784), dtype=np.float32)), cr.tensor(np.arange(16) % 10)

    def step(x: cr.Tensor, y: cr.Tensor) -> cr.Tensor:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    _check("d2l MLP 784-64-10, batch 16", step, (x, y), model.parameters(), PY_SLACK + BUFFER_SLACK)


def test_plan_predicts_the_section_objective_replay() -> None:
    rng = np.random.default_rng(0)
    lam = 1e-4
    shapes = [(784, 256), (256,), (256, 10), (10,)]
    W1, b1, W2, b2 = (cr.tensor((rng.standard_normal(s) * 0.01).astype(np.float32), requires_grad=True) for s in shapes)
    X, y = cr.tensor(rng.random((256, 784), dtype=np.float32)), cr.tensor(rng.integers(0, 10, 256))

    def step(X: cr.Tensor, y: cr.Tensor) -> cr.Tensor:
        h = F.relu(X @ W1 + b1)
        o = h @ W2 + b2
        J = F.cross_entropy(o, y) + lam / 2 * ((W1 * W1).sum() + (W2 * W2).sum())
        J.backward()
        return J

    _check("section objective, batch 256", step, (X, y), [W1, b1, W2, b2], PY_SLACK + BUFFER_SLACK)


def test_plan_predicts_an_elementwise_chain_exactly_but_for_python_objects() -> None:
    a = cr.tensor(np.random.default_rng(0).random((300, 200)), requires_grad=True)

    def step(a: cr.Tensor) -> cr.Tensor:
        z = cr.exp(a * 2.0 + 1.0) * a - cr.sin(a)
        s = (z * z).sum()
        s.backward()
        return s

    _check("elementwise chain 300x200 float64", step, (a,), [a], PY_SLACK)


def test_memory_needs_a_capture_first() -> None:
    compiled = cr.compile(lambda x: x * 2.0)
    with pytest.raises(LookupError, match="call with such arguments first"):
        compiled.memory(cr.tensor(np.ones(3)))


def test_a_capture_holds_little_more_than_the_eager_step_it_runs():
    """The first call runs the step eagerly while recording it, then rewrites and checks each lowering
    against the captured arrays. Its peak stays within 2.75 times the eager step's (d2l shape,
    784-256-10, batch 256; 2.39 measured): the checks compare bits without copying the arrays, and
    the recorded arrays a rewrite replaced are let go (3.24 times before, two copies per check)."""
    rng = np.random.default_rng(0)
    x, y = rng.random((256, 784), dtype=np.float32), rng.integers(0, 10, 256)

    def make() -> tuple[Callable[..., Any], list[cr.Tensor]]:
        ws = [
            cr.tensor(rng.standard_normal(s).astype(np.float32) * 0.05, requires_grad=True)
            for s in ((256, 784), (10, 256))
        ]

        def step(inp: Any, labels: Any) -> Any:
            loss = F.cross_entropy(F.relu(inp @ ws[0].T) @ ws[1].T, labels)
            loss.backward()
            return loss

        return step, ws

    peaks = []
    for compiled in (False, True):
        step, ws = make()
        run = cr.compile(step) if compiled else step
        tracemalloc.start()
        try:
            run(cr.tensor(x), y)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    eager, capture = peaks
    assert capture <= 2.75 * eager, (capture, eager)
