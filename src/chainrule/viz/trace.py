"""Instrumentation for the drawings: which node the engine walks when, and which module made it.

Everything here reads the graph or plugs in through :func:`chainrule.hook`; nothing changes
the engine. A :class:`Trace` records, per thread, the nodes created (and whether they were
created by a recorded backward pass, i.e. belong to a second-order graph) and the order in
which ``backward`` runs their rules, with the bytes each one held until it was released.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule.core.interpret import hook
from chainrule.core.node import Node
from chainrule.core.state import in_backward


def kept_bytes(node: Node) -> list[tuple[Any, int]]:
    """What the node keeps (or kept) for backward: ``(key, nbytes)`` per saved array.

    While the node is alive the key is the array's id, so an array kept by several nodes
    (``W`` by both ``W @ x`` and ``W * W``) is counted once in a total. Once it has been
    released the sizes are recomputed from the shapes it still knows.
    """
    items: list[tuple[Any, int]] = []
    if not node.released:
        seen: set[int] = set()
        for a in node.saved_arrays():
            if id(a) not in seen:
                seen.add(id(a))
                items.append((id(a), int(a.nbytes)))
        return items
    prim = node.prim
    seen_parents: set[int] = set()
    for i in prim.save:
        if i >= len(node.kept):
            continue
        item = node.kept[i]
        parent = node.parents[i]
        if parent is not None and id(parent) in seen_parents:
            continue  # ``w * w`` saved one array twice
        if parent is not None:
            seen_parents.add(id(parent))
        dtype = getattr(item, "dtype", None)
        if dtype is None:
            continue  # a Python number: nothing on the heap worth counting
        size = int(np.prod(item.shape, dtype=np.int64))
        items.append((f"{node.seq}:{i}", size * np.dtype(dtype).itemsize))
    if prim.save_output:
        size = int(np.prod(node.out_shape, dtype=np.int64))
        items.append((f"{node.seq}:out", size * node.out_dtype.itemsize))
    return items


def node_bytes(node: Node) -> int:
    return sum(n for _, n in kept_bytes(node))


@dataclass
class Step:
    """One node whose rules the engine ran: its order, whether it was released, what it held."""

    seq: int
    name: str
    released: bool
    items: list[tuple[Any, int]]


@dataclass
class Trace:
    """What a hook saw: nodes created (forward or inside a recorded backward) and the backward walks."""

    created: list[int] = field(default_factory=list)  # node seq, in creation order
    second_order: set[int] = field(default_factory=set)  # seqs created while backward ran
    items: dict[int, list[tuple[Any, int]]] = field(default_factory=dict)  # seq -> saved arrays at creation
    steps: list[Step] = field(default_factory=list)  # backward walk, in the engine's order
    # seq -> {input position: ("array", id) | ("scalar", value)} for constant inputs, so a
    # graph whose saved arrays were released can still name x, y and write λ/2.
    constants: dict[int, dict[int, tuple[str, Any]]] = field(default_factory=dict)

    # GraphHook protocol -------------------------------------------------------------
    def forward(self, node: Node | None, prim: Any, out: Any) -> None:
        if node is None:
            return
        self.created.append(node.seq)
        self.items[node.seq] = kept_bytes(node)
        consts: dict[int, tuple[str, Any]] = {}
        for i, (parent, item) in enumerate(zip(node.parents, node.kept, strict=True)):
            if parent is not None:
                continue
            if type(item) is np.ndarray:
                consts[i] = ("scalar", item.item()) if item.ndim == 0 else ("array", id(item))
            elif isinstance(item, int | float | complex | np.number):
                consts[i] = ("scalar", item)
        if consts:
            self.constants[node.seq] = consts
        if in_backward():
            self.second_order.add(node.seq)

    def backward(self, node: Node) -> None:
        items = self.items.get(node.seq)
        if items is None:
            items = kept_bytes(node)
        self.steps.append(Step(node.seq, node.prim.name, node.released, items))

    # Reading it back -----------------------------------------------------------------
    @property
    def order(self) -> list[int]:
        """Node seqs in the order backward ran their rules (all walks, one after another)."""
        return [s.seq for s in self.steps]

    def walk_number(self) -> dict[int, int]:
        """1-based position of each node in the (last) backward walk that visited it."""
        return {s.seq: i + 1 for i, s in enumerate(self.steps)}


@contextlib.contextmanager
def trace() -> Iterator[Trace]:
    """Record the graph's creation and every backward walk in this block.

    ``with cr.viz.trace() as tr: J = model(x); J.backward()`` then
    ``cr.viz.draw(J, backward=True, trace=tr)`` numbers the backward operators in the
    order the engine really ran them.
    """
    tr = Trace()
    with hook(tr):
        yield tr


def dry_run(roots: list[Any]) -> Trace | None:
    """Run a real backward that changes nothing (``retain_graph``, results discarded) and record its walk.

    Returns None if the graph was already released by an earlier backward.
    """
    from chainrule.core.backward import backward, toposort

    nodes = [r.node for r in roots if r.node is not None]
    if not nodes:
        return None
    leaves: dict[int, Any] = {}
    for n in toposort(nodes):
        if n.released and (n.prim.save or n.prim.save_output):
            return None
        for p in n.parents:
            if p is not None and type(p) is not Node:
                leaves[id(p)] = p
    tr = Trace()
    for n in toposort(nodes):
        tr.items[n.seq] = kept_bytes(n)
    gradients = [None if r.size == 1 else np.ones(r.shape, r.dtype) for r in roots]
    targets = list(leaves.values()) or [r for r in roots]
    with hook(tr):
        backward(list(roots), gradients, retain_graph=True, targets=targets)
    # A plain backward releases every node as soon as its rules ran: show that.
    for s in tr.steps:
        s.released = True
    return tr


# --- which module made each node ---------------------------------------------------------

_NODE_MODULE: weakref.WeakKeyDictionary[Node, str] = weakref.WeakKeyDictionary()
_MODULE_TYPE: dict[str, str] = {}


class _ModuleHook:
    def __init__(self, stack: list[str]) -> None:
        self.stack = stack

    def forward(self, node: Node | None, prim: Any, out: Any) -> None:
        if node is not None and self.stack:
            _NODE_MODULE[node] = self.stack[-1]

    def backward(self, node: Node) -> None:
        pass


@contextlib.contextmanager
def track_modules(model: Any, prefix: str = "") -> Iterator[dict[str, Any]]:
    """Remember which ``nn.Module`` created each node while the block runs.

    A module forward pre-hook and hook (``cr.nn.hooks``) push and pop each sub-module's dotted
    name around its ``forward``; an engine hook files every node under the innermost one.
    ``cr.viz.draw(..., group="module")`` then clusters or collapses by module.
    Yields ``{dotted name: module}``.
    """
    from chainrule.nn.hooks import register_module_forward_hook, register_module_forward_pre_hook
    from chainrule.nn.modules import Module

    named: dict[str, Any] = {}
    todo: list[tuple[str, Any]] = [(prefix or type(model).__name__, model)]
    seen: set[int] = set()
    while todo:
        name, m = todo.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        named[name] = m
        _MODULE_TYPE[name] = type(m).__name__
        for child_name, child in m._children():
            if isinstance(child, Module):
                todo.append((f"{name}.{child_name}", child))
    names = {id(m): name for name, m in named.items()}
    stack: list[str] = []
    calls: list[int] = []  # id of each module whose forward is running, innermost last

    def enter(module: Any, args: Any) -> None:
        if id(module) in names:
            stack.append(names[id(module)])
            calls.append(id(module))

    def leave(module: Any, args: Any, out: Any) -> None:
        while id(module) in names and calls:  # also drops what a forward that raised left behind
            stack.pop()
            if calls.pop() == id(module):
                break

    with (
        register_module_forward_pre_hook(enter),
        register_module_forward_hook(leave),
        hook(_ModuleHook(stack)),
    ):
        yield named


def module_of(node: Node) -> str | None:
    return _NODE_MODULE.get(node)


def module_type(name: str) -> str:
    return _MODULE_TYPE.get(name, "Module")
