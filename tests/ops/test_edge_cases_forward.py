"""Forward-pass edge cases found by PyTorch's OpInfo samples and HIPS autograd's tests (issue 18):
each case checks the value against NumPy (or PyTorch where NumPy has no such function) and, for
differentiable results, the derivatives against finite differences."""

import numpy as np
import pytest
import torch

import chainrule as cr
import chainrule.nn.functional as F

RNG = np.random.default_rng(0)
A55 = RNG.standard_normal((5, 5))


def _t(a, grad=False):
    return cr.tensor(np.asarray(a, dtype=np.float64), dtype="float64", requires_grad=grad)


def _check(fn, *xs):
    assert cr.check_grad(fn, *xs, order=2, modes=("rev", "fwd")).ok


def test_take_along_axis_broadcasts_its_indices():
    idx = np.array([[0, 3]])
    out = np.take_along_axis(_t(A55), idx, axis=1)
    np.testing.assert_array_equal(out.numpy(), np.take_along_axis(A55, idx, axis=1))
    assert out.shape == (5, 2)
    row = RNG.standard_normal((1, 5))
    idx2 = RNG.integers(0, 5, (5, 2))
    np.testing.assert_array_equal(np.take_along_axis(_t(row), idx2, axis=1).numpy(), np.take_along_axis(row, idx2, 1))
    _check(lambda a: cr.take_along_axis(a, idx, axis=1), A55)
    _check(lambda a: cr.take_along_axis(a, idx2, axis=1), row)
    with pytest.raises(cr.ShapeError, match="take_along_axis: indices shape \\(3, 2\\) does not broadcast"):
        cr.take_along_axis(_t(A55), np.zeros((3, 2), int), axis=1)


@pytest.mark.parametrize("axis", [0, -1])
@pytest.mark.parametrize("name", ["sum", "prod", "max", "min", "cumsum", "cumprod"])
def test_axis_0_and_minus_1_on_a_0d_tensor(name, axis):
    x = np.array(1.7)
    out = getattr(cr, name)(_t(x), axis=axis)
    expected = getattr(np, name)(x, axis=axis)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected)
    _check(lambda a: getattr(cr, name)(a, axis=axis), x)


@pytest.mark.parametrize("axis", [0, -1])
def test_softmax_log_softmax_logsumexp_of_a_0d_tensor(axis):
    x = torch.tensor(0.3, dtype=torch.float64)
    for ours, theirs in [
        (F.softmax, torch.softmax),
        (F.log_softmax, torch.log_softmax),
        (cr.logsumexp, torch.logsumexp),
    ]:
        out = ours(_t(0.3), axis=axis)
        assert out.shape == ()
        np.testing.assert_allclose(out.numpy(), theirs(x, axis).numpy())
        _check(lambda a, f=ours: f(a, axis=axis), np.array(0.3))
    with pytest.raises(ValueError, match="softmax: axis 1 is out of range for an array of 0 dimensions"):
        F.softmax(_t(0.3), axis=1)
    with pytest.raises(ValueError, match="softmax: axis 2 is out of range for an array of 2 dimensions"):
        F.softmax(_t(A55), axis=2)  # was silently wrapped to axis 0


def test_expand_dims_with_a_tuple_of_axes():
    for axes in [(0, 2), (-1, 0), (1,), 2, -3]:
        out = np.expand_dims(_t(A55[:, :3]), axes)
        assert out.shape == np.expand_dims(A55[:, :3], axes).shape
    _check(lambda a: cr.expand_dims(a, (0, 2)) * 2.0, A55[:2, :3])
    with pytest.raises(ValueError, match="expand_dims: axis 3 is out of range for 3 dimensions"):
        cr.expand_dims(_t(A55[:, :3]), 3)  # NumPy's AxisError; it used to wrap round to axis 0
    with pytest.raises(ValueError, match="expand_dims: repeated axis"):
        cr.expand_dims(_t(A55), (0, 0))


def test_diff_of_order_zero_is_the_input():
    out = np.diff(_t(A55), n=0, prepend=np.zeros((1, 5)), append=np.zeros((2, 5)), axis=0)
    np.testing.assert_array_equal(out.numpy(), A55)
    with pytest.raises(ValueError, match="diff: order must be non-negative but got -1"):
        cr.diff(_t(A55), n=-1)


@pytest.mark.parametrize("name", ["max", "min"])
def test_extremum_over_a_non_empty_axis_of_an_array_empty_elsewhere(name):
    empty = np.zeros((0, 5))
    out = getattr(np, name)(_t(empty), axis=1)
    assert out.shape == (0,)
    assert getattr(cr, name)(_t(empty), axis=1, keepdims=True).shape == (0, 1)
    with pytest.raises(ValueError, match=f"{name}: expected a non-empty slice to reduce, but axis 0 of shape"):
        getattr(cr, name)(_t(empty), axis=0)


def test_split_with_a_0d_array_of_sections():
    parts = np.array_split(_t(A55), np.array(3))
    assert [p.shape for p in parts] == [(2, 5), (2, 5), (1, 5)]
    assert [p.shape for p in cr.split(_t(A55[:4]), np.array(2))] == [(2, 5), (2, 5)]
    assert [p.shape for p in np.array_split(_t(A55), np.array([1, 3]))] == [(1, 5), (2, 5), (2, 5)]


def test_einsum_with_a_zero_length_leading_axis():
    a, b = np.zeros((0, 2, 3)), np.zeros((0, 3, 4))
    assert cr.einsum("...ij,...jk->...ik", _t(a), _t(b)).shape == (0, 2, 4)
    assert cr.einsum("...ij,...jk->...ik", _t(np.zeros((1, 2, 3))), _t(b)).shape == (0, 2, 4)


