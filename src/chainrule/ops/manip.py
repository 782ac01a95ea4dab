"""Array manipulation composed from the shape primitives (no derivative rules of their own).

Everything here is reshape, transpose, broadcast, indexing (``getitem``/``_scatter_add_p``),
joining or ``where``: gradients of every order follow from those primitives. Index
arithmetic is done once on integer NumPy arrays (e.g. ``roll`` is a gather of rolled
positions), never on the data.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from chainrule.core.errors import ShapeError
from chainrule.core.tensor import Tensor
from chainrule.ops.elementwise import add, subtract, where
from chainrule.ops.reduce import broadcast_to, normalize_axis
from chainrule.ops.reduce import sum as _sum
from chainrule.ops.shape import (
    _getitem_p,
    _scatter_add_p,
    array_of,
    concatenate,
    reshape,
    transpose,
)


def _axis(axis: int, ndim: int, op: str) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for an array of {ndim} dimensions")
    return int(axis) % ndim


def _along(axis: int, index: Any) -> tuple[Any, ...]:
    """An index that applies ``index`` to ``axis`` and keeps every other axis whole."""
    return (slice(None),) * axis + (index,)


def ravel(a: Any) -> Any:
    """The elements as a 1-D array, in C order."""
    return reshape(a, (array_of(a).size,))


def take(a: Any, indices: Any, axis: int | None = None) -> Any:
    """Elements at integer ``indices`` along ``axis`` (the flattened array if None); repeats add up in backward."""
    idx = np.asarray(array_of(indices))
    if idx.dtype.kind not in "iu":
        raise TypeError(f"take: indices must be integers, got dtype {idx.dtype}")
    if axis is None:
        return _getitem_p(ravel(a), index=idx)
    ax = _axis(axis, array_of(a).ndim, "take")
    if idx.ndim == 0:
        return _getitem_p(a, index=_along(ax, int(idx)))
    return _getitem_p(a, index=_along(ax, idx))


def take_along_axis(arr: Any, indices: Any, axis: int | None) -> Any:
    """NumPy's ``take_along_axis``: pick ``indices[..., i, ...]`` along ``axis`` for every other position."""
    idx = np.asarray(array_of(indices))
    if axis is None:
        return take(arr, idx.ravel())
    shape = array_of(arr).shape
    ax = _axis(axis, len(shape), "take_along_axis")
    if idx.ndim != len(shape):
        raise ShapeError(f"take_along_axis: indices have {idx.ndim} dimensions, the array has {len(shape)}")
    # The other axes broadcast against each other (NumPy's rule): (5, 5) with (1, 2) indices is (5, 2)
    out = list(idx.shape)
    for d, n in enumerate(shape):
        if d != ax:
            if idx.shape[d] != n and 1 not in (idx.shape[d], n):
                raise ShapeError(
                    f"take_along_axis: indices shape {idx.shape} does not broadcast against array shape {shape} "
                    f"outside axis {ax}"
                )
            out[d] = n if idx.shape[d] == 1 else idx.shape[d]
    grid: list[Any] = []
    for d, n in enumerate(out):
        if d == ax:
            grid.append(np.broadcast_to(idx, tuple(out)))
        else:
            positions = np.arange(n) if shape[d] == n else np.zeros(n, dtype=np.intp)  # a length-1 axis repeats
            grid.append(positions.reshape([n if e == d else 1 for e in range(len(out))]))
    return _getitem_p(arr, index=tuple(grid))


def moveaxis(a: Any, source: Any, destination: Any) -> Any:
    """Move axes to new positions, keeping the order of the others (NumPy's ``moveaxis``)."""
    ndim = array_of(a).ndim
    src = [_axis(s, ndim, "moveaxis") for s in np.atleast_1d(source)]
    dst = [_axis(d, ndim, "moveaxis") for d in np.atleast_1d(destination)]
    if len(src) != len(dst):
        raise ValueError("moveaxis: source and destination must have the same number of elements")
    order = [n for n in range(ndim) if n not in src]
    for d, s in sorted(zip(dst, src, strict=True)):
        order.insert(d, s)
    return transpose(a, tuple(order))


