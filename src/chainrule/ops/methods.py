"""Tensor operators and methods that the engine core does not define itself, attached to
:class:`~chainrule.core.tensor.Tensor` when ``chainrule.ops`` is imported (as NumPy's dispatch
protocols are): ``%`` and ``//`` (with their reflected forms), and ``argmax``/``argmin``
returning integer tensors, ``all``/``any``, ``copy``.

Examples:
    >>> import chainrule as cr
    >>> x = cr.tensor([5.0, -1.5])
    >>> x % 2, x // 2
    (tensor([1. , 0.5]), tensor([ 2., -1.]))
    >>> x.argmax()
    tensor(0, dtype=int64)
"""

from __future__ import annotations

from typing import Any

from chainrule.core.tensor import Tensor
from chainrule.ops.compose import copy, floor_divide
from chainrule.ops.elementwise import mod
from chainrule.ops.logic import all, any, argmax, argmin  # noqa: A004  (NumPy's names)


def _mod(self: Tensor, other: Any) -> Any:
    return mod(self, other)


def _rmod(self: Tensor, other: Any) -> Any:
    return mod(other, self)


def _floordiv(self: Tensor, other: Any) -> Any:
    return floor_divide(self, other)


def _rfloordiv(self: Tensor, other: Any) -> Any:
    return floor_divide(other, self)


def _argmax(self: Tensor, axis: int | None = None, keepdims: bool = False) -> Any:
    """Index of the largest element (flattened if ``axis`` is None): an integer tensor."""
    return argmax(self, axis=axis, keepdims=keepdims)


def _argmin(self: Tensor, axis: int | None = None, keepdims: bool = False) -> Any:
    """Index of the smallest element (flattened if ``axis`` is None): an integer tensor."""
    return argmin(self, axis=axis, keepdims=keepdims)


def _all(self: Tensor, axis: Any = None, keepdims: bool = False) -> Any:
    """Whether every element (along ``axis``) is true: a bool tensor."""
    return all(self, axis=axis, keepdims=keepdims)


def _any(self: Tensor, axis: Any = None, keepdims: bool = False) -> Any:
    """Whether any element (along ``axis``) is true: a bool tensor."""
    return any(self, axis=axis, keepdims=keepdims)


def _copy(self: Tensor) -> Any:
    """A copy (a new array; the gradient passes through), as ``np.copy``/``torch.clone``."""
    return copy(self)


def install() -> None:
    """Attach the operators and methods to :class:`Tensor` (once, when ``chainrule.ops`` is imported)."""
    for name, fn in {
        "__mod__": _mod,
        "__rmod__": _rmod,
        "__floordiv__": _floordiv,
        "__rfloordiv__": _rfloordiv,
        "argmax": _argmax,
        "argmin": _argmin,
        "all": _all,
        "any": _any,
        "copy": _copy,
    }.items():
        setattr(Tensor, name, fn)


__all__: list[str] = []
