"""Values, gradients and Hessian-vector products against HIPS autograd (an independent implementation)."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.ops.linalg as LA
from chainrule.ops import manip as M
from chainrule.ops import products as P

autograd = pytest.importorskip("autograd")
anp = pytest.importorskip("autograd.numpy")

I3 = np.eye(3)


def _spd(a, xp):
    return a @ xp.swapaxes(a, -1, -2) + 3 * I3


def _sym(a, xp):
    return (a + xp.swapaxes(a, -1, -2)) / 2


W = np.random.default_rng(42).standard_normal((3, 3))

PAIRS = {
    "einsum_matmul": (lambda a, b: P.einsum("ij,jk->ik", a, b), lambda a, b: anp.einsum("ij,jk->ik", a, b)),
    # autograd's own einsum cannot differentiate a repeated subscript: compare with trace
    "einsum_trace": (lambda a, b: P.einsum("ii,jk->jk", a, b), lambda a, b: anp.trace(a) * b),
    "einsum_implicit": (lambda a, b: P.einsum("ij,kj", a, b), lambda a, b: anp.einsum("ij,kj", a, b)),
    "einsum_ellipsis": (lambda a, b: P.einsum("...j,kj->...k", a, b), lambda a, b: anp.einsum("...j,kj->...k", a, b)),
    "tensordot_1": (lambda a, b: P.tensordot(a, b, 1), lambda a, b: anp.tensordot(a, b, 1)),
    "tensordot_pairs": (
        lambda a, b: P.tensordot(a, b, ([0, 1], [1, 0])),
        lambda a, b: anp.tensordot(a, b, ([0, 1], [1, 0])),
    ),
    "dot": (P.dot, anp.dot),
    "inner": (P.inner, anp.inner),
    "outer": (lambda a, b: P.outer(a[0], b[:, 1]), lambda a, b: anp.outer(a[0], b[:, 1])),
    "kron": (P.kron, anp.kron),
    "solve": (lambda a, b: LA.solve(_spd(a, cr), b), lambda a, b: anp.linalg.solve(_spd(a, anp), b)),
    "slogdet": (lambda a, b: LA.slogdet(a + b).logabsdet, lambda a, b: anp.linalg.slogdet(a + b)[1]),
    "det": (lambda a, b: LA.det(a * b), lambda a, b: anp.linalg.det(a * b)),
    "inv": (lambda a, b: LA.inv(_spd(a, cr)) @ b, lambda a, b: anp.linalg.inv(_spd(a, anp)) @ b),
    "cholesky": (lambda a, b: LA.cholesky(_spd(a, cr)) * b, lambda a, b: anp.linalg.cholesky(_spd(a, anp)) * b),
    "eigh": (
        lambda a, b: (lambda w, v: (v * v) @ b * w)(*LA.eigh(a)),
        lambda a, b: (lambda w, v: (v * v) @ b * w)(*anp.linalg.eigh(_sym(a, anp))),
    ),
    "svd_values": (
        lambda a, b: LA.svd(a @ b, full_matrices=False).S,
        lambda a, b: anp.linalg.svd(a @ b, full_matrices=False)[1],
    ),
    "norm_fro": (lambda a, b: LA.norm(a - b), lambda a, b: anp.linalg.norm(a - b)),
    "norm_3_axis": (lambda a, b: LA.norm(a * b, 3, axis=1), lambda a, b: anp.linalg.norm(a * b, 3, axis=1)),
    # autograd has no gradient for these orders: compare with their definitions
    "norm_inf": (lambda a, b: LA.norm(a + b, np.inf), lambda a, b: anp.max(anp.sum(anp.abs(a + b), axis=1))),
    "norm_1_keepdims": (
        lambda a, b: LA.norm(a * b, 1, axis=0, keepdims=True),
        lambda a, b: anp.sum(anp.abs(a * b), axis=0, keepdims=True),
    ),
    "trace_diag": (lambda a, b: M.trace(a, 1) * M.diag(b), lambda a, b: anp.trace(a, 1) * anp.diag(b)),
    "roll": (lambda a, b: M.roll(a, 1, 0) * b[0, 0], lambda a, b: anp.roll(a, 1, 0) * b[0, 0]),
    "tile": (lambda a, b: M.tile(a, (2, 1)) * b[0, 0], lambda a, b: anp.tile(a, (2, 1)) * b[0, 0]),
    "triu_fliplr": (lambda a, b: M.triu(M.fliplr(a)) @ b, lambda a, b: anp.triu(anp.fliplr(a)) @ b),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_matches_autograd(name):
    ours, theirs = PAIRS[name]
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    w = rng.standard_normal(np.shape(theirs(a, b)))
    v = [rng.standard_normal((3, 3)) for _ in range(2)]

    def their_loss(a, b):
        return anp.sum(theirs(a, b) * w)

    def their_hvp(a, b):  # d/d(a, b) of <grad, v>
        ga, gb = autograd.grad(their_loss, 0)(a, b), autograd.grad(their_loss, 1)(a, b)
        return anp.sum(ga * v[0]) + anp.sum(gb * v[1])

    xs = [cr.tensor(x, dtype="float64", requires_grad=True) for x in (a, b)]
    out = ours(*xs)
    np.testing.assert_allclose(out.numpy(), theirs(a, b), rtol=1e-10, atol=1e-12)
    grads = cr.grad(cr.sum(out * w), xs, create_graph=True)
    for k, g in enumerate(grads):
        np.testing.assert_allclose(g.numpy(), autograd.grad(their_loss, k)(a, b), rtol=1e-9, atol=1e-12)
    total = cr.sum(grads[0] * v[0]) + cr.sum(grads[1] * v[1])
    if getattr(total, "requires_grad", False):
        second = cr.grad(total, xs)
        for k, g in enumerate(second):
            np.testing.assert_allclose(g.numpy(), autograd.grad(their_hvp, k)(a, b), rtol=1e-8, atol=1e-10)
