"""Graph nodes and the engine's per-thread state: transformation levels, grad mode, hooks.

A node is one recorded operation: which primitive ran, the parents its inputs came
from, and for each input either the array its derivative rule reads (``save``) or only
its shape and dtype (:class:`Meta`), plus the output if the rule reads it. Nothing else
is kept, so the memory a graph holds is the sum of what its nodes save.

Transformations (``grad``, ``vjp``, ``jvp``, ``compile``, ``no_grad``) each open a
:class:`Level` on this thread's stack. Forward-mode levels tag tangents with their level
id, so an operation computes tangents for exactly the levels its inputs carry; reverse
levels decide whether a backward pass must itself be recorded (an enclosing level is
watching) instead of guessing it from the graph.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from chainrule.core.tensor import Primitive, Tensor


_sequence = itertools.count()
_level_ids = itertools.count(1)


class Level:
    """One open transformation on this thread: its kind and a unique, increasing id."""

    __slots__ = ("kind", "id")

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "grad" | "jvp" | "compile" | "no_grad" | "enable_grad"
        self.id = next(_level_ids)

    def __repr__(self) -> str:
        return f"<level {self.id} {self.kind}>"


class _State:
    """One thread's engine state: two threads never see each other's levels or ``no_grad``."""

    __slots__ = ("grad_enabled", "anomaly", "hooks", "tracer", "levels", "forward", "limit")

    def __init__(self) -> None:
        self.grad_enabled = True
        self.anomaly = False
        self.hooks: list[GraphHook] = []
        self.tracer: Any = None  # set while cr.compile captures a step
        self.levels: list[Level] = []
        # Open forward-mode levels (ids). ``limit``: while the JVP of level k is being
        # computed, only levels below k are live, so a rule never sees its own tangents.
        self.forward: set[int] = set()
        self.limit = 1 << 62


class _PerThread(threading.local):
    def __init__(self) -> None:
        self.state = _State()


THREAD = _PerThread()


def state() -> _State:
    """This thread's engine state (hot paths read ``THREAD.state`` once per call)."""
    return THREAD.state


@contextlib.contextmanager
def level(kind: str, grad_enabled: bool | None = None) -> Iterator[Level]:
    """Open a transformation level for the duration of a ``with`` block."""
    state = THREAD.state
    lvl = Level(kind)
    previous = state.grad_enabled
    state.levels.append(lvl)
    if kind == "jvp":
        state.forward.add(lvl.id)
    if grad_enabled is not None:
        state.grad_enabled = grad_enabled
    try:
        yield lvl
    finally:
        state.grad_enabled = previous
        state.forward.discard(lvl.id)
        state.levels.remove(lvl)


def watched(reverse_only: bool = False) -> bool:
    """Whether an enclosing transformation differentiates what runs now.

    Any enclosing ``grad``/``jvp``/``compile`` level needs results that keep their tangents;
    only a reverse one (``grad``, ``compile``: ``reverse_only=True``) needs them recorded.
    """
    kinds = ("grad", "compile") if reverse_only else ("grad", "jvp", "compile")
    return any(lvl.kind in kinds for lvl in THREAD.state.levels)


