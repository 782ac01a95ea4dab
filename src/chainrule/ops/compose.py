"""More of NumPy's vocabulary, as compositions of chainrule's primitives (their derivatives of
every order, in both modes, follow from those): copies, NaN-skipping reductions, grids and
Vandermonde matrices, joining, selection, and the real-dtype forms of the complex functions.

Examples:
    >>> import chainrule as cr
    >>> x = cr.tensor([1.0, float("nan"), 3.0])
    >>> nansum(x), nanmean(x)
    (tensor(4.), tensor(2.))
    >>> [g.shape for g in meshgrid(cr.ones(3), cr.ones(2))]
    [(2, 3), (2, 3)]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.core.errors import DTypeError
from chainrule.core.primitive import Primitive
from chainrule.ops import facts as fx
from chainrule.ops import vjp_memory as vm
from chainrule.ops.elementwise import divide, isnan, power, where
from chainrule.ops.manip import diag
from chainrule.ops.reduce import broadcast_to, normalize_axis
from chainrule.ops.reduce import sum as _sum
from chainrule.ops.shape import array_of, as_operand, astype, concatenate, reshape

positive: Primitive = Primitive("positive", np.positive, doc="+x: a copy, elementwise.")
positive.defvjp(lambda g, out, x: g)
positive.defjvp(lambda t, out, x: t)

_floor_divide_p = Primitive(
    "floor_divide",
    np.floor_divide,
    differentiable=False,
    doc="floor(x / y) as NumPy computes it. Not differentiable (a constant to the engine: its derivative "
    "is 0 off the jumps).",
)


positive.deffacts(shape=fx.broadcast(positive), flops=fx.zero, vjp_flops=fx.zero_vjp, memory=vm.passes_g)
_floor_divide_p.deffacts(shape=fx.broadcast(_floor_divide_p), flops=fx.each(1))


def floor_divide(x1: Any, x2: Any) -> Any:
    """The largest integer <= x1 / x2 (NumPy's ``floor_divide``, ``//``): piecewise constant, so
    a constant to the engine (derivative 0 off the jumps)."""
    return _floor_divide_p(x1, x2)


def copy(a: Any) -> Any:
    """A copy of ``a`` (a new array; the gradient passes through unchanged)."""
    return positive(as_operand(a))


def _real_only(a: Any, op: str) -> Any:
    a = as_operand(a)
    if array_of(a).dtype.kind == "c":
        raise DTypeError(f"{op}: complex arrays are not supported (chainrule differentiates real arrays only)")
    return a


def real(val: Any) -> Any:
    """The real part: ``val`` itself for a real array (complex arrays are refused)."""
    return _real_only(val, "real")


def imag(val: Any) -> Any:
    """The imaginary part: zeros of ``val``'s shape and dtype for a real array (a constant)."""
    data = array_of(_real_only(val, "imag"))
    return np.zeros(data.shape, data.dtype)


def conj(x: Any) -> Any:
    """The complex conjugate: ``x`` itself for a real array (complex arrays are refused)."""
    return _real_only(x, "conj")


conjugate = conj


def float_power(x1: Any, x2: Any) -> Any:
    """x1 ** x2 computed in float64 (NumPy's ``float_power``); the derivatives are ``power``'s, and
    float32 inputs get their gradients back in float32."""
    x1, x2 = as_operand(x1), as_operand(x2)
    return power(astype(x1, np.float64), astype(x2, np.float64))


def heaviside(x1: Any, x2: Any) -> Any:
    """0 where x1 < 0, x2 where x1 == 0, 1 where x1 > 0 (NumPy's ``heaviside``): derivative 0 in
    x1 (off 0), and 1 in x2 where x1 == 0."""
    x1, x2 = as_operand(x1), as_operand(x2)
    dtype = np.result_type(array_of(x1), array_of(x2))
    ones, zeros = np.ones((), dtype), np.zeros((), dtype)
    return where(x1 > 0, ones, where(x1 < 0, zeros, x2))


def nansum(a: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Sum over ``axis`` treating NaNs as zero; NaN entries get gradient 0."""
    a = as_operand(a)
    return _sum(where(isnan(a), np.zeros((), array_of(a).dtype), a), axis=axis, keepdims=keepdims)


def nanmean(a: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Mean over ``axis`` of the non-NaN entries (NaN, with a RuntimeWarning, where there are none)."""
    a = as_operand(a)
    data = array_of(a)
    count = np.sum(~np.isnan(data), axis=normalize_axis(axis, data.ndim, "nanmean", zero_d=True), keepdims=keepdims)
    if np.any(count == 0):
        import warnings

        warnings.warn("nanmean: mean of an all-NaN slice", RuntimeWarning, stacklevel=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return divide(nansum(a, axis=axis, keepdims=keepdims), count.astype(data.dtype))


def meshgrid(*xi: Any, indexing: str = "xy", sparse: bool = False, copy: bool = True) -> list[Any]:
    """Coordinate grids from 1-D coordinate arrays (NumPy's ``meshgrid``: ``indexing`` "xy" or "ij",
    ``sparse``); differentiable in the coordinates."""
    if indexing not in ("xy", "ij"):
        raise ValueError(f"meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    xs = [reshape(as_operand(x), (-1,)) for x in xi]
    n = len(xs)
    shapes = [[1] * n for _ in xs]
    for i, x in enumerate(xs):
        shapes[i][i] = array_of(x).shape[0]
    if indexing == "xy" and n > 1:
        for s in shapes:
            s[0], s[1] = s[1], s[0]
    grids = [reshape(x, tuple(s)) for x, s in zip(xs, shapes, strict=True)]
    if sparse:
        return grids
    full = tuple(np.broadcast_shapes(*(tuple(s) for s in shapes)))
    return [broadcast_to(g, full) for g in grids]


def broadcast_arrays(*args: Any) -> list[Any]:
    """The inputs broadcast to their common shape (NumPy's ``broadcast_arrays``)."""
    ops = [as_operand(a) for a in args]
    shape = tuple(np.broadcast_shapes(*(array_of(a).shape for a in ops)))
    return [broadcast_to(a, shape) for a in ops]


def diagflat(v: Any, k: int = 0) -> Any:
    """A 2-D array with the flattened input on diagonal ``k``."""
    return diag(reshape(as_operand(v), (-1,)), k)


def vander(x: Any, N: int | None = None, increasing: bool = False) -> Any:  # noqa: N803  (NumPy's name)
    """The Vandermonde matrix of the 1-D ``x``: columns x**(N-1), ..., x, 1 (reversed if
    ``increasing``); differentiable in x."""
    x = as_operand(x)
    data = array_of(x)
    if data.ndim != 1:
        raise ValueError(f"vander: x must be a one-dimensional array, got shape {data.shape}")
    n = data.shape[0] if N is None else int(N)
    powers = np.arange(n, dtype=data.dtype if data.dtype.kind == "f" else np.float64)
    if not increasing:
        powers = powers[::-1].copy()
    return power(reshape(x, (-1, 1)), powers)


def append(arr: Any, values: Any, axis: int | None = None) -> Any:
    """``values`` appended to ``arr`` (both flattened if ``axis`` is None), as NumPy's ``append``."""
    arr, values = as_operand(arr), as_operand(values)
    if axis is None:
        return concatenate([reshape(arr, (-1,)), reshape(values, (-1,))], 0)
    return concatenate([arr, values], axis)


def select(condlist: Any, choicelist: Any, default: Any = 0) -> Any:
    """Per element, the choice of the first true condition, else ``default`` (NumPy's ``select``);
    differentiable in the choices and the default."""
    conds, choices = list(condlist), list(choicelist)
    if len(conds) != len(choices):
        raise ValueError(
            f"select: list of cases must be same length as list of conditions ({len(conds)} vs {len(choices)})"
        )
    if not conds:
        raise ValueError("select: select with an empty condition list is not possible")
    choices = [as_operand(c) for c in choices]
    default = as_operand(default)
    dtype = np.result_type(*(array_of(c) for c in choices))
    out = default if array_of(default).ndim or isinstance(default, Primitive) else np.asarray(default, dtype)
    for cond, choice in zip(reversed(conds), reversed(choices), strict=True):
        c = np.asarray(array_of(cond))
        if c.dtype != bool:
            raise TypeError(f"select: invalid entry in condlist: should be boolean ndarray, got dtype {c.dtype}")
        out = where(c, choice, out)
    return out


def empty_like(prototype: Any, dtype: Any = None, shape: Any = None) -> Any:
    """An array like ``prototype`` (its shape and dtype unless given). chainrule fills it with zeros
    (NumPy leaves it uninitialised); a constant."""
    data = array_of(prototype)
    return np.zeros(data.shape if shape is None else shape, data.dtype if dtype is None else dtype)


__all__ = [
    "append",
    "broadcast_arrays",
    "conj",
    "conjugate",
    "copy",
    "diagflat",
    "empty_like",
    "float_power",
    "floor_divide",
    "heaviside",
    "imag",
    "meshgrid",
    "nanmean",
    "nansum",
    "positive",
    "real",
    "select",
    "vander",
]
