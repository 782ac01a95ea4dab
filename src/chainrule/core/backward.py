"""Backpropagation: the chain rule applied node by node, latest-created node first.

Gradients are keyed by node (or by leaf tensor). Each node's saved arrays are released
as soon as its rules have run, unless ``retain_graph``. With ``create_graph`` the rules
run on tensors with recording on, so the gradient is itself a differentiable graph.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule.core import tensor as tensor_module
from chainrule.core.errors import AnomalyError, GraphReleasedError, ShapeError
from chainrule.core.node import THREAD, Meta, Node
from chainrule.core.tensor import Tensor


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


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    if len(shape) > len(target):
        return False
    return all(n in (1, t) for n, t in zip(shape, target[len(target) - len(shape) :], strict=True))


def _seed(root: Tensor, gradient: Any, create_graph: bool, owned: set[int]) -> Any:
    """The gradient backward starts from: ones for a scalar, else the caller's ``gradient``."""
    data = root.data
    if gradient is None:
        if data.size != 1:
            raise ShapeError(
                f"backward: output has shape {data.shape}; a non-scalar output needs an explicit "
                f"`gradient` of the same shape (e.g. out.backward(cr.ones_like(out)))"
            )
        g: Any = np.ones(data.shape, dtype=data.dtype)
    else:
        g = gradient.data if isinstance(gradient, Tensor) and not create_graph else gradient
        if not isinstance(g, Tensor) and (type(g) is not np.ndarray or g.dtype != data.dtype):
            g = np.array(g, dtype=data.dtype)
        if g.shape != data.shape:
            raise ShapeError(f"backward: `gradient` must have the output's shape {data.shape}, got {g.shape}")
        owned.add(id(g) if type(g) is np.ndarray else id(g.data))  # the caller's: copied before it is a .grad
    if create_graph and not isinstance(g, Tensor):
        return Tensor._make(g, None)
    return g


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
    state = THREAD.state
    # cr.compile captures the backward pass as primitives, so it is recorded. Under forward
    # mode the rules must run on tensors that carry their tangents, recorded or not.
    record = create_graph or state.tracer is not None
    create_graph = record or bool(state.forward)  # from here: the rules run on tensors
    grads: dict[Node, Any] = {}  # gradient flowing into each pending node's output
    ready: list[tuple[int, Node]] = []  # heap of (-seq, node)
    owned: set[int] = set()  # ids of arrays that must be copied before becoming a leaf's .grad
    leaf_grads: dict[int, Any] | None = None if targets is None else {}  # with targets: what reaches leaves
    for root, gradient in zip(roots, gradients, strict=True):
        if not root.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad and has no graph; "
                "create the inputs with requires_grad=True (and not under cr.no_grad())"
            )
        g = _seed(root, gradient, create_graph, owned)
        node = root.node
        if node is None:
            _to_leaf(root, g, owned, leaf_grads)
        elif node in grads:
            grads[node] = grads[node] + g
        else:
            grads[node] = g
            heapq.heappush(ready, (-node.seq, node))

    leads: set[Node] | None = None
    captured: dict[Node, Any] = {}  # with targets: the gradient reaching each target node
    if targets is not None:
        wanted = {t if t.node is None else t.node for t in targets}
        leads = _leading(list(grads), wanted)

    previous_mode = state.grad_enabled
    state.grad_enabled = record  # record the backward pass only when asked to
    try:
        while ready:
            node = heapq.heappop(ready)[1]
            g = grads.pop(node)
            if leads is not None:
                captured[node] = g
                if node not in leads:
                    continue  # no target below this node: read its gradient, do not run it
            prim = node.prim
            if node.released and (prim.save or prim.save_output):
                raise GraphReleasedError(
                    f"backward: reached node '{prim.name}' (output {node.out_shape}) whose saved "
                    "arrays were already freed by an earlier backward; pass retain_graph=True to the "
                    "first backward if you need to backpropagate through the graph twice"
                )
            # The chain rule at one node: each input's gradient from the output's, by its rule.
            inputs = node.kept
            if create_graph:
                args, out, g = _reconnect(node, g)
            else:
                args, out = inputs, node.output
            params = node.params
            rules = prim.vjps
            for i, parent in enumerate(node.parents):
                if parent is None:
                    continue
                rule = rules[i] if i < len(rules) else None
                if rule is None:  # a variadic rule, or a missing one (which raises, naming the op)
                    gi = _apply_rule(prim, i, g, out, args, params, node)
                else:
                    try:
                        gi = rule(g, out, *args, **params) if params else rule(g, out, *args)
                    except (TypeError, AttributeError) as exc:
                        _rule_failed(prim, i, args, exc)
                        raise
                if gi is None:
                    continue
                expected = inputs[i]
                if gi.shape != expected.shape or gi.dtype != expected.dtype:
                    gi = _conform(gi, node, i)
                if state.anomaly:
                    _check_finite(gi, node, i)
                if type(parent) is not Node:
                    _to_leaf(parent, gi, owned, leaf_grads)  # type: ignore[arg-type]
                elif parent in grads:
                    grads[parent] = grads[parent] + gi
                else:
                    grads[parent] = gi
                    heapq.heappush(ready, (-parent.seq, parent))
            if not retain_graph:
                node.release()
            if state.hooks:
                for h in state.hooks:
                    h.backward(node)
    finally:
        state.grad_enabled = previous_mode

    if targets is None or leaf_grads is None:
        return None
    results: list[Any] = []
    for t in targets:
        g = captured.get(t.node) if t.node is not None else leaf_grads.get(id(t))
        if g is None:
            g = np.zeros(t.shape, dtype=t.dtype)
        if not isinstance(g, Tensor):
            g = Tensor._make(np.asarray(g), None)
        results.append(g)
    return results


