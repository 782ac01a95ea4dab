"""The computational graph: a :class:`Node` is one recorded operation.

A node is which primitive ran, the parents its inputs came from, and for each input either
the array its derivative rule reads (``save``) or only its shape and dtype (:class:`Meta`),
plus the output if the rule reads it. Nothing else is kept, so the memory a graph holds is
the sum of what its nodes save; backpropagation releases it node by node.
"""

from __future__ import annotations

import gc
import itertools
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from chainrule.core.primitive import Primitive
    from chainrule.core.tensor import Tensor


_sequence = itertools.count()


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
        parents: list[Node | Tensor | None],
        inputs: list[Any],
        out: np.ndarray[Any, Any],
        params: dict[str, Any],
    ) -> None:
        self.prim = prim
        # parents[i] is the node that produced input i, the leaf tensor itself
        # (whose .grad receives the gradient), or None if input i needs no gradient.
        self.parents = tuple(parents)
        # kept[i] is what the node keeps of input i: the array itself if the primitive
        # saves it (its rules read it), else a Meta (shape and dtype). Rules get exactly these.
        save = prim.save
        if save:
            self.kept = tuple([d if i in save else meta_of(d) for i, d in enumerate(inputs)])
        else:
            self.kept = tuple(map(meta_of, inputs))
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
        if self.seq >= _GC.next_freeze:
            _GC.graph_grew(self.seq)
        # Under forward mode: (the input tensors as given, the output's tangents), so a
        # recorded backward runs its rules on values that still carry their tangents.
        self.forward: tuple[tuple[Any, ...], dict[int, Any]] | None = None
        self.holds: weakref.ref[Node] | None = None  # set if it made saved input arrays read-only (hold)
        if save:
            hold(self, [d for d in self.kept if type(d) is np.ndarray])  # read-only while the node needs them

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
            _let_go(_DROPPED.pop(self.holds))  # the saved arrays become writable again (if no other node holds them)
            self.holds = None

    def __repr__(self) -> str:
        return f"<Node {self.prim.name} out={self.out_shape} saved={self.saved_nbytes}B>"


# --- a large graph and the cyclic garbage collector ----------------------------------------
# Every node is an object the cyclic GC tracks, and a graph is alive until backward has run: each
# full collection while a large graph is being recorded walks all of it again, so the cost per
# recorded op grows with the graph (measured: 2-4x at 100,000 ops). A graph holds no reference
# cycles (a node points only to earlier nodes and leaves), so reference counting frees it and the
# cyclic GC has nothing to find there. So every FREEZE_EVERY recorded nodes the objects alive then
# are moved out of the GC's sight (``gc.freeze()``, constant time), and put back
# (``gc.unfreeze()``) when the outermost backward ends: a large graph is frozen in pieces as it
# grows; small graphs, one every FREEZE_EVERY nodes, are frozen until the end of their step.
# Objects made meanwhile are collected as usual; nothing is done if the GC is
# disabled or if something else has frozen objects (``gc.get_freeze_count()``).
FREEZE_EVERY = 10_000


class _GraphGC:
    __slots__ = ("next_freeze", "frozen")

    def __init__(self) -> None:
        self.next_freeze = FREEZE_EVERY
        self.frozen = False  # this engine froze objects (and so will unfreeze them)

    def graph_grew(self, seq: int) -> None:
        self.next_freeze = seq + FREEZE_EVERY
        if gc.isenabled() and (self.frozen or gc.get_freeze_count() == 0):
            gc.freeze()
            self.frozen = True

    def graph_consumed(self) -> None:
        """A backward pass ended: the recorded graph is consumed; the GC sees every object again."""
        if self.frozen:
            self.frozen = False
            gc.unfreeze()


_GC = _GraphGC()


class Meta:
    """Shape and dtype of an input whose data the rule does not need (and so was not kept).

    Shared between nodes (see :func:`meta_of`): never assign to its fields."""

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
            a.setflags(write=False)  # (what the flags attribute calls, at half its cost)
            _HELD[id(a)] = [a, 1, node.prim.name]
        else:
            continue  # read-only already, by its owner: nothing to undo later
        counted.append(a)
    if counted:
        ref = weakref.ref(node, _dropped)  # called if the node is dropped (or collected) unreleased
        _DROPPED[ref] = counted
        node.holds = ref


# What each unreleased holding node made read-only, by a weak reference to the node: a node
# released by the backward pass gives its arrays back at once (``Node.release``); one dropped
# without a backward (a prediction, a graph kept by retain_graph, a reference cycle collected)
# gives them back through the reference's callback. (A weakref.finalize per node does the same at 4x the
# cost: 1.77 µs against 0.43 for making, then releasing one, measured with timeit.)
_DROPPED: dict[weakref.ref[Node], list[Any]] = {}


def _dropped(ref: weakref.ref[Node]) -> None:
    arrays = _DROPPED.pop(ref, None)
    if arrays is not None:
        _let_go(arrays)


def _let_go(arrays: list[Any]) -> None:
    for a in arrays:
        entry = _HELD.get(id(a))
        if entry is None or entry[0] is not a:
            continue
        entry[1] -= 1
        if entry[1] == 0:
            del _HELD[id(a)]
            a.setflags(write=True)


def holds_any() -> bool:
    """Whether any live node holds a saved array read-only (if not, :func:`holder_of` is ``None`` for all)."""
    return bool(_HELD)


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


# A Meta is never changed once made, so nodes of like shape and dtype share one: a graph of
# thousands of same-shaped operations keeps a handful of them (and makes no object per input).
_METAS: dict[tuple[tuple[int, ...], np.dtype[Any]], Meta] = {}
_METAS_MAX = 4096  # distinct (shape, dtype) pairs kept at once; past that the table starts again


def meta_of(value: Any) -> Any:
    """What a node keeps of an input its rules do not read (or no longer may): shape and dtype."""
    if type(value) is np.ndarray:
        key = (value.shape, value.dtype)
        meta = _METAS.get(key)
        if meta is None:
            if len(_METAS) >= _METAS_MAX:
                _METAS.clear()
            meta = _METAS[key] = Meta(*key)
        return meta
    if type(value) is Meta:
        return value
    return SCALAR if isinstance(value, int | float | complex) else Meta(np.shape(value), None)
