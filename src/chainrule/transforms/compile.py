"""``cr.compile``: capture a step once, replay it as a flat list of NumPy calls.

Training repeats the same graph step after step; only the data changes. The first call
of a compiled function runs it normally while recording every primitive it applies,
forward *and* backward (the backward runs with its rules recorded, as for higher
orders). Later calls with the same argument shapes and dtypes replay that list:
no tensors, nodes, dictionaries or topological sorts, and each intermediate array is
dropped right after its last use. Before planning, the list is rewritten with the same bits
(``transforms/lower.py``: composites lowered to NumPy calls, views folded, repeated and unread
calls removed). A static buffer plan, made once per capture, lets each
ufunc write its intermediate (``out=``) into a buffer allocated on the first replay and
reused by later intermediates of the same shape once every view of it is dead, so a
replay allocates only what leaves the step (results, gradients; a gradient summed from two
new arrays is added into one of them). The replay is generated Python (``program.source``).
Results are identical to the eager run.

What the step must respect (as with any tracing compiler): data-dependent Python
control flow is frozen at trace time, and values computed outside primitives (a raw
NumPy call on ``.numpy()``) become constants. Optimizer updates are not captured: call
``opt.step()`` outside the compiled function.
"""

from __future__ import annotations

import builtins
import functools
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from chainrule.core.interpret import Interpreter, active
from chainrule.core.primitive import Primitive
from chainrule.core.state import level
from chainrule.core.tensor import Tensor
from chainrule.transforms.lower import WRITES_OUT, Expr, Instruction, Rewriter
from chainrule.transforms.plan_memory import PlanMemory, _root, plan_memory

REWRITE = True  # False: replay what eager ran, call for call (the rewrites of transforms/lower.py off)


class _Tracer(Interpreter):
    """Compile's capture: every primitive applied to tensors, forward and (recorded) backward."""

    captures = True  # the backward's rules run on tensors, so they are recorded too

    def __init__(self) -> None:
        super().__init__()
        self.slots: dict[int, int] = {}  # id(array) -> slot
        self.keep: list[Any] = []  # arrays alive during tracing, so ids stay unique
        self.consts: dict[int, Any] = {}
        self.externals: list[tuple[int, Tensor]] = []
        self.program: list[Instruction] = []
        self.leaf_grads: dict[int, tuple[Tensor, Any]] = {}
        self.values: dict[int, Any] = {}  # slot -> the array the capture computed there
        self.count = 0

    def _new(self) -> int:
        self.count += 1
        return self.count - 1

    def slot_of(self, value: Any, data: Any) -> int:
        if isinstance(value, Tensor):
            slot = self.slots.get(id(value._data))
            if slot is None:  # made outside the step: a parameter or a captured tensor
                slot = self._new()
                self.slots[id(value._data)] = slot
                self.keep.append(value._data)
                self.externals.append((slot, value))
                self.values[slot] = value._data
            return slot
        slot = self._new()
        self.consts[slot] = data
        self.values[slot] = data
        return slot

    def bind_input(self, data: np.ndarray) -> int:
        slot = self._new()
        self.slots[id(data)] = slot
        self.keep.append(data)
        self.values[slot] = data
        return slot

    def recorded(self, node: Any, prim: Primitive, args: Any, datas: Any, params: dict[str, Any], out: Any) -> None:
        ins = tuple(self.slot_of(a, d) for a, d in zip(args, datas, strict=True))
        slot = self._new()
        self.slots[id(out)] = slot
        self.keep.append(out)
        self.values[slot] = out
        self.program.append((prim.impl, ins, params, slot))

    def ones(self, shape: tuple[int, ...], dtype: Any) -> Any:
        """The backward seed: made by the walk, not by a primitive, the same at every call (a constant)."""
        data = super().ones(shape, dtype)
        self.consts[self.bind_input(data)] = data
        return data

    def to_leaf(self, leaf: Tensor, g: Any) -> bool:
        previous = self.leaf_grads.get(id(leaf))
        self.leaf_grads[id(leaf)] = (leaf, g if previous is None else previous[1] + g)
        return True


