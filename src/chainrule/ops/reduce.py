"""Reductions. ``axis`` and ``keepdims`` follow NumPy."""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from chainrule.core.tensor import Primitive
from chainrule.ops.elementwise import exp, log
from chainrule.ops.shape import array_of, broadcast_to, reshape, stop_gradient


def normalize_axis(axis: Any, ndim: int, op: str) -> tuple[int, ...] | None:
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {a} is out of range for an array of {ndim} dimensions")
        out.append(int(a) % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return tuple(out)


def _keep_shape(shape: tuple[int, ...], axis: tuple[int, ...] | None) -> tuple[int, ...]:
    if axis is None:
        return (1,) * len(shape)
    return tuple(1 if i in axis else n for i, n in enumerate(shape))


def _expand(g: Any, shape: tuple[int, ...], axis: tuple[int, ...] | None, keepdims: bool) -> Any:
    """Bring a reduced gradient back to the input's shape."""
    if not keepdims:
        g = reshape(g, _keep_shape(shape, axis))
    return broadcast_to(g, shape)


def _sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return np.sum(x, axis=axis, keepdims=keepdims)


_sum_p = Primitive("sum", _sum)
_sum_p.defvjp(lambda g, out, x, axis=None, keepdims=False: _expand(g, x.shape, axis, keepdims))


def _amax(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return np.max(x, axis=axis, keepdims=keepdims)


def _amin(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return np.min(x, axis=axis, keepdims=keepdims)


def _extremum_vjp(g: Any, out: Any, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    # Ties share the gradient evenly (as PyTorch's amax/amin do).
    hit = (x == _expand(out, x.shape, axis, keepdims)).astype(g.dtype)
    count = _sum_p(hit, axis=axis, keepdims=True)
    return _expand(g, x.shape, axis, keepdims) * (hit / count)


_max_p = Primitive("max", _amax, save=(0,), save_output=True)
_max_p.defvjp(_extremum_vjp)
_min_p = Primitive("min", _amin, save=(0,), save_output=True)
_min_p.defvjp(_extremum_vjp)


def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    return _sum_p(x, axis=normalize_axis(axis, array_of(x).ndim, "sum"), keepdims=keepdims)


def _extremum(prim: Primitive, x: Any, axis: Any, keepdims: bool) -> Any:
    data = array_of(x)
    ax = normalize_axis(axis, data.ndim, prim.name)
    if data.size == 0:
        raise ValueError(f"{prim.name}: expected a non-empty array, got one of size 0")
    return prim(x, axis=ax, keepdims=keepdims)


def max(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    return _extremum(_max_p, x, axis, keepdims)


def min(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    return _extremum(_min_p, x, axis, keepdims)


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    shape = array_of(x).shape
    ax = normalize_axis(axis, len(shape), "mean")
    count = int(np.prod([shape[a] for a in ax] if ax is not None else shape, dtype=np.int64))
    return _sum_p(x, axis=ax, keepdims=keepdims) * (1.0 / builtins.max(count, 1))


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """log(sum(exp(x))) computed stably; the shift by the max carries no gradient (it cancels)."""
    ax = normalize_axis(axis, array_of(x).ndim, "logsumexp")
    shift = stop_gradient(_max_p(x, axis=ax, keepdims=True))
    lse = log(_sum_p(exp(x - shift), axis=ax, keepdims=True)) + shift
    if not keepdims:
        lse = reshape(lse, tuple(n for i, n in enumerate(lse.shape) if ax is not None and i not in ax))
    return lse


__all__ = ["logsumexp", "max", "mean", "min", "sum"]
