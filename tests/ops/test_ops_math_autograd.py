"""A second reference besides PyTorch: HIPS autograd's gradients (and Hessians) for a handful of
the math ops, on the same float64 inputs."""

import numpy as np
import pytest

import chainrule as cr

autograd = pytest.importorskip("autograd")
anp = pytest.importorskip("autograd.numpy")
pytestmark = pytest.mark.filterwarnings("ignore:Output seems independent of input")  # linear cases' Hessians

RNG = np.random.default_rng(42)
X = RNG.standard_normal((3, 4))
P = np.abs(RNG.standard_normal((3, 4))) + 0.5
W = np.abs(RNG.standard_normal(4)) + 0.5

# (name, ours, autograd's, input): each function maps the input to a scalar the same way
CASES = [
    ("prod", lambda a: cr.prod(a), lambda a: anp.prod(a), P * np.sign(X)),
    ("prod_axis", lambda a: cr.sum(cr.prod(a, axis=1) * W[:3]), lambda a: anp.sum(anp.prod(a, axis=1) * W[:3]), X),
    # autograd sorts 1-D arrays only
    ("sort", lambda a: cr.sum(cr.sort(a) * X[0]), lambda a: anp.sum(anp.sort(a) * X[0]), X[1]),
    (
        "sort_flat",
        lambda a: cr.sum(cr.sort(a, axis=None) * P.ravel()),
        lambda a: anp.sum(anp.sort(anp.ravel(a)) * P.ravel()),
        X,
    ),
    ("var", lambda a: cr.var(a), lambda a: anp.var(a), X),
    (
        "var_ddof1_axis",
        lambda a: cr.sum(cr.var(a, axis=1, ddof=1) * W[:3]),
        lambda a: anp.sum(anp.var(a, axis=1, ddof=1) * W[:3]),
        X,
    ),
    (
        "var_keepdims",
        lambda a: cr.sum(cr.var(a, axis=0, keepdims=True) * X),
        lambda a: anp.sum(anp.var(a, axis=0, keepdims=True) * X),
        X,
    ),
    ("std_ddof1", lambda a: cr.std(a, ddof=1), lambda a: anp.std(a, ddof=1), X),
    ("std_axis", lambda a: cr.sum(cr.std(a, axis=0, ddof=2) * W), lambda a: anp.sum(anp.std(a, axis=0, ddof=2) * W), X),
    ("cumsum", lambda a: cr.sum(cr.cumsum(a, axis=1) * P), lambda a: anp.sum(anp.cumsum(a, axis=1) * P), X),
    ("logaddexp", lambda a: cr.sum(cr.logaddexp(a, a * a)), lambda a: anp.sum(anp.logaddexp(a, a * a)), X),
    ("logaddexp2", lambda a: cr.sum(cr.logaddexp2(a, 2 * a)), lambda a: anp.sum(anp.logaddexp2(a, 2 * a)), X),
    ("arctan2", lambda a: cr.sum(cr.arctan2(a, a * a + 0.3)), lambda a: anp.sum(anp.arctan2(a, a * a + 0.3)), X),
    ("hypot", lambda a: cr.sum(cr.hypot(a, P)), lambda a: anp.sum(anp.hypot(a, P)), X),
    ("sinc", lambda a: cr.sum(cr.sinc(a)), lambda a: anp.sum(anp.sinc(a)), X),
    ("mod", lambda a: cr.sum(cr.mod(a * 3.3, P) * a), lambda a: anp.sum(anp.mod(a * 3.3, P) * a), X),
    (
        "tan_sinh_cosh",
        lambda a: cr.sum(cr.tan(a * 0.4) * cr.sinh(a) / cr.cosh(a)),
        lambda a: anp.sum(anp.tan(a * 0.4) * anp.sinh(a) / anp.cosh(a)),
        X,
    ),
    (
        "arcs",
        lambda a: cr.sum(cr.arcsin(cr.tanh(a) * 0.9) + cr.arccos(cr.tanh(a) * 0.5) + cr.arctan(a)),
        lambda a: anp.sum(anp.arcsin(anp.tanh(a) * 0.9) + anp.arccos(anp.tanh(a) * 0.5) + anp.arctan(a)),
        X,
    ),
    (
        "log_family",
        lambda a: cr.sum(cr.log1p(a) + cr.log2(a) + cr.log10(a) + cr.expm1(a) + cr.exp2(a)),
        lambda a: anp.sum(anp.log1p(a) + anp.log2(a) + anp.log10(a) + anp.expm1(a) + anp.exp2(a)),
        P,
    ),
    (
        "square_reciprocal",
        lambda a: cr.sum(cr.square(a) + cr.reciprocal(a)),
        lambda a: anp.sum(anp.square(a) + anp.reciprocal(a)),
        P,
    ),
    (
        "fmax_fmin",
        lambda a: cr.sum(cr.fmax(a, X) * cr.fmin(a, 0.1)),
        lambda a: anp.sum(anp.fmax(a, X) * anp.fmin(a, 0.1)),
        P * np.sign(X) * 0.7,
    ),
    ("average", lambda a: cr.average(a, axis=1, weights=W)[1], lambda a: (anp.sum(a * W, axis=1) / anp.sum(W))[1], X),
    (
        "ptp_via_max_min",
        lambda a: cr.sum(cr.ptp(a, axis=1)),
        lambda a: anp.sum(anp.max(a, axis=1) - anp.min(a, axis=1)),
        X,
    ),
]


@pytest.mark.parametrize("name,ours,theirs,x", CASES, ids=[c[0] for c in CASES])
def test_gradient_and_hessian_match_autograd(name, ours, theirs, x):
    g = cr.grad(ours)(cr.tensor(x, dtype="float64"))
    np.testing.assert_allclose(g.numpy(), autograd.grad(theirs)(x), rtol=1e-10, atol=1e-12)
    v = np.random.default_rng(0).standard_normal(x.shape)
    hv = cr.grad(lambda a: cr.sum(cr.grad(ours)(a) * v))(cr.tensor(x, dtype="float64"))
    expected = autograd.grad(lambda a: anp.sum(autograd.grad(theirs)(a) * v))(x)
    np.testing.assert_allclose(hv.numpy(), expected, rtol=1e-9, atol=1e-10)


def test_prod_with_a_zero_where_autograd_gives_nan():
    """autograd divides by the input (nan at a zero); chainrule gives the product of the others.
    Away from the zero both agree."""
    x = np.array([[2.0, 0.0, 3.0], [1.5, -2.0, 0.5]])
    ours = cr.grad(lambda a: cr.sum(cr.prod(a, axis=1)))(cr.tensor(x, dtype="float64")).numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        theirs = autograd.grad(lambda a: anp.sum(anp.prod(a, axis=1)))(x)
    assert np.isnan(theirs[0, 1])
    np.testing.assert_array_equal(ours[0], [0.0, 6.0, 0.0])
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-14)
