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
from chainrule.core.node import STATE, Meta, Node, enable_grad, no_grad
from chainrule.core.tensor import Tensor


def toposort(roots: Sequence[Node]) -> list[Node]:
    """Nodes reachable from ``roots``, every node after all of its parents. No recursion."""
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
            g = np.asarray(g, dtype=root.dtype)
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
    grads: dict[int, Any] = {}
    root_nodes: list[Node] = []
    leaf_results: dict[int, Any] = {}
    for root, gradient in zip(roots, gradients, strict=True):
        if not root.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad and has no graph; "
                "create the inputs with requires_grad=True (and not under cr.no_grad())"
            )
        g = _seed(root, gradient, create_graph)
        key = id(root.node) if root.node is not None else id(root)
        grads[key] = _add(grads[key], g) if key in grads else g
        if root.node is not None:
            root_nodes.append(root.node)
        else:
            leaf_results[id(root)] = grads.pop(key)
            if targets is None:
                _accumulate_leaf(root, leaf_results.pop(id(root)))

    order = toposort(root_nodes)
    wanted: dict[int, Tensor] = {}
    if targets is not None:
        for t in targets:
            wanted[id(t.node) if t.node is not None else id(t)] = t
        order = _prune(order, wanted)
    captured: dict[int, Any] = {}

    ctx = enable_grad() if create_graph else no_grad()
    with ctx:
        for node in reversed(order):
            key = id(node)
            g = grads.pop(key, None)
            if key in wanted:
                captured[key] = g
            if g is None:
                continue
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
                    grads[pkey] = _add(grads[pkey], gi) if pkey in grads else gi
                else:
                    assert isinstance(parent, Tensor)
                    if targets is None:
                        _accumulate_leaf(parent, gi)
                    else:
                        pkey = id(parent)
                        leaf_results[pkey] = _add(leaf_results[pkey], gi) if pkey in leaf_results else gi
            if not retain_graph:
                node.release()
            if STATE.hooks:
                for h in STATE.hooks:
                    h.backward(node)

    if targets is None:
        return None
    results: list[Any] = []
    for t in targets:
        key = id(t.node) if t.node is not None else id(t)
        g = captured.get(key) if t.node is not None else leaf_results.get(key)
        if g is None:
            g = np.zeros(t.shape, dtype=t.dtype)
        if not isinstance(g, Tensor):
            g = Tensor._make(np.asarray(g), None)
        results.append(g)
    return results


def _prune(order: list[Node], wanted: dict[int, Tensor]) -> list[Node]:
    """Keep only nodes from which a target can be reached (order: parents first)."""
    leads: set[int] = set()
    kept: list[Node] = []
    for node in order:
        if id(node) in wanted or any(p is not None and (id(p) in leads or id(p) in wanted) for p in node.parents):
            leads.add(id(node))
            kept.append(node)
    return kept


def _add(a: Any, b: Any) -> Any:
    return a + b


def _node_vjps(node: Node, g: Any, create_graph: bool) -> list[tuple[int, Any]]:
    prim = node.prim
    saved = node.saved
    args: list[Any] = []
    for i, shape in enumerate(node.shapes):
        item = saved[i] if saved is not None else None
        if item is None:
            args.append(Meta(shape, node.dtypes[i]))
        elif create_graph:
            args.append(item)
        else:
            args.append(item.data if isinstance(item, Tensor) else item)
    out: Any = node.saved_output
    if out is not None and create_graph:
        out = Tensor._make(out, node)
    if create_graph and not isinstance(g, Tensor):
        g = Tensor._make(np.asarray(g), None)
    results: list[tuple[int, Any]] = []
    for i, parent in enumerate(node.parents):
        if parent is None:
            continue
        if prim.vjp_any is not None:
            gi = prim.vjp_any(i, g, out, *args, **node.params)
        else:
            rule = prim.vjps[i] if i < len(prim.vjps) else None
            if rule is None:
                continue
            gi = rule(g, out, *args, **node.params)
        if gi is None:
            continue
        shape = node.shapes[i]
        if gi.shape != shape:
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


def _accumulate_leaf(leaf: Tensor, g: Any) -> None:
    if isinstance(g, Tensor):
        leaf.grad = g if leaf.grad is None else leaf.grad + g
        return
    g = np.asarray(g)
    if leaf.grad is None:
        # own the buffer so later in-place accumulation cannot alias another gradient
        leaf.grad = Tensor._make(g if g.flags.writeable and g.base is None else g.copy(), None)
    else:
        leaf.grad = Tensor._make(leaf.grad.data + g, None)
