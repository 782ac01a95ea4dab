"""NumPy's ``np.linalg`` functions and their derivative rules (re-exported by
:mod:`chainrule.ops.linalg`, whose ``__all__`` lists them; ``cr.linalg`` loads them on first use).

Decompositions with several results (``eigh``, ``svd``) are one primitive whose output packs
the results along the second-to-last axis; the public function slices them apart, so a
result that is not used simply contributes a zero gradient.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from chainrule.core.errors import ChainruleError, ShapeError, user_frame
from chainrule.core.primitive import Primitive
from chainrule.core.tensor import Tensor
from chainrule.ops import facts as fx
from chainrule.ops import manip
from chainrule.ops.elementwise import abs, negative, power, sqrt, where
from chainrule.ops.matrix import matmul
from chainrule.ops.reduce import max as _max
from chainrule.ops.reduce import min as _min
from chainrule.ops.reduce import normalize_axis
from chainrule.ops.reduce import sum as _sum
from chainrule.ops.shape import _getitem_p, array_of, as_operand, concatenate, reshape, swapaxes, transpose


class LinAlgGradientError(ChainruleError, np.linalg.LinAlgError):
    """A derivative that does not exist at this input (e.g. eigenvectors of a repeated eigenvalue)."""


def _mT(x: Any) -> Any:
    return swapaxes(x, -1, -2)


def _eye(n: int, like: Any) -> np.ndarray[Any, Any]:
    return np.eye(n, dtype=like.dtype)


def _square(a: Any, op: str) -> None:
    shape = array_of(a).shape
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ShapeError(f"{op}: expected (..., M, M) square matrices, got shape {shape} at {user_frame()}")


def _as_matrix_stack(x: Any) -> Any:
    """``(...)`` -> ``(..., 1, 1)``: a scalar per matrix, ready to scale it."""
    shape = array_of(x).shape
    return reshape(x, (*shape, 1, 1))


def _sum_last2(x: Any) -> Any:
    return _sum(x, axis=(-2, -1))


_solve_p = Primitive("solve", np.linalg.solve, save=(0,), save_output=True)
_solve_p.defvjp(
    lambda g, out, a, b: negative(matmul(_solve_p(_mT(a), g), _mT(out))),
    lambda g, out, a, b: _solve_p(_mT(a), g),
)
_solve_p.defjvp(
    lambda t, out, a, b: negative(_solve_p(a, matmul(t, out))),
    lambda t, out, a, b: _solve_p(a, t),
)


def solve(a: Any, b: Any) -> Any:
    """Solve ``a @ x = b``. ``b`` is a vector if 1-D, else ``(..., M, K)``; batch axes broadcast."""
    _square(a, "solve")
    if array_of(b).ndim == 1:
        x = _solve_p(a, reshape(b, (-1, 1)))
        return reshape(x, array_of(x).shape[:-1])
    return _solve_p(a, b)


_inv_p = Primitive("inv", np.linalg.inv, save_output=True)
_inv_p.defvjp(lambda g, out, x: negative(matmul(_mT(out), matmul(g, _mT(out)))))
_inv_p.defjvp(lambda t, out, x: negative(matmul(out, matmul(t, out))))


def inv(a: Any) -> Any:
    """The inverse of each square matrix in ``a`` (``(..., M, M)``)."""
    _square(a, "inv")
    return _inv_p(a)


def _inverse_for(op: str, a: Any) -> Any:
    """``a^-1`` for the rules of ``op``; a singular ``a`` raises an error that names ``op``."""
    try:
        return _inv_p(a)
    except np.linalg.LinAlgError as exc:
        raise LinAlgGradientError(
            f"{op}: the gradient at a singular matrix is not implemented (it needs the adjugate): {exc}"
        ) from exc


# d log|det a| = tr(a^-1 da): the gradient is a^-T (times det a for det). At a singular
# matrix the rules raise LinAlgGradientError rather than give a wrong number.
_det_p = Primitive("det", np.linalg.det, save=(0,), save_output=True)
_det_p.defvjp(lambda g, out, a: _as_matrix_stack(g * out) * _mT(_inverse_for("det", a)))
_det_p.defjvp(lambda t, out, a: out * _sum_last2(_mT(_inverse_for("det", a)) * t))


def det(a: Any) -> Any:
    """Determinant of each square matrix (its gradient needs the matrix to be invertible)."""
    _square(a, "det")
    return _det_p(a)


def _logabsdet(a: Any) -> Any:
    return np.linalg.slogdet(a)[1]


_logabsdet_p = Primitive("slogdet", _logabsdet, save=(0,), doc="``log|det a|``: the differentiable half of slogdet.")
_logabsdet_p.defvjp(lambda g, out, a: _as_matrix_stack(g) * _mT(_inverse_for("slogdet", a)))
_logabsdet_p.defjvp(lambda t, out, a: _sum_last2(_mT(_inverse_for("slogdet", a)) * t))


class SlogdetResult(NamedTuple):
    """``slogdet``'s result: the determinant is ``sign * exp(logabsdet)``."""

    sign: Any
    logabsdet: Any


