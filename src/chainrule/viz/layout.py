"""The book's Figure 5.3.1 as a layout: input lower-left, objective upper-right, one node for s.

``draw(..., layout="book")`` draws the forward graph the way the book does:

- the longest path from an input to the objective is a staircase rising to the right (x at
  the lower left, J at the upper right), every other input (W1, W2, y, s) sits below and to
  under the operator it feeds (further ones to the left), so every arrow points right, up, or both;
- the penalty, every operator that reads only parameters and constants (``λ/2 (‖W1‖² +
  ‖W2‖²)``), is one operator fed by W1 and W2 directly;
- unnamed intermediates (``oᵀ``) are not boxes: an arrow goes from operator to operator;
- a box shows the variable's name, as in the book (its shape and dtype are its tooltip).

Positions are computed here and pinned (Graphviz ``neato -n``), so the figure is the same on
every machine. The drawing keeps the ids and classes of the default layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chainrule.viz.model import Graph, Op

DX, DY = 84.0, 44.0  # one step of the staircase (points)
SIDE_DX, SIDE_DY = 0.0, 64.0  # a side input: below the operator it feeds
SPREAD = 70.0  # further side inputs of one operator, further left


@dataclass
class BookGraph:
    """What the book layout draws: visible variables, operators (some collapsed), edges, positions."""

    vars: list[str] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)  # op ids, and "pen<k>" for a collapsed penalty
    collapsed: dict[str, list[Op]] = field(default_factory=dict)  # "pen<k>" -> the operators it stands for
    edges: list[tuple[str, str]] = field(default_factory=list)
    pos: dict[str, tuple[float, float]] = field(default_factory=dict)


def _data_dependent(g: Graph) -> set[str]:
    """Variables that depend on an input (an array that is not a parameter): the data path."""
    dep = {vid for vid, v in g.vars.items() if v.kind == "input" and v.shape != ()}
    for op in g.ops:  # parents first
        if any(i in dep for i in op.inputs):
            dep.add(op.output)
    return dep


def book_graph(g: Graph) -> BookGraph:
    """Collapse the penalty, hide unnamed intermediates, and place everything (see the module)."""
    dep = _data_dependent(g)
    root = g.outputs[0]
    # The penalty: operators off the data path, grouped by the first data-path (or named) variable they reach.
    group_of: dict[int, str] = {}
    collapsed: dict[str, list[Op]] = {}
    for op in reversed(g.ops):  # consumers first
        if op.output in dep:
            continue
        users = g.consumers.get(op.output, [])
        visible_out = g.vars[op.output].name or op.output == root or any(u.output in dep for u, _ in users)
        if visible_out or not users:
            key = f"pen{len(collapsed) + 1}"
            collapsed[key] = [op]
        else:
            key = group_of.get(users[0][0].seq, "")
            if not key or any(group_of.get(u.seq) != key for u, _ in users):
                key = f"pen{len(collapsed) + 1}"
                collapsed[key] = []
            collapsed[key].append(op)
        group_of[op.seq] = key
    single = {k for k, ops in collapsed.items() if len(ops) == 1}  # nothing to collapse: draw the op itself
    node_of_op = {op.seq: (group_of[op.seq] if op.seq in group_of and group_of[op.seq] not in single else op.id)
                  for op in g.ops}  # fmt: skip

    def visible(vid: str) -> bool:
        v = g.vars[vid]
        if vid == root or v.kind in ("param", "leaf", "input") or (v.kind == "value" and v.name):
            return not (v.kind == "input" and v.shape == () and v.dtype is None)
        if v.kind == "const":  # a number: shown unless it only feeds the collapsed penalty
            return any(node_of_op[u.seq] == u.id for u, _ in g.consumers.get(vid, []))
        return False

    bg = BookGraph(collapsed={k: v for k, v in collapsed.items() if k not in single})
    bg.vars = [vid for vid in g.vars if visible(vid) and (g.consumers.get(vid) or vid == root or g.op_of(vid))]
    seen_ops: list[str] = []
    edges: set[tuple[str, str]] = set()
    for op in g.ops:
        me = node_of_op[op.seq]
        if me not in seen_ops:
            seen_ops.append(me)
        for i in op.inputs:
            if visible(i):
                src = i
            else:
                producer = g.op_of(i)
                if producer is None:
                    continue
                src = node_of_op[producer.seq]
            if src != me:
                edges.add((src, me))
        if visible(op.output):
            edges.add((me, op.output))
    bg.ops = seen_ops
    bg.edges = sorted(edges, key=lambda e: (_order(g, e[1], bg), _order(g, e[0], bg)))
    bg.pos = _place(bg, root, dep)
    return bg


def _order(g: Graph, node: str, bg: BookGraph) -> int:
    if node in bg.collapsed:
        return bg.collapsed[node][0].seq
    if node.startswith("op"):
        return int(node[2:]) if node[2:].isdigit() else 0
    v = g.vars.get(node)
    return v.node.seq if v is not None and v.node is not None else -1


def _place(bg: BookGraph, root: str, dep: set[str]) -> dict[str, tuple[float, float]]:
    preds: dict[str, list[str]] = {}
    for a, b in bg.edges:
        preds.setdefault(b, []).append(a)
    depth: dict[str, int] = {}

    def d(n: str) -> int:
        if n not in depth:
            depth[n] = 0  # (no cycles in a graph; guards recursion on a repeated visit)
            depth[n] = 1 + max((d(p) for p in preds.get(n, [])), default=-1)
        return depth[n]

    for n in list(bg.vars) + list(bg.ops):
        d(n)
    # The staircase: back from the objective, always to the deepest input (the data path first).
    chain = [root]
    while preds.get(chain[-1]):
        chain.append(max(preds[chain[-1]], key=lambda p: (d(p), p in dep or p.startswith("op"))))
    chain.reverse()
    pos: dict[str, tuple[float, float]] = {n: (k * DX, k * DY) for k, n in enumerate(chain)}

    def side(n: str) -> None:
        x, y = pos[n]
        k = 0
        for p in sorted(preds.get(n, []), key=lambda p: -d(p)):
            if p in pos:
                continue
            pos[p] = (x - SIDE_DX - SPREAD * k, y - SIDE_DY)
            k += 1
            side(p)

    for n in chain:
        side(n)
    for n in list(bg.vars) + list(bg.ops):  # anything left (a second output): below the rest
        pos.setdefault(n, (len(pos) * 20.0, -2 * SIDE_DY))
    return pos


def pinned(pos: tuple[float, float]) -> dict[str, Any]:
    """Graphviz attributes pinning a node at ``pos`` (points)."""
    return {"pos": f"{pos[0]:.1f},{pos[1]:.1f}!"}