class _Program:
    """A captured step: instructions, constants, where inputs/parameters go, what comes out."""

    def __init__(
        self,
        tracer: _Tracer,
        arg_slots: list[tuple[int, int, bool]],
        out_slots: Any,
        grad_slots: list[tuple[Tensor | int, int]],
    ):
        leaving = set(_flatten_slots(out_slots)) | {s for _, s in grad_slots}
        rewriter = Rewriter(tracer.values, leaving, tracer.count, set(tracer.consts))
        program = rewriter.run(tracer.program) if REWRITE else tracer.program
        self.template: list[Any] = [None] * rewriter.count  # constants in place, the rest filled per call
        for slot, value in {**tracer.consts, **rewriter.consts}.items():
            self.template[slot] = value
        self.externals = tracer.externals
        self.external_specs = [(t, t._data.shape, t._data.dtype) for _, t in tracer.externals]
        self.arg_slots = arg_slots  # (position in the call's arguments, slot, whether it is a Tensor)
        self.out_slots = _map_slots(out_slots, rewriter.resolve)
        self.grad_slots = [(leaf, rewriter.resolve(s)) for leaf, s in grad_slots]
        keep = set(_flatten_slots(self.out_slots)) | {s for _, s in self.grad_slots}
        last_use: dict[int, int] = {}
        for k, (_, ins, _, _) in enumerate(program):
            for i in ins:
                last_use[i] = k
        frees: list[list[int]] = [[] for _ in program]
        for slot, k in last_use.items():
            if slot not in keep:
                frees[k].append(slot)
        members: dict[int, list[int]] = {}  # id(memory owner) -> slots whose arrays live in that memory
        for slot, value in tracer.values.items():
            members.setdefault(id(_root(value)), []).append(slot)
        into = _accumulations(program, tracer.values, members, last_use, keep)
        made = {instruction[3]: k for k, instruction in enumerate(program)}
        fresh = {made[s] for s in into.values()}  # instructions whose result is accumulated into: not planned
        buffer_of, self.buffer_specs = _plan_buffers(program, tracer.values, members, last_use, keep, fresh)
        self.buffers: list[np.ndarray] | None = None  # allocated on the first replay, then reused
        self.using = threading.Lock()  # held while a replay writes into the buffers
        # (impl, ins, params, out, frees, buffer it writes into, or slot whose array it overwrites)
        self.instructions = [
            (impl, ins, params, out, tuple(frees[k]), buffer_of.get(k), into.get(k))
            for k, (impl, ins, params, out) in enumerate(program)
        ]
        self.kept = sorted(keep)  # alive until the end of a run: results and gradients
        # a constant that leaves the step (a gradient that is the seed itself) leaves as a copy:
        # the caller may write into a .grad or a result, and the next replay reads the constant again
        self.copied = {s for s in keep if self.template[s] is not None}
        # gradients that are arrays (not NumPy scalars) at every replay, as they were at the capture
        self.array_grads = {s for _, s in self.grad_slots if type(tracer.values.get(s)) is np.ndarray} - self.copied
        self.memory = plan_memory(self.instructions, tracer.values, self.buffer_specs, self.kept)  # bytes
        self.returned = sorted(set(_flatten_slots(self.out_slots)))  # what a run returns, in this order
        index = {slot: k for k, slot in enumerate(self.returned)}
        self.out_slots = _map_slots(self.out_slots, index.__getitem__)  # now positions in a run's result
        self.source, self._replay = _straight_line(self, len(self.buffer_specs))

    def __len__(self) -> int:
        return len(self.instructions)

    def fits(self) -> bool:
        """Whether every parameter still has the shape and dtype it had when captured (the plan's)."""
        for t, shape, dtype in self.external_specs:
            data = t._data
            if data.shape != shape or (data.dtype is not dtype and data.dtype != dtype):
                return False
        return True

    def run(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """One replay on the call's arguments: gradients added to their leaves' ``.grad`` (an
        argument's to this call's argument, not the traced one), the results returned (``self.returned``)."""
        if not self.using.acquire(blocking=False):  # a replay already runs (another thread): its own buffers
            return self._run(args, [np.empty(shape, dtype) for shape, dtype in self.buffer_specs])
        try:
            if self.buffers is None:
                self.buffers = [np.empty(shape, dtype) for shape, dtype in self.buffer_specs]
            return self._run(args, self.buffers)
        finally:
            self.using.release()

    def _run(self, args: tuple[Any, ...], buffers: list[np.ndarray]) -> tuple[Any, ...]:
        if self._replay is not None:
            return self._replay(args, buffers)  # type: ignore[no-any-return]
        vals = self.template.copy()
        for slot, t in self.externals:
            vals[slot] = t._data  # read now: parameters change between steps
        for position, slot, is_tensor in self.arg_slots:
            vals[slot] = args[position]._data if is_tensor else np.asarray(args[position])
        for impl, ins, params, out, frees, buf, into in self.instructions:
            if buf is not None:  # a ufunc writing into its planned buffer: the same numbers, no new array
                vals[out] = impl(*[vals[i] for i in ins], out=buffers[buf])
            elif into is not None:  # ... or into an operand read for the last time (accumulation)
                vals[out] = impl(*[vals[i] for i in ins], out=vals[into])
            else:
                vals[out] = impl(*[vals[i] for i in ins], **params)
            for s in frees:
                vals[s] = None
        leaving = {s: np.array(vals[s]) if s in self.copied else vals[s] for s in self.kept}
        for leaf, slot in self.grad_slots:
            _add_leaf_grad(args[leaf] if isinstance(leaf, int) else leaf, leaving[slot])
        return tuple(leaving[s] for s in self.returned)


STRAIGHT_LINE_MAX = 20_000  # longer captures replay through the loop (a huge function compiles slowly)


def _literal(value: Any) -> bool:
    """Whether ``repr(value)`` reads back as ``value`` in the generated source (a plain parameter)."""
    if value is None or type(value) in (bool, int, str):
        return True
    return type(value) is tuple and all(_literal(v) for v in value)


def _name(impl: Any) -> str:
    """A readable identifier for an instruction's function: ``matmul``, ``add_reduce``, ``_xent``."""
    owner = getattr(impl, "__self__", None)
    name = getattr(impl, "__name__", "f")
    if isinstance(owner, np.ufunc):
        name = f"{owner.__name__}_{name}"
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def _straight_line(program: _Program, n_buffers: int) -> tuple[str, Any]:
    """The replay as one generated Python function: a line per instruction, no per-op dispatch.

    ``v3 = e3._data`` reads parameter 3 now, ``v9 = c9`` a constant; ``v7 = f3(v2, v5, out=b1)``
    computes slot 7 by instruction 3 into buffer 1, ``v4 = v2.T`` is a view written as Python;
    ``del`` drops a slot after its last use; ``add_grad(leaf1, v20)`` adds a gradient to a leaf's
    ``.grad`` (``args[0]`` for an argument's); the results are returned, in ``program.returned``'s
    order. Returns the source (kept for reading: ``program.source``) and the function.
    """
    instructions = program.instructions
    if len(instructions) > STRAIGHT_LINE_MAX:
        return "", None
    made = {instruction[3] for instruction in instructions}
    loads = {i for instruction in instructions for i in instruction[1]} | set(program.kept)
    namespace: dict[str, Any] = {}
    lines = ["def replay(args, buffers):"]
    lines += [f"    b{j} = buffers[{j}]" for j in range(n_buffers)]
    namespace["asarray"] = np.asarray
    lines += [f"    v{s} = args[{k}]._data" if t else f"    v{s} = asarray(args[{k}])" for k, s, t in program.arg_slots]
    for slot, t in program.externals:
        if slot in loads:
            namespace[f"e{slot}"] = t
            lines.append(f"    v{slot} = e{slot}._data")
    for slot in sorted(loads - made - {s for _, s, _ in program.arg_slots} - {s for s, _ in program.externals}):
        namespace[f"c{slot}"] = program.template[slot]
        lines.append(f"    v{slot} = c{slot}")
    for k, (impl, ins, params, out, frees, buf, into) in enumerate(instructions):
        args = [f"v{i}" for i in ins]
        if isinstance(impl, Expr):
            lines.append(f"    v{out} = {impl.text.format(*args)}")
        else:
            name = f"{_name(impl)}_{k}"  # matmul_4: instruction 4 calls np.matmul
            namespace[name] = impl
            if buf is not None:
                args.append(f"out=b{buf}")
            elif into is not None:
                args.append(f"out=v{into}")
            for key, value in params.items() if buf is None and into is None else ():
                if not _literal(value):  # a dtype, an array: a name in the replay's namespace
                    namespace[f"p{k}_{key}"] = value
                args.append(f"{key}={value!r}" if _literal(value) else f"{key}=p{k}_{key}")
            lines.append(f"    v{out} = {name}({', '.join(args)})")
        if frees:
            lines.append(f"    del {', '.join(f'v{i}' for i in frees)}")
    namespace["add_grad"], namespace["copy"], namespace["make"] = _add_leaf_grad, np.array, Tensor._make
    value = {s: f"copy(v{s})" if s in program.copied else f"v{s}" for s in program.kept}  # see _Program.copied
    for j, (leaf, slot) in enumerate(program.grad_slots):
        namespace[f"leaf{j}"] = leaf
        target = f"args[{leaf}]" if isinstance(leaf, int) else f"leaf{j}"
        if slot in program.array_grads:  # add_grad written out: the gradient, or the sum with the one there
            g = value[slot]
            lines.append(f"    {target}.grad = make({g} if {target}.grad is None else {target}.grad._data + {g}, None)")
        else:
            lines.append(f"    add_grad({target}, {value[slot]})")
    lines.append(f"    return ({''.join(f'{value[s]}, ' for s in program.returned)})")
    source = "\n".join(lines) + "\n"
    exec(builtins.compile(source, "<cr.compile replay>", "exec"), namespace)  # our own generated source
    return source, namespace["replay"]


def _accumulations(
    program: list[Instruction],
    values: dict[int, Any],
    members: dict[int, list[int]],
    last_use: dict[int, int],
    keep: set[int],
) -> dict[int, int]:
    """Elementwise ufuncs whose result leaves the step, written into an operand read for the last time.

    ``grad = penalty + matmul(...)``: the product is new at each call (a ufunc's own result), has
    the result's shape and dtype and no views; adding into it in place gives the same numbers as
    a new array, and one array fewer is made. Returns {instruction: the slot it writes into};
    the instructions computing those slots are not planned (their arrays must be new each call).
    """
    made = {out: (impl, params) for impl, _, params, out in program}
    into: dict[int, int] = {}
    for k, (impl, ins, params, out) in enumerate(program):
        if not (isinstance(impl, np.ufunc) and impl.nin == 2 and impl.nout == 1 and not params and out in keep):
            continue
        result = values[out]
        for i in ins:
            value, (maker, maker_params) = values[i], made.get(i, (None, None))
            if (
                isinstance(maker, np.ufunc)
                and not maker_params
                and type(value) is np.ndarray
                and value.base is None
                and value.ndim > 0  # a ufunc of 0-d operands gives a NumPy scalar at replay, not an array
                and len(members[id(value)]) == 1  # no other slot lives in its memory
                and (value.shape, value.dtype) == (np.shape(result), getattr(result, "dtype", None))
                and last_use[i] == k
                and i not in keep
                and i not in into.values()
            ):
                into[k] = i
                break
    return into


def _plan_buffers(
    program: list[Instruction],
    values: dict[int, Any],
    members: dict[int, list[int]],
    last_use: dict[int, int],
    keep: set[int],
    fresh: set[int],
) -> tuple[dict[int, int], list[tuple[tuple[int, ...], Any]]]:
    """The static buffer plan: which instructions write into which reused buffer.

    An instruction is planned if its impl is a one-output ufunc (or ``np.dot``: ``WRITES_OUT``)
    called without parameters whose captured result owned its memory. Its buffer is free again after
    the last use of every slot whose array shares that memory (views of it: a transpose, a reshape),
    and is then reused by a later planned instruction with the same shape and dtype. An array that
    leaves the step (a result, a gradient for a ``.grad``), or any view of it, is never planned: it
    is new each call; nor are the ``fresh`` instructions (their results are accumulated into, see
    ``_accumulations``).
    Returns {instruction: buffer} and each buffer's (shape, dtype).
    """
    planned: dict[int, int] = {}  # instruction -> the instruction after which its buffer is free
    for k, (impl, _, params, out) in enumerate(program):
        value = values[out]
        if not (isinstance(impl, np.ufunc) and impl.nout == 1 or impl in WRITES_OUT) or params or k in fresh:
            continue
        if type(value) is not np.ndarray or value.base is not None or value.ndim == 0:
            continue
        group = members.get(id(value), [out])
        if any(m in keep for m in group):
            continue
        planned[k] = max(last_use.get(m, k) for m in group)
    specs: list[tuple[tuple[int, ...], Any]] = []
    free: dict[tuple[Any, ...], list[int]] = {}
    releases: dict[int, list[int]] = {}
    buffer_of: dict[int, int] = {}
    for k in range(len(program)):
        if k in planned:
            value = values[program[k][3]]
            key = (value.shape, value.dtype)
            pool = free.get(key)
            if pool:
                b = pool.pop()
            else:
                b = len(specs)
                specs.append((value.shape, value.dtype))
            buffer_of[k] = b
            releases.setdefault(max(planned[k], k), []).append(b)
        for b in releases.pop(k, []):  # after instruction k its inputs are no longer read
            free.setdefault(specs[b], []).append(b)
    return buffer_of, specs


class _Const:
    """A returned value that is not an array computed by the step: handed back as it was."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _add_leaf_grad(leaf: Tensor, g: Any) -> None:
    g = np.asarray(g)
    leaf.grad = Tensor._make(g, None) if leaf.grad is None else Tensor._make(leaf.grad._data + g, None)


def _map_slots(obj: Any, f: Callable[[int], int]) -> Any:
    if isinstance(obj, int):
        return f(obj)
    if isinstance(obj, tuple | list):
        return type(obj)(_map_slots(item, f) for item in obj)
    return obj


def _flatten_slots(obj: Any) -> list[int]:
    if isinstance(obj, int):
        return [obj]
    if isinstance(obj, tuple | list):
        return [s for item in obj for s in _flatten_slots(item)]
    return []


def _signature(args: tuple[Any, ...]) -> tuple[Any, ...]:
    sig: list[tuple[Any, ...]] = []
    for a in args:
        if isinstance(a, Tensor):  # whether it requires grad changes what the capture computes
            sig.append((a._data.shape, a._data.dtype, a.requires_grad))
        elif isinstance(a, np.ndarray):
            sig.append((a.shape, a.dtype))
        else:
            sig.append(("const", type(a), a))
    return tuple(sig)


def _array(a: Any) -> np.ndarray:
    return a._data if isinstance(a, Tensor) else np.asarray(a)


class Compiled:
    """The function returned by :func:`compile`. ``programs`` maps signatures to captures,
    least recently used first; at most ``max_programs`` are kept (the oldest is dropped)."""

    def __init__(self, fn: Callable[..., Any], max_programs: int = 16) -> None:
        if max_programs < 1:
            raise ValueError(f"compile: max_programs must be at least 1, got {max_programs}")
        self.fn = fn
        self.max_programs = max_programs
        self.programs: OrderedDict[tuple[Any, ...], _Program] = OrderedDict()
        self._latest: _Program | None = None  # the last in ``programs`` (used most recently)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any) -> Any:
        sig = _signature(args)
        program = self.programs.get(sig)
        if program is None or not program.fits():  # new shapes, or a parameter reshaped / recast: capture again
            result, self.programs[sig] = self._trace(args)
            self.programs.move_to_end(sig)
            self._latest = self.programs[sig]
            if len(self.programs) > self.max_programs:
                self.programs.popitem(last=False)
            return result
        if program is not self._latest:
            self.programs.move_to_end(sig)
            self._latest = program
        return self._rebuild(program.out_slots, program.run(args))

    def memory(self, *args: Any) -> PlanMemory:
        """The buffer plan's memory for a replay on arguments like ``args`` (same shapes, dtypes and
        constants as a call already made): planned buffers, predicted peak (``PlanMemory.peak``).
        Raises ``LookupError`` if no capture for that signature is kept (call the function first)."""
        program = self.programs.get(_signature(args))
        if program is None:
            raise LookupError("compile: memory(*args) needs a call with such arguments first (nothing captured)")
        return program.memory

    def _rebuild(self, slots: Any, vals: tuple[Any, ...]) -> Any:
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
        arg_slots: list[tuple[int, int, bool]] = []
        arg_position: dict[int, int] = {}  # id(placeholder) -> argument index, for gradients of arguments
        for k, a in enumerate(args):
            if isinstance(a, Tensor | np.ndarray):
                data = _array(a)
                t = Tensor._make(data, None)
                if isinstance(a, Tensor):
                    t.requires_grad = a.requires_grad
                    arg_position[id(t)] = k
                arg_slots.append((k, tracer.bind_input(data), isinstance(a, Tensor)))
                placeholders.append(t)
            else:
                placeholders.append(a)
        with tracer, level("compile", grad_enabled=True):  # transforms inside record what they compute
            result = self.fn(*placeholders)

        out_slots = _slots_of(result, tracer.slots)
        grad_slots: list[tuple[Tensor | int, int]] = []
        for leaf, g in tracer.leaf_grads.values():
            data = g._data if isinstance(g, Tensor) else np.asarray(g)
            slot = tracer.slots.get(id(data))
            if slot is None:  # the gradient is a constant (e.g. the seed itself)
                slot = tracer._new()
                tracer.consts[slot] = data
            position = arg_position.get(id(leaf))
            grad_slots.append((leaf if position is None else position, slot))
            if slot in tracer.consts:  # a constant of every replay: the .grad gets its own copy
                data = np.array(data)
            _add_leaf_grad(leaf if position is None else args[position], data)
        tracer.keep.clear()  # tracing is over: every slot's array stays in tracer.values until a rewrite replaces it
        program = _Program(tracer, arg_slots, out_slots, grad_slots)

        return _detach(result), program


# Module-level (not closures inside _trace): a recursive closure is a reference cycle that would
# keep the trace's graph, and the arrays its nodes hold read-only, alive until the next gc.
def _slots_of(obj: Any, slots: dict[int, int]) -> Any:
    if isinstance(obj, Tensor) and id(obj._data) in slots:
        return slots[id(obj._data)]
    if isinstance(obj, tuple | list):
        return type(obj)(_slots_of(o, slots) for o in obj)
    return _Const(obj)


def _detach(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return Tensor._make(obj._data, None)
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
