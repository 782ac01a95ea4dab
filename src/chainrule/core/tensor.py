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

from chainrule.core import inplace
from chainrule.core.errors import DTypeError, InPlaceError
from chainrule.core.node import Node, holder_of
from chainrule.core.random import GENERATOR
from chainrule.core.state import THREAD


class Tensor:
    """An n-dimensional array that can record the operations applied to it."""

    __slots__ = ("_data", "grad", "requires_grad", "node", "name", "tangents", "__weakref__")
    __array_priority__ = 1000.0  # ndarray (op) Tensor defers to Tensor's reflected operators
    # NumPy's dispatch protocols (__array_ufunc__, __array_function__) are attached by
    # chainrule.ops.numpy_dispatch, so np.exp(t) and np.dot(t, t) record like cr.exp and cr.dot.

    _data: np.ndarray[Any, Any]  # the values; the engine reads this slot on every operation
    grad: Tensor | None
    requires_grad: bool
    node: Node | None
    name: str | None
    tangents: dict[int, Tensor] | None  # forward mode: this value's tangent at each open jvp level

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        array = _as_array(data, dtype)
        if requires_grad and array.dtype.kind != "f":
            raise DTypeError(f"tensor: only floating-point tensors can require gradients, got dtype {array.dtype}")
        self._data = array
        self.grad = None
        self.requires_grad = requires_grad
        self.node = None
        self.name = None
        self.tangents = None

    @classmethod
    def _make(cls, data: np.ndarray[Any, Any], node: Node | None) -> Tensor:
        t = object.__new__(cls)
        t._data = data
        t.grad = None
        t.requires_grad = node is not None
        t.node = node
        t.name = None
        t.tangents = None
        return t

    # --- array protocol and properties -------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._data.dtype

    @property
    def size(self) -> int:
        return self._data.size

    @property
    def is_leaf(self) -> bool:
        return self.node is None

    @property
    def data(self) -> Tensor:
        """The values as a tensor outside the graph, sharing this tensor's array (PyTorch's ``.data``).

        It has no node and does not require grad, so ``w.data.normal_(0, 0.01)``, ``b.data.fill_(0)``,
        ``w.data -= lr * g`` or ``w.data[0] = v`` write into ``w``'s values without the in-place rules
        for parameters. Unlike PyTorch, a write into an array that a live node saved still raises
        :class:`InPlaceError` (no silently wrong gradients). The NumPy array itself is :meth:`numpy`.
        Assigning (``w.data = v``, a tensor or a NumPy array of the same dtype, any shape) replaces
        the values and shares ``v``'s array, as in PyTorch; a different dtype is refused.
        """
        array = self._data
        if not array.flags.writeable and array.base is not None and holder_of(array) is None:
            array = self._data = array.copy()  # a read-only broadcast view: writes must reach self
        return inplace.alias(Tensor._make(array, None))

    @data.setter
    def data(self, value: Any) -> None:
        self._data = inplace.replacement(self._data, value._data if isinstance(value, Tensor) else value)

    def numpy(self) -> np.ndarray[Any, Any]:
        """The values as the NumPy array itself (shared, not a copy)."""
        return self._data

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray[Any, Any]:
        if self.tangents or (self.requires_grad and THREAD.state.grad_enabled):
            raise TypeError(
                "np.asarray(tensor): this tensor is part of a recorded graph, and turning it into a plain "
                "array would silently drop its gradient. Use a chainrule operation, or t.numpy() / "
                "cr.stop_gradient(t) / t.detach() if you mean to leave the graph"
            )
        if dtype is not None and dtype != self._data.dtype:
            return self._data.astype(dtype)
        return self._data.copy() if copy else self._data

    def item(self) -> Any:
        return self._data.item()

    def tolist(self) -> Any:
        return self._data.tolist()

    def detach(self) -> Tensor:
        """The values outside the graph, sharing the array (as ``.data``; PyTorch's ``detach``)."""
        return inplace.alias(Tensor._make(self._data, None))

    def requires_grad_(self, flag: bool = True) -> Tensor:
        if flag and self._data.dtype.kind != "f":
            raise DTypeError(f"requires_grad_: dtype {self._data.dtype} cannot require gradients")
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
        return len(self._data)

    def __iter__(self) -> Iterator[Tensor]:
        for i in range(len(self._data)):
            yield self[i]

    def __bool__(self) -> bool:
        return bool(self._data)

    def __float__(self) -> float:
        return float(self._data)

    def __int__(self) -> int:
        return int(self._data)

    def __repr__(self) -> str:
        body = np.array2string(self._data, precision=4, separator=", ", prefix="tensor(")
        extra = ""
        if self.node is not None:
            extra = f", node={self.node.prim.name}"
        elif self.requires_grad:
            extra = ", requires_grad=True"
        dt = "" if self._data.dtype == np.float32 else f", dtype={self._data.dtype}"
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

    def argmax(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        """Index of the largest element (flattened if ``axis`` is None): an integer tensor."""
        return UP.ops.argmax(self, axis=axis, keepdims=keepdims)

    def argmin(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        """Index of the smallest element (flattened if ``axis`` is None): an integer tensor."""
        return UP.ops.argmin(self, axis=axis, keepdims=keepdims)

    def all(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        """Whether every element (along ``axis``) is true: a bool tensor."""
        return UP.ops.all(self, axis=axis, keepdims=keepdims)

    def any(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        """Whether any element (along ``axis``) is true: a bool tensor."""
        return UP.ops.any(self, axis=axis, keepdims=keepdims)

    def copy(self) -> Tensor:
        """A copy (a new array; the gradient passes through), as ``np.copy``/``torch.clone``."""
        return UP.ops.copy(self)

    def __mod__(self, other: Any) -> Tensor:
        return UP.ops.mod(self, other)

    def __rmod__(self, other: Any) -> Tensor:
        return UP.ops.mod(other, self)

    def __floordiv__(self, other: Any) -> Tensor:
        return UP.ops.floor_divide(self, other)

    def __rfloordiv__(self, other: Any) -> Tensor:
        return UP.ops.floor_divide(other, self)

    # --- in place (PyTorch's idioms; the rules are in chainrule.core.inplace) ----------------
    def _inplace(self, op: str, name: str, other: Any) -> Tensor:
        is_t = isinstance(other, Tensor)
        if inplace.recording(op, self, is_t and other.requires_grad, is_t and bool(other.tangents)):
            return self._take(getattr(UP.ops, name)(self, other))
        array = inplace.writable(self._data, op)
        inplace.apply(op, inplace.UFUNCS[name], array, other._data if is_t else other)
        self._data = array
        return self

    def _take(self, new: Tensor) -> Tensor:
        """Become ``new`` (its array and node): a recorded in-place update."""
        self._data, self.node, self.requires_grad = new._data, new.node, new.requires_grad
        if self.node is not None and self.name is not None:
            self.node.label = self.name
        return self

    def __iadd__(self, other: Any) -> Tensor:
        return self._inplace("+=", "add", other)

    def __isub__(self, other: Any) -> Tensor:
        return self._inplace("-=", "subtract", other)

    def __imul__(self, other: Any) -> Tensor:
        return self._inplace("*=", "multiply", other)

    def __itruediv__(self, other: Any) -> Tensor:
        return self._inplace("/=", "divide", other)

    def __ipow__(self, other: Any) -> Tensor:
        return self._inplace("**=", "power", other)

    def __imod__(self, other: Any) -> Tensor:
        return self._inplace("%=", "mod", other)

    def __ifloordiv__(self, other: Any) -> Tensor:
        return self._inplace("//=", "floor_divide", other)

    def __imatmul__(self, other: Any) -> Tensor:
        raise InPlaceError("@=: matrix products are not computed in place; write a = a @ b")

    def add_(self, other: Any, alpha: float = 1) -> Tensor:
        """``self += alpha * other`` in place (PyTorch's ``add_``); returns self."""
        return self._inplace("add_", "add", other if alpha == 1 else other * alpha)

    def sub_(self, other: Any, alpha: float = 1) -> Tensor:
        """``self -= alpha * other`` in place; returns self."""
        return self._inplace("sub_", "subtract", other if alpha == 1 else other * alpha)

    def mul_(self, other: Any) -> Tensor:
        """``self *= other`` in place; returns self."""
        return self._inplace("mul_", "multiply", other)

    def div_(self, other: Any) -> Tensor:
        """``self /= other`` in place; returns self."""
        return self._inplace("div_", "divide", other)

    def clamp_(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002  (PyTorch's names)
        """Limit the values to [min, max] in place (PyTorch's ``clamp_``); returns self."""
        lo, hi = (b._data if isinstance(b, Tensor) and not b.requires_grad else b for b in (min, max))
        if inplace.recording("clamp_", self, any(isinstance(b, Tensor) and b.requires_grad for b in (lo, hi)), False):
            return self._take(UP.ops.clip(self, lo, hi))
        if lo is None and hi is None:
            raise ValueError("clamp_: expected at least one of min or max, got neither")
        array = inplace.writable(self._data, "clamp_")
        np.clip(array, lo, hi, out=array)
        self._data = array
        return self

    def copy_(self, src: Any) -> Tensor:
        """Overwrite the values with ``src`` (broadcast, cast to this dtype) in place; returns self."""
        is_t = isinstance(src, Tensor)
        if inplace.recording("copy_", self, is_t and src.requires_grad, is_t and bool(src.tangents)):
            return self._take(UP.ops.broadcast_to(UP.ops.astype(src, self._data.dtype), self._data.shape))
        array = inplace.writable(self._data, "copy_")
        array[...] = src._data if is_t else src
        self._data = array
        return self

    def _fill(self, op: str, write: Callable[[np.ndarray[Any, Any]], None]) -> Tensor:
        """Overwrite every element with ``write(array)`` (kept for later on a lazy placeholder)."""
        if inplace.recording(op, self, False, False):
            raise InPlaceError(
                f"{op}: this tensor is part of a recorded graph; overwriting it would cut the graph. "
                f"Make a new tensor (cr.full_like, cr.zeros_like) or call it under cr.no_grad()"
            )
        if self._data.size == 0 and inplace.defer(self._data, write):
            return self
        array = inplace.writable(self._data, op)
        write(array)
        self._data = array
        return self

    def fill_(self, value: Any) -> Tensor:
        """Set every element to ``value`` in place; returns self."""
        v = value._data if isinstance(value, Tensor) else value
        return self._fill("fill_", lambda a: a.__setitem__(..., v))

    def zero_(self) -> Tensor:
        """Set every element to 0 in place (``p.grad.zero_()``); returns self."""
        return self._fill("zero_", lambda a: a.__setitem__(..., 0))

    def normal_(self, mean: float = 0.0, std: float = 1.0, generator: Any = None) -> Tensor:
        """Fill with N(mean, std²) samples in place (``generator``: a NumPy Generator; default the
        one ``cr.manual_seed`` seeds); returns self."""
        gen = generator or GENERATOR
        return self._fill("normal_", lambda a: a.__setitem__(..., gen.normal(mean, std, a.shape)))

    def uniform_(self, a: float = 0.0, b: float = 1.0, generator: Any = None) -> Tensor:
        """Fill with U(a, b) samples in place; returns self."""
        gen = generator or GENERATOR
        return self._fill("uniform_", lambda x: x.__setitem__(..., gen.uniform(a, b, x.shape)))

    def __setitem__(self, index: Any, value: Any) -> None:
        """``t[index] = value``: written in place, or recorded (``index_update``) on a tensor in a graph."""
        is_t = isinstance(value, Tensor)
        if inplace.recording("t[index] = v", self, is_t and value.requires_grad, is_t and bool(value.tangents)):
            self._take(UP.ops.index_update(self, index, value))
            return
        array = inplace.writable(self._data, "t[index] = v")
        items = index if isinstance(index, tuple) else (index,)
        clean = tuple(i._data if isinstance(i, Tensor) else i for i in items)
        array[clean if isinstance(index, tuple) else clean[0]] = value._data if is_t else value
        self._data = array


def _as_array(data: Any, dtype: Any) -> np.ndarray[Any, Any]:
    if isinstance(data, Tensor):
        data = data._data
    if dtype is not None:
        return np.array(data, dtype=np.dtype(dtype))
    array = np.array(data)
    if array.dtype.kind == "f" and array.dtype != np.float32:
        array = array.astype(np.float32)  # float32 by default, as documented
    return array


def array_of(x: Any) -> np.ndarray[Any, Any]:
    """The array behind ``x`` (a tensor's data; nested lists of tensors read element by element)."""
    if isinstance(x, Tensor):
        return x._data
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
