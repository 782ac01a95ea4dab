"""Shape primitives: reshape, transpose, broadcast, indexing, joining, casting."""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.core.errors import ShapeError, user_frame
from chainrule.core.tensor import Primitive, Tensor
from chainrule.core.tensor import array_of as array_of  # re-exported: ops modules import it from here


def _reshape(x: Any, shape: tuple[int, ...]) -> Any:
    return np.reshape(x, shape)


_reshape_p = Primitive("reshape", _reshape)
_reshape_p.defvjp(lambda g, out, x, shape: _reshape_p(g, shape=x.shape))


def reshape(x: Any, shape: Any) -> Any:
    if isinstance(shape, int | np.integer):
        shape = (int(shape),)
    shape = tuple(int(n) for n in shape)
    if array_of(x).shape == shape:
        return x
    try:
        return _reshape_p(x, shape=shape)
    except ValueError as exc:
        raise ShapeError(
            f"reshape: cannot reshape array of shape {array_of(x).shape} into shape {shape} at {user_frame()}"
        ) from exc


def _transpose(x: Any, axes: tuple[int, ...] | None) -> Any:
    return np.transpose(x, axes)


def _inverse_axes(axes: tuple[int, ...] | None, ndim: int) -> tuple[int, ...] | None:
    if axes is None:
        return None
    return tuple(int(i) for i in np.argsort(axes))


_transpose_p = Primitive("transpose", _transpose)
_transpose_p.defvjp(lambda g, out, x, axes: _transpose_p(g, axes=_inverse_axes(axes, x.ndim)))


def transpose(x: Any, axes: Any = None) -> Any:
    ndim = array_of(x).ndim
    if axes is not None:
        axes = tuple(int(a) % ndim for a in axes)
        if sorted(axes) != list(range(ndim)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of {ndim} dimensions")
    return _transpose_p(x, axes=axes)


def swapaxes(x: Any, axis1: int, axis2: int) -> Any:
    axes = list(range(array_of(x).ndim))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return _transpose_p(x, axes=tuple(axes))


def _broadcast_to(x: Any, shape: tuple[int, ...]) -> Any:
    return np.broadcast_to(x, shape)


_broadcast_p = Primitive("broadcast_to", _broadcast_to)


def _sum_to_rule(g: Any, out: Any, x: Any, shape: tuple[int, ...]) -> Any:
    from chainrule.ops.unbroadcast import sum_to  # shape.py is imported first: reduce needs it

    return sum_to(g, x.shape)


_broadcast_p.defvjp(_sum_to_rule)


def broadcast_to(x: Any, shape: Any) -> Any:
    shape = tuple(int(n) for n in shape)
    if array_of(x).shape == shape:
        return x
    return _broadcast_p(x, shape=shape)


def expand_dims(x: Any, axis: int) -> Any:
    shape = list(array_of(x).shape)
    axis = axis % (len(shape) + 1)
    shape.insert(axis, 1)
    return reshape(x, tuple(shape))


def squeeze(x: Any, axis: Any = None) -> Any:
    shape = array_of(x).shape
    if axis is None:
        new = tuple(n for n in shape if n != 1)
    else:
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        axes = tuple(a % len(shape) for a in axes)
        for a in axes:
            if shape[a] != 1:
                raise ShapeError(f"squeeze: axis {a} has size {shape[a]}, expected 1")
        new = tuple(n for i, n in enumerate(shape) if i not in axes)
    return reshape(x, new)


def _getitem(x: Any, index: Any) -> Any:
    return x[index]


def _has_array_index(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, np.ndarray | list) for i in items)


def _scatter_add(g: Any, index: Any, shape: tuple[int, ...]) -> Any:
    out = np.zeros(shape, dtype=g.dtype)
    if _has_array_index(index):
        np.add.at(out, index, g)  # repeated indices accumulate
    else:
        out[index] = g
    return out


getitem_p = Primitive("getitem", _getitem)
scatter_add = Primitive("scatter_add", _scatter_add)
getitem_p.defvjp(lambda g, out, x, index: scatter_add(g, index=index, shape=x.shape))
scatter_add.defvjp(lambda g, out, x, index, shape: getitem_p(g, index=index))


def _clean_index(index: Any) -> Any:
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


def getitem(x: Any, index: Any) -> Any:
    """Basic and integer-array indexing (``t[1:, idx]``); repeated indices add up in backward."""
    return getitem_p(x, index=_clean_index(index))


def _concatenate(*xs: Any, axis: int) -> Any:
    return np.concatenate(xs, axis=axis)


concatenate_p = Primitive("concatenate", _concatenate)


def _concat_vjp(i: int, g: Any, out: Any, *xs: Any, axis: int) -> Any:
    start = sum(x.shape[axis] for x in xs[:i])
    index = [slice(None)] * g.ndim
    index[axis] = slice(start, start + xs[i].shape[axis])
    return getitem_p(g, index=tuple(index))


concatenate_p.defvjp_argnum(_concat_vjp)


def concatenate(xs: Any, axis: int = 0) -> Any:
    xs = list(xs)
    if not xs:
        raise ValueError("concatenate: expected at least one array, got none")
    ndim = array_of(xs[0]).ndim
    return concatenate_p(*xs, axis=axis % ndim if ndim else axis)


def stack(xs: Any, axis: int = 0) -> Any:
    xs = list(xs)
    if not xs:
        raise ValueError("stack: expected at least one array, got none")
    shapes = {array_of(x).shape for x in xs}
    if len(shapes) != 1:
        raise ShapeError(f"stack: all inputs must have the same shape, got {sorted(shapes)}")
    return concatenate([expand_dims(x, axis) for x in xs], axis=axis)


def split(x: Any, indices_or_sections: Any, axis: int = 0) -> list[Any]:
    n = array_of(x).shape[axis]
    if isinstance(indices_or_sections, int):
        if n % indices_or_sections:
            raise ShapeError(f"split: axis {axis} of length {n} does not divide into {indices_or_sections} equal parts")
        step = n // indices_or_sections
        bounds = list(range(0, n + 1, step))
    else:
        bounds = [0, *indices_or_sections, n]
    parts = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        index = [slice(None)] * array_of(x).ndim
        index[axis] = slice(lo, hi)
        parts.append(getitem_p(x, index=tuple(index)))
    return parts


def _astype(x: Any, dtype: np.dtype[Any]) -> Any:
    return x.astype(dtype)


_astype_p = Primitive("astype", _astype)
_astype_p.defvjp(lambda g, out, x, dtype: _astype_p(g, dtype=x.dtype))


def astype(x: Any, dtype: Any) -> Any:
    dtype = np.dtype(dtype)
    if array_of(x).dtype == dtype:
        return x
    return _astype_p(x, dtype=dtype)


def stop_gradient(x: Any) -> Any:
    """The same values, cut off from the graph (JAX's name; ``Tensor.detach`` is PyTorch's)."""
    return x.detach() if isinstance(x, Tensor) else x


__all__ = [
    "astype",
    "broadcast_to",
    "concatenate",
    "expand_dims",
    "getitem",
    "reshape",
    "split",
    "squeeze",
    "stack",
    "stop_gradient",
    "swapaxes",
    "transpose",
]