def _constant_like(value: Any, x: Any) -> Any:
    """A constant (no gradient) of the same kind as ``x``: a tensor for tensors, else an array."""
    value = np.asarray(value)
    return Tensor._make(value, None) if isinstance(x, Tensor) else value


def slogdet(a: Any) -> SlogdetResult:
    """Sign and log of the absolute value of the determinant; the gradient flows through ``logabsdet``."""
    _square(a, "slogdet")
    sign = np.linalg.slogdet(array_of(a))[0]
    return SlogdetResult(_constant_like(sign, a), _logabsdet_p(a))


def _phi(x: Any) -> Any:
    """The lower triangle with the diagonal halved."""
    n = x.shape[-1]
    return x * (np.tril(np.ones((n, n), dtype=x.dtype), -1) + 0.5 * _eye(n, x))


def _cholesky_vjp(g: Any, out: Any, a: Any) -> Any:
    low_t = _mT(out)
    s = _solve_p(low_t, _phi(matmul(low_t, g)))
    s = _mT(_solve_p(low_t, _mT(s)))  # L^-T phi(L^T g) L^-1
    return (s + _mT(s)) * 0.5


def _cholesky_jvp(t: Any, out: Any, a: Any) -> Any:
    t = (t + _mT(t)) * 0.5
    m = _solve_p(out, _mT(_solve_p(out, t)))  # L^-1 t L^-T
    return matmul(out, _phi(m))


_cholesky_p = Primitive("cholesky", np.linalg.cholesky, save_output=True)
_cholesky_p.defvjp(_cholesky_vjp)
_cholesky_p.defjvp(_cholesky_jvp)


def cholesky(a: Any, upper: bool = False) -> Any:
    """Lower-triangular ``L`` with ``a = L @ L.T`` for symmetric positive-definite ``a``
    (``upper=True``: ``L.T``).

    NumPy reads only the lower triangle; the gradient is the symmetric one (as PyTorch's),
    i.e. it treats ``a`` as a symmetric matrix.
    """
    _square(a, "cholesky")
    low = _cholesky_p(a)
    return _mT(low) if upper else low


def _row(x: Any, i: int) -> Any:
    return _getitem_p(x, index=(Ellipsis, i, slice(None)))


def _rows(x: Any, lo: int, hi: int | None) -> Any:
    return _getitem_p(x, index=(Ellipsis, slice(lo, hi), slice(None)))


def _negligible(values: Any) -> float:
    """A gap or value below this is zero to working precision (LAPACK's results are not exact)."""
    data = array_of(values)
    if data.size == 0:
        return 0.0
    return float(10 * data.shape[-1] * np.finfo(data.dtype).eps * np.abs(data).max())