def rollaxis(a: Any, axis: int, start: int = 0) -> Any:
    """Roll ``axis`` backwards until it lies before position ``start`` (NumPy's ``rollaxis``)."""
    ndim = array_of(a).ndim
    axis = _axis(axis, ndim, "rollaxis")
    if not -ndim <= start <= ndim:
        raise ValueError(f"rollaxis: start {start} is out of range for {ndim} dimensions")
    start = start % (ndim + 1) if start < 0 else start
    if axis < start:
        start -= 1
    return moveaxis(a, axis, start)


def flip(m: Any, axis: Any = None) -> Any:
    """Reverse the order of elements along ``axis`` (all axes if None)."""
    ndim = array_of(m).ndim
    axes = range(ndim) if axis is None else normalize_axis(axis, ndim, "flip") or ()
    index = [slice(None)] * ndim
    for ax in axes:
        index[ax] = slice(None, None, -1)
    return _getitem_p(m, index=tuple(index))


def fliplr(m: Any) -> Any:
    """Reverse the order of columns (axis 1)."""
    if array_of(m).ndim < 2:
        raise ValueError("fliplr: input must be at least 2-D")
    return flip(m, 1)


def flipud(m: Any) -> Any:
    """Reverse the order of rows (axis 0)."""
    if array_of(m).ndim < 1:
        raise ValueError("flipud: input must be at least 1-D")
    return flip(m, 0)


def rot90(m: Any, k: int = 1, axes: tuple[int, int] = (0, 1)) -> Any:
    """Rotate by 90 degrees ``k`` times in the plane of ``axes`` (from the first axis towards the second)."""
    ndim = array_of(m).ndim
    a0, a1 = (_axis(a, ndim, "rot90") for a in axes)
    if a0 == a1:
        raise ValueError("rot90: axes must be different")
    k %= 4
    if k == 0:
        return m
    if k == 2:
        return flip(flip(m, a0), a1)
    perm = list(range(ndim))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    if k == 1:
        return transpose(flip(m, a1), tuple(perm))
    return flip(transpose(m, tuple(perm)), a1)


def roll(a: Any, shift: Any, axis: Any = None) -> Any:
    """Shift elements cyclically along ``axis`` (the flattened array if None, then reshaped back)."""
    shape = array_of(a).shape
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), shape)
    shifts, axes = np.broadcast_arrays(np.atleast_1d(shift), np.atleast_1d(axis))
    total: dict[int, int] = {}
    for s, ax in zip(shifts.tolist(), axes.tolist(), strict=True):
        ax = _axis(ax, len(shape), "roll")
        total[ax] = total.get(ax, 0) + s
    for ax, s in total.items():
        if shape[ax] and s % shape[ax]:
            a = _getitem_p(a, index=_along(ax, (np.arange(shape[ax]) - s) % shape[ax]))
    return a


def repeat(a: Any, repeats: Any, axis: int | None = None) -> Any:
    """Repeat each element ``repeats`` times (an int or one count per element) along ``axis``."""
    if axis is None:
        a, axis = ravel(a), 0
    n = array_of(a).shape[_axis(axis, array_of(a).ndim, "repeat")]
    return take(a, np.repeat(np.arange(n), repeats), axis)


def tile(A: Any, reps: Any) -> Any:
    """Repeat the whole array ``reps`` times along each axis (NumPy's ``tile``): a broadcast and a reshape."""
    reps = (int(reps),) if isinstance(reps, int | np.integer) else tuple(int(r) for r in reps)
    shape = array_of(A).shape
    d = max(len(shape), len(reps))
    shape = (1,) * (d - len(shape)) + shape
    reps = (1,) * (d - len(reps)) + reps
    interleaved = tuple(n for pair in zip((1,) * d, shape, strict=True) for n in pair)
    expanded = tuple(n for pair in zip(reps, shape, strict=True) for n in pair)
    out = broadcast_to(reshape(A, interleaved), expanded)
    return reshape(out, tuple(r * n for r, n in zip(reps, shape, strict=True)))


