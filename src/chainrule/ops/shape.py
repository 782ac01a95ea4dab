"""Shape primitives: reshape, transpose, broadcast, indexing, joining, casting."""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from chainrule.core.errors import ShapeError, user_frame
from chainrule.core.primitive import Primitive
from chainrule.core.tensor import Tensor, contains_tensor
from chainrule.core.tensor import array_of as array_of  # re-exported: ops modules import it from here
from chainrule.ops import facts as fx
from chainrule.ops import vjp_memory as vm


def _reshape(x: Any, shape: tuple[int, ...]) -> Any:
    return np.reshape(x, shape)


_reshape_p = Primitive("reshape", _reshape)
_reshape_p.defvjp(lambda g, out, x, shape: _reshape_p(g, shape=x.shape))
_reshape_p.defjvp(lambda t, out, x, shape: _reshape_p(t, shape=shape))


def reshape(x: Any, shape: Any) -> Any:
    """The same elements in a new shape (one entry may be -1), as NumPy's ``reshape``."""
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
    return x.transpose(axes) if type(x) is np.ndarray else np.transpose(x, axes)  # the method: no wrapper


def _inverse_axes(axes: tuple[int, ...] | None, ndim: int) -> tuple[int, ...] | None:
    if axes is None:
        return None
    return tuple(int(i) for i in np.argsort(axes))


_transpose_p = Primitive("transpose", _transpose)
_transpose_p.defvjp(lambda g, out, x, axes: _transpose_p(g, axes=_inverse_axes(axes, x.ndim)))
_transpose_p.defjvp(lambda t, out, x, axes: _transpose_p(t, axes=axes))


