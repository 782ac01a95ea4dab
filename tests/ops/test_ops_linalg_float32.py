"""Every linalg/shape/product case runs in float32 too: no dtype errors, gradients stay float32."""

import numpy as np
import pytest
from tests.cases_linalg_shape import cases

import chainrule as cr

CASES = cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_float32_first_and_second_order(case):
    xs = [cr.tensor(x, dtype="float32", requires_grad=True) for x in case.inputs(seed=3)]
    out = case.fn(*xs)
    assert out.dtype == np.float32
    grads = cr.grad(cr.sum(out * out), xs, create_graph=True)
    assert all(g.dtype == np.float32 and np.isfinite(g.numpy()).all() for g in grads)
    total = sum(cr.sum(g) for g in grads)
    if getattr(total, "requires_grad", False):
        second = cr.grad(total, xs)
        assert all(g.dtype == np.float32 for g in second)
