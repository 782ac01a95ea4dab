"""Reductions, scans, statistics and sorting. ``axis``, ``keepdims`` and ``ddof`` follow NumPy."""

from __future__ import annotations

import builtins
import math
import warnings
from typing import Any

import numpy as np

from chainrule.core.errors import ShapeError
from chainrule.core.primitive import Primitive
from chainrule.core.state import THREAD
from chainrule.core.tensor import Tensor
from chainrule.ops import facts as fx
from chainrule.ops import vjp_memory as vm
from chainrule.ops.elementwise import exp, log, sqrt, where
from chainrule.ops.shape import (
    array_of,
    as_operand,
    astype,
    concatenate,
    getitem,
    reshape,
    stop_gradient,
    transpose,
)


def normalize_axis(axis: Any, ndim: int, op: str, zero_d: bool = False) -> tuple[int, ...] | None:
    """``axis`` (None, an int or a sequence) as a tuple of non-negative axes, checked against ``ndim``.

    ``zero_d``: a 0-d array's axis 0 or -1 means no axis (as NumPy's ufunc reductions ``sum``,
    ``prod``, ``max``, ``min`` and PyTorch's reductions, ``mean``/``var``/``std`` included, take it):
    the empty tuple.
    """
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    if zero_d and ndim == 0 and all(a in (0, -1) for a in axes) and len(axes) == 1:
        return ()
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
    if isinstance(g, np.ndarray | np.generic) and THREAD.state.top is None:  # first order, nothing watching
        g = g if keepdims else np.reshape(g, _keep_shape(shape, axis))
        return g if g.shape == shape else np.broadcast_to(g, shape)
    if not keepdims:
        g = reshape(g, _keep_shape(shape, axis))
    return broadcast_to(g, shape)


def _count(shape: tuple[int, ...], axis: tuple[int, ...] | None) -> int:
    """How many elements each reduced slice holds."""
    return int(np.prod([shape[a] for a in axis] if axis is not None else shape, dtype=np.int64))


def _check(x: Any, bad: Any, error: type[Exception], message: str) -> Any:
    if np.any(bad(np.asarray(x))):
        raise error(message)
    return x


# The identity, raising ``error(message)`` where ``bad(x)`` holds anywhere. A primitive, so the
# check also runs when a compiled step replays; gradients and tangents pass through unchanged.
_check_p = Primitive("check", _check)
_check_p.defvjp(lambda g, out, x, **_: g)
_check_p.defjvp(lambda t, out, x, **_: t)


def _sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return np.sum(x, axis=axis, keepdims=keepdims)


_sum_p = Primitive("sum", _sum)
_sum_p.defvjp(lambda g, out, x, axis=None, keepdims=False: _expand(g, x.shape, axis, keepdims))
_sum_p.defjvp(lambda t, out, x, axis=None, keepdims=False: _sum_p(t, axis=axis, keepdims=keepdims))


