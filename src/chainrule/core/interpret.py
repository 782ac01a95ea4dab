"""Interpreters: the one way an instrument plugs into the engine.

The engine asks the innermost installed :class:`Interpreter` how to compute and tells it
what happened, at five points:

* ``evaluate(prim, datas, params)``: forward propagation runs a primitive's NumPy implementation
  (shape-only evaluation returns placeholders instead; the FLOP counter counts, then delegates);
* ``recorded(node, prim, args, datas, params, out)``: an operation on tensors ran (``node`` is
  the recorded node, or ``None`` if nothing was recorded); compile's capture, remat's finder,
  anomaly detection, hooks and the memory meter watch here;
* ``vjp(node, i, g, out, args)``: backpropagation runs input ``i``'s derivative rule (the memory
  estimate runs the primitive's memory model instead);
* ``to_leaf(leaf, g)``: a gradient reaches a leaf (compile's capture keeps it; ``True`` = taken);
* ``visited(node)``: backpropagation finished a node (and released it unless ``retain_graph``);

plus the backward walk's own array arithmetic (``ones``, ``copy``, ``add``, ``cast``), so that a
shape-only interpreter sees every array the walk makes. Every method passes the call to the
interpreter below it (``self.below``) and, at the bottom, does what the engine does when none is
installed; an instrument overrides only what it changes or watches, calling ``super()`` to go on.
Install one with ``with interpreter:`` (per thread, nestable).

A new instrument, counting recorded nodes by primitive::

    class Census(cr.Interpreter):
        def __init__(self):
            super().__init__()
            self.counts = collections.Counter()

        def recorded(self, node, prim, args, datas, params, out):
            super().recorded(node, prim, args, datas, params, out)
            if node is not None:
                self.counts[prim.name] += 1

    with Census() as census:
        loss.backward()
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from chainrule.core.errors import AnomalyError, user_frame
from chainrule.core.node import Node
from chainrule.core.rules import run_vjp
from chainrule.core.state import THREAD

if TYPE_CHECKING:
    from chainrule.core.primitive import Primitive
    from chainrule.core.tensor import Tensor


class Interpreter:
    """How the engine computes and what it reports; subclass and override what an instrument needs."""

    captures = False  # True: the backward's rules must run on tensors (recorded), as compile's capture needs

    def __init__(self) -> None:
        self.below: Interpreter | None = None
        self._installed = False
        self._saved: tuple[Any, bool] = (None, False)

    # --- forward propagation -------------------------------------------------------------
    def evaluate(self, prim: Primitive, datas: Sequence[Any], params: dict[str, Any]) -> Any:
        """The output of ``prim`` on arrays ``datas``."""
        if self.below is None:
            return prim.impl(*datas, **params)
        return self.below.evaluate(prim, datas, params)

    def recorded(
        self,
        node: Node | None,
        prim: Primitive,
        args: Sequence[Any],
        datas: Sequence[Any],
        params: dict[str, Any],
        out: np.ndarray[Any, Any],
    ) -> None:
        """An operation on tensors ran; ``node`` is what was recorded (``None``: nothing)."""
        if self.below is not None:
            self.below.recorded(node, prim, args, datas, params, out)

    # --- backpropagation -----------------------------------------------------------------
    def vjp(self, node: Node, i: int, g: Any, out: Any, args: Sequence[Any]) -> Any:
        """Input ``i``'s gradient at ``node`` from its output's gradient ``g``."""
        if self.below is None:
            return run_vjp(node, i, g, out, args)
        return self.below.vjp(node, i, g, out, args)

    def to_leaf(self, leaf: Tensor, g: Any) -> bool:
        """A gradient reached ``leaf``; return ``True`` if it was taken (the engine does not store it)."""
        return False if self.below is None else self.below.to_leaf(leaf, g)

    def visited(self, node: Node) -> None:
        """The backward walk finished ``node``."""
        if self.below is not None:
            self.below.visited(node)

    # --- the backward walk's own arithmetic ----------------------------------------------
    def ones(self, shape: tuple[int, ...], dtype: Any) -> Any:
        """The seed gradient of a scalar output."""
        return np.ones(shape, dtype) if self.below is None else self.below.ones(shape, dtype)

    def copy(self, array: Any) -> Any:
        """A private copy of a gradient that is about to become a leaf's ``.grad``."""
        return np.array(array) if self.below is None else self.below.copy(array)

    def add(self, a: Any, b: Any) -> Any:
        """Two gradients of one value, accumulated."""
        return a + b if self.below is None else self.below.add(a, b)

    def cast(self, array: Any, dtype: Any) -> Any:
        """A gradient cast to its input's dtype."""
        return array.astype(dtype) if self.below is None else self.below.cast(array, dtype)

    # --- installing ----------------------------------------------------------------------
    def __enter__(self) -> Any:
        if self._installed:
            raise RuntimeError(f"{type(self).__name__}: this interpreter is already installed")
        st = THREAD.state
        self._saved = (st.top, st.capturing)
        self.below = st.top
        st.top = self
        st.capturing = st.capturing or self.captures
        self._installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        st = THREAD.state
        if st.top is not self:
            raise RuntimeError(f"{type(self).__name__}: interpreters must be removed innermost first")
        st.top, st.capturing = self._saved
        self.below = None
        self._installed = False


