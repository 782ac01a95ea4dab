"""PyTorch's in-place idioms on tensors (``-=``, ``zero_()``, ``t[i] = v``...): the rules.

An in-place write goes one of two ways, decided per call (nothing is added to ``bind`` or the
backward walk):

* **written**: nothing is being recorded (under ``cr.no_grad()``, or no tensor involved requires
  grad): the operation writes into the tensor's array, like NumPy's ``a -= b``. The array must
  not be saved by a live node (the read-only protection of :func:`~chainrule.core.node.hold`,
  PyTorch's version counter): that raises :class:`InPlaceError` naming the node. A read-only
  broadcast view (some gradients are) is first replaced by a private copy.
* **recorded**: gradients are being recorded and a tensor involved requires grad: the tensor
  takes the result of the out-of-place operation (its array and node), so the graph stays
  right and every reference to the tensor object sees the new value. A leaf that requires grad
  is refused (PyTorch's rule: update parameters under ``cr.no_grad()``), and so is a tensor whose
  array views another's (the write could not reach the viewed tensor).

Forward mode (``cr.jvp``) and a compiled step's capture are refused: they could not replay it.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from chainrule.core.errors import DTypeError, InPlaceError
from chainrule.core.node import holder_of
from chainrule.core.state import THREAD

UFUNCS = {
    "add": np.add,
    "subtract": np.subtract,
    "multiply": np.multiply,
    "divide": np.divide,
    "power": np.power,
    "mod": np.mod,
    "floor_divide": np.floor_divide,
}


_ALIASES: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()  # id -> t.data, t.detach()


def alias(t: Any) -> Any:
    """Register ``t`` as another tensor's ``.data`` or ``.detach()`` (it shares that tensor's array)."""
    _ALIASES[id(t)] = t
    return t


def replacement(current: np.ndarray[Any, Any], value: Any) -> np.ndarray[Any, Any]:
    """The array ``t.data = value`` installs: ``value``'s own array (shared, as in PyTorch), same dtype."""
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"t.data = value: expected a tensor or a NumPy array, got {type(value).__name__}; "
            f"write t.data = cr.tensor(value, dtype=t.dtype), or t.fill_(value) to set every element"
        )
    if value.dtype != current.dtype:
        raise DTypeError(
            f"t.data = value: the tensor is {current.dtype} and the new values are {value.dtype}; replacing "
            f"them would silently change the tensor's dtype. Cast first: t.data = value.astype(t.dtype)"
        )
    return value


# --- placeholders: the values of a lazy parameter before its shape is known ---------------------
# An ``nn.LazyLinear`` weight is an empty (out_features, 0) array until the first call. The fills
# the book applies to it then (``weight.data.normal_(0, 0.01)``) are kept and replayed on the real
# array (PyTorch silently drops them); any other in-place update of it is refused.
_PENDING: dict[int, tuple[weakref.ref[np.ndarray[Any, Any]], str, list[Callable[[Any], None]]]] = {}


def placeholder(array: np.ndarray[Any, Any], owner: str) -> None:
    """Register ``array`` (empty) as the values of ``owner`` before they exist (a lazy weight)."""
    key = id(array)
    _PENDING[key] = (weakref.ref(array, lambda _: _PENDING.pop(key, None)), owner, [])


def _pending(array: np.ndarray[Any, Any]) -> tuple[str, list[Callable[[Any], None]]] | None:
    entry = _PENDING.get(id(array)) if array.size == 0 else None
    if entry is None or entry[0]() is not array:
        return None
    return entry[1], entry[2]


def defer(array: np.ndarray[Any, Any], write: Callable[[Any], None]) -> bool:
    """Keep ``write`` (a fill) for a placeholder's real array; False if ``array`` is no placeholder."""
    entry = _pending(array)
    if entry is not None:
        entry[1].append(write)
    return entry is not None


