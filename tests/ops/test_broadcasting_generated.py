"""Generated shapes: binary ops under NumPy broadcasting, gradients against PyTorch and
finite differences. Shapes include 0-d and size-1 axes on either side."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chainrule as cr

torch = pytest.importorskip("torch")

OPS = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "subtract": (lambda a, b: a - b, lambda a, b: a - b),
    "multiply": (lambda a, b: a * b, lambda a, b: a * b),
    "divide": (lambda a, b: a / (b * b + 1.0), lambda a, b: a / (b * b + 1.0)),
    "maximum": (cr.maximum, torch.maximum),
    "where": (lambda a, b: cr.where(a > b, a * b, b), lambda a, b: torch.where(a > b, a * b, b)),
}


@st.composite
def broadcast_pair(draw):
    ndim = draw(st.integers(0, 3))
    full = [draw(st.integers(1, 4)) for _ in range(ndim)]

    def operand():
        keep = draw(st.integers(0, ndim))  # drop leading axes, then set some axes to 1
        shape = full[ndim - keep :]
        return tuple(1 if draw(st.booleans()) else n for n in shape)

    return operand(), operand()


@settings(max_examples=60, deadline=None)
@given(pair=broadcast_pair(), op=st.sampled_from(sorted(OPS)), seed=st.integers(0, 2**16))
def test_broadcast_gradients_match_pytorch(pair, op, seed):
    rng = np.random.default_rng(seed)
    a, b = (rng.standard_normal(s) for s in pair)
    ours_fn, torch_fn = OPS[op]
    x, y = cr.tensor(a, dtype="float64", requires_grad=True), cr.tensor(b, dtype="float64", requires_grad=True)
    out = ours_fn(x, y)
    tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    tout = torch_fn(tx, ty)
    assert out.shape == tuple(tout.shape)
    cot = rng.standard_normal(out.shape)
    out.backward(cot)
    tout.backward(torch.tensor(cot))
    assert x.grad.shape == a.shape and y.grad.shape == b.shape
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y.grad.numpy(), ty.grad.numpy(), rtol=1e-10, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(pair=broadcast_pair(), op=st.sampled_from(sorted(OPS)))
def test_broadcast_second_order_matches_finite_differences(pair, op):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(pair[0]), rng.standard_normal(pair[1])
    # (random normal operands are almost surely not within the 1e-6 step of maximum's/where's kink)
    report = cr.check_grad(OPS[op][0], a, b, order=2, raise_on_error=False)
    assert report.ok, str(report)
