"""Edge cases of the math ops: points where a naive rule gives NaN or loses precision, zeros in
products, empty reductions, NaN-aware ops, and what is not differentiable."""

import math
import warnings

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F

torch = pytest.importorskip("torch")


def t64(x, requires_grad=True):
    return cr.tensor(np.asarray(x, dtype=np.float64), dtype="float64", requires_grad=requires_grad)


def first_and_second(f, x):
    """f'(x) and f''(x) elementwise, for an elementwise f, by recording the first backward."""
    xt = t64(x)
    g = cr.grad(cr.sum(f(xt)), xt, create_graph=True)
    if not g.requires_grad:
        return g.numpy(), np.zeros_like(g.numpy())
    return g.numpy(), cr.grad(cr.sum(g), xt).numpy()


# --- power at x = 0 with exponent 0 ---------------------------------------------------


def test_power_zero_exponent_at_zero_has_zero_derivatives_like_pytorch():
    x = np.array([0.0, 0.7, -1.3])
    d1, d2 = first_and_second(lambda a: cr.power(a, 0.0), x)
    tx = torch.tensor(x, requires_grad=True)
    (t1,) = torch.autograd.grad((tx**0.0).sum(), tx, create_graph=True)
    np.testing.assert_array_equal(d1, t1.detach().numpy())
    np.testing.assert_array_equal(d1, 0.0)
    np.testing.assert_array_equal(d2, 0.0)


def test_power_tensor_exponent_zero_at_zero_base():
    x, y = t64([0.0, 0.0, 2.0]), t64([0.0, 2.0, 0.0])
    gx, gy = cr.grad(cr.sum(cr.power(x, y)), [x, y], create_graph=True)
    np.testing.assert_array_equal(gx.numpy(), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(gy.numpy(), [0.0, 0.0, math.log(2.0)])
    hx = cr.grad(cr.sum(gx), x).numpy()
    assert np.isfinite(hx).all() and hx[0] == 0.0  # d²/dx² x**0 = 0, not 0 * inf
    np.testing.assert_array_equal(hx, [0.0, 2.0, 0.0])


def test_power_integer_exponent_at_zero_base_matches_pytorch():
    x = np.array([0.0, 0.5, -2.0])
    for p in (1.0, 2.0, 3.0):
        d1, d2 = first_and_second(lambda a, p=p: a**p, x)
        tx = torch.tensor(x, requires_grad=True)
        (t1,) = torch.autograd.grad((tx**p).sum(), tx, create_graph=True)
        (t2,) = torch.autograd.grad(t1.sum(), tx, allow_unused=True) if t1.requires_grad else (torch.zeros(3),)
        np.testing.assert_allclose(d1, t1.detach().numpy())
        np.testing.assert_allclose(d2, 0 if t2 is None else t2.numpy())


def test_power_exponent_derivative_is_nan_for_negative_base_like_pytorch():
    a = np.array([-2.0, 0.0, 0.0, 1.5])
    b = np.array([3.0, 2.0, 0.0, 0.5])
    x, y = t64(a), t64(b)
    with np.errstate(invalid="ignore"):
        gx, gy = cr.grad(cr.sum(x**y), [x, y])
    tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    tgx, tgy = torch.autograd.grad((tx**ty).sum(), [tx, ty])
    np.testing.assert_allclose(gx.numpy(), tgx.numpy(), rtol=1e-14)
    np.testing.assert_allclose(gy.numpy(), tgy.numpy(), rtol=1e-14)  # NaN at -2.0 on both sides
    assert np.isnan(gy.numpy()[0])


# --- log_softmax at large offsets -------------------------------------------------------


@pytest.mark.parametrize("offset", [0.0, 1e4, 1e8, 1e16, 1e30])
def test_log_softmax_is_stable_at_large_offsets_float32(offset):
    rows = np.array([[0.0, 1.0, 2.0], [-3.0, 0.5, 4.0], [0.0, 0.0, 0.0]])
    spacing = np.spacing(np.float32(offset)) if offset else 1.0
    x = (np.float32(offset) + np.vstack([rows, rows * spacing]).astype(np.float32)).astype(np.float32)
    ours = F.log_softmax(cr.tensor(x, requires_grad=True))
    theirs = torch.log_softmax(torch.tensor(x), dim=-1).numpy()
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-6, atol=1e-6)
    # gradient too: g - softmax * sum(g)
    xt = cr.tensor(x, requires_grad=True)
    cot = np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    (g,) = [cr.grad(F.log_softmax(xt), [xt], gradient=cr.tensor(cot))[0]]
    tx = torch.tensor(x, requires_grad=True)
    (tg,) = torch.autograd.grad(torch.log_softmax(tx, dim=-1), tx, grad_outputs=torch.tensor(cot))
    np.testing.assert_allclose(g.numpy(), tg.numpy(), rtol=1e-5, atol=1e-6)


