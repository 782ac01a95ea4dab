"""Running one derivative rule: the call, and the errors that name the op when it cannot run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from chainrule.core.node import Meta, Node

if TYPE_CHECKING:
    from chainrule.core.primitive import Primitive


def run_vjp(node: Node, i: int, g: Any, out: Any, args: Sequence[Any]) -> Any:
    """Input ``i``'s gradient from the output's gradient ``g``, by ``node``'s primitive's rule.

    Raises, naming the op, when the primitive has no rule for that input or when a rule
    failed because it read an input the primitive does not save.
    """
    prim = node.prim
    params = node.params
    rules = prim.vjps
    rule = rules[i] if i < len(rules) else None
    try:
        if rule is not None:
            return rule(g, out, *args, **params) if params else rule(g, out, *args)
        if prim.vjp_any is None:
            raise NotImplementedError(
                f"{prim.name}: no VJP rule for input {i}, but a gradient reached it (op created at "
                f"{node.origin or 'unknown: run under cr.detect_anomaly() to record it'}); define one with "
                f"{prim.name}.defvjp(...), or pass that input through cr.stop_gradient if it needs no gradient"
            )
        return prim.vjp_any(i, g, out, *args, **params)
    except (TypeError, AttributeError) as exc:
        rule_failed(prim, i, args, exc)
        raise


def rule_failed(prim: Primitive, i: int, args: Sequence[Any], exc: Exception) -> None:
    """If a failed rule read an input its primitive does not save, raise an error saying so, naming the op."""
    unsaved = [k for k, a in enumerate(args) if type(a) is Meta]
    if not unsaved:
        return
    raise TypeError(
        f"{prim.name}: its VJP rule for input {i} failed ({exc}); inputs {unsaved} reach the rule as "
        f"Meta (shape and dtype only) because the primitive does not save them: list the inputs the "
        f"rule reads in save=(...) (and save_output=True if it reads the output)"
    ) from exc