def _inverse_gaps(v: Any, op: str, *needed: Any, forward: bool = False) -> Any:
    """``F[..., i, j] = 1 / (v_j - v_i)`` off the diagonal, 0 on it.

    Equal values (a repeated eigenvalue or singular value, to working precision) have no such
    derivative. Backward: if a vector gradient in ``needed`` is not zero, raise instead of
    returning huge, inf or nan numbers (otherwise those entries are unused and set to 0).
    Forward (``forward=True``): the tangents of the vectors involved are undefined and come out
    nan, while the values' tangents stay exact.
    """
    gaps = v[..., None, :] - v[..., :, None]
    n = array_of(v).shape[-1]
    off = ~np.eye(n, dtype=bool)
    tied = (np.abs(array_of(gaps)) <= _negligible(v)) & off
    if tied.any() and any(np.any(array_of(x) != 0) for x in needed):
        raise LinAlgGradientError(
            f"{op}: the gradient of the vectors is undefined for repeated values "
            f"({array_of(v)}); only functions of the values alone can be differentiated there"
        )
    usable = off & ~tied
    inverse = where(usable, 1.0 / where(usable, gaps, 1.0), 0.0)
    return where(tied, np.nan, inverse) if forward and tied.any() else inverse


def _eigh(a: Any) -> Any:
    w, v = np.linalg.eigh(a)
    return np.concatenate([w[..., None, :], v], axis=-2)


def _eigh_vjp(g: Any, out: Any, a: Any) -> Any:
    w, v = _row(out, 0), _rows(out, 1, None)
    gw, gv = _row(g, 0), _rows(g, 1, None)
    inner = _inverse_gaps(w, "eigh", gv) * matmul(_mT(v), gv)
    inner = inner + gw[..., None, :] * _eye(array_of(w).shape[-1], w)
    return matmul(v, matmul(inner, _mT(v)))


def _eigh_jvp(t: Any, out: Any, a: Any) -> Any:
    w, v = _row(out, 0), _rows(out, 1, None)
    rotated = matmul(_mT(v), matmul(t, v))
    dw = _sum(rotated * _eye(array_of(w).shape[-1], w), axis=-1)
    dv = matmul(v, _inverse_gaps(w, "eigh", forward=True) * rotated)
    return concatenate([dw[..., None, :], dv], axis=-2)


_eigh_p = Primitive("eigh", _eigh, save_output=True)
_eigh_p.defvjp(_eigh_vjp)
_eigh_p.defjvp(_eigh_jvp)


class EighResult(NamedTuple):
    """``eigh``'s result: ascending eigenvalues and the eigenvectors as columns."""

    eigenvalues: Any
    eigenvectors: Any


def eigh(a: Any, UPLO: str = "L") -> EighResult:
    """Eigenvalues (ascending) and eigenvectors of symmetric matrices.

    The input is symmetrized first, ``(a + a.T) / 2`` (as JAX does), so values and gradients
    treat it as the symmetric matrix it stands for; ``UPLO`` is accepted for NumPy
    compatibility only. Eigenvector gradients need distinct eigenvalues (else
    :class:`LinAlgGradientError`); each eigenvector's sign is arbitrary, so differentiate
    sign-invariant functions of them.
    """
    _square(a, "eigh")
    out = _eigh_p((a + _mT(a)) * 0.5)
    return EighResult(_row(out, 0), _rows(out, 1, None))


def eigvalsh(a: Any, UPLO: str = "L") -> Any:
    """Eigenvalues (ascending) of symmetric matrices (symmetrized first, as in :func:`eigh`)."""
    return eigh(a).eigenvalues


def _svd(a: Any) -> Any:
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    return np.concatenate([u, s[..., None, :], np.swapaxes(vh, -1, -2)], axis=-2)


def _svd_parts(packed: Any, m: int) -> tuple[Any, Any, Any]:
    return _rows(packed, 0, m), _row(packed, m), _rows(packed, m + 1, None)


def _inverse_values(s: Any, needed: Any = None) -> Any:
    """``1 / s`` for the terms of a non-square input's vectors, which a zero singular value leaves
    undefined: backward raises if the gradient ``needed`` there is not zero (else the term is 0);
    forward (``needed`` None) gives nan tangents for those vectors."""
    zero = array_of(s) <= _negligible(s)
    if not zero.any():
        return 1.0 / s
    if needed is not None and np.any(array_of(needed) != 0):
        raise LinAlgGradientError(
            "svd: the gradient of the singular vectors is undefined for a zero singular value "
            "(rank-deficient input); only functions of the singular values can be differentiated there"
        )
    return where(zero, 0.0 if needed is not None else np.nan, 1.0 / where(zero, 1.0, s))