# --- empty mean, var with no degrees of freedom -----------------------------------------


@pytest.mark.parametrize("shape,axis", [((0,), None), ((0, 3), 0), ((2, 0), None), ((2, 0), 1)])
def test_mean_of_empty_is_nan_with_warning_like_numpy(shape, axis):
    x = np.zeros(shape, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.mean(x, axis=axis)
    with pytest.warns(RuntimeWarning, match="empty"):
        ours = cr.mean(cr.tensor(x, requires_grad=True), axis=axis)
    assert ours.shape == np.shape(expected) and ours.dtype == np.float32
    np.testing.assert_array_equal(ours.numpy(), expected)


def test_mean_of_empty_is_nan_in_pytorch_too():
    assert torch.isnan(torch.zeros(0).mean())
    with pytest.warns(RuntimeWarning):
        assert np.isnan(cr.mean(cr.zeros((0,))).item())


def test_var_without_degrees_of_freedom_follows_numpy():
    x = np.array([1.0, 2.0])
    for ddof in (2, 3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = np.var(x, ddof=ddof)
        with pytest.warns(RuntimeWarning, match="degrees of freedom"):
            ours = cr.var(t64(x), ddof=ddof)
        np.testing.assert_array_equal(ours.numpy(), expected)


def test_mean_divides_like_numpy():
    x = np.random.default_rng(0).standard_normal((7, 3)).astype(np.float32)
    np.testing.assert_array_equal(cr.mean(cr.tensor(x), axis=0).numpy(), x.mean(axis=0))


# --- prod with zeros -----------------------------------------------------------------------

PROD_INPUTS = [
    [2.0, 0.0, 3.0, 4.0],  # one zero
    [0.0, 1.5, -2.0, 0.5],  # one zero, first
    [2.0, 0.0, 3.0, 0.0],  # two zeros
    [0.0, 0.0, 0.0, 0.0],  # all zeros
    [0.0],  # a lone zero
]


@pytest.mark.parametrize("values", PROD_INPUTS)
def test_prod_gradient_with_zeros_matches_pytorch(values):
    x = t64(values)
    (g,) = [cr.grad(cr.prod(x), [x])[0]]
    tx = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    (tg,) = torch.autograd.grad(tx.prod(), tx)
    np.testing.assert_array_equal(g.numpy(), tg.numpy())
    assert np.isfinite(g.numpy()).all()


def test_prod_gradient_with_zeros_along_axes():
    x = np.array([[[1.0, 0.0, 2.0], [3.0, 4.0, 0.5]], [[0.0, 0.0, 2.0], [-1.0, 2.0, 3.0]]])
    for axis, keep in [(0, False), (1, True), (2, False), ((0, 2), True), (None, False)]:
        xt = t64(x)
        out = cr.prod(xt, axis=axis, keepdims=keep)
        cot = np.random.default_rng(1).standard_normal(out.shape)
        (g,) = [cr.grad(out, [xt], gradient=cr.tensor(cot, dtype="float64"))[0]]
        # reference: the product of the other elements, by brute force
        expected = np.zeros_like(x)
        for idx in np.ndindex(*x.shape):
            bumped = x.copy()
            bumped[idx] = 1.0
            others = np.prod(bumped, axis=axis, keepdims=True)
            cot_full = np.broadcast_to(cot.reshape(np.prod(x, axis=axis, keepdims=True).shape), others.shape)
            sel = tuple(0 if others.shape[d] == 1 else i for d, i in enumerate(idx))
            expected[idx] = others[sel] * cot_full[sel]
        np.testing.assert_allclose(g.numpy(), expected, rtol=1e-12)


HESSIAN_INPUTS = [
    [2.0, 0.0, 3.0, 4.0],
    [0.0, 1.5, -2.0, 0.5],
    [2.0, 1.0, 3.0, 4.0],
    [2.0, 0.0, 3.0, 0.0],
    [0.0, 0.0, 0.0, 5.0],
    [0.0, 0.0, 0.0, 0.0],
    [1.5, 0.0, -2.0, 3.0, 0.0, 0.5, 2.0],  # not a power of two
]


@pytest.mark.parametrize("values", HESSIAN_INPUTS)
def test_prod_hessian_with_zeros_matches_jax(values):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    expected = np.asarray(jax.hessian(jax.numpy.prod)(np.array(values)))
    ours = cr.hessian(lambda a: cr.prod(a))(t64(values, requires_grad=False))
    np.testing.assert_allclose(np.asarray(ours.numpy()), expected, rtol=1e-12, atol=1e-12)


def test_prod_third_derivative_with_three_zeros():
    # d³/dx0 dx1 dx2 of x0 x1 x2 x3 is x3, whatever the zeros
    x = t64([0.0, 0.0, 0.0, 5.0])
    v = np.array([1.0, 1.0, 1.0, 0.0])
    g = cr.grad(cr.prod(x), x, create_graph=True)
    h = cr.grad(cr.sum(g * v), x, create_graph=True)  # H v
    third = cr.grad(cr.sum(h * v), x)  # d/dx (v' H v)
    np.testing.assert_allclose(third.numpy(), [10.0, 10.0, 10.0, 0.0])


def test_prod_hessian_along_axes_with_zeros_matches_jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    x = np.array([[[1.0, 0.0, 2.0], [3.0, 0.0, 0.5]], [[0.0, 0.0, 2.0], [-1.0, 2.0, 3.0]]])
    w = np.random.default_rng(3).standard_normal((2, 3))
    for axis in [0, 1, 2, (0, 2)]:
        keep = axis == 1

        def ours(a, ax=axis, k=keep):
            out = cr.prod(a, axis=ax, keepdims=k)
            return cr.sum(out * w.reshape(-1)[: out.size].reshape(out.shape))

        def theirs(a, ax=axis, k=keep):
            out = jax.numpy.prod(a, axis=ax, keepdims=k)
            return jax.numpy.sum(out * w.reshape(-1)[: out.size].reshape(out.shape))

        got = cr.hessian(ours)(t64(x, requires_grad=False)).numpy()
        np.testing.assert_allclose(got, np.asarray(jax.hessian(theirs)(x)), rtol=1e-12, atol=1e-12)


CUMPROD_INPUTS = [
    [2.0, 0.0, 3.0, 4.0],
    [0.0, 1.5, -2.0, 0.5, 3.0],
    [2.0, 0.0, 3.0, 0.0, 1.5],
    [0.0, 0.0, 0.0],
    [1.5, -2.0, 0.5],
]


@pytest.mark.parametrize("values", CUMPROD_INPUTS)
def test_cumprod_with_zeros_matches_pytorch_first_order_and_jax_second(values):
    x = t64(values)
    cot = np.random.default_rng(2).standard_normal(len(values))
    (g,) = [cr.grad(cr.cumprod(x), [x], gradient=cr.tensor(cot, dtype="float64"))[0]]
    tx = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    (tg,) = torch.autograd.grad(tx.cumprod(0), tx, grad_outputs=torch.tensor(cot))
    np.testing.assert_allclose(g.numpy(), tg.numpy(), rtol=1e-13, atol=1e-14)
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)

    def theirs(a):
        return jax.numpy.sum(jax.numpy.cumprod(a) * cot)

    expected = np.asarray(jax.hessian(theirs)(np.array(values)))
    ours = cr.hessian(lambda a: cr.sum(cr.cumprod(a) * cot))(t64(values, requires_grad=False))
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(0,), (2, 0), (1,)])
def test_cumprod_and_prod_of_empty_or_single_element_slices(shape):
    x = t64(np.full(shape, 0.0))
    for f in (lambda a: cr.sum(cr.cumprod(a, axis=-1)), lambda a: cr.sum(cr.prod(a, axis=-1))):
        g = cr.grad(f(x), x, create_graph=True)  # the recorded (scan) path
        assert g.shape == shape
        np.testing.assert_array_equal(g.numpy(), np.ones(shape))