def materialise(array: np.ndarray[Any, Any], values: np.ndarray[Any, Any] | None) -> None:
    """The placeholder ``array`` gets real ``values``: replay the fills kept for it (none if None)."""
    entry = _pending(array)
    _PENDING.pop(id(array), None)
    if entry is not None and values is not None:
        for write in entry[1]:
            write(values)


def recording(op: str, tensor: Any, other_grad: bool, other_tangents: bool) -> bool:
    """Whether this in-place call must be recorded (else it writes); refuses what cannot be honoured."""
    st = THREAD.state
    if st.capturing:
        raise InPlaceError(f"{op}: in-place operations cannot be captured by cr.compile; write t = t - x instead")
    if tensor.tangents or other_tangents or st.forward:
        raise InPlaceError(f"{op}: in-place operations are not supported inside cr.jvp; write t = t - x instead")
    if not st.grad_enabled or not (tensor.requires_grad or other_grad):
        return False
    if _ALIASES.get(id(tensor)) is tensor:
        raise InPlaceError(
            f"{op}: this tensor is another's .data or .detach() (it shares that tensor's array), and an update "
            f"recorded in the graph (an operand requires grad) could not reach that tensor; pass "
            f"operand.detach(), or do the update under `with cr.no_grad():`"
        )
    if tensor.node is None and tensor.requires_grad:
        raise InPlaceError(
            f"{op}: a leaf tensor that requires grad (a parameter) cannot be modified in place while gradients "
            f"are recorded; do the update under `with cr.no_grad():` (as PyTorch requires), or use an optimizer"
        )
    if tensor._data.base is not None:
        raise InPlaceError(
            f"{op}: this tensor's array is a view of another tensor's (t = x[...] or x.reshape(...)), and a "
            f"recorded in-place update cannot reach that tensor; write x[idx] = x[idx] * c, or t = t * c"
        )
    return True


def writable(array: np.ndarray[Any, Any], op: str) -> np.ndarray[Any, Any]:
    """The array to write into: ``array`` itself, or a private copy of a read-only broadcast view."""
    pending = _pending(array) if not array.size else None
    if pending is not None:
        raise InPlaceError(
            f"{op}: {pending[0]} has no values yet (shape {array.shape}): its in_features is inferred on the first "
            f"call, so only fills (normal_, uniform_, fill_, zero_) can be applied now; call the module once "
            f"first (model(x[:1])), or use nn.Linear(in_features, out_features)"
        )
    if array.flags.writeable and (array.base is None or holder_of(array) is None):
        return array  # (a view made before its base was saved stays writeable: its base is checked)
    holder = holder_of(array)
    if holder is not None:
        gc.collect()  # a graph that is only unreachable (a reference cycle) lets go when collected
        holder = holder_of(array)
    if holder is not None:
        view = "; or the array it views" if array.base is not None else ""
        raise InPlaceError(
            f"{op}: this tensor's array (shape {array.shape}{view}) is saved by a '{holder}' node of a graph that has "
            f"not been backpropagated yet (or was kept with retain_graph=True); writing it in place would make "
            f"that graph's gradients wrong. Call backward first, or drop that graph"
        )
    if array.flags.writeable:
        return array
    if array.base is not None:  # a read-only view (a broadcast gradient): the tensor gets its own copy
        return array.copy()
    raise InPlaceError(
        f"{op}: this tensor's array is read-only (the NumPy array it was made from is); "
        f"make the tensor from a writable copy, e.g. cr.tensor(a)"
    )


def apply(op: str, ufunc: Any, array: np.ndarray[Any, Any], other: Any) -> None:
    """``array op= other`` in place, with NumPy's casting rule; errors name the operation."""
    try:
        ufunc(array, other, out=array, casting="same_kind")
    except TypeError as exc:
        from chainrule.core.errors import DTypeError

        raise DTypeError(f"{op}: cannot write the result into a {array.dtype} tensor in place ({exc})") from None
    except ValueError as exc:
        from chainrule.core.errors import ShapeError

        raise ShapeError(
            f"{op}: an operand of shape {np.shape(other)} does not broadcast into the tensor's shape "
            f"{array.shape} ({exc})"
        ) from None
