"""``chainrule.ops.linalg``: NumPy's ``np.linalg`` names, differentiable (``cr.linalg.solve`` etc.).

Real inputs. Decompositions return NumPy's named tuples (``SlogdetResult``, ``EighResult``,
``SVDResult``). Where a derivative does not exist (eigenvectors of a repeated eigenvalue,
singular vectors of a repeated or zero singular value) backward raises
:class:`LinAlgGradientError` instead of returning inf or nan.
"""

import math
from typing import Any

from chainrule.core.errors import ShapeError
from chainrule.ops.decompositions import (
    EighResult,
    LinAlgGradientError,
    SlogdetResult,
    SVDResult,
    cholesky,
    det,
    diagonal,
    eigh,
    eigvalsh,
    inv,
    matrix_norm,
    matrix_power,
    matrix_transpose,
    norm,
    pinv,
    slogdet,
    solve,
    svd,
    svdvals,
    trace,
    vecdot,
    vector_norm,
)
from chainrule.ops.matrix import matmul
from chainrule.ops.products import cross, outer, tensordot
from chainrule.ops.shape import array_of, reshape, transpose


def tensorinv(a: Any, ind: int = 2) -> Any:
    """The inverse of ``a`` for :func:`tensordot` over its first ``ind`` axes (NumPy's
    ``tensorinv``): ``a`` reshaped to a square matrix, inverted, reshaped back; differentiable."""
    shape = array_of(a).shape
    if ind <= 0:
        raise ValueError(f"tensorinv: ind must be a positive integer, got {ind}")
    rows, cols = math.prod(shape[:ind]), math.prod(shape[ind:])
    if rows != cols:
        raise ShapeError(
            f"tensorinv: the product of the first {ind} axes of shape {shape} ({rows}) must equal "
            f"that of the rest ({cols})"
        )
    return reshape(inv(reshape(a, (rows, cols))), shape[ind:] + shape[:ind])


def tensorsolve(a: Any, b: Any, axes: Any = None) -> Any:
    """x with ``tensordot(a, x, x.ndim) == b`` (NumPy's ``tensorsolve``; ``axes``: axes of ``a`` to
    move to the end first); differentiable in ``a`` and ``b``."""
    if axes is not None:
        ndim = array_of(a).ndim
        moved = [ax % ndim for ax in axes]
        a = transpose(a, tuple([i for i in range(ndim) if i not in moved] + moved))
    shape, bshape = array_of(a).shape, array_of(b).shape
    xshape = shape[len(bshape) :]
    rows, cols = math.prod(shape[: len(bshape)]), math.prod(xshape)
    if rows != cols or math.prod(bshape) != rows:
        raise ShapeError(
            f"tensorsolve: a of shape {shape} (after axes) must split into b's {math.prod(bshape)} elements "
            f"and as many unknowns (got {rows} and {cols})"
        )
    return reshape(solve(reshape(a, (rows, cols)), reshape(b, (rows,))), xshape)


__all__ = [
    "EighResult",
    "LinAlgGradientError",
    "SVDResult",
    "SlogdetResult",
    "cholesky",
    "cross",
    "det",
    "diagonal",
    "eigh",
    "eigvalsh",
    "inv",
    "matmul",
    "matrix_norm",
    "matrix_power",
    "matrix_transpose",
    "norm",
    "outer",
    "pinv",
    "slogdet",
    "solve",
    "svd",
    "svdvals",
    "tensordot",
    "tensorinv",
    "tensorsolve",
    "trace",
    "vecdot",
    "vector_norm",
]