class Meta:
    """Shape and dtype of an input whose data the rule does not need (and so was not kept)."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype[Any] | None) -> None:
        self.shape = shape
        self.dtype = dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __repr__(self) -> str:
        return f"Meta(shape={self.shape}, dtype={self.dtype})"


class Node:
    """One recorded operation of the computational graph."""

    __slots__ = (
        "prim",
        "parents",
        "kept",
        "output",
        "params",
        "released",
        "origin",
        "out_shape",
        "out_dtype",
        "label",
        "seq",
        "forward",
        "holds",
        "__weakref__",
    )

    def __init__(
        self,
        prim: Primitive,
        parents: tuple[Node | Tensor | None, ...],
        kept: tuple[Any, ...],
        out: np.ndarray[Any, Any],
        params: dict[str, Any],
    ) -> None:
        self.prim = prim
        # parents[i] is the node that produced input i, the leaf tensor itself
        # (whose .grad receives the gradient), or None if input i needs no gradient.
        self.parents = parents
        # kept[i] is what the node keeps of input i: the array itself if the primitive
        # saves it (its rules read it), else a Meta (shape and dtype). Rules get exactly these.
        self.kept = kept
        self.output = out if prim.save_output else None  # the result, if the rules read it
        self.params = params
        self.released = False
        self.origin: str | None = None
        self.out_shape: tuple[int, ...] = out.shape
        self.out_dtype: np.dtype[Any] = out.dtype
        self.label: str | None = None  # the name the user gave the output tensor, if any
        # Creation order: a node's inputs always come from earlier nodes, so walking
        # nodes by decreasing seq visits every node after all of its consumers.
        self.seq = next(_sequence)
        # Under forward mode: (the input tensors as given, the output's tangents), so a
        # recorded backward runs its rules on values that still carry their tangents.
        self.forward: tuple[tuple[Any, ...], dict[int, Any]] | None = None
        self.holds: Any = None  # releases the saved input arrays this node made read-only

    @property
    def name(self) -> str:
        return self.prim.name

    def saved_arrays(self) -> list[np.ndarray[Any, Any]]:
        """The arrays this node keeps alive for backward (empty once released)."""
        arrays = [item for item in self.kept if type(item) is np.ndarray]
        if self.output is not None:
            arrays.append(self.output)
        return arrays

    @property
    def saved_nbytes(self) -> int:
        """Bytes kept for backward; an array saved twice (``w * w``) counts once."""
        unique = {id(a): a for a in self.saved_arrays()}
        return sum(a.nbytes for a in unique.values())

    def release(self) -> None:
        """Drop the saved arrays, keeping only what they were (shape and dtype)."""
        if self.prim.save:
            self.kept = tuple([meta_of(item) for item in self.kept])
        self.output = None
        self.forward = None
        self.released = True
        if self.holds is not None:
            self.holds()  # the saved arrays become writable again (if no other node holds them)

    def __repr__(self) -> str:
        return f"<Node {self.prim.name} out={self.out_shape} saved={self.saved_nbytes}B>"


# --- saved input arrays are read-only while a node needs them ---------------------------------
# A node's rules read the input arrays it saved; writing into one of them in place (a leaf's
# data, an as_tensor source, an optimizer step between forward and backward) would make its
# gradient silently wrong. So a saved array (and the array it is a view of) is made read-only
# until every node that saved it has been released or garbage collected.
_HELD: dict[int, list[Any]] = {}  # id(array) -> [array, number of nodes holding it, who]


def hold(node: Node, arrays: list[Any]) -> None:
    """Make ``arrays`` (saved by ``node``) read-only until the node is released or collected.

    A view is protected through the array that owns its memory (a leaf's data behind ``W.T``).
    """
    counted: list[Any] = []
    for array in arrays:
        a = array
        while isinstance(a.base, np.ndarray):
            a = a.base
        entry = _HELD.get(id(a))
        if entry is not None:
            entry[1] += 1
        elif a.flags.writeable:
            a.flags.writeable = False
            _HELD[id(a)] = [a, 1, node.prim.name]
        else:
            continue  # read-only already, by its owner: nothing to undo later
        counted.append(a)
    if counted:
        node.holds = weakref.finalize(node, _let_go, counted)


def _let_go(arrays: list[Any]) -> None:
    for a in arrays:
        entry = _HELD.get(id(a))
        if entry is None or entry[0] is not a:
            continue
        entry[1] -= 1
        if entry[1] == 0:
            del _HELD[id(a)]
            a.flags.writeable = True


def holder_of(array: Any) -> str | None:
    """The primitive of a live node that saved ``array`` (or the array it views), if any."""
    a = array
    while isinstance(a, np.ndarray):
        entry = _HELD.get(id(a))
        if entry is not None and entry[0] is a:
            return str(entry[2])
        a = a.base
    return None


SCALAR = Meta((), None)  # what an unsaved Python number is to a rule


def meta_of(value: Any) -> Any:
    """What a node keeps of an input its rules do not read (or no longer may): shape and dtype."""
    if type(value) is np.ndarray:
        return Meta(value.shape, value.dtype)
    if type(value) is Meta:
        return value
    return SCALAR if isinstance(value, int | float | complex) else Meta(np.shape(value), None)


class GraphHook(Protocol):
    """Instrumentation that plugs into the engine (timers, memory meters, graph export)."""

    def forward(self, node: Node | None, prim: Primitive, out: np.ndarray[Any, Any]) -> None: ...

    def backward(self, node: Node) -> None: ...


def no_grad() -> contextlib.AbstractContextManager[Level]:
    """Run operations without recording them (prediction mode); per thread."""
    return level("no_grad", grad_enabled=False)


def enable_grad() -> contextlib.AbstractContextManager[Level]:
    """Record operations again inside a ``no_grad`` block; per thread."""
    return level("enable_grad", grad_enabled=True)


def is_grad_enabled() -> bool:
    """Whether operations on tensors that require grad are being recorded on this thread."""
    return THREAD.state.grad_enabled


@contextlib.contextmanager
def _switch(flag: str, value: bool) -> Iterator[None]:
    st = THREAD.state
    previous = getattr(st, flag)
    setattr(st, flag, value)
    try:
        yield
    finally:
        setattr(st, flag, previous)


def detect_anomaly() -> contextlib.AbstractContextManager[None]:
    """Check every forward output and backward gradient for NaN/Inf and name the op that made it."""
    return _switch("anomaly", True)


@contextlib.contextmanager
def hook(h: GraphHook) -> Iterator[GraphHook]:
    """Install an instrumentation hook for the duration of a ``with`` block."""
    THREAD.state.hooks.append(h)
    try:
        yield h
    finally:
        THREAD.state.hooks.remove(h)
