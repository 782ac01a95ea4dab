"""The memory a compiled step's buffer plan predicts: ``program.memory`` (see ``transforms/compile.py``).

The plan decides, before any replay, which array every instruction's result lives in: a planned
buffer (allocated once per input signature, on the first replay), an operand it accumulates into,
an array it is a view of, or a new array. With the order of the instructions and the slot each
one frees after its last use, that is a liveness simulation of one replay, made once per capture
from the shapes and dtypes the capture saw: no arithmetic, no allocation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PlanMemory:
    """What one replay of a compiled step needs, in bytes, beyond its inputs and parameters.

    ``buffers``: the planned buffers, allocated on the first replay of an input signature and
    reused by every later one. ``transient``: the highest total, over the instruction sequence, of
    the unplanned arrays alive at once (each result made while its operands are alive, freed after
    its last use unless it leaves the step; results and gradients for ``.grad`` stay to the end).
    ``peak = buffers + transient``. ``leaving``: the bytes of the results and gradients the step
    hands back (alive at its end). Exact for what the plan can see: the arrays the instructions
    return. Not counted: temporaries an impl allocates inside itself and frees before returning (a
    composite NumPy routine; none in the lowered ufunc and matmul steps of ``tests/transforms``),
    the Python objects of a replay (array headers, NumPy scalars) and, when ``.grad`` already holds
    a gradient, the new array of the sum (the peak assumes ``zero_grad()`` before the step).
    """

    buffers: int
    transient: int
    leaving: int

    @property
    def peak(self) -> int:
        return self.buffers + self.transient


def _nbytes(value: Any) -> int:
    return int(value.nbytes) if isinstance(value, np.ndarray) else 0  # a NumPy scalar is a Python object


def _root(a: Any) -> Any:
    while isinstance(getattr(a, "base", None), np.ndarray):
        a = a.base
    return a


def plan_memory(
    instructions: list[tuple[Any, ...]],
    values: dict[int, Any],
    buffer_specs: list[tuple[tuple[int, ...], Any]],
    kept: list[int],
) -> PlanMemory:
    """Simulate one replay of ``instructions`` (``_Program.instructions``: impl, ins, params, out,
    frees, planned buffer, accumulated slot) on the arrays the capture computed (``values``).

    Memory is tracked by owner (the array at the root of a view chain), counted while any slot
    living in it is alive: a view of a live array costs nothing, a result written into a planned
    buffer costs nothing beyond the buffer, a result accumulated into an operand takes over that
    operand's memory; any other result is a new array of its root's size. Slots not made by an
    instruction (inputs, parameters, constants) are already there and cost nothing.
    """
    made = {instruction[3] for instruction in instructions}
    owner: dict[int, int] = {}  # id(root array) -> memory key
    size: dict[int, int] = {}  # memory key -> bytes counted while it holds a live slot (0: not ours)
    living: dict[int, set[int]] = {}  # memory key -> live slots in it
    key_of: dict[int, int] = {}  # slot -> memory key
    given = {i for instruction in instructions for i in instruction[1]} | set(kept)
    for slot in sorted(given - made):  # read, not made: inputs, parameters, constants
        key = owner.setdefault(id(_root(values[slot])), len(size))
        size.setdefault(key, 0)
        key_of[slot] = key
    current = transient = 0
    for _, ins, _, out, frees, buf, into in instructions:
        value, root = values[out], _root(values[out])
        if root is not value and id(root) not in owner:  # a view of a captured array the rewrites replaced
            owner.update((id(root), key_of[i]) for i in ins if _nbytes(_root(values[i])) == _nbytes(root))
        if into is not None:  # written into an operand read for the last time: its memory, kept alive
            key = key_of[into]
        elif buf is not None or id(root) not in owner:  # a planned buffer (counted apart) or a new array
            key = len(size)
            size[key] = 0 if buf is not None else _nbytes(root)
        else:  # a view of an array alive now
            key = owner[id(root)]
        owner[id(root)] = key
        key_of[out] = key
        if not living.get(key):
            current += size[key]
        living.setdefault(key, set()).add(out)
        transient = max(transient, current)
        for slot in frees:
            key = key_of[slot]
            alive = living.setdefault(key, set())
            if slot in alive:
                alive.discard(slot)
                current -= 0 if alive else size[key]
    leaving = sum(_nbytes(_root(values[s])) for s in {id(_root(values[s])): s for s in kept if s in made}.values())
    buffers = sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in buffer_specs)
    return PlanMemory(buffers=buffers, transient=transient, leaving=leaving)