def test_cumprod_with_zeros_along_an_axis():
    x = np.array([[1.5, 0.0, 2.0], [0.0, 0.0, 3.0], [2.0, -1.0, 0.5], [0.0, 4.0, 0.0]])
    cot = np.random.default_rng(4).standard_normal(x.shape)
    for axis in (0, 1):
        xt = t64(x)
        (g,) = [cr.grad(cr.cumprod(xt, axis=axis), [xt], gradient=cr.tensor(cot, dtype="float64"))[0]]
        tx = torch.tensor(x, requires_grad=True)
        (tg,) = torch.autograd.grad(tx.cumprod(axis), tx, grad_outputs=torch.tensor(cot))
        np.testing.assert_allclose(g.numpy(), tg.numpy(), rtol=1e-13, atol=1e-14)


# --- sinc at 0 ---------------------------------------------------------------------------


def test_sinc_derivatives_at_and_near_zero():
    x = np.array([0.0, 1e-9, -1e-4, 0.05, 0.0999, 0.1, 0.3, -2.5, 1.0])
    d1, d2 = first_and_second(cr.sinc, x)
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50  # derivatives of sin(πt)/(πt) in 50 digits: no cancellation left

    def exact(v, n):
        if v == 0:
            return [1.0, 0.0, -(np.pi**2) / 3][n]
        return float(mpmath.diff(lambda t: mpmath.sin(mpmath.pi * t) / (mpmath.pi * t), mpmath.mpf(v), n))

    np.testing.assert_allclose(d1, [exact(v, 1) for v in x], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(d2, [exact(v, 2) for v in x], rtol=1e-12, atol=1e-15)


# --- NaN-aware and non-finite inputs -----------------------------------------------------


def test_fmax_fmin_route_gradient_to_the_non_nan_operand():
    a = np.array([1.0, np.nan, 3.0, np.nan, 2.0])
    b = np.array([np.nan, 2.0, 1.0, np.nan, 2.0])
    for ours, name in [(cr.fmax, "fmax"), (cr.fmin, "fmin")]:
        x, y = t64(a), t64(b)
        out = ours(x, y)
        gx, gy = cr.grad(cr.sum(out), [x, y])
        np.testing.assert_array_equal(out.numpy(), getattr(np, name)(a, b))
        tx = torch.tensor(a, requires_grad=True)
        ty = torch.tensor(b, requires_grad=True)
        tgx, tgy = torch.autograd.grad(getattr(torch, name)(tx, ty).sum(), [tx, ty])
        # PyTorch gives ties (index 4) wholly to x; chainrule splits them like maximum does
        np.testing.assert_array_equal(gx.numpy()[:4], tgx.numpy()[:4])
        np.testing.assert_array_equal(gy.numpy()[:4], tgy.numpy()[:4])
        assert gx.numpy()[4] == gy.numpy()[4] == 0.5


def test_nan_to_num_passes_gradient_only_at_finite_entries():
    a = np.array([1.5, np.nan, np.inf, -np.inf, -2.0])
    x = t64(a)
    out = cr.nan_to_num(x, nan=7.0, posinf=9.0)
    np.testing.assert_array_equal(out.numpy(), np.nan_to_num(a, nan=7.0, posinf=9.0))
    (g,) = [cr.grad(cr.sum(out * 0.5), [x])[0]]
    tx = torch.tensor(a, requires_grad=True)
    (tg,) = torch.autograd.grad((torch.nan_to_num(tx, nan=7.0, posinf=9.0) * 0.5).sum(), tx)
    np.testing.assert_array_equal(g.numpy(), tg.numpy())


# --- not differentiable --------------------------------------------------------------------


@pytest.mark.parametrize("op", [cr.floor, cr.ceil, cr.trunc, cr.rint, cr.round, cr.sign, cr.isfinite])
def test_rounding_ops_are_constants_to_the_engine(op):
    x = t64([-1.5, -0.2, 0.5, 2.7])
    out = op(x)
    assert not out.requires_grad
    np.testing.assert_array_equal(out.numpy(), getattr(np, getattr(op, "name", "round"))(x.numpy()))
    with pytest.raises(RuntimeError, match="does not require grad"):
        cr.grad(cr.sum(out), x)
    (g,) = [cr.grad(cr.sum(x * out), [x])[0]]  # the other factor still carries its gradient
    np.testing.assert_array_equal(g.numpy(), out.numpy())


def test_round_halves_to_even_and_decimals_like_numpy():
    a = np.array([0.5, 1.5, 2.5, -0.5, 1.25, 2.675])
    np.testing.assert_array_equal(cr.round(t64(a)).numpy(), np.round(a))
    np.testing.assert_array_equal(cr.round(t64(a), 2).numpy(), np.round(a, 2))
    np.testing.assert_array_equal(cr.around(a, 1), np.around(a, 1))


# --- NumPy semantics -----------------------------------------------------------------------


def test_values_match_numpy_on_arrays():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4))
    p = np.abs(x) + 0.5
    w = np.abs(rng.standard_normal(4)) + 0.1
    pairs = [
        (cr.mod(x, p), np.mod(x, p)),
        (cr.remainder(-x, p), np.remainder(-x, p)),
        (cr.fmod(-x, p), np.fmod(-x, p)),
        (cr.sort(x, axis=0), np.sort(x, axis=0)),
        (cr.sort(x, axis=None), np.sort(x, axis=None)),
        (cr.cumprod(x, axis=1), np.cumprod(x, axis=1)),
        (cr.cumsum(x), np.cumsum(x)),
        (cr.var(x, axis=1, ddof=1, keepdims=True), np.var(x, axis=1, ddof=1, keepdims=True)),
        (cr.std(x, axis=(0, 1)), np.std(x, axis=(0, 1))),
        (cr.average(x, axis=1, weights=w), np.average(x, axis=1, weights=w)),
        (cr.ptp(x, axis=0), np.ptp(x, axis=0)),
        (cr.prod(x, axis=-1), np.prod(x, axis=-1)),
        (cr.amax(x, axis=1), np.amax(x, axis=1)),
        (cr.hypot(x, p), np.hypot(x, p)),
        (cr.logaddexp(x, 800 * p), np.logaddexp(x, 800 * p)),
        (cr.sinc(np.array([0.0, 1e-12, 0.5])), np.sinc([0.0, 1e-12, 0.5])),
    ]
    for ours, expected in pairs:
        np.testing.assert_allclose(np.asarray(ours), expected, rtol=1e-14, atol=0)
    avg, wsum = cr.average(x, axis=1, weights=w, returned=True)
    np.testing.assert_allclose(np.asarray(wsum), np.average(x, axis=1, weights=w, returned=True)[1])


