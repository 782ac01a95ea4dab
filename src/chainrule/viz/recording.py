"""``with cr.viz.trace():`` around a forward (and backward): names and constants without ceremony.

The block records what a plain graph forgets once ``backward`` has released it (the constant
inputs, Python numbers such as λ/2, the order backward ran), and when it ends it takes the
names of the caller's local variables (``z = W1 @ x`` names that node ``z``; ``lam = 1e-4``
becomes the symbol λ). ``draw``, ``equations``, ``explain`` and ``html`` then find the
recording by themselves, so after::

    with cr.viz.trace():
        z = W1 @ x; h = F.relu(z); o = W2 @ h
        L = F.cross_entropy(o.T, y); s = lam / 2 * ((W1 * W1).sum() + (W2 * W2).sum())
        J = L + s
        J.backward()

``cr.viz.draw(J)`` shows x, W1, W2, z, h, o, y, L, s, J and ``cr.viz.equations(J)`` writes
λ/2. An explicit ``names=`` or ``trace=`` always wins over what was recorded.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from chainrule.viz.names import Names, resolve
from chainrule.viz.trace import Trace
from chainrule.viz.trace import trace as _plain_trace

_KEEP = 8  # recordings remembered (the most recent first)
_RECENT: list[tuple[Trace, Names]] = []  # strong: a block without ``as`` keeps no other reference


class trace:  # noqa: N801 - used as ``with cr.viz.trace() as tr``, like a function
    """Record the graph built (and the backward run) in the block; name it from the caller's variables.

    ``as tr`` gives the :class:`~chainrule.viz.trace.Trace` (pass it as ``trace=`` if you like;
    the drawing functions also find it by themselves). ``names=False`` skips reading the
    caller's variables.
    """

    def __init__(self, names: bool = True) -> None:
        self._read_names = names
        self._cm: Any = None
        self._tr: Trace | None = None

    def __enter__(self) -> Trace:
        self._cm = _plain_trace()
        self._tr = self._cm.__enter__()
        return self._tr

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        names = Names()
        if self._read_names:
            frame = sys._getframe(1)
            try:
                names = resolve(dict(frame.f_locals))
            finally:
                del frame
        self._cm.__exit__(exc_type, exc, tb)
        if self._tr is not None and exc_type is None:
            _RECENT.insert(0, (self._tr, names))
            del _RECENT[_KEEP:]


def recorded(outputs: Sequence[Any]) -> tuple[Trace | None, Names | None]:
    """The most recent recording that saw the node behind ``outputs[0]`` (else ``(None, None)``)."""
    node = getattr(outputs[0], "node", None) if outputs else None
    if node is None:
        return None, None
    for tr, names in _RECENT:
        if node.seq in set(tr.created):
            return tr, names
    return None, None


def context(outputs: Sequence[Any], names: Any, trace: Trace | None) -> tuple[Names, Trace | None]:
    """The names and trace to draw ``outputs`` with: the explicit ones, completed by a recording."""
    given = resolve(names)
    found_trace, found_names = recorded(outputs)
    return given.merged(found_names), trace if trace is not None else found_trace