def _svd_vjp(g: Any, out: Any, a: Any) -> Any:
    m, n = a.shape[-2], a.shape[-1]
    u, s, v = _svd_parts(out, m)
    gu, gs, gv = _svd_parts(g, m)
    k = array_of(s).shape[-1]
    f = _inverse_gaps(s * s, "svd", gu, gv)
    ut_gu, vt_gv = matmul(_mT(u), gu), matmul(_mT(v), gv)
    j = f * (ut_gu - _mT(ut_gu))
    kk = f * (vt_gv - _mT(vt_gv))
    core = j * s[..., None, :] + s[..., :, None] * kk + gs[..., None, :] * _eye(k, s)
    grad = matmul(u, matmul(core, _mT(v)))
    if m > k:  # the part of gu outside U's span
        grad = grad + matmul((gu - matmul(u, ut_gu)) * _inverse_values(s, gu)[..., None, :], _mT(v))
    if n > k:  # the part of gv outside V's span
        grad = grad + matmul(u, _mT((gv - matmul(v, vt_gv)) * _inverse_values(s, gv)[..., None, :]))
    return grad


def _svd_jvp(t: Any, out: Any, a: Any) -> Any:
    m, n = a.shape[-2], a.shape[-1]
    u, s, v = _svd_parts(out, m)
    k = array_of(s).shape[-1]
    dp = matmul(_mT(u), matmul(t, v))
    ds = _sum(dp * _eye(k, s), axis=-1)
    f = _inverse_gaps(s * s, "svd", forward=True)
    du = matmul(u, f * (dp * s[..., None, :] + s[..., :, None] * _mT(dp)))
    dv = matmul(v, f * (s[..., :, None] * dp + _mT(dp) * s[..., None, :]))
    if m > k:
        du = du + matmul(t - matmul(u, matmul(_mT(u), t)), v) * _inverse_values(s)[..., None, :]
    if n > k:
        tt = _mT(t)
        dv = dv + matmul(tt - matmul(v, matmul(_mT(v), tt)), u) * _inverse_values(s)[..., None, :]
    return concatenate([du, ds[..., None, :], dv], axis=-2)


_svd_p = Primitive("svd", _svd, save_output=True)
_svd_p.defvjp(_svd_vjp)
_svd_p.defjvp(_svd_jvp)


class SVDResult(NamedTuple):
    """``svd``'s result: ``a = U @ (S[..., None] * Vh)`` with singular values ``S`` descending."""

    U: Any
    S: Any
    Vh: Any


def svd(a: Any, full_matrices: bool = True, compute_uv: bool = True, hermitian: bool = False) -> Any:
    """Singular value decomposition of ``(..., M, N)`` matrices (reduced: ``full_matrices=False``).

    Singular values are differentiable wherever they are distinct from each other; the vectors
    also need distinct singular values (and, for a non-square input, nonzero ones), else their
    gradient raises :class:`LinAlgGradientError`. Singular vectors are defined up to a joint
    sign, so differentiate sign-invariant functions of them (e.g. ``U * S @ Vh``).
    ``hermitian`` is accepted for NumPy compatibility and ignored.
    """
    shape = array_of(a).shape
    if len(shape) < 2:
        raise ShapeError(f"svd: expected (..., M, N) matrices, got shape {shape}")
    if full_matrices and compute_uv and shape[-1] != shape[-2]:
        raise NotImplementedError("svd: only full_matrices=False is differentiable; pass full_matrices=False")
    u, s, v = _svd_parts(_svd_p(a), shape[-2])
    if not compute_uv:
        return s
    return SVDResult(u, s, _mT(v))


def svdvals(x: Any) -> Any:
    """Singular values, descending."""
    return svd(x, full_matrices=False, compute_uv=False)


def _safe_root(s: Any, p: float) -> Any:
    """``s ** (1/p)`` for ``s >= 0`` with gradient 0 (not inf or nan) where ``s == 0``, as PyTorch's norms."""
    positive = array_of(s) > 0
    safe = where(positive, s, 1.0)
    root = sqrt(safe) if p == 2 else power(safe, 1.0 / p)
    return where(positive, root, 0.0)


