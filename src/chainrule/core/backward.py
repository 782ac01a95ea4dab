"""Backpropagation: the chain rule applied node by node, latest-created node first.

:func:`backward` seeds the gradient of the roots, then repeatedly takes the latest-created
node a gradient has reached, runs its primitive's rule for each input (the chain rule at one
node), sums each rule's result back to its input's shape, and passes it on to the node that
made that input, or into the ``.grad`` of a leaf. Each node's saved arrays are released as
soon as its rules have run, unless ``retain_graph``. With ``create_graph`` the rules run on
tensors with recording on, so the gradient is itself a differentiable graph. Instruments
watch or replace the rules through the installed :class:`~chainrule.core.interpret.Interpreter`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from heapq import heappop, heappush
from sys import getrefcount as _refs
from typing import Any

import numpy as np

from chainrule.core.errors import GraphReleasedError, ShapeError
from chainrule.core.node import _GC, Node
from chainrule.core.rules import rule_failed, run_vjp
from chainrule.core.state import THREAD, State
from chainrule.core.tensor import UP, Tensor

# Gradients of at least this size are summed in place into an array the walk owns: a fresh array
# that large is mapped and page-faulted anew by glibc's allocator (its mmap threshold, 128 KiB),
# a smaller one reuses freed memory at no such cost, so checking ownership would only slow it.
IN_PLACE_BYTES = 1 << 17
# Ownership is read from reference counts, which count every reference up to CPython 3.13; from
# 3.14 the interpreter may skip counting some references (sys.getrefcount can be lower), so a
# shared array could look owned: there gradients are never summed in place (slower, never wrong).
COUNTED_REFERENCES = sys.implementation.name == "cpython" and sys.version_info < (3, 14)


def backward(
    roots: Sequence[Tensor],
    gradients: Sequence[Any],
    retain_graph: bool = False,
    create_graph: bool = False,
    targets: Sequence[Tensor] | None = None,
) -> list[Any] | None:
    """Backpropagate from ``roots``.

    Without ``targets``, gradients accumulate into ``.grad`` of leaves that require grad.
    With ``targets`` (leaf or intermediate tensors), their gradients are returned instead
    and no ``.grad`` is touched; only the part of the graph that leads to them is walked.

    Nodes are visited latest-created first (a heap keyed on ``Node.seq``), which puts each
    node after everything that consumed its output: one pass, no separate sort, and only
    nodes that some gradient actually reaches are touched.
    """
    walk = _Walk(THREAD.state, create_graph, targets)
    for root, gradient in zip(roots, gradients, strict=True):
        walk.start(root, gradient)
    walk.keep_to(targets)
    ready, grads, leads, visit = walk.ready, walk.grads, walk.leads, walk.visit
    with walk.running():
        while ready:
            node = heappop(ready)[1]
            g = grads.pop(node)
            if leads is not None and walk.reads_only(node, g):
                continue  # a target with no other target below it: its gradient is read, it is not run
            visit(node, g, retain_graph)
    return walk.results(targets)


class _Walk:
    """One backward pass: the gradient pending at each node, the heap of nodes, where leaves' go."""

    __slots__ = (
        "state",
        "top",
        "vjp",
        "record",
        "on_tensors",
        "grads",
        "ready",
        "owned",
        "mine",
        "leaf_grads",
        "leads",
        "captured",
    )

    def __init__(self, state: State, create_graph: bool, targets: Sequence[Tensor] | None) -> None:
        self.state = state
        self.top = state.top
        self.vjp = run_vjp if state.top is None else state.top.vjp  # the chain rule's one step at a node
        # compile's capture records the backward as primitives. Under forward mode the rules
        # must run on tensors that carry their tangents, recorded or not.
        self.record = create_graph or state.capturing
        self.on_tensors = self.record or bool(state.forward)
        self.grads: dict[Node, Any] = {}  # gradient flowing into each pending node's output
        self.ready: list[tuple[int, Node]] = []  # heap of (-seq, node)
        self.owned: set[int] = set()  # ids of arrays that must be copied before becoming a leaf's .grad
        # ids of the leaves' .grad arrays that only this walk holds (a copy, a rule's fresh result, a
        # sum it made): further gradients of that leaf are added into them in place. A gradient
        # pending at a node needs no list: ``accumulate`` reads who holds it from its reference count.
        self.mine: set[int] = set()
        self.leaf_grads: dict[int, Any] | None = None if targets is None else {}  # with targets
        self.leads: set[Node] | None = None  # with targets: the nodes with a target below them
        self.captured: dict[Node, Any] = {}  # with targets: the gradient reaching each target node

    # --- the walk -------------------------------------------------------------------------
    def start(self, root: Tensor, gradient: Any) -> None:
        if not root.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad and has no graph; "
                "create the inputs with requires_grad=True (and not under cr.no_grad())"
            )
        g = self.seed(root, gradient)
        if root.node is None:
            self.to_leaf(root, g)
        else:
            self.send(root.node, g)

    def visit(self, node: Node, g: Any, retain_graph: bool) -> None:
        """The chain rule at one node: each input's gradient from the output's, by its rule."""
        if node.released and (node.prim.save or node.prim.save_output):
            _released(node)
        if self.on_tensors:
            args, out, g = _reconnect(node, g)
        else:
            args, out = node.kept, node.output
        grads, params, top = self.grads, node.params, self.top
        rules = node.prim.vjps if top is None else ()  # an interpreter runs every rule itself
        for i, parent in enumerate(node.parents):
            if parent is None:
                continue
            rule = rules[i] if i < len(rules) else None
            if rule is not None:  # input i's own rule, called here: the common case
                try:
                    gi = rule(g, out, *args, **params) if params else rule(g, out, *args)
                except (TypeError, AttributeError) as exc:
                    rule_failed(node.prim, i, args, exc)
                    raise
            else:  # a variadic rule, a missing one (which raises, naming the op), or the interpreter's
                gi = self.vjp(node, i, g, out, args)
            if gi is None:
                continue
            expected = node.kept[i]
            if gi.shape != expected.shape or (gi.dtype is not expected.dtype and gi.dtype != expected.dtype):
                gi = self.conform(gi, node, i)
            if type(parent) is not Node:
                self.to_leaf(parent, gi)  # type: ignore[arg-type]
            elif parent in grads:
                grads[parent] = self.accumulate(grads[parent], gi)
            else:  # the first gradient to reach that node
                grads[parent] = gi
                heappush(self.ready, (-parent.seq, parent))
        if not retain_graph:
            node.release()
        if top is not None:
            top.visited(node)

    def send(self, node: Node, gi: Any) -> None:
        """Pass a gradient to the node that made a value (as ``visit`` does, for the roots)."""
        if node in self.grads:
            self.grads[node] = self.accumulate(self.grads[node], gi)
        else:
            self.grads[node] = gi
            heappush(self.ready, (-node.seq, node))

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Record the backward pass only when asked to; mark this thread as inside a backward."""
        state = self.state
        previous = state.grad_enabled
        state.grad_enabled = self.record
        state.backward_depth += 1
        try:
            yield
        finally:
            state.grad_enabled = previous
            state.backward_depth -= 1
            if _GC.frozen and state.backward_depth == 0:
                _GC.graph_consumed()  # the outermost backward ended: the GC sees every object again

    # --- targets --------------------------------------------------------------------------
    def keep_to(self, targets: Sequence[Tensor] | None) -> None:
        if targets is not None:
            wanted = {t if t.node is None else t.node for t in targets}
            self.leads = _leading(list(self.grads), wanted)

    def reads_only(self, node: Node, g: Any) -> bool:
        assert self.leads is not None
        self.captured[node] = g
        return node not in self.leads

    def results(self, targets: Sequence[Tensor] | None) -> list[Any] | None:
        if targets is None or self.leaf_grads is None:
            return None
        results: list[Any] = []
        for t in targets:
            g = self.captured.get(t.node) if t.node is not None else self.leaf_grads.get(id(t))
            if g is None:
                g = np.zeros(t.shape, dtype=t.dtype)
            if not isinstance(g, Tensor):
                g = Tensor._make(np.asarray(g), None)
            results.append(g)
        return results

    # --- arrays ---------------------------------------------------------------------------
    def seed(self, root: Tensor, gradient: Any) -> Any:
        """The gradient backward starts from: ones for a scalar, else the caller's ``gradient``."""
        data = root._data
        if gradient is None:
            if data.size != 1:
                raise ShapeError(
                    f"backward: output has shape {data.shape}; a non-scalar output needs an explicit "
                    f"`gradient` of the same shape (e.g. out.backward(cr.ones_like(out)))"
                )
            g: Any = np.ones(data.shape, data.dtype) if self.top is None else self.top.ones(data.shape, data.dtype)
        else:
            g = gradient._data if isinstance(gradient, Tensor) and not self.on_tensors else gradient
            if not isinstance(g, Tensor) and (type(g) is not np.ndarray or g.dtype != data.dtype):
                g = np.array(g, dtype=data.dtype)
            if g.shape != data.shape:
                raise ShapeError(f"backward: `gradient` must have the output's shape {data.shape}, got {g.shape}")
            self.owned.add(id(g) if type(g) is np.ndarray else id(g._data))  # the caller's: copied before a .grad
        if self.on_tensors and not isinstance(g, Tensor):
            return Tensor._make(g, None)
        return g

    def add(self, a: Any, b: Any) -> Any:
        return a + b if self.top is None or isinstance(a, Tensor) else self.top.add(a, b)

    def accumulate(self, total: Any, g: Any) -> Any:
        """``total + g``: two gradients of one value, written into ``total`` if only this walk holds it.

        So a value reached by k gradients costs no new array after the first (the rules' own
        results are reused), where ``total + g`` makes k - 1. Same numbers: ``total += g`` rounds
        exactly as ``total + g``. ``total`` must be held only by ``grads`` and this parameter: not a
        view, not the caller's seed, not a leaf's ``.grad``, not passed on to a second input.
        """
        if self.top is None and _sole(total):
            np.add(total, g, out=total)
            return total
        return self.add(total, g)

    def conform(self, gi: Any, node: Node, i: int) -> Any:
        """A rule's gradient summed back over broadcast axes and cast to input ``i``'s shape and dtype."""
        expected = node.kept[i]
        shape = expected.shape
        if gi.shape != shape:
            if not _broadcasts_to(shape, gi.shape):
                where = node.origin or "unknown: run under cr.detect_anomaly() to record it"
                raise ShapeError(
                    f"{node.prim.name}: the VJP rule for input {i} returned shape {gi.shape}, which cannot be "
                    f"summed back to the input's shape {shape} (op created at {where})"
                )
            gi = UP.ops.sum_to(gi, shape)
        if gi.dtype != expected.dtype:
            if isinstance(gi, Tensor) or self.top is None:
                gi = gi.astype(expected.dtype)
            else:
                gi = self.top.cast(gi, expected.dtype)
        return gi

    def to_leaf(self, leaf: Tensor, g: Any) -> None:
        """Hand ``g`` to a leaf: into its ``.grad``, or (with targets) into ``leaf_grads``.

        A ``.grad`` this walk made (a copy, or a rule's result that only ``visit`` holds) is
        listed in ``mine``: later gradients of that leaf are added into it in place.
        """
        if self.leaf_grads is not None:
            previous = self.leaf_grads.get(id(leaf))
            self.leaf_grads[id(leaf)] = g if previous is None else previous + g
        elif self.top is not None and self.top.to_leaf(leaf, g):
            return
        elif isinstance(g, Tensor):
            leaf.grad = g if leaf.grad is None else leaf.grad + g
        elif leaf.grad is None:
            # Take the computed array as .grad without copying, unless it is read-only (a broadcast
            # view), the caller's own array, or already another leaf's .grad (``add`` passes one
            # array to both inputs).
            if type(g) is not np.ndarray or not g.flags.writeable or id(g) in self.owned:
                g = np.array(g) if self.top is None else self.top.copy(g)
                fresh = self.top is None
            else:  # a rule's result that only visit's variable and this parameter hold
                fresh = self.top is None and _sole(g)
            self.owned.add(id(g))
            if fresh:
                self.mine.add(id(g))
            leaf.grad = Tensor._make(g, None)
        elif id(leaf.grad._data) in self.mine:
            np.add(leaf.grad._data, g, out=leaf.grad._data)  # a .grad this walk made: added into in place
        else:
            total = self.add(leaf.grad._data, g)
            if self.top is None and type(total) is np.ndarray:
                self.mine.add(id(total))
                self.owned.add(id(total))
            leaf.grad = Tensor._make(total, None)


