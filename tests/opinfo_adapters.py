"""chainrule equivalents of PyTorch OpInfo entries, called in PyTorch's convention.

Each adapter takes the OpInfo sample's ``input, *args, **kwargs`` (tensors already replaced by
chainrule tensors or NumPy arrays) and calls chainrule; it raises :class:`Skip` for arguments
chainrule has no counterpart for (the reason is counted and listed). ``POST`` picks the compared
output from a tuple-returning PyTorch op (``sort`` returns values and indices).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import chainrule as cr
import chainrule.nn.functional as F

LA = cr.linalg


class Skip(Exception):
    """This sample asks for something chainrule does not take (the message says what)."""


def _no(kw: dict[str, Any], *allowed: str) -> None:
    extra = sorted(set(kw) - set(allowed))
    if extra:
        raise Skip(f"PyTorch-only keyword(s) {extra}")


def _axis(dim: Any) -> Any:
    if dim is None or isinstance(dim, int):
        return dim
    dim = tuple(dim)
    if not dim:
        raise Skip("dim=() (PyTorch: every axis; NumPy: none)")
    return dim


def _reduction(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(x: Any, dim: Any = None, keepdim: bool = False, **kw: Any) -> Any:
        _no(kw)
        return fn(x, axis=_axis(dim), keepdims=keepdim)

    return call


def _moment(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(x: Any, dim: Any = None, unbiased: Any = None, keepdim: bool = False, **kw: Any) -> Any:
        _no(kw, "correction", "keepdim", "unbiased", "dim")
        if isinstance(dim, bool):  # var(x, unbiased): PyTorch's positional form
            dim, unbiased = None, dim
        dim = kw.get("dim", dim)
        unbiased = kw.get("unbiased", unbiased)
        if isinstance(unbiased, bool):
            ddof = int(unbiased)
        else:
            if unbiased is not None:  # std(x, dim, correction) positional forms are not used by the samples
                raise Skip("positional correction")
            ddof = kw.get("correction", 1)
            ddof = 1 if ddof is None else ddof
            if not isinstance(ddof, int):
                raise Skip(f"non-integer correction {ddof!r}")
        keep = kw.get("keepdim", keepdim)
        return fn(x, axis=_axis(dim), ddof=ddof, keepdims=keep)

    return call


def _scan(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(x: Any, dim: int, **kw: Any) -> Any:
        _no(kw)
        out = fn(x, axis=dim)
        # NumPy's scan of a 0-d array has shape (1,), PyTorch's ()
        return cr.reshape(out, ()) if np.ndim(x.numpy() if isinstance(x, cr.Tensor) else x) == 0 else out

    return call


def _positional(fn: Callable[..., Any], n: int | None = None) -> Callable[..., Any]:
    def call(*args: Any, **kw: Any) -> Any:
        _no(kw)
        if n is not None and len(args) != n:
            raise Skip(f"{len(args)} positional arguments")
        return fn(*args)

    return call


def _softmax(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(x: Any, dim: int, **kw: Any) -> Any:
        _no(kw)
        return fn(x, axis=dim)

    return call


def _max_dim(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(x: Any, dim: int, keepdim: bool = False, **kw: Any) -> Any:
        _no(kw)
        return fn(x, axis=dim, keepdims=keepdim)

    return call


def _sort(x: Any, dim: int = -1, descending: bool = False, stable: bool = False, **kw: Any) -> Any:
    _no(kw, "dim", "descending", "stable")
    dim = kw.get("dim", dim)
    if kw.get("descending", descending):
        raise Skip("descending=True")
    return cr.sort(x, axis=dim)


def _vector_norm(x: Any, ord: Any = 2, dim: Any = None, keepdim: bool = False, **kw: Any) -> Any:
    _no(kw, "ord", "dim", "keepdim")
    return LA.vector_norm(
        x, axis=_axis(kw.get("dim", dim)), keepdims=kw.get("keepdim", keepdim), ord=kw.get("ord", ord)
    )


def _norm(x: Any, ord: Any = None, dim: Any = None, keepdim: bool = False, **kw: Any) -> Any:
    _no(kw, "ord", "dim", "keepdim")
    ord, dim, keepdim = kw.get("ord", ord), kw.get("dim", dim), kw.get("keepdim", keepdim)
    if dim is None and ord is None and np.ndim(x.numpy() if isinstance(x, cr.Tensor) else x) > 2:
        return LA.norm(x, keepdims=keepdim)
    return LA.norm(x, ord, axis=_axis(dim), keepdims=keepdim)


def _take_along(x: Any, idx: Any, dim: Any = None, **kw: Any) -> Any:
    _no(kw)
    return cr.take_along_axis(x, idx, axis=dim)


def _diag_like(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(x: Any, diagonal: int = 0, **kw: Any) -> Any:
        _no(kw, "diagonal")
        return fn(x, kw.get("diagonal", diagonal))

    return call


def _diff(x: Any, n: int = 1, dim: int = -1, prepend: Any = None, append: Any = None, **kw: Any) -> Any:
    _no(kw)
    return cr.diff(x, n=n, axis=dim, prepend=prepend, append=append)


def _where(x: Any, cond: Any, other: Any, **kw: Any) -> Any:
    _no(kw)
    return cr.where(cond, x, other)


def _clamp(x: Any, lo: Any = None, hi: Any = None, **kw: Any) -> Any:
    _no(kw, "min", "max")
    lo, hi = kw.get("min", lo), kw.get("max", hi)
    if lo is None and hi is None:
        raise Skip("no bounds")
    return cr.clip(x, lo, hi)


def _flip(x: Any, dims: Any, **kw: Any) -> Any:
    _no(kw)
    return cr.flip(x, tuple(dims))


def _roll(x: Any, shifts: Any, dims: Any = None, **kw: Any) -> Any:
    _no(kw)
    return cr.roll(x, shifts, axis=dims)


def _transpose(x: Any, d0: int, d1: int, **kw: Any) -> Any:
    _no(kw)
    return cr.swapaxes(x, d0, d1)


def _reshape(x: Any, *shape: Any, **kw: Any) -> Any:
    _no(kw)
    return cr.reshape(x, tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else shape)


def _joined(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(xs: Any, dim: int = 0, **kw: Any) -> Any:
        _no(kw)
        return fn(list(xs), axis=dim)

    return call


def _einsum(xs: Any, equation: str, **kw: Any) -> Any:
    _no(kw)
    return cr.einsum(equation, *xs)


def _pinv(x: Any, *args: Any, **kw: Any) -> Any:
    _no(kw, "hermitian")
    if args or kw.get("hermitian"):
        raise Skip("atol/rtol/hermitian as PyTorch's tensors")
    return LA.pinv(x)


def _tensorinv(x: Any, ind: int = 2, **kw: Any) -> Any:
    _no(kw, "ind")
    return LA.tensorinv(x, kw.get("ind", ind))


def _tensorsolve(a: Any, b: Any, dims: Any = None, **kw: Any) -> Any:
    _no(kw, "dims")
    return LA.tensorsolve(a, b, axes=kw.get("dims", dims))


def _solve(a: Any, b: Any, **kw: Any) -> Any:
    _no(kw)
    na, nb = (np.ndim(v.numpy() if isinstance(v, cr.Tensor) else v) for v in (a, b))
    if nb > 1 and nb == na - 1:
        raise Skip("solve: a batch of vectors b (PyTorch's rule; NumPy 2 reads a b of a.ndim - 1 axes as matrices)")
    return LA.solve(a, b)


def _binary_elementwise(fn: Callable[..., Any]) -> Callable[..., Any]:
    return _positional(fn, 2)


def _unary(fn: Callable[..., Any]) -> Callable[..., Any]:
    return _positional(fn, 1)


ADAPTERS: dict[tuple[str, str], Callable[..., Any]] = {
    ("sum", ""): _reduction(cr.sum),
    ("mean", ""): _reduction(cr.mean),
    ("prod", ""): _reduction(cr.prod),
    ("amax", ""): _reduction(cr.amax),
    ("amin", ""): _reduction(cr.amin),
    ("logsumexp", ""): _reduction(cr.logsumexp),
    ("nansum", ""): _reduction(cr.nansum),
    ("nanmean", ""): _reduction(cr.nanmean),
    ("std", ""): _moment(cr.std),
    ("std", "unbiased"): _moment(cr.std),
    ("var", ""): _moment(cr.var),
    ("var", "unbiased"): _moment(cr.var),
    ("cumsum", ""): _scan(cr.cumsum),
    ("cumprod", ""): _scan(cr.cumprod),
    ("max", "reduction_with_dim"): _max_dim(cr.max),
    ("min", "reduction_with_dim"): _max_dim(cr.min),
    ("max", "reduction_no_dim"): _unary(cr.max),
    ("min", "reduction_no_dim"): _unary(cr.min),
    ("sort", ""): _sort,
    ("nn.functional.softmax", ""): _softmax(F.softmax),
    ("log_softmax", ""): _softmax(F.log_softmax),
    ("nn.functional.relu", ""): _unary(F.relu),
    ("sigmoid", ""): _unary(F.sigmoid),
    ("where", ""): _where,
    ("clamp", ""): _clamp,
    ("take_along_dim", ""): _take_along,
    ("diff", ""): _diff,
    ("flip", ""): _flip,
    ("roll", ""): _roll,
    ("transpose", ""): _transpose,
    ("reshape", ""): _reshape,
    ("tril", ""): _diag_like(cr.tril),
    ("triu", ""): _diag_like(cr.triu),
    ("diag", ""): _diag_like(cr.diag),
    ("diagflat", ""): _diag_like(cr.diagflat),
    ("trace", ""): _unary(cr.trace),
    ("stack", ""): _joined(cr.stack),
    ("cat", ""): _joined(cr.concatenate),
    ("einsum", ""): _einsum,
    ("matmul", ""): _binary_elementwise(cr.matmul),
    ("dot", ""): _binary_elementwise(cr.dot),
    ("inner", ""): _binary_elementwise(cr.inner),
    ("outer", ""): _binary_elementwise(cr.outer),
    ("kron", ""): _binary_elementwise(cr.kron),
    ("atan2", ""): _binary_elementwise(cr.arctan2),
    ("hypot", ""): _binary_elementwise(cr.hypot),
    ("logaddexp", ""): _binary_elementwise(cr.logaddexp),
    ("logaddexp2", ""): _binary_elementwise(cr.logaddexp2),
    ("fmax", ""): _binary_elementwise(cr.fmax),
    ("fmin", ""): _binary_elementwise(cr.fmin),
    ("true_divide", ""): _binary_elementwise(cr.divide),
    ("div", "no_rounding_mode"): _binary_elementwise(cr.divide),
    ("mul", ""): _binary_elementwise(cr.multiply),
    ("sub", ""): _binary_elementwise(cr.subtract),
    ("add", ""): _binary_elementwise(cr.add),
    ("exp", ""): _unary(cr.exp),
    ("expm1", ""): _unary(cr.expm1),
    ("exp2", ""): _unary(cr.exp2),
    ("sinh", ""): _unary(cr.sinh),
    ("cosh", ""): _unary(cr.cosh),
    ("reciprocal", ""): _unary(cr.reciprocal),
    ("sinc", ""): _unary(cr.sinc),
    ("rsqrt", ""): _unary(lambda x: 1.0 / cr.sqrt(x)),
    ("linalg.det", ""): _unary(LA.det),
    ("linalg.inv", ""): _unary(LA.inv),
    ("linalg.solve", ""): lambda a, b, **kw: _solve(a, b, **kw),
    ("linalg.pinv", ""): _pinv,
    ("linalg.pinv", "singular"): _pinv,
    ("linalg.eigvalsh", ""): _unary(LA.eigvalsh),
    ("linalg.svdvals", ""): _unary(LA.svdvals),
    ("linalg.cholesky", ""): _unary(LA.cholesky),
    ("linalg.matrix_power", ""): _binary_elementwise(LA.matrix_power),
    ("linalg.tensorinv", ""): _tensorinv,
    ("linalg.tensorsolve", ""): _tensorsolve,
    ("linalg.vecdot", ""): _binary_elementwise(LA.vecdot),
    ("linalg.vector_norm", ""): _vector_norm,
    ("linalg.norm", ""): _norm,
}

POST: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("sort", ""): lambda out: out[0],
    ("max", "reduction_with_dim"): lambda out: out[0],
    ("min", "reduction_with_dim"): lambda out: out[0],
}
