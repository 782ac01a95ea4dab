"""Rewrites of a captured step before ``cr.compile`` plans its buffers: the same bits, fewer calls.

A capture lists what eager execution ran, primitive by primitive; some of that is redundant
once the step is frozen. Each pass here keeps every result bitwise equal to the eager run:

* **lowering**: a composite primitive (cross-entropy, softmax, relu, sums) becomes the plain
  NumPy calls it is made of (a product of two matrices becomes ``np.dot``, the same BLAS call),
  so the replay calls the ufuncs directly, with planned ``out=`` buffers, and the calls it
  shares with others become visible. Each lowering is run once on
  the captured arrays and kept only if it gives the captured result, bit for bit.
* **views**: a transpose of a transpose back to the same axes is its input; a ``broadcast_to``
  (or a reshape of one element) that only feeds an elementwise ufunc is dropped, the ufunc
  broadcasts by itself; 2-D transposes and reshapes are written as ``x.T``, ``x.reshape(s)``.
* **constants**: a pure call of constants only (the seed's ``1 / n``) is its captured value,
  made once at capture instead of at every replay.
* **common calls**: the same pure call on the same slots is made once (``g * w`` and
  ``w * g`` of the product rule, the softmax the cross-entropy's forward and backward share).
* **dead calls**: a pure call whose result is never read is dropped.

The passes work on instructions ``(impl, ins, params, out)`` and on ``values``, the array each
slot held during the capture (inputs, parameters, constants and results), which they extend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from chainrule.ops.reduce import _amax, _broadcast_to, _sum
from chainrule.ops.shape import _reshape, _transpose

Instruction = tuple[Callable[..., Any], tuple[int, ...], dict[str, Any], int]
Rule = Callable[["Rewriter", list[Instruction], tuple[int, ...], dict[str, Any]], "int | None"]
COMMUTATIVE = (np.add, np.multiply, np.maximum, np.minimum)


class Expr:
    """An instruction written in the replay as a Python expression of its inputs: ``{0}.T``."""

    def __init__(self, text: str) -> None:
        self.text = text
        args = ", ".join(f"a{i}" for i in range(text.count("{")))
        self.fn = eval(f"lambda {args}: " + text.format(*(f"a{i}" for i in range(text.count("{")))))  # noqa: S307

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expr) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"


def mean(x: Any, dtype: Any, count: Any) -> Any:
    """``x.mean(dtype=dtype)`` as NumPy computes it (a sum, then one division), without its wrapper.

    NumPy divides the sum by its count as an ``intp``, which promotes a float16, float32 or float64
    sum to float64, and casts the quotient back. With ``count`` a Python ``int`` (what
    :func:`mean_count` gives for those dtypes) the division is Python's: the same float64 quotient,
    correctly rounded by the same IEEE division, without NumPy's scalar promotion (a quarter of the
    cost); any other ``count`` is NumPy's own division."""
    total = np.add.reduce(x, axis=None, dtype=dtype)
    return total.dtype.type(float(total) / count if type(count) is int else total / count)


def mean_count(dtype: Any, count: int) -> Any:
    """The ``count`` parameter of :func:`mean` for a sum of ``dtype``: a Python ``int`` where the
    quotient is float64 anyway (float16, float32, float64 and a nonzero count), else NumPy's ``intp``."""
    exact = np.dtype(dtype).kind == "f" and np.dtype(dtype).itemsize <= 8 and 0 < count < 2**53
    return int(count) if exact else np.intp(count)


PURE: set[Any] = {_transpose, _reshape, _broadcast_to, _sum, _amax, mean, np.add.reduce, np.maximum.reduce, np.dot}
# Functions that write their one result into ``out=`` as a one-output ufunc does (the buffer plan's)
WRITES_OUT: set[Any] = {np.dot}
MATRIX_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _is_pure(impl: Any) -> bool:
    return isinstance(impl, np.ufunc | Expr) or impl in PURE


def _same(a: Any, b: Any) -> bool:
    """Bitwise the same array: dtype, shape and bytes (a NumPy scalar is its 0-d array)."""
    if isinstance(a, np.ndarray) != isinstance(b, np.ndarray) and np.ndim(a) + np.ndim(b) > 0:
        return False
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind in "biufc" and a.dtype.itemsize in (1, 2, 4, 8):  # compared as unsigned integers of
        bits = np.dtype(f"u{a.dtype.itemsize}")  # their size: the bits, without copying either array
        return bool(np.array_equal(a.view(bits), b.view(bits)))
    return bool(a.tobytes() == b.tobytes())


