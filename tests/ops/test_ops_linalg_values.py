"""Forward values against NumPy on plain arrays and tensors, and the errors for what has no derivative."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.ops.linalg as LA
from chainrule.ops import manip as M
from chainrule.ops import products as P

rng = np.random.default_rng(0)
A = rng.standard_normal((3, 4))
B = rng.standard_normal((2, 3, 4))
S = rng.standard_normal((3, 3))
SPD = S @ S.T + 3 * np.eye(3)

SAME_AS_NUMPY = [
    (lambda xp: xp.dot(B, B.transpose(0, 2, 1)), "dot"),
    (lambda xp: xp.dot(A, A[0]), "dot"),
    (lambda xp: xp.tensordot(B, A, ([1, 2], [0, 1])), "tensordot"),
    (lambda xp: xp.einsum("bij,kj->bik", B, A), "einsum"),
    (lambda xp: xp.einsum("...j,...j", B, A), "einsum"),
    (lambda xp: xp.einsum("ii->i", S), "einsum"),
    (lambda xp: xp.kron(A[:2, :2], S), "kron"),
    (lambda xp: xp.cross(A[:, :3], S), "cross"),
    (lambda xp: xp.inner(A, B), "inner"),
    (lambda xp: xp.vdot(A, A), "vdot"),
    (lambda xp: xp.outer(A, S), "outer"),
    (lambda xp: xp.diag(A, -1), "diag"),
    (lambda xp: xp.diagonal(B, 1, 2, 1), "diagonal"),
    (lambda xp: xp.trace(B, -1, 0, 2), "trace"),
    (lambda xp: xp.tril(B, -1), "tril"),
    (lambda xp: xp.triu(A, 2), "triu"),
    (lambda xp: xp.repeat(A, [1, 2, 0, 1], axis=1), "repeat"),
    (lambda xp: xp.tile(A, (2, 1, 3)), "tile"),
    (lambda xp: xp.pad(A, ((0, 1), (2, 3)), constant_values=-1.5), "pad"),
    (lambda xp: xp.pad(B, 2, mode="symmetric"), "pad"),
    (lambda xp: xp.moveaxis(B, [0, 2], [2, 1]), "moveaxis"),
    (lambda xp: xp.rollaxis(B, 1, 3), "rollaxis"),
    (lambda xp: xp.rot90(B, 3, (2, 1)), "rot90"),
    (lambda xp: xp.roll(B, (2, 5), (0, 2)), "roll"),
    (lambda xp: xp.diff(B, 2, axis=2, append=B[:, :, :1]), "diff"),
    (lambda xp: xp.column_stack([A[0], A[1]]), "column_stack"),
    (lambda xp: xp.dstack([A, A]), "dstack"),
    (lambda xp: xp.hstack([A[0], A[1]]), "hstack"),
    (lambda xp: xp.vstack([A[0], A]), "vstack"),
    (lambda xp: xp.array_split(A, 3, axis=1)[1], "array_split"),
    (lambda xp: xp.take(B, [[0, 3], [1, 1]], axis=2), "take"),
    (lambda xp: xp.take_along_axis(A, np.argsort(A, axis=0), 0), "take_along_axis"),
    (lambda xp: xp.linalg.solve(SPD, A), "solve"),
    (lambda xp: xp.linalg.solve(np.stack([SPD, SPD * 2]), A[:, 0]), "solve"),
    (lambda xp: xp.linalg.det(B[:, :, :3]), "det"),
    (lambda xp: xp.linalg.slogdet(S)[0], "slogdet"),
    (lambda xp: xp.linalg.pinv(A), "pinv"),
    (lambda xp: xp.linalg.matrix_power(S, -3), "matrix_power"),
    (lambda xp: xp.linalg.norm(B, axis=(2, 0)), "norm"),
    (lambda xp: xp.linalg.eigh(SPD)[0], "eigh"),
    (lambda xp: xp.linalg.svd(A, full_matrices=False)[1], "svd"),
]


class _Namespace:
    """chainrule's functions under NumPy's layout (xp.linalg.solve, xp.flip, ...)."""

    linalg = LA

    def __getattr__(self, name):
        for module in (P, M, cr):
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(name)


@pytest.mark.parametrize("fn,name", SAME_AS_NUMPY, ids=[n for _, n in SAME_AS_NUMPY])
def test_values_match_numpy(fn, name):
    expected = fn(np)
    ours = fn(_Namespace())
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=1e-10, atol=1e-12)


def test_dot_is_not_matmul_for_nd():
    a, b = np.ones((2, 2, 3)), np.ones((2, 3, 4))
    assert P.dot(cr.tensor(a), cr.tensor(b)).shape == (2, 2, 2, 4)


def test_slogdet_sign_is_a_constant_of_the_input_kind():
    sign, logabs = LA.slogdet(cr.tensor(S, dtype="float64", requires_grad=True))
    assert isinstance(sign, cr.Tensor) and not sign.requires_grad and logabs.requires_grad
    assert isinstance(LA.slogdet(S).sign, np.ndarray | np.floating)


def test_eigh_vectors_at_repeated_eigenvalues_raise_but_values_differentiate():
    x = cr.tensor(np.diag([1.0, 1.0, 2.0]), dtype="float64", requires_grad=True)
    w, _ = LA.eigh(x)
    (g,) = cr.grad(cr.sum(w * w), [x])
    np.testing.assert_allclose(g.numpy(), np.diag([2.0, 2.0, 4.0]), atol=1e-12)
    _, v = LA.eigh(x)
    with pytest.raises(LA.LinAlgGradientError, match="eigh"):
        cr.grad(cr.sum(v * np.arange(3.0)), [x])


def test_svd_of_rank_deficient_input():
    x = cr.tensor(np.outer([1.0, 2.0, 3.0], [1.0, -1.0]), dtype="float64", requires_grad=True)
    (g,) = cr.grad(cr.sum(LA.svd(x, full_matrices=False).S), [x])  # singular values: fine
    assert np.isfinite(g.numpy()).all()
    with pytest.raises(LA.LinAlgGradientError, match="svd"):
        cr.grad(cr.sum(LA.svd(x, full_matrices=False).U[:, 1] ** 3), [x])


def test_eigh_of_a_rotated_repeated_spectrum_raises_for_vectors():
    q = np.linalg.qr(S)[0]
    x = cr.tensor(q @ np.diag([1.0, 1.0, 3.0]) @ q.T, dtype="float64", requires_grad=True)
    with pytest.raises(LA.LinAlgGradientError, match="repeated"):
        cr.grad(cr.sum(LA.eigh(x).eigenvectors ** 3), [x])


def test_svd_full_matrices_of_non_square_input_is_refused():
    with pytest.raises(NotImplementedError, match="full_matrices=False"):
        LA.svd(A)


def test_singular_matrix_errors_name_the_operation():
    x = cr.tensor(np.ones((2, 2)), dtype="float64", requires_grad=True)
    with pytest.raises(np.linalg.LinAlgError, match="inv"):
        LA.inv(x)


@pytest.mark.parametrize(
    "call",
    [
        lambda: P.einsum("ij,jk->ik", A, A),
        lambda: P.einsum("ijk", A),
        lambda: P.einsum("ijk...", A),
        lambda: P.tensordot(A, A, ([0], [0, 1])),
        lambda: LA.solve(A, A),
        lambda: M.diagonal(A, 0, 1, 1),
        lambda: P.cross(A, A),
    ],
)
def test_bad_shapes_raise_value_errors(call):
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize("module", [P, M, LA, __import__("chainrule.ops.shape", fromlist=["x"])])
def test_every_public_name_has_a_docstring(module):
    missing = [n for n in module.__all__ if not (getattr(module, n).__doc__ or "").strip()]
    assert not missing, missing


def test_svd_vector_gradient_of_a_wide_rank_deficient_input_is_finite_when_unused():
    w = np.pad(A, ((0, 1), (1, 0)))  # (4, 5) with a zero row: one zero singular value
    x = cr.tensor(w, dtype="float64", requires_grad=True)
    (g,) = cr.grad(cr.sum(LA.svdvals(x) ** 2), [x])
    np.testing.assert_allclose(g.numpy(), 2 * w, atol=1e-12)  # d/dx |x|_F^2


def test_forward_rules_at_repeated_eigenvalues_give_exact_values_and_nan_vectors():
    from chainrule.ops.decompositions import _eigh_p

    a = np.diag([1.0, 1.0, 2.0])
    out = _eigh_p(a)
    t = rng.standard_normal((3, 3))
    t = t + t.T
    tangent = _eigh_p.jvps[0](t, out, a)
    np.testing.assert_allclose(tangent[0], np.diag(t), atol=1e-12)  # eigenvalues: diag(V^T t V), V = I
    assert np.isnan(tangent[1:, :2]).all() and np.isfinite(tangent[1:, 2]).all()


def test_det_gradient_at_a_singular_matrix_raises_and_pinv_takes_the_constant_rank_one():
    x = cr.tensor(np.ones((2, 2)), dtype="float64", requires_grad=True)
    np.testing.assert_allclose(LA.det(x).numpy(), 0.0)
    with pytest.raises(LA.LinAlgGradientError, match="det"):
        LA.det(x).backward()
    p = LA.pinv(x)
    np.testing.assert_allclose(p.numpy(), np.linalg.pinv(np.ones((2, 2))))
    cr.sum(p).backward()  # the derivative along rank-1 paths, as PyTorch's
    torch = pytest.importorskip("torch")
    tx = torch.ones(2, 2, dtype=torch.float64, requires_grad=True)
    torch.linalg.pinv(tx).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