def test_sort_puts_nan_last_and_routes_gradient_through_the_permutation():
    a = np.array([[3.0, np.nan, -1.0, 2.0], [0.5, 0.25, 4.0, -2.0]])
    x = t64(a)
    out = cr.sort(x, axis=1)
    np.testing.assert_array_equal(out.numpy(), np.sort(a, axis=1))
    weights = np.arange(8.0).reshape(2, 4)
    (g,) = [cr.grad(cr.sum(out * weights), [x])[0]]
    expected = np.empty_like(a)
    np.put_along_axis(expected, np.argsort(a, axis=1, kind="stable"), weights, axis=1)
    np.testing.assert_array_equal(g.numpy(), expected)


def test_bad_arguments_raise_naming_the_op():
    with pytest.raises(ValueError, match="sort"):
        cr.sort(t64(1.0))
    with pytest.raises(ValueError, match="cumsum"):
        cr.cumsum(t64([[1.0]]), axis=(0, 1))
    with pytest.raises(cr.ShapeError, match="average"):
        cr.average(t64(np.ones((2, 3))), weights=np.ones(3))
    with pytest.raises(ZeroDivisionError, match="average"):
        cr.average(t64([1.0, 2.0]), weights=np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="prod"):
        cr.prod(t64([1.0]), axis=3)


