"""NumPy's logical, index-finding and testing functions: not differentiable (their results are
integers or booleans, constants to the engine), but each runs as a primitive, so on tensors it
gives a tensor and a compiled step re-runs it on each new batch.

Examples:
    >>> import chainrule as cr
    >>> x = cr.tensor([[1.0, 5.0], [7.0, 2.0]])
    >>> argmax(x, axis=1)
    tensor([1, 0], dtype=int64)
    >>> bool(allclose(x, x + 1e-9)), int(count_nonzero(x > 1.5))
    (True, 3)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.core.primitive import Primitive
from chainrule.ops import facts as fx
from chainrule.ops.reduce import normalize_axis
from chainrule.ops.shape import array_of


def _nondiff(name: str, fn: Any, doc: str) -> Primitive:
    return Primitive(name, fn, differentiable=False, doc=doc + " Not differentiable (a constant to the engine).")


def _argmax(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return np.argmax(x, axis=axis, keepdims=keepdims)


def _argmin(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return np.argmin(x, axis=axis, keepdims=keepdims)


def _all(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return np.all(x, axis=axis, keepdims=keepdims)


def _any(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return np.any(x, axis=axis, keepdims=keepdims)


def _count_nonzero(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return np.asarray(np.count_nonzero(x, axis=axis, keepdims=keepdims))


def _isclose(a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Any:
    return np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)


def _searchsorted(a: Any, v: Any, side: Any = "left", sorter: Any = None) -> Any:
    return np.asarray(np.searchsorted(a, v, side=side, sorter=sorter))


_argmax_p = _nondiff("argmax", _argmax, "Index of the largest element along ``axis``.")
_argmin_p = _nondiff("argmin", _argmin, "Index of the smallest element along ``axis``.")
_all_p = _nondiff("all", _all, "Whether every element along ``axis`` is true.")
_any_p = _nondiff("any", _any, "Whether any element along ``axis`` is true.")
_count_nonzero_p = _nondiff("count_nonzero", _count_nonzero, "How many elements along ``axis`` are nonzero.")
_isclose_p = _nondiff("isclose", _isclose, "|a - b| <= atol + rtol |b|, elementwise.")
_searchsorted_p = _nondiff("searchsorted", _searchsorted, "Insertion indices of ``v`` in the sorted ``a``.")
logical_and: Primitive = _nondiff("logical_and", np.logical_and, "x AND y, elementwise (bool).")
logical_or: Primitive = _nondiff("logical_or", np.logical_or, "x OR y, elementwise (bool).")
logical_xor: Primitive = _nondiff("logical_xor", np.logical_xor, "x XOR y, elementwise (bool).")
logical_not: Primitive = _nondiff("logical_not", np.logical_not, "NOT x, elementwise (bool).")
signbit: Primitive = _nondiff("signbit", np.signbit, "Whether the sign bit is set (true for -0.0), elementwise.")
isposinf: Primitive = _nondiff("isposinf", np.isposinf, "Whether each element is +inf (bool).")
isneginf: Primitive = _nondiff("isneginf", np.isneginf, "Whether each element is -inf (bool).")
isreal: Primitive = _nondiff("isreal", np.isreal, "Whether each element has no imaginary part (bool).")
argwhere: Primitive = _nondiff("argwhere", np.argwhere, "Indices of the nonzero elements, one row each.")


# --- facts (chainrule.ops.facts) -------------------------------------------------------------
def _probed(prim: Primitive) -> Any:
    """Shape rule: the impl run on a zero-stride stand-in of each input (no memory; exact shape and dtype)."""

    def rule(mem: Any, *args: Any, **params: Any) -> Any:
        stand_ins = [np.broadcast_to(np.zeros((), a.dtype), a.shape) if hasattr(a, "shape") else a for a in args]
        out = np.asarray(prim.impl(*stand_ins, **params))
        return mem.new(out.shape, out.dtype)

    return rule


def _data_dependent(mem: Any, *args: Any, **params: Any) -> Any:
    from chainrule.core.errors import ShapeError

    raise ShapeError("argwhere: its output's shape depends on the values; shape-only evaluation cannot give it")


for _p in (_argmax_p, _argmin_p, _all_p, _any_p, _count_nonzero_p, _searchsorted_p):
    _p.deffacts(shape=_probed(_p), flops=fx.input_size)
for _p in (logical_and, logical_or, logical_xor, logical_not, signbit, isposinf, isneginf, isreal, _isclose_p):
    _p.deffacts(shape=fx.broadcast(_p), flops=fx.each(1))
argwhere.deffacts(shape=_data_dependent, flops=fx.input_size)
del _p


def _reduction_axis(x: Any, axis: Any, op: str) -> Any:
    return normalize_axis(axis, array_of(x).ndim, op, zero_d=True)


def argmax(a: Any, axis: int | None = None, keepdims: bool = False) -> Any:
    """Index of the largest element (of the flattened array if ``axis`` is None), an integer tensor
    for a tensor input. Not differentiable."""
    return _argmax_p(a, axis=None if axis is None else _single_axis(a, axis, "argmax"), keepdims=keepdims)


def argmin(a: Any, axis: int | None = None, keepdims: bool = False) -> Any:
    """Index of the smallest element (of the flattened array if ``axis`` is None), an integer tensor
    for a tensor input. Not differentiable."""
    return _argmin_p(a, axis=None if axis is None else _single_axis(a, axis, "argmin"), keepdims=keepdims)


def _single_axis(a: Any, axis: Any, op: str) -> int:
    if not isinstance(axis, int | np.integer):
        raise TypeError(f"{op}: expected an int axis or None, got {axis!r}")
    ndim = array_of(a).ndim
    if ndim == 0 and axis in (0, -1):  # NumPy: a 0-d array's axis 0 is its only element
        return 0
    ax = normalize_axis(axis, ndim, op)
    assert ax is not None
    return ax[0]


def all(a: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001  (NumPy's name)
    """Whether every element (along ``axis``) is true; a bool tensor for a tensor input."""
    return _all_p(a, axis=_reduction_axis(a, axis, "all"), keepdims=keepdims)


def any(a: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001  (NumPy's name)
    """Whether any element (along ``axis``) is true; a bool tensor for a tensor input."""
    return _any_p(a, axis=_reduction_axis(a, axis, "any"), keepdims=keepdims)


def count_nonzero(a: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """How many elements (along ``axis``) are nonzero; an integer tensor for a tensor input."""
    return _count_nonzero_p(a, axis=_reduction_axis(a, axis, "count_nonzero"), keepdims=keepdims)


def isclose(a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Any:
    """``|a - b| <= atol + rtol * |b|`` elementwise (NumPy's ``isclose``); a bool tensor."""
    return _isclose_p(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)


def allclose(a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
    """Whether :func:`isclose` holds everywhere: a Python bool, as in NumPy."""
    return bool(np.all(np.isclose(array_of(a), array_of(b), rtol=rtol, atol=atol, equal_nan=equal_nan)))


def searchsorted(a: Any, v: Any, side: str = "left", sorter: Any = None) -> Any:
    """Indices where the elements of ``v`` would be inserted into the sorted 1-D ``a`` (NumPy's
    ``searchsorted``; ``side`` "left" or "right"). Not differentiable."""
    if side not in ("left", "right"):
        raise ValueError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
    if array_of(a).ndim != 1:
        raise ValueError(f"searchsorted: expected a 1-D sorted array, got shape {array_of(a).shape}")
    return _searchsorted_p(a, v, side=side, sorter=None if sorter is None else np.asarray(array_of(sorter)))


__all__ = [
    "all",
    "allclose",
    "any",
    "argmax",
    "argmin",
    "argwhere",
    "count_nonzero",
    "isclose",
    "isneginf",
    "isposinf",
    "isreal",
    "logical_and",
    "logical_not",
    "logical_or",
    "logical_xor",
    "searchsorted",
    "signbit",
]