def _sole(a: Any) -> bool:
    """Whether ``a`` may be summed into in place: a large writable array of its own memory that only
    two names of the walk hold (where it waits and the parameter it came in by), as reference counts
    tell (those two, this parameter and getrefcount's argument)."""
    return (
        COUNTED_REFERENCES
        and type(a) is np.ndarray
        and a.nbytes >= IN_PLACE_BYTES
        and a.base is None
        and a.flags.writeable
        and _refs(a) <= 4
    )


def _released(node: Node) -> None:
    raise GraphReleasedError(
        f"backward: reached node '{node.prim.name}' (output {node.out_shape}) whose saved "
        "arrays were already freed by an earlier backward; pass retain_graph=True to the "
        "first backward if you need to backpropagate through the graph twice"
    )


def _reconnect(node: Node, g: Any) -> tuple[Sequence[Any], Any, Tensor]:
    """For a recorded backward: the node's saved arrays as tensors joined to where they came from.

    Under forward mode the node kept its input tensors as given, tangents included.
    """
    g = g if isinstance(g, Tensor) else Tensor._make(np.asarray(g), None)
    if node.forward is not None:
        given, out_tangents = node.forward
        full = [a if type(item) is np.ndarray else item for a, item in zip(given, node.kept, strict=True)]
        out = None if node.output is None else Tensor._make(node.output, node)
        if out is not None:
            out.tangents = out_tangents
        return full, out, g
    args: list[Any] = []
    for item, parent in zip(node.kept, node.parents, strict=True):
        if type(item) is not np.ndarray:
            args.append(item)
        elif type(parent) is Node or parent is None:
            args.append(Tensor._make(item, parent))
        else:
            args.append(parent)  # a leaf: the tensor itself
    out = None if node.output is None else Tensor._make(node.output, node)
    return args, out, g


def toposort(roots: Sequence[Node]) -> list[Node]:
    """Nodes reachable from ``roots``, every node after all of its parents. No recursion."""
    if len(roots) == 1 and not any(type(p) is Node for p in roots[0].parents):
        return [roots[0]]  # a single operation on leaves: nothing to sort
    order: list[Node] = []
    visited: set[Node] = set()
    stack: list[tuple[Node, bool]] = [(r, False) for r in reversed(roots)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in visited:
            continue
        visited.add(node)
        stack.append((node, True))
        for parent in reversed(node.parents):
            if type(parent) is Node and parent not in visited:
                stack.append((parent, False))
    return order


def _leading(roots: list[Node], wanted: set[Any]) -> set[Node]:
    """Nodes with a target somewhere below them: the only ones whose rules must run.

    A target with no other target below it is visited just to read its gradient, and
    keeps its saved arrays for a later backward.
    """
    leads: set[Node] = set()
    for node in toposort(roots):  # parents come first
        for p in node.parents:
            if p is not None and (p in leads or p in wanted):
                leads.add(node)
                break
    return leads


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    if len(shape) > len(target):
        return False
    return all(n in (1, t) for n, t in zip(shape, target[len(target) - len(shape) :], strict=True))
