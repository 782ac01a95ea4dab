"""The engine's per-thread state: open transformation levels, grad mode and installed interpreters.

Transformations (``grad``, ``vjp``, ``jvp``, ``compile``, ``no_grad``) each open a
:class:`Level` on this thread's stack. Forward-mode levels tag tangents with their level
id, so an operation computes tangents for exactly the levels its inputs carry; reverse
levels decide whether a backward pass must itself be recorded (an enclosing level is
watching) instead of guessing it from the graph. Instruments (``cr.hook``, anomaly
detection, compile's capture, shape-only evaluation) are :class:`~chainrule.core.interpret.Interpreter`
objects; ``top`` is the innermost one, or ``None`` when the engine runs plain NumPy.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chainrule.core.interpret import Interpreter

_level_ids = itertools.count(1)


class Level:
    """One open transformation on this thread: its kind and a unique, increasing id."""

    __slots__ = ("kind", "id")

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "grad" | "jvp" | "compile" | "no_grad" | "enable_grad"
        self.id = next(_level_ids)

    def __repr__(self) -> str:
        return f"<level {self.id} {self.kind}>"


class State:
    """One thread's engine state: two threads never see each other's levels, modes or instruments."""

    __slots__ = ("grad_enabled", "top", "capturing", "backward_depth", "levels", "forward", "limit")

    def __init__(self) -> None:
        self.grad_enabled = True
        self.top: Interpreter | None = None  # the innermost installed interpreter
        self.capturing = False  # an installed interpreter needs the backward's rules run on tensors
        self.backward_depth = 0  # > 0 while a backward walk runs on this thread
        self.levels: list[Level] = []
        # Open forward-mode levels (ids). ``limit``: while the JVP of level k is being
        # computed, only levels below k are live, so a rule never sees its own tangents.
        self.forward: set[int] = set()
        self.limit = 1 << 62


class _PerThread(threading.local):
    def __init__(self) -> None:
        self.state = State()


THREAD = _PerThread()


def state() -> State:
    """This thread's engine state (hot paths read ``THREAD.state`` once per call)."""
    return THREAD.state


def in_backward() -> bool:
    """Whether a backward walk is running on this thread (an op now belongs to a recorded backward)."""
    return THREAD.state.backward_depth > 0


@contextlib.contextmanager
def level(kind: str, grad_enabled: bool | None = None) -> Iterator[Level]:
    """Open a transformation level for the duration of a ``with`` block."""
    st = THREAD.state
    lvl = Level(kind)
    previous = st.grad_enabled
    st.levels.append(lvl)
    if kind == "jvp":
        st.forward.add(lvl.id)
    if grad_enabled is not None:
        st.grad_enabled = grad_enabled
    try:
        yield lvl
    finally:
        st.grad_enabled = previous
        st.forward.discard(lvl.id)
        st.levels.remove(lvl)


def watched(reverse_only: bool = False) -> bool:
    """Whether an enclosing transformation differentiates what runs now.

    Any enclosing ``grad``/``jvp``/``compile`` level needs results that keep their tangents;
    only a reverse one (``grad``, ``compile``: ``reverse_only=True``) needs them recorded.
    """
    kinds = ("grad", "compile") if reverse_only else ("grad", "jvp", "compile")
    return any(lvl.kind in kinds for lvl in THREAD.state.levels)


def no_grad() -> contextlib.AbstractContextManager[Level]:
    """Run operations without recording them (prediction mode); per thread."""
    return level("no_grad", grad_enabled=False)


def enable_grad() -> contextlib.AbstractContextManager[Level]:
    """Record operations again inside a ``no_grad`` block; per thread."""
    return level("enable_grad", grad_enabled=True)


def is_grad_enabled() -> bool:
    """Whether operations on tensors that require grad are being recorded on this thread."""
    return THREAD.state.grad_enabled