def test_einsum_sublist_form():
    b = RNG.standard_normal((5, 3))
    out = np.einsum(_t(A55), [0, 1], _t(b), [1, 2], [0, 2])
    np.testing.assert_allclose(out.numpy(), np.einsum(A55, [0, 1], b, [1, 2], [0, 2]))
    implicit = cr.einsum(_t(A55), [0, 1], _t(b), [1, 2])
    np.testing.assert_allclose(implicit.numpy(), np.einsum(A55, [0, 1], b, [1, 2]))
    ell = cr.einsum(_t(A55), [Ellipsis, 1], [Ellipsis])
    np.testing.assert_allclose(ell.numpy(), np.einsum(A55, [Ellipsis, 1], [Ellipsis]))
    _check(lambda x, y: cr.einsum(x, [0, 1], y, [1, 2], [0, 2]), A55, b)
    with pytest.raises(ValueError, match="einsum: sublist entries must be ints"):
        cr.einsum(_t(A55), ["i", "j"])


def test_std_of_one_element_has_zero_derivatives():
    for shape, axis in [((1,), None), ((3, 1), 1), ((), None)]:
        x = RNG.standard_normal(shape)
        assert np.all(cr.std(_t(x), axis=axis).numpy() == 0)
        x_t = _t(x, grad=True)
        cr.std(x_t, axis=axis).sum().backward()
        np.testing.assert_array_equal(x_t.grad.numpy(), np.zeros(shape))
        _, tangent = cr.jvp(lambda a, ax=axis: cr.std(a, axis=ax), (x,), (np.ones(shape),))
        np.testing.assert_array_equal(np.asarray(tangent), 0)
        _check(lambda a, ax=axis: cr.std(a, axis=ax), x)


def test_norm_of_a_list():
    assert float(cr.linalg.norm([3.0, 4.0])) == 5.0
    x = _t(1.0, grad=True)
    out = cr.linalg.norm([x, x + 2])  # sqrt(x² + (x+2)²)
    out.backward()
    np.testing.assert_allclose(float(out), np.sqrt(10))
    np.testing.assert_allclose(float(x.grad), (1 + 3) / np.sqrt(10))
    assert float(cr.linalg.vector_norm([[3.0], [4.0]])) == 5.0


def test_numpy_keyword_arguments_at_their_defaults_are_accepted():
    t = _t(A55)
    np.testing.assert_allclose(np.vstack([t, t], dtype=None).numpy(), np.vstack([A55, A55]))
    np.testing.assert_allclose(np.concatenate([t, t], dtype=None).numpy(), np.concatenate([A55, A55]))
    np.testing.assert_allclose(float(np.sum(t, dtype=None)), A55.sum())
    np.testing.assert_allclose(float(np.sum(t, out=None)), A55.sum())
    np.testing.assert_allclose(float(np.mean(t, out=None, keepdims=False)), A55.mean())
    np.testing.assert_allclose(np.exp(t, out=None, where=True, casting="same_kind").numpy(), np.exp(A55))
    np.testing.assert_allclose(float(np.sum(t, dtype=np.float64)), A55.sum())  # the result's own dtype


def test_numpy_keyword_arguments_asking_for_more_are_refused_by_name():
    f32 = cr.tensor(np.ones(3, np.float32))
    with pytest.raises(TypeError, match="numpy.sum: dtype=float64 is not supported here \\(the result is float32\\)"):
        np.sum(f32, dtype=np.float64)
    with pytest.raises(TypeError, match="numpy.sum: out= is not supported on tensors"):
        np.sum(f32, out=np.zeros(()))
    with pytest.raises(TypeError, match="np.exp: keyword argument where=.* is not supported on tensors"):
        np.exp(f32, where=np.array([True, False, True]))
    with pytest.raises(TypeError, match="numpy.sum: keyword argument initial=5 is not supported"):
        np.sum(f32, initial=5)


def test_numpy_shape_queries_on_tensors():
    t = _t(A55, grad=True)
    assert np.ndim(t) == 2 and np.shape(t) == (5, 5) and np.size(t) == 25 and np.size(t, 0) == 5
    plain = _t(A55)
    np.testing.assert_array_equal(np.r_[plain[0], plain[1]], np.r_[A55[0], A55[1]])
    np.testing.assert_array_equal(np.c_[plain[0], plain[1]], np.c_[A55[0], A55[1]])


def test_clip_with_tensor_bounds():
    """Found by the OpInfo suite: tensor bounds recursed through NumPy's dispatch forever."""
    lo, hi = RNG.standard_normal((2, 3)) * 0.3, RNG.standard_normal((3,)) * 0.3 + 1.0
    x = RNG.standard_normal((2, 3))
    np.testing.assert_allclose(cr.clip(_t(x), _t(lo), _t(hi)).numpy(), np.clip(x, lo, hi))
    _check(lambda a, b, c: cr.clip(a, b, c), x, lo, hi)
    _check(lambda a, b: cr.clip(a, None, b), x, hi)


def test_mean_var_std_take_axis_0_on_a_0d_tensor_as_pytorch():
    for name in ("mean", "var", "std"):
        out = getattr(cr, name)(_t(2.5), axis=0)
        assert out.shape == ()
        np.testing.assert_allclose(
            out.numpy(),
            getattr(torch, name)(torch.tensor(2.5, dtype=torch.float64), 0, correction=0) if name != "mean" else 2.5,
        )
