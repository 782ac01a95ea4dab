"""Shape-only evaluation against the real run, on every case of the shared op table (tests/op_cases.py):
each primitive's shape rule gives its output's shape and dtype, and the memory estimate runs each
case's backward pass (hand models and rules evaluated shape-only alike)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from tests.op_cases import CASES

import chainrule as cr
from chainrule.measure.shapes import ShapeDtype
from chainrule.ops.linalg import LinAlgGradientError
from chainrule.transforms.tree import tree_flatten


def _specs(tree: Any) -> list[tuple[tuple[int, ...], np.dtype[Any]]]:
    leaves, _ = tree_flatten(tree)
    return [(tuple(x.shape), np.dtype(x.dtype)) for x in leaves if hasattr(x, "shape")]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_eval_shape_matches_the_real_output(case: Any) -> None:
    inputs = case.inputs()
    real = case.fn(*[cr.tensor(x, dtype="float64") for x in inputs])
    abstract = cr.eval_shape(case.fn, *[ShapeDtype(x.shape, x.dtype) for x in inputs])
    assert _specs(abstract) == _specs(real)
    assert _specs(real), "the case returned no array"


def _backward_step(case: Any) -> Any:
    def step(*xs: Any) -> None:
        out = case.fn(*xs)
        cr.sum(out * 1.0).backward()

    return step


# pinv chooses its primitive by the input's rank, read from the values: placeholders (zeros) have
# rank 0, so shape-only evaluation takes the rank-deficient path, whose gradient raises by design.
BY_VALUE = {"pinv_wide", "pinv_tall"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_memory_estimate_runs_every_cases_backward(case: Any) -> None:
    inputs = case.inputs()
    specs = [ShapeDtype(x.shape, x.dtype, requires_grad=True) for x in inputs]
    if case.name in BY_VALUE:
        with pytest.raises(LinAlgGradientError, match="pinv: not differentiable at a rank-deficient"):
            cr.memory.estimate(_backward_step(case), *specs)
        return
    predicted = cr.memory.estimate(_backward_step(case), *specs)
    assert predicted.predicted and any(p.phase == "backward" for p in predicted.points)
    assert predicted.peak >= sum(x.nbytes for x in inputs)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cost_counts_every_cases_nodes(case: Any) -> None:
    """Every primitive's FLOP rules (forward, and its VJP rules for the inputs that need one) run."""
    specs = [ShapeDtype(x.shape, x.dtype, requires_grad=True) for x in case.inputs()]
    report = cr.cost(lambda *xs: cr.sum(case.fn(*xs) * 1.0), *specs)
    assert report.rows and all(r.forward_flops >= 0 and r.backward_flops >= 0 for r in report.rows)
    assert any(r.backward_flops or r.backward_bytes for r in report.rows)  # the backward was charged