def _vector_norm(x: Any, ord: Any, axis: Any, keepdims: bool) -> Any:
    if ord is None or ord == 2:
        return _safe_root(_sum(x * x, axis=axis, keepdims=keepdims), 2)
    if ord == np.inf:
        return _max(abs(x), axis=axis, keepdims=keepdims)
    if ord == -np.inf:
        return _min(abs(x), axis=axis, keepdims=keepdims)
    if ord == 0:  # the number of nonzeros: piecewise constant, gradient 0
        count = np.sum(array_of(x) != 0, axis=axis, keepdims=keepdims).astype(array_of(x).dtype)
        return _constant_like(count, x)
    if ord == 1:
        return _sum(abs(x), axis=axis, keepdims=keepdims)
    if isinstance(ord, str):
        raise ValueError(f"norm: invalid norm order {ord!r} for vectors")
    p = float(ord)
    if p < 1:
        # |x| ** p has an infinite derivative at 0: refuse rather than return inf or nan
        raise ValueError(f"norm: ord={ord} (< 1) is not supported (not differentiable at 0)")
    return _safe_root(_sum(power(abs(x), p), axis=axis, keepdims=keepdims), p)


def _matrix_norm(x: Any, ord: Any, axes: tuple[int, int], keepdims: bool) -> Any:
    row, col = axes
    if ord in (None, "fro"):
        return _safe_root(_sum(x * x, axis=axes, keepdims=keepdims), 2)
    if ord in (1, -1, np.inf, -np.inf):
        inner, outer = (row, col) if ord in (1, -1) else (col, row)
        sums = _sum(abs(x), axis=inner, keepdims=True)
        pick = _max if ord > 0 else _min
        out = pick(sums, axis=outer, keepdims=True)
        return out if keepdims else reshape(out, tuple(n for i, n in enumerate(array_of(out).shape) if i not in axes))
    if ord in (2, -2, "nuc"):
        moved = transpose(x, tuple(i for i in range(array_of(x).ndim) if i not in axes) + axes)
        s = svd(moved, full_matrices=False, compute_uv=False)
        out = _sum(s, axis=-1) if ord == "nuc" else (_max if ord == 2 else _min)(s, axis=-1)
        if keepdims:
            shape = list(array_of(x).shape)
            shape[row] = shape[col] = 1
            out = reshape(out, tuple(shape))
        return out
    raise ValueError(f"norm: invalid norm order {ord!r} for matrices")


def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    """Vector or matrix norm (NumPy's ``np.linalg.norm``: ``ord``, ``axis``, ``keepdims``).

    Vectors: ord None/2, 1, inf, -inf, 0 (count of nonzeros), p >= 1. Matrices (2-D input
    with ``axis=None`` or a pair of axes): None/'fro', 'nuc', 1, -1, 2, -2, inf, -inf.
    At ``x == 0`` the 2-norm and p-norms take the subgradient 0 (as PyTorch), never nan. ``x``
    may be a list (of numbers or tensors), as in NumPy.
    """
    x = as_operand(x)
    ndim = array_of(x).ndim
    if axis is None:
        if ord is None:
            out = _safe_root(_sum(x * x), 2)
            return reshape(out, (1,) * ndim) if keepdims else out
        if ndim == 1:
            return _vector_norm(x, ord, 0, keepdims)
        if ndim == 2:
            return _matrix_norm(x, ord, (0, 1), keepdims)
        raise ValueError(f"norm: ord={ord!r} needs a 1-D or 2-D input or an explicit axis, got {ndim} dimensions")
    axes = normalize_axis(axis, ndim, "norm") or ()
    if len(axes) == 1:
        return _vector_norm(x, ord, axes, keepdims)
    if len(axes) == 2:
        if axes[0] == axes[1]:
            raise ValueError("norm: duplicate axes")
        return _matrix_norm(x, ord, (axes[0], axes[1]), keepdims)
    raise ValueError(f"norm: axis must be an int or a pair, got {axis}")