def _pad_widths(pad_width: Any, ndim: int) -> list[tuple[int, int]]:
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (ndim, 2))
    if (widths < 0).any():
        raise ValueError(f"pad: pad widths must be non-negative, got {pad_width}")
    return [(int(lo), int(hi)) for lo, hi in widths]


def pad(array: Any, pad_width: Any, mode: str = "constant", constant_values: Any = 0) -> Any:
    """Pad an array (NumPy's ``pad``). ``constant`` mode places the input inside a constant frame;
    other NumPy modes (``edge``, ``reflect``, ``symmetric``, ``wrap``) gather input positions."""
    shape = array_of(array).shape
    widths = _pad_widths(pad_width, len(shape))
    if mode == "constant":
        inner = tuple(slice(lo, lo + n) for (lo, _), n in zip(widths, shape, strict=True))
        padded = tuple(n + lo + hi for (lo, hi), n in zip(widths, shape, strict=True))
        out = _scatter_add_p(array, index=inner, shape=padded)
        if np.any(np.asarray(constant_values) != 0):
            frame = np.pad(np.zeros(shape, dtype=array_of(array).dtype), widths, constant_values=constant_values)
            out = add(out, frame)
        return out
    if mode not in ("edge", "reflect", "symmetric", "wrap"):
        raise ValueError(f"pad: unsupported mode {mode!r} (constant, edge, reflect, symmetric, wrap)")
    for ax, (lo, hi) in enumerate(widths):
        if lo or hi:
            positions = np.pad(np.arange(shape[ax]), (lo, hi), mode=mode)  # type: ignore[call-overload]
            array = _getitem_p(array, index=_along(ax, positions))
    return array


def index_update(x: Any, index: Any, value: Any) -> Any:
    """``x`` with ``x[index]`` replaced by ``value`` (broadcast to the indexed shape), as a new
    array: what ``t[index] = value`` records on a tensor in a graph. Differentiable in both: the
    gradient reaches ``x`` off the index and ``value`` on it. Repeated array indices are refused
    (NumPy keeps the last write; which element's gradient that is would be a guess)."""
    index = _clean(index)
    data = array_of(x)
    positions = np.arange(data.size).reshape(data.shape)[index]
    if _has_array(index) and np.unique(positions).size != positions.size:
        raise ValueError("index_update: repeated indices (t[idx] = v with idx naming an element twice)")
    mask = np.zeros(data.shape, dtype=bool)
    mask[index] = True
    placed = _scatter_add_p(broadcast_to(value, positions.shape), index=index, shape=data.shape)
    return where(mask, placed, x)


def _clean(index: Any) -> Any:
    items = index if isinstance(index, tuple) else (index,)
    cleaned = tuple(np.asarray(array_of(i)) if isinstance(i, Tensor | np.ndarray | list) else i for i in items)
    return cleaned if isinstance(index, tuple) else cleaned[0]


def _has_array(index: Any) -> bool:
    return any(isinstance(i, np.ndarray) for i in (index if isinstance(index, tuple) else (index,)))


def diff(a: Any, n: int = 1, axis: int = -1, prepend: Any = None, append: Any = None) -> Any:
    """The ``n``-th discrete difference along ``axis`` (NumPy's ``diff``)."""
    ndim = array_of(a).ndim
    if ndim == 0:
        raise ValueError("diff: requires input that is at least one dimensional")
    axis = _axis(axis, ndim, "diff")
    if n < 0:
        raise ValueError(f"diff: order must be non-negative but got {n}")
    if n == 0:  # NumPy: the input itself, without prepend/append
        return a
    parts = []
    for extra in (prepend, a, append):
        if extra is None:
            continue
        if extra is not a and array_of(extra).ndim == 0:
            shape = list(array_of(a).shape)
            shape[axis] = 1
            extra = broadcast_to(extra, tuple(shape))
        parts.append(extra)
    if len(parts) > 1:
        a = concatenate(parts, axis)
    for _ in range(n):
        a = subtract(
            _getitem_p(a, index=_along(axis, slice(1, None))), _getitem_p(a, index=_along(axis, slice(None, -1)))
        )
    return a


