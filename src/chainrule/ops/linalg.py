"""Matrix product. The primitive handles ndim >= 2 (batched, broadcast); 1-D cases are reshaped."""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.core.errors import ShapeError, user_frame
from chainrule.core.tensor import Primitive
from chainrule.ops.shape import array_of, reshape, swapaxes

_matmul_p = Primitive("matmul", np.matmul, save=(0, 1))
_matmul_p.defvjp(
    lambda g, out, x, y: _matmul_p(g, swapaxes(y, -1, -2)),
    lambda g, out, x, y: _matmul_p(swapaxes(x, -1, -2), g),
)


def matmul(x: Any, y: Any) -> Any:
    """NumPy's ``matmul``: 1-D operands are promoted to matrices and the extra axis removed."""
    xs, ys = array_of(x).shape, array_of(y).shape
    if len(xs) == 0 or len(ys) == 0:
        raise ShapeError(f"matmul: operands must have at least 1 dimension, got shapes {xs} and {ys}")
    if xs[-1] != ys[-2 if len(ys) > 1 else 0]:
        raise ShapeError(
            f"matmul: inner dimensions differ: {xs} @ {ys} ({xs[-1]} != {ys[-2 if len(ys) > 1 else 0]}) "
            f"at {user_frame()}"
        )
    x_vec, y_vec = len(xs) == 1, len(ys) == 1
    if x_vec:
        x = reshape(x, (1, xs[0]))
    if y_vec:
        y = reshape(y, (ys[0], 1))
    out = _matmul_p(x, y)
    if x_vec or y_vec:
        shape = array_of(out).shape
        if x_vec and y_vec:
            new: tuple[int, ...] = ()
        elif x_vec:
            new = shape[:-2] + shape[-1:]
        else:
            new = shape[:-1]
        out = reshape(out, new)
    return out