def _amax(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return np.max(x, axis=axis, keepdims=keepdims)


def _amin(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return np.min(x, axis=axis, keepdims=keepdims)


def _extremum_share(out: Any, x: Any, axis: Any, keepdims: bool, like: Any) -> Any:
    """Each element's share of the extremum: ties share it evenly (as PyTorch's amax/amin do)."""
    hit = (x == _expand(out, x.shape, axis, keepdims)).astype(like.dtype)
    return hit / _sum_p(hit, axis=axis, keepdims=True)


_max_p = Primitive("max", _amax, save=(0,), save_output=True)
_min_p = Primitive("min", _amin, save=(0,), save_output=True)
for _p in (_max_p, _min_p):
    _p.defvjp(
        lambda g, out, x, axis=None, keepdims=False: (
            _expand(g, x.shape, axis, keepdims) * _extremum_share(out, x, axis, keepdims, g)
        )
    )
    _p.defjvp(
        lambda t, out, x, axis=None, keepdims=False: _sum_p(
            t * _extremum_share(out, x, axis, keepdims, t), axis=axis, keepdims=keepdims
        )
    )


def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Sum over ``axis`` (an int, a tuple, or None for all axes)."""
    return _sum_p(x, axis=normalize_axis(axis, array_of(x).ndim, "sum", zero_d=True), keepdims=keepdims)


def _extremum(prim: Primitive, x: Any, axis: Any, keepdims: bool) -> Any:
    data = array_of(x)
    ax = normalize_axis(axis, data.ndim, prim.name, zero_d=True)
    if data.size == 0 and (ax is None or any(data.shape[a] == 0 for a in ax)):  # an empty slice has no extremum
        reduced = "the whole array" if ax is None else f"axis {axis}"
        raise ValueError(
            f"{prim.name}: expected a non-empty slice to reduce, but {reduced} of shape {data.shape} is empty"
        )
    return prim(x, axis=ax, keepdims=keepdims)


def max(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Largest element over ``axis``; tied maxima share the gradient evenly."""
    return _extremum(_max_p, x, axis, keepdims)


def min(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Smallest element over ``axis``; tied minima share the gradient evenly."""
    return _extremum(_min_p, x, axis, keepdims)


amax = max
amin = min


def ptp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Range (max - min) over ``axis``."""
    return max(x, axis, keepdims) - min(x, axis, keepdims)


# --- product ------------------------------------------------------------------------


def _prod(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return np.prod(x, axis=axis, keepdims=keepdims)


def _prod_others(x: Any, axis: tuple[int, ...] | None) -> Any:
    """For each element, the product of the other elements of its slice (shaped like x).

    On arrays (a first-order backward) in a few NumPy passes, exact with zeros and without
    dividing by them: with ``rest`` the product of a slice's nonzero entries, a nonzero x_i gets
    (rest / x_i) * (product of the zeros), a zero gets ``rest`` if it is the slice's only zero,
    else 0. On tensors (the backward is being recorded, for higher orders) as prefix times suffix
    products built from multiplications only, so every higher derivative is exact too.
    """
    if isinstance(x, Tensor):
        return _prod_others_by_scans(x, axis)
    zero = x == 0
    n_zero = _sum_p(zero, axis=axis, keepdims=True)
    rest = _prod_p(where(zero, 1, x), axis=axis, keepdims=True)
    zeros_product = _prod_p(where(zero, x, 1), axis=axis, keepdims=True)  # 0 if the slice has a zero
    at_nonzero = rest / where(zero, 1, x) * zeros_product
    return where(zero, where(n_zero == 1, rest, 0), at_nonzero)


# --- division-free scans, for the derivatives of prod and cumprod ---------------------
# Built from multiplications and additions only: their own derivatives of every order are
# exact, with zeros anywhere.


def _shift(a: Any, k: int, axis: int, fill: float) -> Any:
    """``a`` moved k places along ``axis``: k ``fill`` values in front, the last k entries dropped."""
    pad_shape = list(a.shape)
    n = pad_shape[axis]
    k = pad_shape[axis] = builtins.min(k, n)
    index = [slice(None)] * len(pad_shape)
    index[axis] = slice(0, n - k)
    return concatenate([np.full(pad_shape, fill, dtype=a.dtype), getitem(a, tuple(index))], axis=axis)


def _flip(a: Any, axis: int) -> Any:
    index = [slice(None)] * a.ndim
    index[axis] = slice(None, None, -1)
    return getitem(a, tuple(index))


def _exclusive_cumprod(v: Any, axis: int) -> Any:
    """Product of the entries before each one along ``axis`` (1 for the first): a Hillis-Steele
    scan, log2(n) rounds of shifted multiplications."""
    p, k = _shift(v, 1, axis, 1.0), 1
    while k < v.shape[axis]:
        p, k = p * _shift(p, k, axis, 1.0), 2 * k
    return p


def _affine_scan(d: Any, h: Any, axis: int) -> Any:
    """r with r[m] = d[m] * r[m-1] + h[m] along ``axis`` (r[-1] = 0), in log2(n) rounds."""
    k = 1
    while k < h.shape[axis]:
        h, d, k = h + d * _shift(h, k, axis, 0.0), d * _shift(d, k, axis, 1.0), 2 * k
    return h


def _prod_others_by_scans(x: Any, axis: tuple[int, ...] | None) -> Any:
    shape = x.shape
    reduced = tuple(range(len(shape))) if axis is None else axis
    kept = tuple(i for i in range(len(shape)) if i not in reduced)
    order = kept + reduced  # reduced axes last, then flattened into one
    moved = transpose(x, order)
    n = _count(shape, reduced)
    if n <= 1:
        return np.ones(shape, dtype=x.dtype)  # nothing else in the slice: an empty product
    flat = reshape(moved, (*moved.shape[: len(kept)], n))
    last = flat.ndim - 1
    before = _exclusive_cumprod(flat, last)
    after = _flip(_exclusive_cumprod(_flip(flat, last), last), last)
    others = reshape(before * after, moved.shape)
    return transpose(others, tuple(int(i) for i in np.argsort(order)))


_prod_p = Primitive("prod", _prod, save=(0,))
_prod_p.defvjp(lambda g, out, x, axis=None, keepdims=False: _expand(g, x.shape, axis, keepdims) * _prod_others(x, axis))
_prod_p.defjvp(
    lambda t, out, x, axis=None, keepdims=False: _sum_p(t * _prod_others(x, axis), axis=axis, keepdims=keepdims)
)


def _in_dtype(x: Any, dtype: Any) -> Any:
    """``x`` cast to NumPy's accumulator ``dtype=`` (None: as it is); the gradient is cast back."""
    if dtype is None or np.dtype(dtype) == array_of(x).dtype:
        return x
    return astype(x, dtype)


def prod(x: Any, axis: Any = None, keepdims: bool = False, dtype: Any = None) -> Any:
    """Product over ``axis``, computed in ``dtype`` if given. Its derivatives of every order are
    exact with zeros in the input (nothing is divided by them)."""
    x = _in_dtype(x, dtype)
    return _prod_p(x, axis=normalize_axis(axis, array_of(x).ndim, "prod", zero_d=True), keepdims=keepdims)


# --- statistics ---------------------------------------------------------------------


# --- broadcasting and its transpose, sum_to: the one place a broadcast gradient is summed back ---
# The engine calls ``sum_to`` after every VJP rule whose result has a broadcast shape
# (``core.backward``); ``broadcast_to``'s VJP rule is ``sum_to`` and ``sum``'s is ``broadcast_to``.


def sum_to(x: Any, shape: tuple[int, ...]) -> Any:
    """Sum a broadcast gradient back to ``shape``: the one place broadcasting is undone."""
    if x.shape == shape:
        return x
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and x.shape[i + lead] != 1)
    if type(x) is np.ndarray and THREAD.state.top is None:  # what the primitives below do, minus their dispatch
        x = np.sum(x, axis=axes, keepdims=True) if axes else x
        return x if x.shape == shape else x.reshape(shape)
    if axes:
        x = sum(x, axis=axes, keepdims=True)
    if x.shape != shape:
        x = reshape(x, shape)
    return x


def _broadcast_to(x: Any, shape: tuple[int, ...]) -> Any:
    return np.broadcast_to(x, shape)


_broadcast_p = Primitive("broadcast_to", _broadcast_to)


_broadcast_p.defvjp(lambda g, out, x, shape: sum_to(g, x.shape))
_broadcast_p.defjvp(lambda t, out, x, shape: _broadcast_p(t, shape=shape))


def broadcast_to(x: Any, shape: Any) -> Any:
    """Broadcast to ``shape``; the gradient is summed back over the broadcast axes."""
    shape = tuple(int(n) for n in shape)
    if array_of(x).shape == shape:
        return x
    return _broadcast_p(x, shape=shape)


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Arithmetic mean over ``axis``. An empty slice gives NaN with a RuntimeWarning, as in NumPy."""
    shape = array_of(x).shape
    ax = normalize_axis(axis, len(shape), "mean", zero_d=True)
    count = _count(shape, ax)
    total = _sum_p(x, axis=ax, keepdims=keepdims)
    if count == 0:
        warnings.warn("mean: mean of an empty slice", RuntimeWarning, stacklevel=2)
        return total * math.nan
    return total / float(count)


def var(x: Any, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Any:
    """Variance over ``axis``: sum((x - mean)**2) / (N - ddof). N - ddof <= 0 gives inf or NaN with a
    RuntimeWarning, as in NumPy."""
    shape = array_of(x).shape
    ax = normalize_axis(axis, len(shape), "var", zero_d=True)
    dof = builtins.max(_count(shape, ax) - ddof, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an empty slice is reported once, below
        centered = x - mean(x, axis=ax, keepdims=True)
    squares = _sum_p(centered * centered, axis=ax, keepdims=keepdims)
    if dof == 0:
        warnings.warn("var: degrees of freedom <= 0 for slice", RuntimeWarning, stacklevel=2)
        with np.errstate(divide="ignore", invalid="ignore"):
            return squares / 0.0
    return squares / float(dof)


def std(x: Any, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Any:
    """Standard deviation over ``axis``, sqrt(var(x, axis, ddof)); its derivative is infinite where
    the deviation of a slice of several elements is 0. A slice of one element (ddof 0) has the
    deviation |x - mean(x)|, identically 0, whose derivatives are 0 (not sqrt'(0)·0 = nan)."""
    shape = array_of(x).shape
    ax = normalize_axis(axis, len(shape), "std", zero_d=True)
    if ddof == 0 and _count(shape, ax) == 1:
        return _sum_p(abs(x - mean(x, axis=ax, keepdims=True)), axis=ax, keepdims=keepdims)
    return sqrt(var(x, axis=axis, ddof=ddof, keepdims=keepdims))


_as_operand = as_operand  # tensors and None as they are; lists (of tensors too) and scalars as operands


def _is_zero(x: Any) -> Any:
    return x == 0


_ZERO_WEIGHTS = "average: weights sum to zero, cannot be normalized"


def average(x: Any, axis: Any = None, weights: Any = None, returned: bool = False, keepdims: bool = False) -> Any:
    """Weighted mean over ``axis``, sum(x * w) / sum(w); differentiable in x and the weights.

    ``weights`` has x's shape, or is 1-D along an int ``axis``. With ``returned`` also gives the sum
    of the weights, broadcast to the result's shape.
    """
    x, weights = _as_operand(x), _as_operand(weights)
    data = array_of(x)
    ax = normalize_axis(axis, data.ndim, "average")
    if weights is None:
        avg = mean(x, axis=ax, keepdims=keepdims)
        if returned:
            result = array_of(avg)
            return avg, np.full(result.shape, _count(data.shape, ax), dtype=result.dtype)
        return avg
    wshape = array_of(weights).shape
    if wshape != data.shape:
        if ax is None or len(ax) != 1 or wshape != (data.shape[ax[0]],):
            raise ShapeError(
                f"average: weights of shape {wshape} must match x {data.shape}, or be 1-D along an int axis"
            )
        weights = reshape(weights, tuple(-1 if i == ax[0] else 1 for i in range(data.ndim)))
    wsum = _sum_p(broadcast_to(weights, data.shape), axis=ax, keepdims=keepdims)
    wsum = _check_p(wsum, bad=_is_zero, error=ZeroDivisionError, message=_ZERO_WEIGHTS)
    avg = _sum_p(x * weights, axis=ax, keepdims=keepdims) / wsum
    if returned:
        return avg, broadcast_to(wsum, np.shape(array_of(avg)))
    return avg


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """log(sum(exp(x))) computed stably; the shift by the max carries no gradient (it cancels)."""
    ax = normalize_axis(axis, array_of(x).ndim, "logsumexp", zero_d=True)
    shift = stop_gradient(_max_p(x, axis=ax, keepdims=True))
    lse = log(_sum_p(exp(x - shift), axis=ax, keepdims=True)) + shift
    if not keepdims:
        lse = reshape(lse, tuple(n for i, n in enumerate(lse.shape) if ax is not None and i not in ax))
    return lse


# --- scans --------------------------------------------------------------------------


def _cumsum(x: Any, axis: int) -> Any:
    return np.cumsum(x, axis=axis)


def _reverse_cumsum(x: Any, axis: int) -> Any:
    return np.flip(np.cumsum(np.flip(x, axis), axis=axis), axis)


# Each is the other's transpose, so each one's VJP is the other.
_cumsum_p = Primitive("cumsum", _cumsum)
_reverse_cumsum_p = Primitive("reverse_cumsum", _reverse_cumsum)
_cumsum_p.defvjp(lambda g, out, x, axis: _reverse_cumsum_p(g, axis=axis))
_cumsum_p.defjvp(lambda t, out, x, axis: _cumsum_p(t, axis=axis))
_reverse_cumsum_p.defvjp(lambda g, out, x, axis: _cumsum_p(g, axis=axis))
_reverse_cumsum_p.defjvp(lambda t, out, x, axis: _reverse_cumsum_p(t, axis=axis))


def _cumprod(x: Any, axis: int) -> Any:
    return np.cumprod(x, axis=axis)


def _has_zero(x: Any) -> bool:
    """Whether the division-free (scan) form is needed: always while recording (so higher
    derivatives are exact and a compiled step does not depend on this batch), else on zeros."""
    return isinstance(x, Tensor) or bool((x == 0).any())


def _cumprod_vjp(g: Any, out: Any, x: Any, axis: int) -> Any:
    if not _has_zero(x):
        return _reverse_cumsum_p(g * out, axis=axis) / x
    # x̄[i] = (x[0] ... x[i-1]) * s[i], with s[i] = g[i] + x[i+1] * s[i+1]: a reversed affine scan
    s = _flip(_affine_scan(_shift(_flip(x, axis), 1, axis, 0.0), _flip(g, axis), axis), axis)
    return _exclusive_cumprod(x, axis) * s


def _cumprod_jvp(t: Any, out: Any, x: Any, axis: int) -> Any:
    if not _has_zero(x):
        return out * _cumsum_p(t / x, axis=axis)
    # ṫ[j] = x[j] * ṫ[j-1] + (x[0] ... x[j-1]) * t[j]
    return _affine_scan(x, t * _exclusive_cumprod(x, axis), axis)


_cumprod_p = Primitive("cumprod", _cumprod, save=(0,), save_output=True)
_cumprod_p.defvjp(_cumprod_vjp)
_cumprod_p.defjvp(_cumprod_jvp)


def _scan_axis(x: Any, axis: Any, op: str) -> tuple[Any, int]:
    ndim = array_of(x).ndim
    if axis is None or (ndim == 0 and op != "sort" and axis in (0, -1)):  # NumPy scans the flattened array
        return reshape(x, (-1,)), 0
    ax = normalize_axis(axis, ndim, op)
    if ax is None or len(ax) != 1:
        raise ValueError(f"{op}: expected an int axis or None, got {axis!r}")
    return x, ax[0]


def cumsum(x: Any, axis: Any = None, dtype: Any = None) -> Any:
    """Cumulative sum along ``axis`` (None: over the flattened array), computed in ``dtype`` if given."""
    x, ax = _scan_axis(_in_dtype(x, dtype), axis, "cumsum")
    return _cumsum_p(x, axis=ax)


def cumprod(x: Any, axis: Any = None, dtype: Any = None) -> Any:
    """Cumulative product along ``axis`` (None: over the flattened array), computed in ``dtype`` if
    given. Its derivatives of every order are exact with zeros in the input (they are then built
    from scans, not divisions)."""
    x, ax = _scan_axis(_in_dtype(x, dtype), axis, "cumprod")
    return _cumprod_p(x, axis=ax)


# --- sorting ------------------------------------------------------------------------


def _argsort(x: Any, axis: int) -> Any:
    return np.argsort(x, axis=axis, kind="stable")


def _take_along_axis(x: Any, order: Any, axis: int) -> Any:
    return np.take_along_axis(np.asarray(x), order, axis=axis)


def _untake_along_axis(g: Any, order: Any, axis: int) -> Any:
    out = np.zeros(g.shape, dtype=g.dtype)
    np.put_along_axis(out, order, g, axis=axis)
    return out


# sort = gather by the argsort permutation; its transpose scatters back through the same one.
# All three are primitives, so a compiled step sorts each new batch by its own permutation.
_argsort_p = Primitive("argsort", _argsort, differentiable=False)
_permute_p = Primitive("take_along_axis", _take_along_axis, save=(1,))
_unpermute_p = Primitive("untake_along_axis", _untake_along_axis, save=(1,))
_permute_p.defvjp(lambda g, out, x, order, axis: _unpermute_p(g, order, axis=axis), None)
_permute_p.defjvp(lambda t, out, x, order, axis: _permute_p(t, order, axis=axis), None)
_unpermute_p.defvjp(lambda g, out, x, order, axis: _permute_p(g, order, axis=axis), None)
_unpermute_p.defjvp(lambda t, out, x, order, axis: _unpermute_p(t, order, axis=axis), None)


def argsort(x: Any, axis: Any = -1, kind: Any = None) -> np.ndarray[Any, Any]:
    """Indices that sort ``x`` along ``axis`` (a NumPy integer array; not differentiable)."""
    return np.argsort(array_of(x), axis=axis, kind=kind)


def sort(x: Any, axis: Any = -1, kind: Any = None) -> Any:
    """Sorted copy along ``axis`` (None: the flattened array), NaNs last. The gradient is scattered
    back through the argsort permutation; the sort is always stable (any ``kind`` gives the same
    values, and a stable one sends tied elements' gradients to a fixed place)."""
    x, ax = _scan_axis(x, axis, "sort")
    return _permute_p(x, _argsort_p(x, axis=ax), axis=ax)


# --- facts (chainrule.ops.facts as fx, chainrule.ops.vjp_memory as vm): shape rule, FLOPs of the
# forward and of each input's rule, what the VJP rule allocates (RULE_ITSELF: its own primitives,
# evaluated shape-only, model it) ------------------------------------------------------------
# check: one test per element, the gradient passed through; prod's rule: the product of the others
# (about 6 operations per element); cumprod's: reverse_cumsum(g * out) / x (3 per element).
R = fx.RULE_ITSELF
_check_p.deffacts(shape=fx.passthrough, flops=fx.input_size, vjp_flops=fx.zero_vjp, memory=R)
_sum_p.deffacts(shape=fx.reduction(_sum_p), flops=fx.input_size, vjp_flops=fx.zero_vjp, memory=vm.sum_view)
_max_p.deffacts(shape=fx.reduction(_max_p), flops=fx.input_size, vjp_flops=fx.input_size_vjp(4), memory=vm.extremum)
_min_p.deffacts(shape=fx.reduction(_min_p), flops=fx.input_size, vjp_flops=fx.input_size_vjp(4), memory=vm.extremum)
_prod_p.deffacts(shape=fx.reduction(_prod_p), flops=fx.input_size, vjp_flops=fx.input_size_vjp(6), memory=R)
_broadcast_p.deffacts(shape=fx.view(_broadcast_p), flops=fx.zero, vjp_flops=fx.each_vjp(1), memory=vm.broadcast_to)
_cumsum_p.deffacts(shape=fx.like_input(_cumsum_p), flops=fx.each(1), vjp_flops=fx.each_vjp(1), memory=R)
_reverse_cumsum_p.deffacts(shape=fx.like_input(_reverse_cumsum_p), flops=fx.each(1), vjp_flops=fx.each_vjp(1), memory=R)
_cumprod_p.deffacts(shape=fx.like_input(_cumprod_p), flops=fx.each(1), vjp_flops=fx.each_vjp(3), memory=R)
_argsort_p.deffacts(shape=fx.like_input(_argsort_p), flops=fx.argsort_flops)
_permute_p.deffacts(shape=fx.take_along_axis_shape(_permute_p), flops=fx.zero, vjp_flops=fx.zero_vjp, memory=R)
_unpermute_p.deffacts(shape=fx.like_input(_unpermute_p), flops=fx.zero, vjp_flops=fx.zero_vjp, memory=R)
del R

__all__ = [
    "broadcast_to",
    "amax",
    "amin",
    "argsort",
    "average",
    "cumprod",
    "cumsum",
    "logsumexp",
    "max",
    "mean",
    "min",
    "prod",
    "ptp",
    "sort",
    "std",
    "sum",
    "var",
]
