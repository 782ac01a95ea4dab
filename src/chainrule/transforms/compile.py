"""``cr.compile``: capture a step once, replay it as a flat list of NumPy calls.

Training repeats the same graph step after step; only the data changes. The first call
of a compiled function runs it normally while recording every primitive it applies,
forward *and* backward (the backward runs with its rules recorded, as for higher
orders). Later calls with the same argument shapes and dtypes replay that list:
no tensors, nodes, dictionaries or topological sorts, and each intermediate array is
dropped right after its last use. Results are identical to the eager run.

What the step must respect (as with any tracing compiler): data-dependent Python
control flow is frozen at trace time, and values computed outside primitives (a raw
NumPy call on ``.numpy()``) become constants. Optimizer updates are not captured: call
``opt.step()`` outside the compiled function.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from chainrule.core.interpret import Interpreter, active
from chainrule.core.primitive import Primitive
from chainrule.core.state import level
from chainrule.core.tensor import Tensor


class _Tracer(Interpreter):
    """Compile's capture: every primitive applied to tensors, forward and (recorded) backward."""

    captures = True  # the backward's rules run on tensors, so they are recorded too

    def __init__(self) -> None:
        super().__init__()
        self.slots: dict[int, int] = {}  # id(array) -> slot
        self.keep: list[Any] = []  # arrays alive during tracing, so ids stay unique
        self.consts: dict[int, Any] = {}
        self.externals: list[tuple[int, Tensor]] = []
        self.program: list[tuple[Callable[..., Any], tuple[int, ...], dict[str, Any], int]] = []
        self.leaf_grads: dict[int, tuple[Tensor, Any]] = {}
        self.count = 0

    def _new(self) -> int:
        self.count += 1
        return self.count - 1

    def slot_of(self, value: Any, data: Any) -> int:
        if isinstance(value, Tensor):
            slot = self.slots.get(id(value.data))
            if slot is None:  # made outside the step: a parameter or a captured tensor
                slot = self._new()
                self.slots[id(value.data)] = slot
                self.keep.append(value.data)
                self.externals.append((slot, value))
            return slot
        slot = self._new()
        self.consts[slot] = data
        return slot

    def bind_input(self, data: np.ndarray) -> int:
        slot = self._new()
        self.slots[id(data)] = slot
        self.keep.append(data)
        return slot

    def recorded(self, node: Any, prim: Primitive, args: Any, datas: Any, params: dict[str, Any], out: Any) -> None:
        ins = tuple(self.slot_of(a, d) for a, d in zip(args, datas, strict=True))
        slot = self._new()
        self.slots[id(out)] = slot
        self.keep.append(out)
        self.program.append((prim.impl, ins, params, slot))

    def to_leaf(self, leaf: Tensor, g: Any) -> bool:
        previous = self.leaf_grads.get(id(leaf))
        self.leaf_grads[id(leaf)] = (leaf, g if previous is None else previous[1] + g)
        return True


class _Program:
    """A captured step: instructions, constants, where inputs/parameters go, what comes out."""

    def __init__(
        self, tracer: _Tracer, arg_slots: list[int], out_slots: Any, grad_slots: list[tuple[Tensor | int, int]]
    ):
        self.template: list[Any] = [None] * tracer.count  # constants in place, the rest filled per call
        for slot, value in tracer.consts.items():
            self.template[slot] = value
        self.externals = tracer.externals
        self.arg_slots = arg_slots
        self.out_slots = out_slots
        self.grad_slots = grad_slots
        keep = set(_flatten_slots(out_slots)) | {s for _, s in grad_slots}
        last_use: dict[int, int] = {}
        for k, (_, ins, _, _) in enumerate(tracer.program):
            for i in ins:
                last_use[i] = k
        frees: list[list[int]] = [[] for _ in tracer.program]
        for slot, k in last_use.items():
            if slot not in keep:
                frees[k].append(slot)
        self.instructions = [
            (impl, ins, params, out, tuple(frees[k])) for k, (impl, ins, params, out) in enumerate(tracer.program)
        ]

    def __len__(self) -> int:
        return len(self.instructions)

    def run(self, arrays: list[Any]) -> list[Any]:
        vals = self.template.copy()
        for slot, t in self.externals:
            vals[slot] = t.data  # read now: parameters change between steps
        for slot, a in zip(self.arg_slots, arrays, strict=True):
            vals[slot] = a
        for impl, ins, params, out, frees in self.instructions:
            vals[out] = impl(*[vals[i] for i in ins], **params)
            for s in frees:
                vals[s] = None
        return vals


