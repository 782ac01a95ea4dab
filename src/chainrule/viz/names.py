"""Names for the variables of a recorded graph, taken from what the caller already has.

``names=`` accepts ``{"x": x, "y": y}``, a Module (its parameters' names), a list of named
tensors, or simply ``locals()``: every tensor, array and Greek-named Python number in it is
used, the rest (modules, functions, ``_``-prefixed and IPython's ``In``/``Out``) is ignored.

- a leaf tensor or array is named by identity (``W1``, ``x``);
- an intermediate tensor by the node that made it (``z = W1 @ x`` names that node ``z``),
  so ``locals()`` after the forward names z, h, o, L, s, J without ``.named(...)``;
- a Python number whose name is a Greek letter, spelled or not (``lam``, ``lambda``, ``λ``,
  ``alpha``), becomes a symbol: a constant that is a simple multiple of it reads ``λ/2``.

After ``backward`` the nodes have released the arrays they saved, so a constant input can no
longer be matched by identity: it is then named by its shape and dtype, but only when exactly
one named array has them. Python-number constants (``λ/2``) are gone with their values; record
the forward with ``with cr.viz.trace():`` (see :mod:`chainrule.viz.recording`) to keep them.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule.core.tensor import Tensor
from chainrule.viz.notation import greek_symbol

_IGNORED = frozenset({"In", "Out", "exit", "quit", "get_ipython"})


@dataclass
class Names:
    """Resolved names: by object identity, by node (intermediates), by shape (released constants).

    Objects are held by weak reference (a recording keeps no one's arrays alive); an id whose
    object has died names nothing, so a reused id is never mistaken for it.
    """

    by_id: dict[int, str] = field(default_factory=dict)  # id(tensor) / id(array) -> name
    by_seq: dict[int, str] = field(default_factory=dict)  # node seq -> name (intermediates)
    arrays: list[tuple[str, tuple[int, ...], str, int]] = field(default_factory=list)  # (name, shape, dtype, id)
    numbers: dict[str, float] = field(default_factory=dict)  # Greek symbol -> value
    refs: dict[int, Any] = field(default_factory=dict)  # id -> weak reference to the object named

    def add(self, name: str, value: Any) -> None:
        """Name one tensor, array or Python number (first name wins)."""
        if isinstance(value, Tensor):
            node = value.node
            if node is not None:
                self.by_seq.setdefault(node.seq, name)
                return
            self._add_array(name, value)
            self._add_array(name, value._data)
        elif isinstance(value, np.ndarray):
            self._add_array(name, value)
        elif isinstance(value, int | float | np.floating | np.integer) and not isinstance(value, bool):
            sym = greek_symbol(name)
            if sym is not None:
                self.numbers.setdefault(sym, float(value))

    def _add_array(self, name: str, value: Any) -> None:
        if self.name_of_id(id(value)) is not None:
            return
        try:
            ref: Any = weakref.ref(value)
        except TypeError:  # not weak-referenceable: hold it
            ref = _Strong(value)
        self.by_id[id(value)] = name
        self.refs[id(value)] = ref
        if isinstance(value, np.ndarray):
            self.arrays.append((name, tuple(value.shape), str(value.dtype), id(value)))

    def name_of_id(self, key: int) -> str | None:
        """The name of the object with this id, if that object is still alive."""
        ref = self.refs.get(key)
        return self.by_id.get(key) if ref is not None and ref() is not None else None

    def name_of(self, obj: Any) -> str | None:
        """The name given to this very object."""
        ref = self.refs.get(id(obj))
        return self.by_id.get(id(obj)) if ref is not None and ref() is obj else None

    def by_shape(self, shape: tuple[int, ...], dtype: Any) -> str | None:
        """The one named (live) array with this shape and dtype (None if none or several)."""
        found = {n for n, s, d, key in self.arrays if s == tuple(shape) and d == str(dtype) and self.name_of_id(key)}
        return found.pop() if len(found) == 1 else None

    def merged(self, other: Names | None) -> Names:
        """These names first, then ``other``'s where these say nothing."""
        if other is None:
            return self
        out = Names(dict(other.by_id), dict(other.by_seq), list(other.arrays), dict(other.numbers), dict(other.refs))
        out.by_id.update(self.by_id)
        out.refs.update(self.refs)
        out.by_seq.update(self.by_seq)
        out.numbers.update(self.numbers)
        taken = {n for n, _, _, _ in self.arrays}
        out.arrays = list(self.arrays) + [a for a in out.arrays if a[0] not in taken]
        return out


class _Strong:
    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self) -> Any:
        return self.value


def resolve(names: Any) -> Names:
    """``names`` as given to ``draw``/``equations``/``html`` -> :class:`Names`."""
    if isinstance(names, Names):
        return names
    out = Names()
    if names is None:
        return out
    items: Iterable[tuple[Any, Any]]
    if hasattr(names, "named_parameters"):
        items = names.named_parameters()
    elif isinstance(names, Mapping):
        items = names.items()
    else:
        items = ((getattr(t, "name", None), t) for t in names)
    for name, value in items:
        if not isinstance(name, str) or not name or value is None:
            continue
        if name.startswith("_") or name in _IGNORED:
            continue
        out.add(name, value)
    return out