def vector_norm(x: Any, axis: Any = None, keepdims: bool = False, ord: Any = 2) -> Any:
    """NumPy 2's ``np.linalg.vector_norm``: a vector norm over ``axis`` (all axes if None)."""
    x = as_operand(x)
    if axis is None:
        flat = reshape(x, (-1,))
        out = _vector_norm(flat, ord, 0, False)
        return reshape(out, (1,) * array_of(x).ndim) if keepdims else out
    return _vector_norm(x, ord, normalize_axis(axis, array_of(x).ndim, "vector_norm"), keepdims)


def matrix_norm(x: Any, keepdims: bool = False, ord: Any = "fro") -> Any:
    """NumPy 2's ``np.linalg.matrix_norm``: a matrix norm over the last two axes."""
    x = as_operand(x)
    ndim = array_of(x).ndim
    return _matrix_norm(x, ord, (ndim - 2, ndim - 1), keepdims)


def matrix_power(a: Any, n: int) -> Any:
    """``a`` multiplied by itself ``n`` times (by repeated squaring); negative ``n`` uses the inverse."""
    _square(a, "matrix_power")
    if n < 0:
        a, n = inv(a), -n
    if n == 0:
        data = array_of(a)  # the identity, still connected to ``a`` (gradient 0), as PyTorch's
        return where(np.zeros(data.shape, dtype=bool), a, _eye(data.shape[-1], data))
    result = None
    while n:
        if n & 1:
            result = a if result is None else matmul(result, a)
        n >>= 1
        if n:
            a = matmul(a, a)
    return result


def _pinv_projectors(x: Any, out: Any) -> tuple[Any, Any]:
    """I - A A⁺ (M × M) and I - A⁺ A (N × N): the projectors off A's range and row space."""
    data = array_of(x)
    m, n = data.shape[-2:]
    return _eye(m, data) - matmul(x, out), _eye(n, data) - matmul(out, x)


def _pinv_vjp(g: Any, out: Any, x: Any, rtol: Any = None) -> Any:
    # Golub & Pereyra: dX = -X dA X + X Xᵀ dAᵀ (I - A X) + (I - X A) dAᵀ Xᵀ X, transposed
    left, right = _pinv_projectors(x, out)
    xt, gt = _mT(out), _mT(g)
    return (
        negative(matmul(xt, matmul(g, xt)))
        + matmul(left, matmul(gt, matmul(out, xt)))
        + matmul(matmul(xt, out), matmul(gt, right))
    )


def _pinv_jvp(t: Any, out: Any, x: Any, rtol: Any = None) -> Any:
    left, right = _pinv_projectors(x, out)
    xt, tt = _mT(out), _mT(t)
    return (
        negative(matmul(out, matmul(t, out)))
        + matmul(matmul(out, xt), matmul(tt, left))
        + matmul(right, matmul(tt, matmul(xt, out)))
    )


def _pinv(a: Any, rtol: Any = None) -> Any:
    return np.linalg.pinv(a, rtol=rtol)


_pinv_deficient_p = Primitive(
    "pinv",
    _pinv,
    save=(0,),
    save_output=True,
    doc="``pinv``, with the derivative along paths of constant rank (every path, at full rank).",
)
_pinv_deficient_p.defvjp(_pinv_vjp)
_pinv_deficient_p.defjvp(_pinv_jvp)


def pinv(a: Any, rcond: float | None = None, hermitian: bool = False, *, rtol: float | None = None) -> Any:
    """Moore-Penrose pseudo-inverse (NumPy's ``pinv``; ``rtol`` is NumPy 2's name for ``rcond``).

    One primitive for every input (NumPy's SVD-based ``pinv``, singular values below ``rcond``
    times the largest dropped; default ``max(M, N) * eps``), so shape-only evaluation and a
    compiled step take the same path as the values would. Its derivative is Golub & Pereyra's
    (PyTorch's): exact where the rank is full, and along paths that keep the rank at a
    rank-deficient input (elsewhere the pseudo-inverse is discontinuous). ``hermitian=True``
    (NumPy's shortcut for symmetric input) gives the same result; a non-symmetric input with it
    is refused (NumPy would silently read one triangle).
    """
    shape = array_of(a).shape
    if len(shape) < 2:
        raise ShapeError(f"pinv: expected (..., M, N) matrices, got shape {shape}")
    if rcond is not None and rtol is not None:
        raise ValueError("pinv: give rcond or rtol, not both (they are the same cutoff)")
    rcond = rtol if rcond is None else rcond
    m, n = shape[-2:]
    data = array_of(a)
    if hermitian and (m != n or not np.allclose(data, np.swapaxes(data, -1, -2))):
        raise ValueError("pinv: hermitian=True needs symmetric matrices; this input is not symmetric")
    rcond = max(m, n) * np.finfo(data.dtype).eps if rcond is None else rcond
    return _pinv_deficient_p(a, rtol=rcond)