class _Const:
    """A returned value that is not an array computed by the step: handed back as it was."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _add_leaf_grad(leaf: Tensor, g: np.ndarray) -> None:
    leaf.grad = Tensor._make(g, None) if leaf.grad is None else Tensor._make(leaf.grad.data + g, None)


def _flatten_slots(obj: Any) -> list[int]:
    if isinstance(obj, int):
        return [obj]
    if isinstance(obj, tuple | list):
        return [s for item in obj for s in _flatten_slots(item)]
    return []


def _signature(args: tuple[Any, ...]) -> tuple[Any, ...]:
    sig: list[tuple[Any, ...]] = []
    for a in args:
        if isinstance(a, Tensor | np.ndarray):
            sig.append((a.shape, a.dtype))
        else:
            sig.append(("const", type(a), a))
    return tuple(sig)


def _array(a: Any) -> np.ndarray:
    return a.data if isinstance(a, Tensor) else np.asarray(a)


class Compiled:
    """The function returned by :func:`compile`. ``programs`` maps signatures to captures,
    least recently used first; at most ``max_programs`` are kept (the oldest is dropped)."""

    def __init__(self, fn: Callable[..., Any], max_programs: int = 16) -> None:
        if max_programs < 1:
            raise ValueError(f"compile: max_programs must be at least 1, got {max_programs}")
        self.fn = fn
        self.max_programs = max_programs
        self.programs: OrderedDict[tuple[Any, ...], _Program] = OrderedDict()
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any) -> Any:
        sig = _signature(args)
        program = self.programs.get(sig)
        if program is None:
            result, self.programs[sig] = self._trace(args)
            if len(self.programs) > self.max_programs:
                self.programs.popitem(last=False)
            return result
        self.programs.move_to_end(sig)
        arrays = [_array(a) for a in args if isinstance(a, Tensor | np.ndarray)]
        vals = program.run(arrays)
        for leaf, slot in program.grad_slots:
            # a gradient for an argument goes to this call's argument, not the traced one
            target = args[leaf] if isinstance(leaf, int) else leaf
            _add_leaf_grad(target, np.asarray(vals[slot]))
        return self._rebuild(program.out_slots, vals)

    def _rebuild(self, slots: Any, vals: list[Any]) -> Any:
        if isinstance(slots, int):
            return Tensor._make(np.asarray(vals[slots]), None)
        if isinstance(slots, tuple | list):
            return type(slots)(self._rebuild(s, vals) for s in slots)
        assert isinstance(slots, _Const)
        return slots.value

    def _trace(self, args: tuple[Any, ...]) -> tuple[Any, _Program]:
        if active(_Tracer):
            raise RuntimeError("compile: compiled functions cannot be nested inside one being captured")
        tracer = _Tracer()
        placeholders: list[Any] = []
        arg_slots = []
        arg_position: dict[int, int] = {}  # id(placeholder) -> argument index, for gradients of arguments
        for k, a in enumerate(args):
            if isinstance(a, Tensor | np.ndarray):
                data = _array(a)
                t = Tensor._make(data, None)
                if isinstance(a, Tensor):
                    t.requires_grad = a.requires_grad
                    arg_position[id(t)] = k
                arg_slots.append(tracer.bind_input(data))
                placeholders.append(t)
            else:
                placeholders.append(a)
        with tracer, level("compile", grad_enabled=True):  # transforms inside record what they compute
            result = self.fn(*placeholders)

        out_slots = _slots_of(result, tracer.slots)
        grad_slots: list[tuple[Tensor | int, int]] = []
        for leaf, g in tracer.leaf_grads.values():
            data = g.data if isinstance(g, Tensor) else np.asarray(g)
            slot = tracer.slots.get(id(data))
            if slot is None:  # the gradient is a constant (e.g. the seed itself)
                slot = tracer._new()
                tracer.consts[slot] = data
            position = arg_position.get(id(leaf))
            grad_slots.append((leaf if position is None else position, slot))
            _add_leaf_grad(leaf if position is None else args[position], data)
        program = _Program(tracer, arg_slots, out_slots, grad_slots)

        return _detach(result), program


# Module-level (not closures inside _trace): a recursive closure is a reference cycle that would
# keep the trace's graph, and the arrays its nodes hold read-only, alive until the next gc.
def _slots_of(obj: Any, slots: dict[int, int]) -> Any:
    if isinstance(obj, Tensor) and id(obj.data) in slots:
        return slots[id(obj.data)]
    if isinstance(obj, tuple | list):
        return type(obj)(_slots_of(o, slots) for o in obj)
    return _Const(obj)


def _detach(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return Tensor._make(obj.data, None)
    if isinstance(obj, tuple | list):
        return type(obj)(_detach(o) for o in obj)
    return obj


def compile(fn: Callable[..., Any] | None = None, *, max_programs: int = 16) -> Any:
    """Capture ``fn`` on its first call and replay it on later calls with same-shaped inputs.

    One capture is kept per argument signature (shapes, dtypes, constants), at most
    ``max_programs`` of them, least recently used dropped first (``@cr.compile(max_programs=4)``).

    Typical use: the loss-and-backward part of a training step::

        @cr.compile
        def loss_and_grads(x, y):
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss

        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_and_grads(xb, yb)
            opt.step()
    """
    if fn is None:
        return functools.partial(Compiled, max_programs=max_programs)
    return Compiled(fn, max_programs)