class Rewriter:
    """The passes over one capture. ``keep``: slots that leave the step (results, gradients);
    ``constants``: the capture's constant slots (the same values at every replay)."""

    def __init__(self, values: dict[int, Any], keep: set[int], count: int, constants: set[int] | None = None) -> None:
        self.values = values
        self.keep = set(keep)
        self.count = count
        self.rename: dict[int, int] = {}  # slot -> the slot that now holds its value
        self.consts: dict[int, Any] = {}  # new constant slots (a 0 for relu, the rows for indexing, folded calls)
        self.given = frozenset(constants or ())  # the capture's own constant slots
        self._emitted: list[Instruction] = []
        self.made: dict[int, tuple[Any, tuple[int, ...]]] = {}  # during lowering: slot -> (impl, ins)
        self.readers: dict[int, int] = {}  # during lowering: slot -> how many instructions read it
        self.memo: dict[Any, int] = {}  # slots rules make for one another (the cross-entropy's label indices)

    def resolve(self, slot: int) -> int:
        while slot in self.rename:
            slot = self.rename[slot]
        return slot

    def run(self, program: list[Instruction]) -> list[Instruction]:
        program = self.lower(program)
        program = self.fold_views(program)
        program = self.fold_constants(program)
        program = self.common(program)
        return self.dead(program)

    def slot(self, value: Any) -> int:
        self.count += 1
        self.values[self.count - 1] = value
        return self.count - 1

    def const(self, value: Any) -> int:
        s = self.slot(value)
        self.consts[s] = value
        return s

    def emit(self, impl: Callable[..., Any], ins: tuple[int, ...], params: dict[str, Any] | None = None) -> int:
        """Append a call, run now on the captured values (so later calls see its result)."""
        params = params or {}
        out = self.slot(impl(*[self.values[i] for i in ins], **params))
        self._emitted.append((impl, ins, params, out))
        return out

    # --- lowering -----------------------------------------------------------------------------
    def lower(self, program: list[Instruction]) -> list[Instruction]:
        self.made = {out: (impl, ins) for impl, ins, _, out in program}
        self.readers = {}
        for _, ins, _, _ in program:
            for i in ins:
                self.readers[i] = self.readers.get(i, 0) + 1
        result: list[Instruction] = []
        for impl, ins, params, out in program:
            rule = LOWERINGS.get(impl)
            lowered = None if rule is None else self._apply(rule, program, (impl, ins, params, out))
            result += lowered if lowered is not None else [(impl, ins, params, out)]
        return result

    def _apply(self, rule: Rule, program: list[Instruction], instruction: Instruction) -> list[Instruction] | None:
        """The calls ``rule`` emits for ``instruction``, the last writing its slot; ``None`` if the rule
        declines, fails, or would not give the captured result bit for bit."""
        _, ins, params, out = instruction
        self._emitted = []
        try:
            last = rule(self, program, ins, params)
        except Exception:  # a rule that cannot handle these values keeps the captured call
            return None
        if last is None or not self._emitted or last != self._emitted[-1][3]:
            return None
        if not _same(self.values[last], self.values[out]):
            return None
        *body, (f, args, p, _) = self._emitted
        self.values[out] = self.values[last]
        return [*body, (f, args, p, out)]  # the last call writes the original slot

    def _lower_sum(self, program: list[Instruction], ins: tuple[int, ...], params: dict[str, Any]) -> int | None:
        return self.emit(np.add.reduce, ins, {"axis": params.get("axis"), "keepdims": params.get("keepdims", False)})

    def _lower_amax(self, program: list[Instruction], ins: tuple[int, ...], params: dict[str, Any]) -> int | None:
        return self.emit(
            np.maximum.reduce, ins, {"axis": params.get("axis"), "keepdims": params.get("keepdims", False)}
        )

    def _lower_matmul(self, program: list[Instruction], ins: tuple[int, ...], params: dict[str, Any]) -> int | None:
        """A product of two float32 or float64 matrices as ``np.dot``, whose entry costs a third less
        (7.2k instructions against 10.7k for an 8x2 by 2x16 product): NumPy makes the same BLAS call
        behind both (gemm, or syrk for a matrix times its own transpose). Only for a result of at
        least 2 x 2, where the two agree for every layout (``tests/transforms``: a matrix times a
        vector through a strided operand can differ, dot copying it for gemv), and for operands
        C- or F-contiguous at the capture (a parameter's transpose is), which dot does not copy."""
        a, b = (self.values[i] for i in ins)
        for v in (a, b):
            if type(v) is not np.ndarray or v.ndim != 2 or v.dtype not in MATRIX_DTYPES or v.dtype != a.dtype:
                return None
            if not (v.flags.c_contiguous or v.flags.f_contiguous) or params:
                return None
        if a.shape[0] < 2 or b.shape[1] < 2:
            return None
        return self.emit(np.dot, ins)

    # --- views --------------------------------------------------------------------------------
    def fold_views(self, program: list[Instruction]) -> list[Instruction]:
        made: dict[int, Instruction] = {}  # slot -> the instruction that computes it, as the captured call
        transposes: dict[int, tuple[int, Any]] = {}  # slot -> (the slot it transposes, axes)
        result: list[Instruction] = []
        for impl, ins, params, out in program:
            ins = tuple(self.rename.get(i, i) for i in ins)
            if impl is _transpose:
                transposes[out] = (ins[0], params["axes"])
            if impl is _transpose and self._undoes(transposes.get(ins[0]), params, out):
                source = transposes[ins[0]][0]
                if out not in self.keep or (source in made and source not in self.keep):
                    self.rename[out] = source
                    self.keep = (self.keep - {out}) | ({source} if out in self.keep else set())
                    continue
            if isinstance(impl, np.ufunc) and impl.nin == 2 and not params:
                ins = tuple(self._unbroadcast(made, ins, k, out) for k in range(2))
            made[out] = (impl, ins, params, out)
            if impl is _transpose and np.ndim(self.values[out]) == 2:
                impl, params = Expr("{0}.T"), {}
            elif impl is _reshape:
                impl, params = Expr("{0}.reshape(" + repr(tuple(params["shape"])) + ")"), {}
            result.append((impl, ins, params, out))
        return result

    def _undoes(self, inner: tuple[int, Any] | None, params: dict[str, Any], out: int) -> bool:
        """Whether this transpose, applied to the result of transpose ``inner``, gives back its input."""
        if inner is None:
            return False
        source = inner[0]
        ndim = np.ndim(self.values[source])
        first = inner[1] or tuple(reversed(range(ndim)))
        second = params["axes"] or tuple(reversed(range(ndim)))
        return tuple(first[a] for a in second) == tuple(range(ndim)) and _same(self.values[source], self.values[out])

    def _unbroadcast(self, made: dict[int, Instruction], ins: tuple[int, ...], k: int, out: int) -> int:
        """The slot under operand ``k``'s broadcasts (and reshapes of one element), if the ufunc's
        other operand alone gives the result its shape: the ufunc broadcasts it the same way."""
        slot = ins[k]
        while slot in made and (
            made[slot][0] is _broadcast_to or (made[slot][0] is _reshape and np.size(self.values[slot]) == 1)
        ):
            slot = made[slot][1][0]
        if slot == ins[k]:
            return slot
        value, shape = self.values[slot], np.shape(self.values[out])
        shapes = [np.shape(value) if j == k else np.shape(self.values[i]) for j, i in enumerate(ins)]
        fits = isinstance(value, np.ndarray | np.generic) and value.dtype == self.values[ins[k]].dtype
        return slot if fits and np.broadcast_shapes(*shapes) == shape else ins[k]

    # --- constants ----------------------------------------------------------------------------
    def fold_constants(self, program: list[Instruction]) -> list[Instruction]:
        """Drop each pure call that reads constants only and stays in the step: its slot becomes a
        constant holding the captured result, which is what every replay would compute again."""
        result: list[Instruction] = []
        for impl, ins, params, out in program:
            if _is_pure(impl) and out not in self.keep and all(i in self.given or i in self.consts for i in ins):
                self.consts[out] = self.values[out]
                continue
            result.append((impl, ins, params, out))
        return result

    # --- common and dead calls ---------------------------------------------------------------
    def common(self, program: list[Instruction]) -> list[Instruction]:
        seen: dict[Any, int] = {}
        result: list[Instruction] = []
        for impl, ins, params, out in program:
            ins = tuple(self.rename.get(i, i) for i in ins)
            key = self._key(impl, ins, params)
            if key is not None and key in seen and out not in self.keep:
                self.rename[out] = seen[key]
                continue
            if key is not None:
                seen.setdefault(key, out)
            result.append((impl, ins, params, out))
        return result

    @staticmethod
    def _key(impl: Any, ins: tuple[int, ...], params: dict[str, Any]) -> Any:
        if not (isinstance(impl, np.ufunc | Expr) or impl in (np.add.reduce, np.maximum.reduce, np.dot)):
            return None
        try:
            frozen = tuple(sorted((k, v if not isinstance(v, np.dtype) else str(v)) for k, v in params.items()))
            hash(frozen)
        except TypeError:
            return None
        return (impl, tuple(sorted(ins)) if impl in COMMUTATIVE else ins, frozen)

    def dead(self, program: list[Instruction]) -> list[Instruction]:
        read = set(self.keep)
        result: list[Instruction] = []
        for impl, ins, params, out in reversed(program):
            if out not in read and _is_pure(impl):
                continue
            read.update(ins)
            result.append((impl, ins, params, out))
        return result[::-1]


LOWERINGS: dict[Any, Rule] = {_sum: Rewriter._lower_sum, _amax: Rewriter._lower_amax, np.matmul: Rewriter._lower_matmul}


def register(impl: Any, rule: Rule, pure: tuple[Any, ...] = ()) -> None:
    """Lower the captured calls of ``impl`` with ``rule`` (layers above this one register theirs:
    ``chainrule.nn.lowering``). ``rule(rewriter, program, ins, params)`` emits NumPy calls with
    ``rewriter.emit`` and returns the slot of the last, or ``None`` to keep the call as it is.
    ``pure``: functions without side effects the rule calls or recognises (dropped when unread)."""
    LOWERINGS[impl] = rule
    PURE.update(pure)
