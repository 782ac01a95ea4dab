"""The recorded graph read back as variables and operators (what the drawings and equations show).

Nothing here is stored by the engine for us: a variable is a node's output, a leaf tensor
(a parameter, or another tensor that requires grad) or a constant input (an array such as
``x`` or ``y``, or a Python number such as λ/2). Constants are not part of the graph's
parents, so they are found in what each node kept, and named by identity with the arrays
the caller passes in ``names``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule.core.backward import toposort
from chainrule.core.node import Node
from chainrule.core.tensor import Tensor
from chainrule.viz.names import resolve


@dataclass
class Var:
    id: str
    kind: str  # "param" | "leaf" | "input" | "const" | "value"
    name: str | None
    shape: tuple[int, ...]
    dtype: str | None
    node: Node | None = None  # the node that produced it (kind "value")
    tensor: Any = None  # the leaf tensor (kind "param"/"leaf")
    value: Any = None  # a Python number (kind "const")

    @property
    def needs_grad(self) -> bool:
        return self.kind in ("param", "leaf", "value")

    def describe(self) -> str:
        shape = "(" + ", ".join(str(n) for n in self.shape) + ("," if len(self.shape) == 1 else "") + ")"
        return f"{shape} {self.dtype}" if self.dtype else shape


@dataclass
class Op:
    id: str
    node: Node
    inputs: list[str]  # one variable per input
    output: str
    second_order: bool = False

    @property
    def seq(self) -> int:
        return self.node.seq

    @property
    def name(self) -> str:
        return self.node.prim.name


@dataclass
class Graph:
    vars: dict[str, Var] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)  # parents first (creation order)
    outputs: list[str] = field(default_factory=list)
    consumers: dict[str, list[tuple[Op, int]]] = field(default_factory=dict)
    # seq -> what a trace saw the node keep when it was created (keys identify arrays shared by nodes)
    recorded_items: dict[int, list[tuple[Any, int]]] = field(default_factory=dict)

    def saved_items(self, op: Op) -> list[tuple[Any, int]]:
        """``(key, nbytes)`` per array the op keeps (or kept, if released) for backward."""
        from chainrule.viz.trace import kept_bytes

        if op.node.released and op.seq in self.recorded_items:
            return self.recorded_items[op.seq]
        return kept_bytes(op.node)

    def saved_bytes(self, ops: Iterable[Op]) -> int:
        """Bytes kept by ``ops`` together, an array kept by several of them counted once."""
        held: dict[Any, int] = {}
        for op in ops:
            for key, n in self.saved_items(op):
                held[key] = n
        return sum(held.values())

    def op_of(self, var_id: str) -> Op | None:
        v = self.vars[var_id]
        if v.node is None:
            return None
        return self._by_seq.get(v.node.seq)

    @property
    def _by_seq(self) -> dict[int, Op]:
        cache: dict[int, Op] | None = getattr(self, "_cache", None)
        if cache is None:
            cache = {op.seq: op for op in self.ops}
            self._cache = cache
        return cache

    def op_by_seq(self, seq: int) -> Op | None:
        return self._by_seq.get(seq)


def build(outputs: Iterable[Any], names: Any = None, second_order: set[int] | None = None, trace: Any = None) -> Graph:
    """Variables and operators of everything that produced ``outputs`` (tensors).

    ``trace`` (a :class:`~chainrule.viz.trace.Trace` that saw the forward) recovers the
    constants of nodes whose saved arrays were already released.
    """
    recorded: dict[int, dict[int, tuple[str, Any]]] = getattr(trace, "constants", None) or {}
    outs = [t for t in outputs if isinstance(t, Tensor)]
    table = resolve(names)
    g = Graph()
    g.recorded_items = dict(getattr(trace, "items", None) or {})
    leaf_ids: dict[int, str] = {}
    const_ids: dict[int, str] = {}
    counter = {"p": 0, "c": 0}

    def new_id(prefix: str) -> str:
        counter[prefix] += 1
        return f"{prefix}{counter[prefix]}"

    def leaf_var(t: Tensor) -> str:
        vid = leaf_ids.get(id(t))
        if vid is None:
            vid = new_id("p")
            leaf_ids[id(t)] = vid
            kind = "param" if type(t).__name__ == "Parameter" else "leaf"
            name = t.name or table.name_of(t) or table.name_of(t._data)
            g.vars[vid] = Var(vid, kind if t.requires_grad else "input", name, t.shape, str(t.dtype), tensor=t)
        return vid

    def const_var(item: Any, memo: tuple[str, Any] | None = None) -> str:
        if memo is not None and type(item) is not np.ndarray:
            kind, value = memo
            if kind == "scalar":
                item = value
            else:
                vid = const_ids.get(value)
                if vid is None:
                    vid = new_id("c")
                    const_ids[value] = vid
                    dtype = getattr(item, "dtype", None)
                    g.vars[vid] = Var(
                        vid, "input", table.name_of_id(value), tuple(item.shape), str(dtype) if dtype else None
                    )
                return vid
        if type(item) is np.ndarray:
            vid = const_ids.get(id(item))
            if vid is None:
                vid = new_id("c")
                const_ids[id(item)] = vid
                value = item.item() if item.ndim == 0 else None
                kind = "const" if item.ndim == 0 and table.name_of(item) is None else "input"
                g.vars[vid] = Var(vid, kind, table.name_of(item), item.shape, str(item.dtype), value=value)
            return vid
        vid = new_id("c")
        if isinstance(item, int | float | complex | np.number):
            g.vars[vid] = Var(vid, "const", None, (), None, value=item)
        else:  # a Meta: the node did not keep this constant (or released it), only its shape
            dtype = getattr(item, "dtype", None)
            name = table.by_shape(tuple(item.shape), dtype) if dtype is not None else None
            g.vars[vid] = Var(vid, "input", name, tuple(item.shape), str(dtype) if dtype is not None else None)
        return vid

    roots = [t.node for t in outs if t.node is not None]
    nodes = toposort(roots) if roots else []
    for node in nodes:
        inputs: list[str] = []
        memo = recorded.get(node.seq, {})
        for i, (parent, item) in enumerate(zip(node.parents, node.kept, strict=True)):
            if type(parent) is Node:
                inputs.append(f"v{parent.seq}")
            elif parent is not None:
                inputs.append(leaf_var(parent))  # type: ignore[arg-type]
            else:
                inputs.append(const_var(item, memo.get(i)))
        vid = f"v{node.seq}"
        g.vars[vid] = Var(
            vid, "value", node.label or table.by_seq.get(node.seq), node.out_shape, str(node.out_dtype), node=node
        )
        op = Op(f"op{node.seq}", node, inputs, vid, second_order=bool(second_order and node.seq in second_order))
        g.ops.append(op)
        for i, v in enumerate(inputs):
            g.consumers.setdefault(v, []).append((op, i))
    for t in outs:
        g.outputs.append(f"v{t.node.seq}" if t.node is not None else leaf_var(t))
    return g


def classify_second_order(outputs: list[Any], trace: Any) -> set[int] | None:
    """Node seqs that a recorded backward created (from a trace), or, without one, every node that
    the first output does not depend on when several outputs are drawn (``draw(J, W1.grad)``)."""
    if trace is not None:
        return set(trace.second_order)
    if len(outputs) < 2 or outputs[0].node is None:
        return None
    first = {n.seq for n in toposort([outputs[0].node])}
    rest = [t.node for t in outputs[1:] if t.node is not None]
    return {n.seq for n in toposort(rest) if n.seq not in first} if rest else None