def diagonal(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    """The diagonal in the plane of ``axis1``/``axis2``, as a new last axis (NumPy's ``diagonal``)."""
    shape = array_of(a).shape
    if len(shape) < 2:
        raise ValueError("diagonal: array must have at least 2 dimensions")
    a1, a2 = _axis(axis1, len(shape), "diagonal"), _axis(axis2, len(shape), "diagonal")
    if a1 == a2:
        raise ValueError("diagonal: axis1 and axis2 cannot be the same")
    rows = np.arange(max(0, -offset), shape[a1])
    cols = rows + offset
    keep = cols < shape[a2]
    rows, cols = rows[keep], cols[keep]
    return _getitem_p(moveaxis(a, (a1, a2), (-2, -1)), index=(Ellipsis, rows, cols))


def trace(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    """Sum along a diagonal (NumPy's ``trace``)."""
    return _sum(diagonal(a, offset, axis1, axis2), axis=-1)


def diag(v: Any, k: int = 0) -> Any:
    """A 1-D input becomes a 2-D array with it on diagonal ``k``; a 2-D input gives its ``k``-th diagonal."""
    shape = array_of(v).shape
    if len(shape) == 2:
        return diagonal(v, k)
    if len(shape) != 1:
        raise ValueError(f"diag: input must be 1-D or 2-D, got {len(shape)} dimensions")
    n = shape[0] + abs(k)
    rows = np.arange(shape[0]) + max(0, -k)
    return _scatter_add_p(v, index=(rows, rows + k), shape=(n, n))


def _triangle(m: Any, k: int, lower: bool, op: str) -> Any:
    shape = array_of(m).shape
    if len(shape) < 2:
        raise ValueError(f"{op}: input must be at least 2-D")
    ones = np.ones(shape[-2:], dtype=bool)
    keep = np.tril(ones, k) if lower else np.triu(ones, k)
    return where(keep, m, 0.0)


def tril(m: Any, k: int = 0) -> Any:
    """Zero the elements above diagonal ``k`` (of the last two axes)."""
    return _triangle(m, k, True, "tril")


def triu(m: Any, k: int = 0) -> Any:
    """Zero the elements below diagonal ``k`` (of the last two axes)."""
    return _triangle(m, k, False, "triu")


def atleast_1d(*arys: Any) -> Any:
    """Each input with at least one dimension (a single input is returned alone, as in NumPy)."""
    out = [reshape(a, (1,)) if array_of(a).ndim == 0 else a for a in arys]
    return out[0] if len(out) == 1 else out


def atleast_2d(*arys: Any) -> Any:
    """Each input with at least two dimensions: 0-d and 1-D inputs become rows."""
    out = [reshape(a, (1, -1) if array_of(a).size else (1, 0)) if array_of(a).ndim < 2 else a for a in arys]
    return out[0] if len(out) == 1 else out


def atleast_3d(*arys: Any) -> Any:
    """Each input with at least three dimensions: (N,) becomes (1, N, 1), (M, N) becomes (M, N, 1)."""
    out = []
    for a in arys:
        shape = array_of(a).shape
        if len(shape) == 0:
            a = reshape(a, (1, 1, 1))
        elif len(shape) == 1:
            a = reshape(a, (1, shape[0], 1))
        elif len(shape) == 2:
            a = reshape(a, (*shape, 1))
        out.append(a)
    return out[0] if len(out) == 1 else out


def _listed(arrays: Any, promote: Any) -> list[Any]:
    arrays = list(arrays)
    if not arrays:
        raise ValueError("need at least one array to stack")
    promoted = promote(*arrays)
    return [promoted] if len(arrays) == 1 else promoted


def vstack(tup: Any) -> Any:
    """Stack arrays row-wise (1-D inputs become rows)."""
    return concatenate(_listed(tup, atleast_2d), 0)


def hstack(tup: Any) -> Any:
    """Stack arrays column-wise (along axis 1, or axis 0 for 1-D inputs)."""
    arrays = _listed(tup, atleast_1d)
    return concatenate(arrays, 0 if array_of(arrays[0]).ndim == 1 else 1)


def dstack(tup: Any) -> Any:
    """Stack arrays along the third axis."""
    return concatenate(_listed(tup, atleast_3d), 2)


def column_stack(tup: Any) -> Any:
    """Stack 1-D arrays as columns of a 2-D array (2-D inputs are joined as they are)."""
    arrays = [reshape(a, (-1, 1)) if array_of(a).ndim < 2 else a for a in tup]
    if not arrays:
        raise ValueError("column_stack: need at least one array")
    return concatenate(arrays, 1)


def array_split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list[Any]:
    """Split into parts along ``axis``; an int count need not divide the length (NumPy's ``array_split``)."""
    ndim = array_of(ary).ndim
    axis = _axis(axis, ndim, "array_split")
    n = array_of(ary).shape[axis]
    if np.ndim(indices_or_sections) == 0:  # an int, or a 0-d array such as np.array(3)
        sections = operator.index(indices_or_sections)
        if sections <= 0:
            raise ValueError("array_split: number of sections must be larger than 0")
        size, extra = divmod(n, sections)
        bounds = np.cumsum([0] + extra * [size + 1] + (sections - extra) * [size]).tolist()
    else:
        bounds = [0, *(int(i) for i in indices_or_sections), n]
    return [_getitem_p(ary, index=_along(axis, slice(lo, hi))) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def _split_even(ary: Any, indices_or_sections: Any, axis: int, op: str) -> list[Any]:
    n = array_of(ary).shape[axis]
    if np.ndim(indices_or_sections) == 0 and n % operator.index(indices_or_sections):
        raise ShapeError(f"{op}: axis {axis} of length {n} does not divide into {indices_or_sections} equal parts")
    return array_split(ary, indices_or_sections, axis)


def hsplit(ary: Any, indices_or_sections: Any) -> list[Any]:
    """Split column-wise (axis 1, or axis 0 for 1-D input) into equal parts or at indices."""
    ndim = array_of(ary).ndim
    if ndim == 0:
        raise ValueError("hsplit: only works on arrays of 1 or more dimensions")
    return _split_even(ary, indices_or_sections, 1 if ndim > 1 else 0, "hsplit")


def vsplit(ary: Any, indices_or_sections: Any) -> list[Any]:
    """Split row-wise (axis 0) into equal parts or at indices."""
    if array_of(ary).ndim < 2:
        raise ValueError("vsplit: only works on arrays of 2 or more dimensions")
    return _split_even(ary, indices_or_sections, 0, "vsplit")


def dsplit(ary: Any, indices_or_sections: Any) -> list[Any]:
    """Split along the third axis into equal parts or at indices."""
    if array_of(ary).ndim < 3:
        raise ValueError("dsplit: only works on arrays of 3 or more dimensions")
    return _split_even(ary, indices_or_sections, 2, "dsplit")


__all__ = [
    "index_update",
    "array_split",
    "atleast_1d",
    "atleast_2d",
    "atleast_3d",
    "column_stack",
    "diag",
    "diagonal",
    "diff",
    "dsplit",
    "dstack",
    "flip",
    "fliplr",
    "flipud",
    "hsplit",
    "hstack",
    "moveaxis",
    "pad",
    "ravel",
    "repeat",
    "roll",
    "rollaxis",
    "rot90",
    "take",
    "take_along_axis",
    "tile",
    "trace",
    "tril",
    "triu",
    "vsplit",
    "vstack",
]