def test_float32_stays_float32():
    x = cr.tensor(np.linspace(0.1, 0.9, 6).reshape(2, 3), requires_grad=True)
    for f in [cr.square, cr.log1p, cr.exp2, cr.log2, cr.arcsin, cr.sinc, cr.cbrt, lambda a: cr.hypot(a, a)]:
        out = f(x)
        assert out.dtype == np.float32
        (g,) = [cr.grad(cr.sum(out), [x])[0]]
        assert g.dtype == np.float32
    for f in [cr.prod, cr.var, cr.std, cr.cumprod, cr.sort, lambda a: cr.average(a, weights=a)]:
        out = f(x)
        assert out.dtype == np.float32, f
        (g,) = [cr.grad(cr.sum(out), [x])[0]]
        assert g.dtype == np.float32


def test_every_public_name_has_a_docstring():
    from chainrule.nn import functional
    from chainrule.ops import elementwise, reduce

    for module in (elementwise, reduce, functional):
        for name in module.__all__:
            obj = getattr(module, name)
            if name == "Tensor":
                continue
            assert (obj.__doc__ or "").strip(), f"{module.__name__}.{name} has no docstring"


# --- compiled steps replay the data-dependent parts --------------------------------------


def _sort_step_inputs():
    rng = np.random.default_rng(5)
    return [rng.standard_normal((3, 5)) for _ in range(3)]