def active(kind: type[Interpreter]) -> bool:
    """Whether an interpreter of class ``kind`` is installed on this thread."""
    interp = THREAD.state.top
    while interp is not None:
        if isinstance(interp, kind):
            return True
        interp = interp.below
    return False


class GraphHook(Protocol):
    """Instrumentation with two callbacks (timers, graph export): see :func:`hook`."""

    def forward(self, node: Node | None, prim: Primitive, out: np.ndarray[Any, Any]) -> None: ...

    def backward(self, node: Node) -> None: ...


class _Hook(Interpreter):
    """A :class:`GraphHook` as an interpreter: ``forward`` after each operation, ``backward`` after each node."""

    def __init__(self, h: GraphHook) -> None:
        super().__init__()
        self.h = h

    def recorded(self, node: Node | None, prim: Any, args: Any, datas: Any, params: Any, out: Any) -> None:
        super().recorded(node, prim, args, datas, params, out)
        self.h.forward(node, prim, out)

    def visited(self, node: Node) -> None:
        super().visited(node)
        self.h.backward(node)


@contextlib.contextmanager
def hook(h: GraphHook) -> Iterator[GraphHook]:
    """Call ``h.forward(node, prim, out)`` after every operation and ``h.backward(node)`` after every
    backward node, for the duration of a ``with`` block (per thread)."""
    with _Hook(h):
        yield h


class AnomalyCheck(Interpreter):
    """``cr.detect_anomaly()``: every forward output and backward gradient checked for NaN/Inf."""

    def recorded(self, node: Node | None, prim: Any, args: Any, datas: Any, params: Any, out: Any) -> None:
        if out.dtype.kind in "fc" and not np.isfinite(out).all():
            raise AnomalyError(f"{prim.name} produced NaN/Inf in forward at {user_frame()}")
        if node is not None:
            node.origin = user_frame()  # errors in backward name the line that made the op
        super().recorded(node, prim, args, datas, params, out)

    def vjp(self, node: Node, i: int, g: Any, out: Any, args: Sequence[Any]) -> Any:
        gi = super().vjp(node, i, g, out, args)
        data = getattr(gi, "_data", gi)  # a tensor's array (not .data, a tensor), or the array itself
        if gi is not None and not np.isfinite(np.asarray(data)).all():
            raise AnomalyError(
                f"{node.prim.name} produced NaN/Inf in backward (gradient of input {i}); "
                f"the op was created at {node.origin or '<unknown>'}"
            )
        return gi


def detect_anomaly() -> contextlib.AbstractContextManager[Any]:
    """Check every forward output and backward gradient for NaN/Inf and name the op that made it."""
    return AnomalyCheck()
