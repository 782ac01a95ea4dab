"""Reverse-mode sweep: an iterative topological sort, then the chain rule node by node.

Gradients are keyed by node (or by leaf tensor). Each node's saved arrays are released
as soon as its rules have run, unless ``retain_graph``. With ``create_graph`` the rules
run on tensors with recording on, so the gradient is itself a differentiable graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule.core.errors import AnomalyError, GraphReleasedError, ShapeError
from chainrule.core.node import STATE, Meta, Node
from chainrule.core.tensor import Tensor


def toposort(roots: Sequence[Node]) -> list[Node]:
    """Nodes reachable from ``roots``, every node after all of its parents. No recursion."""
    if len(roots) == 1 and not any(type(p) is Node for p in roots[0].parents):
        return [roots[0]]  # a single operation on leaves: nothing to sort
    order: list[Node] = []
    visited: set[int] = set()
    stack: list[tuple[Node, bool]] = [(r, False) for r in reversed(roots)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for parent in reversed(node.parents):
            if type(parent) is Node and id(parent) not in visited:
                stack.append((parent, False))
    return order


def sum_to(x: Any, shape: tuple[int, ...]) -> Any:
    """Sum a broadcast gradient back to ``shape``: the one place broadcasting is undone."""
    from chainrule import ops

    if x.shape == shape:
        return x
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and x.shape[i + lead] != 1)
    if axes:
        x = ops.sum(x, axis=axes, keepdims=True)
    if x.shape != shape:
        x = ops.reshape(x, shape)
    return x


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    if len(shape) > len(target):
        return False
    return all(n in (1, t) for n, t in zip(shape, target[len(target) - len(shape) :], strict=True))


def _seed(root: Tensor, gradient: Any, create_graph: bool) -> Any:
    if gradient is None:
        if root.data.size != 1:
            raise ShapeError(
                f"backward: output has shape {root.shape}; a non-scalar output needs an explicit "
                f"`gradient` of the same shape (e.g. out.backward(cr.ones_like(out)))"
            )
        g: Any = np.ones(root.shape, dtype=root.dtype)
    else:
        g = gradient
        gshape = g.shape if hasattr(g, "shape") else np.shape(g)
        if tuple(gshape) != root.shape:
            raise ShapeError(f"backward: `gradient` must have the output's shape {root.shape}, got {tuple(gshape)}")
        if not isinstance(g, Tensor):
            g = np.array(g, dtype=root.dtype)  # a copy: the caller's array never becomes a .grad
    if create_graph:
        return g if isinstance(g, Tensor) else Tensor._make(g, None)
    return g.data if isinstance(g, Tensor) else g


def backward(
    roots: Sequence[Tensor],
    gradients: Sequence[Any],
    *,
    retain_graph: bool = False,
    create_graph: bool = False,
    targets: Sequence[Tensor] | None = None,
) -> list[Any] | None:
    """Backpropagate from ``roots``.

    Without ``targets``, gradients accumulate into ``.grad`` of leaves that require grad.
    With ``targets`` (leaf or intermediate tensors), their gradients are returned instead
    and no ``.grad`` is touched; only the part of the graph that leads to them is walked.
    """
    tracer = STATE.tracer
    if tracer is not None:
        create_graph = True  # cr.compile captures the backward pass as primitives
    grads: dict[int, Any] = {}
    root_nodes: list[Node] = []
    leaf_grads: dict[int, Any] = {}  # with targets: gradients reaching leaves
    for root, gradient in zip(roots, gradients, strict=True):
        if not root.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad and has no graph; "
                "create the inputs with requires_grad=True (and not under cr.no_grad())"
            )
        g = _seed(root, gradient, create_graph)
        if root.node is None:
            if targets is None:
                _accumulate_leaf(root, g, set())
            else:
                leaf_grads[id(root)] = _plus(leaf_grads.get(id(root)), g)
            continue
        key = id(root.node)
        grads[key] = _plus(grads.get(key), g)
        root_nodes.append(root.node)

    order = toposort(root_nodes)
    wanted: set[int] = set()
    leads: set[int] = set()
    if targets is not None:
        wanted = {id(t.node) if t.node is not None else id(t) for t in targets}
        order, leads = _prune(order, wanted)
    captured: dict[int, Any] = {}
    owned: set[int] = set()  # gradient arrays already handed to a leaf in this pass

    previous_mode = STATE.grad_enabled
    STATE.grad_enabled = create_graph  # record the backward pass only when asked to
    try:
        for node in reversed(order):
            key = id(node)
            g = grads.pop(key, None)
            if key in wanted:
                captured[key] = g
            if g is None or (targets is not None and key not in leads):
                continue  # nothing flows here, or a target with no other target below it
            if node.released and (node.prim.save or node.prim.save_output):
                raise GraphReleasedError(
                    f"backward: reached node '{node.prim.name}' (output {node.out_shape}) whose saved "
                    "arrays were already freed by an earlier backward; pass retain_graph=True to the "
                    "first backward if you need to backpropagate through the graph twice"
                )
            for i, gi in _node_vjps(node, g, create_graph):
                parent = node.parents[i]
                if type(parent) is Node:
                    pkey = id(parent)
                    grads[pkey] = _plus(grads.get(pkey), gi)
                elif targets is None:
                    _accumulate_leaf(parent, gi, owned)  # type: ignore[arg-type]
                else:
                    leaf_grads[id(parent)] = _plus(leaf_grads.get(id(parent)), gi)
            if not retain_graph:
                node.release()
            if STATE.hooks:
                for h in STATE.hooks:
                    h.backward(node)
    finally:
        STATE.grad_enabled = previous_mode

    if targets is None:
        return None
    results: list[Any] = []
    for t in targets:
        g = captured.get(id(t.node)) if t.node is not None else leaf_grads.get(id(t))
        if g is None:
            g = np.zeros(t.shape, dtype=t.dtype)
        if not isinstance(g, Tensor):
            g = Tensor._make(np.asarray(g), None)
        results.append(g)
    return results


def _prune(order: list[Node], wanted: set[int]) -> tuple[list[Node], set[int]]:
    """Nodes to visit for gradients w.r.t. ``wanted``, and those whose rules must run.

    A node's rules run only if a target lies below it; a target with none below is
    visited just to read its gradient, and keeps its saved arrays for a later backward.
    """
    leads: set[int] = set()
    kept: list[Node] = []
    for node in order:  # parents come first
        if any(p is not None and (id(p) in leads or id(p) in wanted) for p in node.parents):
            leads.add(id(node))
            kept.append(node)
        elif id(node) in wanted:
            kept.append(node)
    return kept, leads


def _plus(total: Any, g: Any) -> Any:
    return g if total is None else total + g


def _node_vjps(node: Node, g: Any, create_graph: bool) -> list[tuple[int, Any]]:
    """Apply the node's rules: the gradient for each input that has a parent."""
    prim = node.prim
    saved = node.saved
    if saved is None:
        args: list[Any] = [Meta(shape, dtype) for shape, dtype in zip(node.shapes, node.dtypes, strict=True)]
    elif create_graph:
        args = [Meta(node.shapes[i], node.dtypes[i]) if item is None else item for i, item in enumerate(saved)]
    else:
        args = [
            Meta(node.shapes[i], node.dtypes[i]) if item is None else item.data if type(item) is Tensor else item
            for i, item in enumerate(saved)
        ]
    out: Any = node.saved_output
    if create_graph:
        if out is not None:
            out = Tensor._make(out, node)  # reconnect the saved output to this node
        if not isinstance(g, Tensor):
            g = Tensor._make(np.asarray(g), None)
    results: list[tuple[int, Any]] = []
    params = node.params
    vjps = prim.vjps
    for i, parent in enumerate(node.parents):
        if parent is None:
            continue
        if prim.vjp_any is not None:
            gi = prim.vjp_any(i, g, out, *args, **params)
        else:
            rule = vjps[i] if i < len(vjps) else None
            if rule is None:
                continue
            gi = rule(g, out, *args, **params)
        if gi is None:
            continue
        shape = node.shapes[i]
        if gi.shape != shape:
            if not _broadcasts_to(shape, gi.shape):
                where = node.origin or "unknown: run under cr.detect_anomaly() to record it"
                raise ShapeError(
                    f"{prim.name}: the VJP rule for input {i} returned shape {gi.shape}, which cannot be "
                    f"summed back to the input's shape {shape} (op created at {where})"
                )
            gi = sum_to(gi, shape)
        if gi.dtype != node.dtypes[i]:
            gi = gi.astype(node.dtypes[i])
        if STATE.anomaly:
            data = gi.data if isinstance(gi, Tensor) else np.asarray(gi)
            if not np.isfinite(data).all():
                raise AnomalyError(
                    f"{prim.name} produced NaN/Inf in backward (gradient of input {i}); "
                    f"the op was created at {node.origin or '<unknown>'}"
                )
        results.append((i, gi))
    return results


def _accumulate_leaf(leaf: Tensor, g: Any, owned: set[int]) -> None:
    if STATE.tracer is not None:
        STATE.tracer.leaf_gradient(leaf, g)
        return
    if isinstance(g, Tensor):
        leaf.grad = g if leaf.grad is None else leaf.grad + g
    elif leaf.grad is None:
        # Take the computed array as .grad without copying, unless it is read-only (a broadcast
        # view) or already another leaf's .grad (``add`` passes one array to both inputs).
        if type(g) is not np.ndarray or not g.flags.writeable or id(g) in owned:
            g = np.array(g)
        owned.add(id(g))
        leaf.grad = Tensor._make(g, None)
    else:
        leaf.grad = Tensor._make(leaf.grad.data + g, None)
