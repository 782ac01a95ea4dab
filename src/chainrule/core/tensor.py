"""The tensor: an array that can record the operations applied to it (``data``, ``grad``, ``node``).

A tensor made by the user is a *leaf* (``node is None``); one made by an operation on tensors
that require grad points at the :class:`~chainrule.core.node.Node` that produced it. Its
operators and methods call the operations in :mod:`chainrule.ops`, and ``backward`` calls
:func:`chainrule.core.backward.backward`: both sit above this module and install themselves in
:data:`UP` when ``chainrule`` is imported, so imports inside the core only point downward.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from chainrule.core.errors import DTypeError
from chainrule.core.node import Node
from chainrule.core.state import THREAD


class Tensor:
    """An n-dimensional array that can record the operations applied to it."""

    __slots__ = ("data", "grad", "requires_grad", "node", "name", "tangents", "__weakref__")
    __array_priority__ = 1000.0  # ndarray (op) Tensor defers to Tensor's reflected operators
    # NumPy's dispatch protocols (__array_ufunc__, __array_function__) are attached by
    # chainrule.ops.numpy_dispatch, so np.exp(t) and np.dot(t, t) record like cr.exp and cr.dot.

    data: np.ndarray[Any, Any]
    grad: Tensor | None
    requires_grad: bool
    node: Node | None
    name: str | None
    tangents: dict[int, Tensor] | None  # forward mode: this value's tangent at each open jvp level

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        array = _as_array(data, dtype)
        if requires_grad and array.dtype.kind != "f":
            raise DTypeError(f"tensor: only floating-point tensors can require gradients, got dtype {array.dtype}")
        self.data = array
        self.grad = None
        self.requires_grad = requires_grad
        self.node = None
        self.name = None
        self.tangents = None

    @classmethod
    def _make(cls, data: np.ndarray[Any, Any], node: Node | None) -> Tensor:
        t = object.__new__(cls)
        t.data = data
        t.grad = None
        t.requires_grad = node is not None
        t.node = node
        t.name = None
        t.tangents = None
        return t

    # --- array protocol and properties -------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        return self.node is None

    def numpy(self) -> np.ndarray[Any, Any]:
        return self.data

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray[Any, Any]:
        if self.tangents or (self.requires_grad and THREAD.state.grad_enabled):
            raise TypeError(
                "np.asarray(tensor): this tensor is part of a recorded graph, and turning it into a plain "
                "array would silently drop its gradient. Use a chainrule operation, or t.numpy() / "
                "cr.stop_gradient(t) / t.detach() if you mean to leave the graph"
            )
        if dtype is not None and dtype != self.data.dtype:
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    def item(self) -> Any:
        return self.data.item()

    def tolist(self) -> Any:
        return self.data.tolist()

    def detach(self) -> Tensor:
        return Tensor._make(self.data, None)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        if flag and self.data.dtype.kind != "f":
            raise DTypeError(f"requires_grad_: dtype {self.data.dtype} cannot require gradients")
        if self.node is not None and not flag:
            raise ValueError("requires_grad_: a non-leaf tensor cannot stop requiring grad; use .detach()")
        self.requires_grad = flag
        return self

    def named(self, name: str) -> Tensor:
        """Name this tensor (and the node that made it), e.g. ``z = (W1 @ x).named("z")``."""
        self.name = name
        if self.node is not None:
            self.node.label = name
        return self

    def zero_grad(self) -> None:
        self.grad = None

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[Tensor]:
        for i in range(len(self.data)):
            yield self[i]

    def __bool__(self) -> bool:
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.data)

    def __int__(self) -> int:
        return int(self.data)

    def __repr__(self) -> str:
        body = np.array2string(self.data, precision=4, separator=", ", prefix="tensor(")
        extra = ""
        if self.node is not None:
            extra = f", node={self.node.prim.name}"
        elif self.requires_grad:
            extra = ", requires_grad=True"
        dt = "" if self.data.dtype == np.float32 else f", dtype={self.data.dtype}"
        return f"tensor({body}{dt}{extra})"

    __hash__ = object.__hash__

    # --- backward -------------------------------------------------------------------
    def backward(self, gradient: Any = None, retain_graph: bool = False, create_graph: bool = False) -> None:
        """Backpropagate from this tensor into the ``.grad`` of every leaf that requires grad."""
        UP.backward((self,), (gradient,), retain_graph, create_graph)

    # --- operators (defined in chainrule.ops) ----------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return UP.ops.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return UP.ops.add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return UP.ops.subtract(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return UP.ops.subtract(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return UP.ops.multiply(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return UP.ops.multiply(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return UP.ops.divide(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return UP.ops.divide(other, self)

    def __pow__(self, other: Any) -> Tensor:
        return UP.ops.power(self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return UP.ops.power(other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return UP.ops.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return UP.ops.matmul(other, self)

    def __neg__(self) -> Tensor:
        return UP.ops.negative(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return UP.ops.abs(self)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return UP.ops.equal(self, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return UP.ops.not_equal(self, other)

    def __lt__(self, other: Any) -> Tensor:
        return UP.ops.less(self, other)

    def __le__(self, other: Any) -> Tensor:
        return UP.ops.less_equal(self, other)

    def __gt__(self, other: Any) -> Tensor:
        return UP.ops.greater(self, other)

    def __ge__(self, other: Any) -> Tensor:
        return UP.ops.greater_equal(self, other)

    def __getitem__(self, index: Any) -> Tensor:
        return UP.ops.getitem(self, index)

    # --- NumPy-style methods ----------------------------------------------------------
    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return UP.ops.sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return UP.ops.mean(self, axis=axis, keepdims=keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return UP.ops.max(self, axis=axis, keepdims=keepdims)

    def min(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return UP.ops.min(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], tuple | list):
            shape = tuple(shape[0])
        return UP.ops.reshape(self, shape)

    def transpose(self, *axes: Any) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], tuple | list):
            axes = tuple(axes[0])
        return UP.ops.transpose(self, axes if axes else None)

    @property
    def T(self) -> Tensor:
        return UP.ops.transpose(self)

    def squeeze(self, axis: Any = None) -> Tensor:
        return UP.ops.squeeze(self, axis)

    def clip(self, a_min: Any = None, a_max: Any = None) -> Tensor:
        return UP.ops.clip(self, a_min, a_max)

    def astype(self, dtype: Any) -> Tensor:
        return UP.ops.astype(self, dtype)

    def dot(self, other: Any) -> Tensor:
        """NumPy's ``dot`` (for N-D operands it is not ``matmul``)."""
        return UP.ops.dot(self, other)

    def flatten(self) -> Tensor:
        """A 1-D copy of the values (NumPy's ``flatten``)."""
        return UP.ops.reshape(self, (-1,))

    def ravel(self) -> Tensor:
        """The values as one axis (NumPy's ``ravel``)."""
        return UP.ops.reshape(self, (-1,))

    def var(self, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Tensor:
        """Variance along ``axis`` (NumPy's ``var``; ``ddof=1`` for the unbiased estimate)."""
        return UP.ops.var(self, axis=axis, ddof=ddof, keepdims=keepdims)

    def std(self, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Tensor:
        """Standard deviation along ``axis`` (NumPy's ``std``)."""
        return UP.ops.std(self, axis=axis, ddof=ddof, keepdims=keepdims)

    def prod(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        """Product along ``axis`` (NumPy's ``prod``; exact derivatives with zeros)."""
        return UP.ops.prod(self, axis=axis, keepdims=keepdims)

    def cumsum(self, axis: Any = None) -> Tensor:
        """Cumulative sum along ``axis`` (NumPy's ``cumsum``; flattened when ``axis`` is None)."""
        return UP.ops.cumsum(self, axis=axis)

    def cumprod(self, axis: Any = None) -> Tensor:
        """Cumulative product along ``axis`` (NumPy's ``cumprod``)."""
        return UP.ops.cumprod(self, axis=axis)

    def trace(self, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
        """Sum along a diagonal (NumPy's ``trace``)."""
        return UP.ops.trace(self, offset=offset, axis1=axis1, axis2=axis2)

    def diagonal(self, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
        """A diagonal as a new axis at the end (NumPy's ``diagonal``)."""
        return UP.ops.diagonal(self, offset=offset, axis1=axis1, axis2=axis2)

    def repeat(self, repeats: Any, axis: Any = None) -> Tensor:
        """Each element repeated (NumPy's ``repeat``)."""
        return UP.ops.repeat(self, repeats, axis=axis)

    def swapaxes(self, axis1: int, axis2: int) -> Tensor:
        """Two axes exchanged (NumPy's ``swapaxes``)."""
        return UP.ops.swapaxes(self, axis1, axis2)

    def argmax(self, axis: Any = None) -> np.ndarray[Any, Any]:
        return np.asarray(self.data.argmax(axis=axis))


def _as_array(data: Any, dtype: Any) -> np.ndarray[Any, Any]:
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.array(data, dtype=np.dtype(dtype))
    array = np.array(data)
    if array.dtype.kind == "f" and array.dtype != np.float32:
        array = array.astype(np.float32)  # float32 by default, as documented
    return array


def array_of(x: Any) -> np.ndarray[Any, Any]:
    """The array behind ``x`` (a tensor's data; nested lists of tensors read element by element)."""
    if isinstance(x, Tensor):
        return x.data
    if (type(x) is list or type(x) is tuple) and contains_tensor(x):
        return np.asarray([array_of(e) for e in x])
    return np.asarray(x)


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Make a leaf tensor (a copy of ``data``).

    Dtype rule, shared with :func:`as_tensor`: ``dtype`` if given; else float data (Python floats,
    float64 arrays) become float32, and integer and boolean data keep their dtype.
    """
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


class _Upward:
    """What the lower floors of the core call above themselves, installed once by ``chainrule.ops``."""

    __slots__ = ("ops", "backward")

    def __init__(self) -> None:
        self.ops: Any = None  # the operations package: Tensor's operators, sum_to, broadcast_to, astype, stack
        self.backward: Callable[..., Any] = _not_installed


def _not_installed(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("chainrule.ops is not imported: import chainrule, not chainrule.core alone")


UP = _Upward()


def install_ops(ops: Any, backward: Callable[..., Any]) -> None:
    """Called once by ``chainrule.ops``: the operations behind Tensor's operators and methods, the few
    the engine itself applies (``sum_to`` for gradients, ``broadcast_to``/``astype`` for tangents,
    ``stack`` for lists), and the backward walk. The dependency points one way: ops import the
    core, never the reverse."""
    UP.ops = ops
    UP.backward = backward


def engine_ops() -> Any:
    """The installed operations package (``chainrule.ops``)."""
    if UP.ops is None:
        raise RuntimeError("chainrule.ops is not imported: import chainrule, not chainrule.core alone")
    return UP.ops


def contains_tensor(seq: Any) -> bool:
    """Whether a (nested) list or tuple holds a tensor."""
    return any(isinstance(x, Tensor) or (type(x) in (list, tuple) and contains_tensor(x)) for x in seq)
