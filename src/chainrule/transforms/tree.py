"""Pytrees: nested dicts, lists and tuples of arrays, as the transforms accept and return them.

A tree is flattened into its leaves (in a fixed order: dict keys sorted, as JAX does) and
a structure that rebuilds it. ``None`` is an empty subtree. Anything else is a leaf.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class TreeDef:
    """The structure of a tree without its leaves; ``unflatten`` puts new leaves back."""

    __slots__ = ("kind", "meta", "children")

    def __init__(self, kind: str, meta: Any = None, children: tuple[TreeDef, ...] = ()) -> None:
        self.kind = kind  # "leaf" | "none" | "dict" | "list" | "tuple" | "namedtuple"
        self.meta = meta  # dict keys, or the namedtuple's class
        self.children = children

    @property
    def num_leaves(self) -> int:
        """How many leaves a tree of this structure holds."""
        if self.kind == "leaf":
            return 1
        return sum(c.num_leaves for c in self.children)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TreeDef) and (self.kind, self.meta, self.children) == (
            other.kind,
            other.meta,
            other.children,
        )

    def __hash__(self) -> int:
        return hash((self.kind, self.meta if self.kind != "dict" else tuple(self.meta), self.children))

    def __repr__(self) -> str:
        if self.kind == "leaf":
            return "*"
        if self.kind == "none":
            return "None"
        inner = ", ".join(repr(c) for c in self.children)
        if self.kind == "dict":
            return "{" + ", ".join(f"{k!r}: {c!r}" for k, c in zip(self.meta, self.children, strict=True)) + "}"
        return f"[{inner}]" if self.kind == "list" else f"({inner})"


def tree_flatten(tree: Any) -> tuple[list[Any], TreeDef]:
    """The leaves of ``tree`` in a fixed order, and its structure."""
    leaves: list[Any] = []
    return leaves, _flatten_into(tree, leaves)


# Module-level recursion (a recursive closure is a reference cycle that would keep the leaves,
# and the graphs behind them, alive until the next garbage collection).
def _flatten_into(node: Any, leaves: list[Any]) -> TreeDef:
    if node is None:
        return TreeDef("none")
    if isinstance(node, dict):
        keys = sorted(node)
        return TreeDef("dict", tuple(keys), tuple(_flatten_into(node[k], leaves) for k in keys))
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        return TreeDef("namedtuple", type(node), tuple(_flatten_into(c, leaves) for c in node))
    if isinstance(node, tuple | list):
        kind = "tuple" if isinstance(node, tuple) else "list"
        return TreeDef(kind, None, tuple(_flatten_into(c, leaves) for c in node))
    leaves.append(node)
    return TreeDef("leaf")


def tree_unflatten(treedef: TreeDef, leaves: list[Any]) -> Any:
    """Rebuild a tree of structure ``treedef`` from ``leaves`` (in ``tree_flatten``'s order)."""
    if len(leaves) != treedef.num_leaves:
        raise ValueError(f"tree_unflatten: structure {treedef} has {treedef.num_leaves} leaves, got {len(leaves)}")
    return _build(treedef, iter(leaves))


def _build(td: TreeDef, it: Any) -> Any:
    if td.kind == "leaf":
        return next(it)
    if td.kind == "none":
        return None
    children = [_build(c, it) for c in td.children]
    if td.kind == "dict":
        return dict(zip(td.meta, children, strict=True))
    if td.kind == "namedtuple":
        return td.meta(*children)
    return tuple(children) if td.kind == "tuple" else children


def tree_map(fn: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """Apply ``fn`` to every leaf (and the matching leaves of ``rest``, which share the structure)."""
    leaves, treedef = tree_flatten(tree)
    others = []
    for r in rest:
        r_leaves, r_def = tree_flatten(r)
        if r_def != treedef:
            raise ValueError(f"tree_map: structures differ: {treedef} and {r_def}")
        others.append(r_leaves)
    return tree_unflatten(treedef, [fn(x, *xs) for x, *xs in zip(leaves, *others, strict=True)])
