"""``chainrule.ops.linalg``: NumPy's ``np.linalg`` names, differentiable (``cr.linalg.solve`` etc.).

Real inputs. Decompositions return NumPy's named tuples (``SlogdetResult``, ``EighResult``,
``SVDResult``). Where a derivative does not exist (eigenvectors of a repeated eigenvalue,
singular vectors of a repeated or zero singular value) backward raises
:class:`LinAlgGradientError` instead of returning inf or nan.
"""

from chainrule.ops.matrix import (
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
    matmul,
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
from chainrule.ops.products import cross, outer, tensordot

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
    "trace",
    "vecdot",
    "vector_norm",
]