def transpose(x: Any, axes: Any = None) -> Any:
    """Permute the axes (reverse them if ``axes`` is None)."""
    ndim = array_of(x).ndim
    if axes is not None:
        axes = tuple(int(a) % ndim for a in axes)
        if sorted(axes) != list(range(ndim)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of {ndim} dimensions")
    return _transpose_p(x, axes=axes)


def swapaxes(x: Any, axis1: int, axis2: int) -> Any:
    """Interchange two axes."""
    axes = list(range(array_of(x).ndim))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return _transpose_p(x, axes=tuple(axes))


def expand_dims(x: Any, axis: Any) -> Any:
    """Insert new axes of length 1 at ``axis`` (an int or a tuple of positions in the result)."""
    shape = array_of(x).shape
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    ndim = len(shape) + len(axes)
    new = {_check_axis(a, ndim, "expand_dims") for a in axes}
    if len(new) != len(axes):
        raise ValueError(f"expand_dims: repeated axis in {axis}")
    rest = iter(shape)
    return reshape(x, tuple(1 if d in new else next(rest) for d in range(ndim)))


def squeeze(x: Any, axis: Any = None) -> Any:
    """Remove axes of length 1 (all of them, or those in ``axis``, which must have length 1)."""
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


_getitem_p = Primitive("getitem", _getitem)
_scatter_add_p = Primitive("scatter_add", _scatter_add)
_getitem_p.defvjp(lambda g, out, x, index: _scatter_add_p(g, index=index, shape=x.shape))
_scatter_add_p.defvjp(lambda g, out, x, index, shape: _getitem_p(g, index=index))
_getitem_p.defjvp(lambda t, out, x, index: _getitem_p(t, index=index))
_scatter_add_p.defjvp(lambda t, out, x, index, shape: _scatter_add_p(t, index=index, shape=shape))


def _clean_index(index: Any) -> Any:
    if isinstance(index, Tensor):
        return index._data
    if isinstance(index, tuple):
        return tuple(i._data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


def getitem(x: Any, index: Any) -> Any:
    """Basic and integer-array indexing (``t[1:, idx]``); repeated indices add up in backward."""
    return _getitem_p(x, index=_clean_index(index))


def _concatenate(*xs: Any, axis: int, bounds: tuple[int, ...]) -> Any:
    return np.concatenate(xs, axis=axis)


_concatenate_p = Primitive("concatenate", _concatenate)


def _piece(ndim: int, axis: int, lo: int, hi: int) -> tuple[slice, ...]:
    index = [slice(None)] * ndim
    index[axis] = slice(lo, hi)
    return tuple(index)


# ``bounds`` (where each input starts along ``axis``, plus the total) is computed once by
# ``concatenate``, so each input's gradient is one slice of g: linear in the number of inputs.
_concatenate_p.defvjp_argnum(
    lambda i, g, out, *xs, axis, bounds: _getitem_p(g, index=_piece(g.ndim, axis, bounds[i], bounds[i + 1]))
)
_concatenate_p.defjvp_argnum(
    lambda i, t, out, *xs, axis, bounds: _scatter_add_p(
        t, index=_piece(out.ndim, axis, bounds[i], bounds[i + 1]), shape=out.shape
    )
)


# The engine passes every input to a variadic rule once per input (``rule(i, g, out, *xs)``),
# which is quadratic for one primitive over thousands of inputs. Joining at most ``_FAN_IN``
# at a time (a tree of joins) keeps each call small: about n * _FAN_IN * log(n) / log(_FAN_IN).
_FAN_IN = 64


def _chunks(xs: list[Any]) -> list[list[Any]]:
    return [xs[j : j + _FAN_IN] for j in range(0, len(xs), _FAN_IN)]


def concatenate(xs: Any, axis: int | None = 0) -> Any:
    """Join arrays along an existing axis (NumPy's ``concatenate``; ``axis=None`` flattens them first)."""
    xs = list(xs)
    if not xs:
        raise ValueError("concatenate: expected at least one array, got none")
    if axis is None:
        xs, axis = [reshape(x, (array_of(x).size,)) for x in xs], 0
    ndim = array_of(xs[0]).ndim
    if ndim == 0:
        raise ShapeError("concatenate: zero-dimensional arrays cannot be concatenated")
    axis = _check_axis(axis, ndim, "concatenate")
    if len(xs) > _FAN_IN:
        return concatenate([concatenate(part, axis) for part in _chunks(xs)], axis)
    bounds = [0]
    for x in xs:
        bounds.append(bounds[-1] + array_of(x).shape[axis])
    return _concatenate_p(*xs, axis=axis, bounds=tuple(bounds))


def _stack(*xs: Any, axis: int) -> Any:
    return np.stack(xs, axis=axis)


def _at(axis: int, i: int) -> tuple[Any, ...]:
    return (slice(None),) * axis + (i,)


_stack_p = Primitive("stack", _stack)
_stack_p.defvjp_argnum(lambda i, g, out, *xs, axis: _getitem_p(g, index=_at(axis, i)))
_stack_p.defjvp_argnum(lambda i, t, out, *xs, axis: _scatter_add_p(t, index=_at(axis, i), shape=out.shape))


def _check_axis(axis: int, ndim: int, op: str) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for {ndim} dimensions")
    return int(axis) % ndim


def stack(xs: Any, axis: int = 0) -> Any:
    """Join same-shaped arrays along a new axis (NumPy's ``stack``)."""
    xs = list(xs)
    if not xs:
        raise ValueError("stack: expected at least one array, got none")
    shapes = {array_of(x).shape for x in xs}
    if len(shapes) != 1:
        raise ShapeError(f"stack: all inputs must have the same shape, got {sorted(shapes)}")
    axis = _check_axis(axis, array_of(xs[0]).ndim + 1, "stack")
    if len(xs) > _FAN_IN:
        return concatenate([_stack_p(*part, axis=axis) for part in _chunks(xs)], axis)
    return _stack_p(*xs, axis=axis)


def as_operand(x: Any) -> Any:
    """A tensor or None as it is; a (nested) list or tuple holding tensors stacked into one tensor
    (so its gradient flows); anything else a NumPy array."""
    if x is None or isinstance(x, Tensor):
        return x
    if (type(x) is list or type(x) is tuple) and contains_tensor(x):
        return stack([as_operand(e) if type(e) in (list, tuple) else e for e in x])
    return np.asarray(x)


def split(x: Any, indices_or_sections: Any, axis: int = 0) -> list[Any]:
    """Split into equal parts (an int that must divide the length) or at the given indices."""
    n = array_of(x).shape[axis]
    if np.ndim(indices_or_sections) == 0:  # an int, or a 0-d array such as np.array(3)
        indices_or_sections = operator.index(indices_or_sections)
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
        parts.append(_getitem_p(x, index=tuple(index)))
    return parts


def _astype(x: Any, dtype: np.dtype[Any]) -> Any:
    return x.astype(dtype)


_astype_p = Primitive("astype", _astype, casts=True)
_astype_p.defvjp(lambda g, out, x, dtype: _astype_p(g, dtype=x.dtype))
_astype_p.defjvp(lambda t, out, x, dtype: _astype_p(t, dtype=dtype))


def astype(x: Any, dtype: Any) -> Any:
    """Cast to ``dtype``; the gradient is cast back to the input's dtype."""
    dtype = np.dtype(dtype)
    if array_of(x).dtype == dtype:
        return x
    return _astype_p(x, dtype=dtype)


def stop_gradient(x: Any) -> Any:
    """The same values, cut off from the graph (JAX's name; ``Tensor.detach`` is PyTorch's)."""
    return Tensor._make(x._data, None) if isinstance(x, Tensor) else x  # x.detach(), unregistered (no in-place)


# --- facts (chainrule.ops.facts as fx, chainrule.ops.vjp_memory as vm): shape rule, FLOPs of the
# forward and of each input's rule, what the VJP rule allocates (RULE_ITSELF: its own primitives,
# evaluated shape-only, model it) ------------------------------------------------------------
_reshape_p.deffacts(shape=fx.view(_reshape_p), flops=fx.zero, vjp_flops=fx.zero_vjp, memory=vm.reshape)
_transpose_p.deffacts(shape=fx.view(_transpose_p), flops=fx.zero, vjp_flops=fx.zero_vjp, memory=vm.transpose)
_getitem_p.deffacts(shape=fx.getitem_shape, flops=fx.zero, vjp_flops=fx.zero_vjp, memory=vm.getitem)
# scatter_add's rule is one getitem of g: a view or a copy, as getitem's shape rule decides.
_scatter_add_p.deffacts(shape=fx.scatter_add_shape, flops=fx.input_size, vjp_flops=fx.zero_vjp, memory=fx.RULE_ITSELF)
_concatenate_p.deffacts(shape=fx.concatenate_shape, flops=fx.zero, vjp_flops=fx.zero_vjp, memory=vm.concatenate)
_stack_p.deffacts(shape=fx.stack_shape, flops=fx.zero, vjp_flops=fx.zero_vjp, memory=fx.RULE_ITSELF)
_astype_p.deffacts(shape=fx.astype_shape, flops=fx.zero, vjp_flops=fx.zero_vjp, memory=vm.astype)

__all__ = [
    "astype",
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
