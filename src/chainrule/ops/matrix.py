"""Matrix product: the matmul primitive and its derivative rules.

The matmul primitive handles ndim >= 2 (batched, broadcast); 1-D cases are reshaped.
``__all__`` lists the names that belong at the package's top level (NumPy's ``matmul``).
NumPy's ``np.linalg`` functions are in :mod:`chainrule.ops.decompositions`, loaded with
:mod:`chainrule.ops.linalg` (``cr.linalg``) on first use: a training script needs only the product.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.core.errors import ShapeError, user_frame
from chainrule.core.primitive import Primitive
from chainrule.ops import facts as fx
from chainrule.ops import vjp_memory as vm
from chainrule.ops.shape import array_of, reshape, swapaxes


def _transposed_layout(a: Any) -> bool:
    """True for a 2-D array stored column-major, typically the view ``W.T`` of a weight."""
    data = array_of(a)
    return data.ndim == 2 and not data.flags.c_contiguous and data.flags.f_contiguous


# Each gradient is produced in its input's memory layout: for ``x @ W.T`` the weight's
# gradient comes out row-major like W, so no copy or strided update follows.
def _matmul_vjp_x(g: Any, out: Any, x: Any, y: Any) -> Any:
    if _transposed_layout(x):
        return swapaxes(_matmul_p(y, swapaxes(g, -1, -2)), -1, -2)
    return _matmul_p(g, swapaxes(y, -1, -2))


def _matmul_vjp_y(g: Any, out: Any, x: Any, y: Any) -> Any:
    if _transposed_layout(y):
        return swapaxes(_matmul_p(swapaxes(g, -1, -2), x), -1, -2)
    return _matmul_p(swapaxes(x, -1, -2), g)


_matmul_p = Primitive("matmul", np.matmul, save=(0, 1))
_matmul_p.defvjp(_matmul_vjp_x, _matmul_vjp_y)
_matmul_p.defjvp(lambda t, out, x, y: _matmul_p(t, y), lambda t, out, x, y: _matmul_p(x, t))


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


_matmul_p.deffacts(shape=fx.matmul_shape, flops=fx.matmul_forward, vjp_flops=fx.matmul_vjp, memory=vm.matmul)

__all__ = ["matmul"]