def _apply_rule(prim: Any, i: int, g: Any, out: Any, args: Sequence[Any], params: Any, node: Node) -> Any:
    """Input ``i``'s gradient by the primitive's variadic rule; raises, naming the op, if it has none."""
    if prim.vjp_any is None:
        raise NotImplementedError(
            f"{prim.name}: no VJP rule for input {i}, but a gradient reached it (op created at "
            f"{node.origin or 'unknown: run under cr.detect_anomaly() to record it'}); define one with "
            f"{prim.name}.defvjp(...), or pass that input through cr.stop_gradient if it needs no gradient"
        )
    try:
        return prim.vjp_any(i, g, out, *args, **params)
    except (TypeError, AttributeError) as exc:
        _rule_failed(prim, i, args, exc)
        raise


def _rule_failed(prim: Any, i: int, args: Sequence[Any], exc: Exception) -> None:
    """If a failed rule read an input its primitive does not save, raise an error saying so, naming the op."""
    unsaved = [k for k, a in enumerate(args) if type(a) is Meta]
    if not unsaved:
        return
    raise TypeError(
        f"{prim.name}: its VJP rule for input {i} failed ({exc}); inputs {unsaved} reach the rule as "
        f"Meta (shape and dtype only) because the primitive does not save them: list the inputs the "
        f"rule reads in save=(...) (and save_output=True if it reads the output)"
    ) from exc


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


def _plus(total: Any, g: Any) -> Any:
    return g if total is None else total + g


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


def _conform(gi: Any, node: Node, i: int) -> Any:
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
        gi = tensor_module.engine_ops().sum_to(gi, shape)
    if gi.dtype != expected.dtype:
        gi = gi.astype(expected.dtype)
    return gi


def _check_finite(gi: Any, node: Node, i: int) -> None:
    data = gi.data if isinstance(gi, Tensor) else np.asarray(gi)
    if not np.isfinite(data).all():
        raise AnomalyError(
            f"{node.prim.name} produced NaN/Inf in backward (gradient of input {i}); "
            f"the op was created at {node.origin or '<unknown>'}"
        )


def _to_leaf(leaf: Tensor, g: Any, owned: set[int], leaf_grads: dict[int, Any] | None) -> None:
    """Hand ``g`` to a leaf: into its ``.grad``, or (with targets) into ``leaf_grads``."""
    if leaf_grads is not None:
        leaf_grads[id(leaf)] = _plus(leaf_grads.get(id(leaf)), g)
    elif THREAD.state.tracer is not None:
        THREAD.state.tracer.leaf_gradient(leaf, g)
    elif isinstance(g, Tensor):
        leaf.grad = g if leaf.grad is None else leaf.grad + g
    elif leaf.grad is None:
        # Take the computed array as .grad without copying, unless it is read-only (a broadcast
        # view), the caller's own array, or already another leaf's .grad (``add`` passes one
        # array to both inputs).
        if type(g) is not np.ndarray or not g.flags.writeable or id(g) in owned:
            g = np.array(g)
        owned.add(id(g))
        leaf.grad = Tensor._make(g, None)
    else:
        leaf.grad = Tensor._make(leaf.grad.data + g, None)