def test_compiled_sort_uses_each_batch_permutation():
    w_eager = t64(np.linspace(0.5, 1.5, 5))
    w_comp = t64(np.linspace(0.5, 1.5, 5))
    weights = np.arange(15.0).reshape(3, 5)

    def loss_of(x, w):
        return cr.sum(cr.sort(x * w, axis=1) * weights)

    @cr.compile
    def step(x):
        loss = loss_of(x, w_comp)
        loss.backward()
        return loss

    for x in _sort_step_inputs():
        w_eager.grad = w_comp.grad = None
        expected = loss_of(cr.tensor(x, dtype="float64"), w_eager)
        expected.backward()
        got = step(cr.tensor(x, dtype="float64"))
        np.testing.assert_array_equal(got.numpy(), expected.numpy())
        np.testing.assert_array_equal(w_comp.grad.numpy(), w_eager.grad.numpy())


def test_compiled_cumprod_handles_zeros_on_replay():
    w_comp, w_eager = t64([1.0, 2.0, 3.0]), t64([1.0, 2.0, 3.0])

    @cr.compile
    def step(x):
        loss = cr.sum(cr.cumprod(x * w_comp))
        loss.backward()
        return loss

    for values in ([1.0, 2.0, 3.0], [1.0, 0.0, 3.0], [0.0, 0.0, 2.0]):
        w_comp.grad = w_eager.grad = None
        step(cr.tensor(values, dtype="float64"))
        cr.sum(cr.cumprod(cr.tensor(values, dtype="float64") * w_eager)).backward()
        np.testing.assert_allclose(w_comp.grad.numpy(), w_eager.grad.numpy(), rtol=1e-14)
