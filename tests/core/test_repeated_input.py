"""One value given twice to a primitive whose inputs commute (``W * W``, the section's penalty):
the backward makes that value's gradient once and sends it for both inputs (core/backward.py)."""

import contextlib

import numpy as np
import pytest

import chainrule as cr


class _RuleCalls(cr.Interpreter):
    """Counts the derivative rules the walk runs, by primitive and input."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def vjp(self, node, i, g, out, args):
        self.calls.append((node.prim.name, i))
        return super().vjp(node, i, g, out, args)


@pytest.mark.parametrize("interpreted", [False, True])
def test_one_value_twice_in_a_product_gets_its_gradient_made_once_with_the_same_bits(interpreted):
    """``(W * W).sum()``: both inputs of the product are W, whose gradient ``g*W + W*g`` is one
    product sent twice (the same bits as the two products: they are equal), also where a
    subnormal product would round differently as ``(2g) * W``; the rule for input 1 never runs."""
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((5, 4)).astype(np.float32)
    w0[0, :3] = [1e-38, -3e-39, 2e-45]  # their products with g below are subnormal
    g = np.float32(0.3)
    w = cr.tensor(w0, requires_grad=True)
    calls = _RuleCalls()
    with calls if interpreted else contextlib.nullcontext():
        ((w * w).sum() * g).backward()
    two = np.add(np.multiply(g, w0), np.multiply(w0, g))  # input 0's product plus input 1's
    assert w.grad.numpy().tobytes() == two.tobytes()
    if interpreted:
        assert ("multiply", 0) in calls.calls and ("multiply", 1) not in calls.calls
    v = cr.tensor(w0, requires_grad=True)  # two different values: both rules run, as before
    u = cr.tensor(w0 * 2, requires_grad=True)
    calls = _RuleCalls()
    with calls:
        (v * u).sum().backward()
    assert ("multiply", 0) in calls.calls and ("multiply", 1) in calls.calls
    np.testing.assert_array_equal(v.grad.numpy(), w0 * 2)
    np.testing.assert_array_equal(u.grad.numpy(), w0)


def test_one_value_twice_in_a_product_at_second_order():
    """Through the shared gradient of x * x, at first and second order: 3x² and 6x for sum(x * x * x),
    and float64 finite differences of the first derivative agree with the second."""
    x0 = np.array([0.5, -1.5, 2.0])
    first = cr.grad(lambda x: (x * x * x).sum())
    second = cr.grad(lambda x: first(x).sum())
    np.testing.assert_allclose(first(cr.tensor(x0, dtype=np.float64)).numpy(), 3 * x0**2, rtol=1e-15)
    h = second(cr.tensor(x0, dtype=np.float64)).numpy()
    np.testing.assert_allclose(h, 6 * x0, rtol=1e-15)
    eps = 1e-6
    fd = [
        (
            first(cr.tensor(x0 + eps * e, dtype=np.float64)).numpy()
            - first(cr.tensor(x0 - eps * e, dtype=np.float64)).numpy()
        )
        @ e
        / (2 * eps)
        for e in np.eye(3)
    ]
    np.testing.assert_allclose(h, fd, rtol=1e-7)
