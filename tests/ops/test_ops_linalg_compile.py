"""cr.compile replays steps that use the new primitives (packed eigh/svd, einsum, joins with offsets)."""

import numpy as np

import chainrule as cr
import chainrule.ops.linalg as LA
from chainrule.ops import manip as M
from chainrule.ops import products as P


def _loss(w, x):
    a = P.einsum("ij,kj->ik", w, w) + 3 * np.eye(3)
    vals, vecs = LA.eigh(a)
    s = LA.svd(M.pad(w, ((0, 1), (1, 0))), full_matrices=False).S
    joined = cr.stack([cr.sum(vals), cr.sum(s), LA.slogdet(a).logabsdet, cr.sum(vecs * vecs * x)])
    return cr.sum(cr.concatenate([joined, LA.solve(a, x[:, 0])]) ** 2) + LA.norm(M.roll(w, 1))


def test_compiled_step_matches_eager():
    rng = np.random.default_rng(0)
    w0, x = rng.standard_normal((3, 4)), rng.standard_normal((3, 3))
    eager = cr.tensor(w0, dtype="float64", requires_grad=True)
    compiled = cr.tensor(w0, dtype="float64", requires_grad=True)

    @cr.compile
    def step(x):
        loss = _loss(compiled, x)  # the parameter is captured, as a model's weights are
        loss.backward()
        return loss

    for _ in range(3):
        expected = _loss(eager, x)
        expected.backward()
        got = step(x)
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-12)
        np.testing.assert_allclose(compiled.grad.numpy(), eager.grad.numpy(), rtol=1e-10)
        eager.grad = compiled.grad = None
