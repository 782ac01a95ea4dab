"""Norms at zero: the subgradient 0 (as PyTorch's first derivative), never nan, at every order."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.ops.linalg as LA

torch = pytest.importorskip("torch")

ZERO_ROW = np.array([[1.0], [0.0], [1.0]])


@pytest.mark.parametrize("ord_", [None, 2, 1, 3, 2.5, np.inf])
def test_vector_norm_at_zero_matches_pytorch_first_order(ord_):
    x = np.random.default_rng(0).standard_normal((3, 4)) * ZERO_ROW
    ours = cr.tensor(x, dtype="float64", requires_grad=True)
    LA.norm(ours, ord_, axis=1).sum().backward()
    theirs = torch.tensor(x, requires_grad=True)
    torch.linalg.vector_norm(theirs, 2 if ord_ is None else ord_, dim=1).sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), atol=1e-12)
    assert not np.isnan(ours.grad.numpy()).any()


@pytest.mark.parametrize("fn", [lambda a: LA.norm(a), lambda a: LA.norm(a, "fro"), lambda a: LA.norm(a, 2, axis=0)])
def test_norm_of_zeros_has_zero_gradient_and_hessian(fn):
    zeros = cr.tensor(np.zeros((2, 3)), dtype="float64", requires_grad=True)
    (g,) = cr.grad(cr.sum(fn(zeros)), [zeros], create_graph=True)
    np.testing.assert_array_equal(g.numpy(), 0.0)
    (h,) = cr.grad(cr.sum(g * g) + cr.sum(g), [zeros])
    np.testing.assert_array_equal(h.numpy(), 0.0)


def test_norm_with_a_zero_row_passes_check_grad():
    x = np.random.default_rng(1).standard_normal((3, 4)) * ZERO_ROW
    assert cr.check_grad(lambda a: LA.norm(a * ZERO_ROW, axis=1), x, order=2).ok


def test_norm_values_match_numpy():
    x = np.random.default_rng(2).standard_normal((3, 4, 2))
    for ord_, axis in [(None, None), (None, (0, 2)), ("nuc", (0, 1)), (-2, (2, 1)), (1, 1), (0, 0), (-np.inf, 2)]:
        np.testing.assert_allclose(LA.norm(x, ord_, axis), np.linalg.norm(x, ord_, axis), rtol=1e-12)
        np.testing.assert_allclose(
            LA.norm(x, ord_, axis, keepdims=True), np.linalg.norm(x, ord_, axis, keepdims=True), rtol=1e-12
        )


def test_norm_refuses_orders_below_one():
    with pytest.raises(ValueError, match="norm"):
        LA.norm(np.ones(3), 0.5)