def trace(x: Any, offset: int = 0) -> Any:
    """NumPy 2's ``np.linalg.trace``: the sum of diagonal ``offset`` of the last two axes."""
    return manip.trace(x, offset, -2, -1)


def diagonal(x: Any, offset: int = 0) -> Any:
    """NumPy 2's ``np.linalg.diagonal``: diagonal ``offset`` of the last two axes."""
    return manip.diagonal(x, offset, -2, -1)


def matrix_transpose(x: Any) -> Any:
    """Swap the last two axes."""
    return _mT(x)


def vecdot(x1: Any, x2: Any, axis: int = -1) -> Any:
    """Dot products of vectors along ``axis`` (broadcasting the rest)."""
    return _sum(x1 * x2, axis=axis)


# --- facts (chainrule.ops.facts as fx, chainrule.ops.vjp_memory as vm): shape rule, FLOPs of the
# forward and of each input's rule, what the VJP rule allocates (RULE_ITSELF: its own primitives,
# evaluated shape-only, model it) ------------------------------------------------------------
# Decompositions: textbook counts per n×n matrix (LU 2/3·n³, Cholesky 1/3·n³, inverse 2·n³, symmetric
# eigendecomposition with vectors 9·n³); their rules: the products and solves they are built of, 2·n³
# each (a solve with n right-hand sides 2/3·n³ + 2·n³). pinv's primitive is the rank-deficient path,
# whose rule raises (no derivative there).
R = fx.RULE_ITSELF
_solve_p.deffacts(shape=fx.linalg(_solve_p, fx.solve_out), flops=fx.cubic(2 / 3, 2), vjp_flops=fx.solve_vjp, memory=R)
_inv_p.deffacts(shape=fx.linalg(_inv_p, fx.same_out), flops=fx.cubic(2), vjp_flops=fx.cubic_vjp(4), memory=R)
_det_p.deffacts(shape=fx.linalg(_det_p, fx.batch_of), flops=fx.cubic(2 / 3), vjp_flops=fx.cubic_vjp(2), memory=R)
_logabsdet_p.deffacts(
    shape=fx.linalg(_logabsdet_p, fx.batch_of), flops=fx.cubic(2 / 3), vjp_flops=fx.cubic_vjp(2), memory=R
)
_cholesky_p.deffacts(
    shape=fx.linalg(_cholesky_p, fx.same_out), flops=fx.cubic(1 / 3), vjp_flops=fx.cubic_vjp(7), memory=R
)
_eigh_p.deffacts(shape=fx.linalg(_eigh_p, fx.eigh_out), flops=fx.cubic(9), vjp_flops=fx.cubic_vjp(6), memory=R)
_svd_p.deffacts(shape=fx.linalg(_svd_p, fx.svd_out), flops=fx.svd_forward, vjp_flops=fx.svd_vjp, memory=R)


def _pinv_vjp_flops(i: int, ins: Any, params: Any, out: Any) -> int:
    """Golub & Pereyra's rule: two projectors and eight matrix products, each about ``2·m·n·max(m, n)``."""
    shape = np.shape(ins[0]._data if isinstance(ins[0], Tensor) else ins[0])
    batch, m, n = int(np.prod(shape[:-2], dtype=np.int64)), shape[-2], shape[-1]
    return int(batch * 10 * 2 * m * n * max(m, n))


_pinv_deficient_p.deffacts(
    shape=fx.linalg(_pinv_deficient_p, fx.transposed_out), flops=fx.pinv_forward, vjp_flops=_pinv_vjp_flops, memory=R
)
del R
