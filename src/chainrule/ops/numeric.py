"""NumPy's numerical helpers that HIPS autograd differentiates: ``linspace``, ``gradient``, ``partition``.

All three are compositions of existing primitives, so every order and both modes come from
the primitives' rules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.core.errors import ShapeError
from chainrule.core.tensor import Tensor, array_of
from chainrule.ops.manip import moveaxis, take_along_axis
from chainrule.ops.shape import concatenate, expand_dims, getitem


def linspace(start: Any, stop: Any, num: int = 50, endpoint: bool = True, axis: int = 0) -> Any:
    """``num`` evenly spaced values from ``start`` to ``stop`` (NumPy's ``linspace``, no ``retstep``).

    Differentiable in ``start`` and ``stop`` (scalars or arrays, which add the new axis at ``axis``).

    Examples:
        >>> import chainrule as cr
        >>> cr.linspace(cr.tensor(0.0), cr.tensor(1.0), 5).numpy().tolist()
        [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if int(num) != num or num < 0:
        raise ValueError(f"linspace: num must be a non-negative integer, got {num!r}")
    num = int(num)
    a, b = array_of(start), array_of(stop)
    shape = np.broadcast_shapes(a.shape, b.shape)
    floats = [x.dtype for x, given in ((a, start), (b, stop)) if isinstance(given, Tensor | np.ndarray)]
    dtype = next((d for d in floats if d.kind == "f"), np.dtype(np.float64))  # NumPy: float64 otherwise
    div = max((num - 1) if endpoint else num, 1)
    fractions = (np.arange(num, dtype=dtype) / dtype.type(div)).reshape((num,) + (1,) * len(shape))
    first = expand_dims(start, 0)
    values = first + (expand_dims(stop, 0) - first) * fractions
    if endpoint and num > 1:  # the last value is exactly stop, as in NumPy
        values = concatenate([getitem(values, slice(0, num - 1)), expand_dims(stop + 0 * start, 0)], axis=0)
    return moveaxis(values, 0, axis) if axis != 0 else values


def gradient(f: Any, *varargs: Any, axis: Any = None, edge_order: int = 1) -> Any:
    """Central differences in the interior, one-sided at the edges (NumPy's ``gradient``, unit or
    scalar spacing, ``edge_order=1``). One array per axis, a single array for one axis.

    Examples:
        >>> import chainrule as cr
        >>> cr.gradient(cr.tensor([1.0, 2.0, 4.0, 7.0])).numpy().tolist()
        [1.0, 1.5, 2.5, 3.0]
    """
    data = array_of(f)
    ndim = data.ndim
    axes = tuple(range(ndim)) if axis is None else ((axis,) if isinstance(axis, int) else tuple(axis))
    axes = tuple(a % ndim for a in axes)
    if edge_order != 1:
        raise NotImplementedError(f"gradient: only edge_order=1 is implemented, got {edge_order}")
    if len(varargs) not in (0, 1, len(axes)) or any(np.ndim(h) != 0 for h in varargs):
        raise ValueError(f"gradient: expected no spacing, one scalar, or one scalar per axis, got {varargs!r}")
    spacing = [1.0] * len(axes) if not varargs else [float(h) for h in varargs] * (len(axes) // len(varargs))
    out = []
    for ax, h in zip(axes, spacing, strict=True):
        n = data.shape[ax]
        if n < 2:
            raise ShapeError(f"gradient: axis {ax} has {n} element(s); at least 2 are needed")

        def part(lo: int | None, hi: int | None, ax: int = ax) -> Any:
            index = [slice(None)] * ndim
            index[ax] = slice(lo, hi)
            return getitem(f, tuple(index))

        pieces = [(part(1, 2) - part(0, 1)) / h]
        if n > 2:
            pieces.append((part(2, None) - part(0, -2)) / (2 * h))
        pieces.append((part(-1, None) - part(-2, -1)) / h)
        out.append(concatenate(pieces, axis=ax))
    return out[0] if len(out) == 1 else out


def partition(a: Any, kth: Any, axis: int = -1) -> Any:
    """NumPy's ``partition``: the k-th value in its sorted place, smaller before, larger after.

    The arrangement is NumPy's own (``argpartition``); the gradient follows the values.

    Examples:
        >>> import chainrule as cr
        >>> float(cr.partition(cr.tensor([3.0, 1.0, 2.0]), 1)[1])
        2.0
    """
    order = np.argpartition(array_of(a), kth, axis=axis)
    return take_along_axis(a, order, axis=axis)


__all__ = ["gradient", "linspace", "partition"]
