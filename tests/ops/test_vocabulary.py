"""NumPy's vocabulary added in issue 18: values against NumPy for the non-differentiable names
(the differentiable ones are in the shared gradient table, tests/cases_vocab.py), Tensor's ``%``,
``//`` and ``argmax``, and NumPy's own functions dispatching to them."""

import numpy as np
import pytest

import chainrule as cr

RNG = np.random.default_rng(0)
A = RNG.standard_normal((3, 4))
B = RNG.standard_normal((3, 4))


def _t(a):
    return cr.tensor(np.asarray(a), dtype=np.asarray(a).dtype if np.asarray(a).dtype != np.float32 else None)


@pytest.mark.parametrize(
    "name, args, kwargs",
    [
        ("argmax", (A,), {"axis": 1}),
        ("argmin", (A,), {}),
        ("argmax", (A,), {"axis": 0, "keepdims": True}),
        ("all", (A > -1,), {"axis": 0}),
        ("any", (A > 1,), {}),
        ("logical_and", (A > 0, B > 0), {}),
        ("logical_or", (A > 0, B > 0), {}),
        ("logical_xor", (A > 0, B > 0), {}),
        ("logical_not", (A > 0,), {}),
        ("isclose", (A, A + 1e-9), {}),
        ("count_nonzero", (A > 0,), {"axis": 1}),
        ("count_nonzero", (A > 0,), {}),
        ("signbit", (np.array([-0.0, 0.0, -1.0]),), {}),
        ("isposinf", (np.array([np.inf, -np.inf, 1.0]),), {}),
        ("isneginf", (np.array([np.inf, -np.inf, 1.0]),), {}),
        ("isreal", (A,), {}),
        ("argwhere", (A > 0,), {}),
        ("searchsorted", (np.sort(A[0]), B[0]), {"side": "right"}),
        ("floor_divide", (A, 0.3), {}),
        ("empty_like", (A,), {}),
        ("imag", (A,), {}),
    ],
)
def test_values_match_numpy(name, args, kwargs):
    ours = getattr(cr, name)(*[_t(a) for a in args], **kwargs)
    expected = getattr(np, name)(*args, **kwargs)
    if name == "empty_like":
        expected = np.zeros_like(A)  # NumPy's is uninitialised; chainrule's is zeros
    assert isinstance(ours, cr.Tensor | np.ndarray)
    np.testing.assert_array_equal(np.asarray(ours.numpy() if isinstance(ours, cr.Tensor) else ours), expected)
    via_numpy = getattr(np, name)(*[_t(a) for a in args], **kwargs)  # NumPy's dispatch to chainrule's
    np.testing.assert_array_equal(
        np.asarray(via_numpy.numpy() if isinstance(via_numpy, cr.Tensor) else via_numpy), expected
    )


def test_allclose_is_a_bool_and_dispatches():
    assert cr.allclose(_t(A), _t(A + 1e-9)) is True
    assert np.allclose(_t(A), _t(A + 1e-3)) is False


def test_argmax_returns_a_tensor():
    x = cr.tensor(A, requires_grad=True)
    out = x.argmax(axis=1)
    assert isinstance(out, cr.Tensor) and out.dtype.kind == "i" and not out.requires_grad
    np.testing.assert_array_equal(out.numpy(), A.argmax(axis=1))
    assert isinstance(x.argmin(), cr.Tensor) and int(x.argmin()) == A.argmin()
    assert int((x.argmax(axis=1) == np.array(A.argmax(axis=1))).sum()) == 3  # the trainers' accuracy idiom
    assert int(cr.argmax(cr.tensor(2.0), axis=0)) == 0


def test_mod_and_floor_divide_operators():
    x = cr.tensor(A, dtype="float64", requires_grad=True)
    np.testing.assert_allclose((x % 0.7).numpy(), A % 0.7)
    np.testing.assert_allclose((2.0 % (x + 5)).numpy(), 2.0 % (A + 5))
    np.testing.assert_array_equal((x // 0.3).numpy(), A // 0.3)
    np.testing.assert_array_equal((1.0 // (x + 5)).numpy(), 1.0 // (A + 5))
    (x % 0.7).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones_like(A))
    assert not (x // 0.3).requires_grad  # piecewise constant: a constant to the engine


def test_copy_is_a_new_array():
    x = cr.tensor(A, dtype="float64")
    y = x.copy()
    assert y.numpy() is not x.numpy() and not np.shares_memory(y.numpy(), x.numpy())
    np.testing.assert_array_equal(np.copy(x).numpy(), A)


def test_reductions_take_numpys_dtype():
    x32 = cr.tensor(np.array([[1.5, 2.0], [3.0, 4.0]], np.float32), requires_grad=True)
    for name in ("prod", "cumsum", "cumprod"):
        out = getattr(cr, name)(x32, axis=1, dtype=np.float64)
        assert out.dtype == np.float64
        np.testing.assert_allclose(out.numpy(), getattr(np, name)(x32.numpy(), axis=1, dtype=np.float64))
        x32.grad = None
        out.sum().backward()
        assert x32.grad.dtype == np.float32
    assert np.prod(x32, axis=0, dtype=np.float64).dtype == np.float64


def test_pinv_keywords():
    a = RNG.standard_normal((3, 3))
    sym = a + a.T
    x = cr.tensor(sym, dtype="float64")
    np.testing.assert_allclose(cr.linalg.pinv(x, hermitian=True).numpy(), np.linalg.pinv(sym, hermitian=True))
    np.testing.assert_allclose(cr.linalg.pinv(x, rtol=1e-3).numpy(), np.linalg.pinv(sym, rtol=1e-3))
    np.testing.assert_allclose(np.linalg.pinv(x, rcond=1e-3).numpy(), np.linalg.pinv(sym, rcond=1e-3))
    with pytest.raises(ValueError, match="pinv: hermitian=True needs symmetric matrices"):
        cr.linalg.pinv(cr.tensor(a, dtype="float64"), hermitian=True)
    with pytest.raises(ValueError, match="pinv: give rcond or rtol, not both"):
        cr.linalg.pinv(x, rcond=1e-3, rtol=1e-3)


def test_refusals_name_the_function():
    with pytest.raises(cr.DTypeError, match="imag: complex arrays are not supported"):
        cr.imag(np.array([1j]))
    with pytest.raises(ValueError, match="searchsorted: side must be 'left' or 'right'"):
        cr.searchsorted(_t(np.arange(3.0)), 1.0, side="middle")
    with pytest.raises(ValueError, match="select: list of cases must be same length"):
        cr.select([A > 0], [])
    with pytest.raises(TypeError, match="argmax: expected an int axis or None"):
        cr.argmax(_t(A), axis=(0, 1))
    with pytest.raises(ValueError, match="meshgrid: indexing must be 'xy' or 'ij'"):
        cr.meshgrid(_t(A[0]), indexing="xx")
    with pytest.raises(cr.ShapeError, match="tensorinv: the product of the first 2 axes"):
        cr.linalg.tensorinv(_t(np.ones((2, 3, 4))))
