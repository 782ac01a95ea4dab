"""Undoing broadcasting: the one place a broadcast gradient is summed back to its input's shape.

The engine calls ``sum_to`` after every VJP rule whose result has a broadcast shape
(``core.backward``), and ``broadcast_to``'s own VJP rule is ``sum_to``.
"""

from __future__ import annotations

from typing import Any

from chainrule.ops.reduce import sum
from chainrule.ops.shape import reshape


def sum_to(x: Any, shape: tuple[int, ...]) -> Any:
    """Sum a broadcast gradient back to ``shape``: the one place broadcasting is undone."""
    if x.shape == shape:
        return x
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and x.shape[i + lead] != 1)
    if axes:
        x = sum(x, axis=axes, keepdims=True)
    if x.shape != shape:
        x = reshape(x, shape)
    return x


__all__: list[str] = []  # engine plumbing, not a NumPy name
