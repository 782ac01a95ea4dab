"""Compute cost: FLOPs and bytes moved per node, and a profiler that times every node.

FLOPs are facts of each primitive, registered with it (``prim.deffacts(flops=..., vjp_flops=...)``,
the rules in :mod:`chainrule.ops.facts`): ``flops`` for the forward, ``vjp_flops`` for the backward
rule of one input. A primitive without them raises :class:`chainrule.ops.facts.MissingFact`.

Conventions (those of ``torch.utils.flop_counter``): a matrix product of ``(m, k)`` by
``(k, n)`` is ``2·m·n·k``; an elementwise operation costs one FLOP per output element;
a reduction one per input element; views, reshapes and casts cost nothing. Only
``matmul`` is counted by PyTorch's ``FlopCounterMode``, so :attr:`CostReport.matmul_flops`
is the number to compare with it.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule.core.interpret import Interpreter, hook
from chainrule.core.node import Node
from chainrule.core.primitive import REGISTRY, Primitive
from chainrule.core.state import is_grad_enabled
from chainrule.core.tensor import Tensor
from chainrule.measure.shapes import ShapeDtype, abstract, placeholder
from chainrule.ops.facts import need
from chainrule.ops.vjp_memory import shape_of

FlopRule = Callable[[Sequence[Any], dict[str, Any], Any], int]
VjpFlopRule = Callable[[int, Sequence[Any], dict[str, Any], Any], int]


def register_flops(prim: Primitive, forward: FlopRule, vjp: VjpFlopRule | None = None) -> None:
    """``prim.deffacts(flops=forward, vjp_flops=vjp)``: ``forward(inputs, params, out)``;
    ``vjp(i, inputs, params, out)``: FLOPs of input i's rule."""
    if not isinstance(prim, Primitive):
        raise TypeError(f"register_flops: expected a Primitive, got {type(prim).__name__} ({prim!r})")
    prim.deffacts(flops=forward)
    if vjp is not None:
        prim.deffacts(vjp_flops=vjp)


def _primitive(prim: Primitive | str) -> Primitive:
    if isinstance(prim, Primitive):
        return prim
    if prim not in REGISTRY:
        raise KeyError(f"forward_flops: no primitive named {prim!r}")
    return REGISTRY[prim]


def _size(x: Any) -> int:
    return int(np.prod(shape_of(x), dtype=np.int64))


def _nbytes(x: Any) -> int:
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        return 0
    return _size(x) * int(np.dtype(dtype).itemsize)


def forward_flops(prim: Primitive | str, ins: Sequence[Any], params: dict[str, Any], out: Any) -> int:
    """FLOPs of ``prim`` (a primitive, or its name) on ``ins`` giving ``out``, from its ``flops`` fact."""
    p = _primitive(prim)
    return int(need(p, "flops", "FLOP count")(ins, params, out))


class FlopCounter(Interpreter):
    """Counts the FLOPs of every primitive evaluated while installed (forward, backward, any order)
    from its FLOP rule, and the nodes recorded; the arithmetic itself runs unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0
        self.nodes = 0

    def evaluate(self, prim: Any, datas: Sequence[Any], params: dict[str, Any]) -> Any:
        out = super().evaluate(prim, datas, params)
        self.flops += forward_flops(prim, datas, params, out)
        return out

    def recorded(self, node: Node | None, prim: Any, args: Any, datas: Any, params: Any, out: Any) -> None:
        super().recorded(node, prim, args, datas, params, out)
        if node is not None:
            self.nodes += 1


def backward_flops(node: Node) -> int:
    """FLOPs of the node's VJP rules for the inputs that receive a gradient (shapes only)."""
    rule = need(node.prim, "vjp_flops", "FLOP count")
    out = ShapeDtype(node.out_shape, node.out_dtype)
    total = 0
    for i, parent in enumerate(node.parents):
        if parent is None:
            continue
        total += int(rule(i, node.kept, node.params, out))
    return total


def _bytes_forward(ins: Sequence[Any], out: Any) -> int:
    return sum(_nbytes(a) for a in ins if isinstance(a, np.ndarray)) + _nbytes(out)


def _bytes_backward(node: Node) -> int:
    """The output's gradient read, saved arrays read, each input's gradient written."""
    g = node.out_dtype.itemsize * int(np.prod(node.out_shape, dtype=np.int64))
    saved = sum(a.nbytes for a in node.saved_arrays())
    written = sum(_nbytes(k) for k, p in zip(node.kept, node.parents, strict=True) if p is not None)
    return g + saved + written


@dataclass
class CostRow:
    name: str
    label: str
    forward_flops: int
    backward_flops: int
    forward_bytes: int
    backward_bytes: int


@dataclass
class CostReport:
    """FLOPs and bytes moved per node of a function's graph (forward, and its backward if differentiable)."""

    rows: list[CostRow]

    @property
    def forward_flops(self) -> int:
        return sum(r.forward_flops for r in self.rows)

    @property
    def backward_flops(self) -> int:
        return sum(r.backward_flops for r in self.rows)

    @property
    def total_flops(self) -> int:
        return self.forward_flops + self.backward_flops

    @property
    def bytes_moved(self) -> int:
        return sum(r.forward_bytes + r.backward_bytes for r in self.rows)

    def matmul_flops(self, phase: str = "total") -> int:
        rows = [r for r in self.rows if r.name == "matmul"]
        fwd = sum(r.forward_flops for r in rows)
        bwd = sum(r.backward_flops for r in rows)
        return {"forward": fwd, "backward": bwd, "total": fwd + bwd}[phase]

    def by_primitive(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in self.rows:
            d = out.setdefault(r.name, {"count": 0, "forward_flops": 0, "backward_flops": 0, "bytes": 0})
            d["count"] += 1
            d["forward_flops"] += r.forward_flops
            d["backward_flops"] += r.backward_flops
            d["bytes"] += r.forward_bytes + r.backward_bytes
        return out

    def table(self) -> str:
        lines = ["| primitive | nodes | forward FLOPs | backward FLOPs | bytes moved |", "|---|---:|---:|---:|---:|"]
        for name, d in sorted(self.by_primitive().items(), key=lambda kv: -kv[1]["forward_flops"]):
            lines.append(
                f"| {name} | {d['count']} | {d['forward_flops']:,} | {d['backward_flops']:,} | {d['bytes']:,} |"
            )
        total = f"| **total** | {len(self.rows)} | {self.forward_flops:,} | {self.backward_flops:,} |"
        lines.append(f"{total} {self.bytes_moved:,} |")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """Jupyter: the table by primitive, as HTML (names escaped)."""
        from chainrule.viz.notebook import cost_html

        return cost_html(self)

    def _repr_markdown_(self) -> str:
        return self.table().replace("<", "&lt;")


class _CostHook:
    def __init__(self) -> None:
        self.rows: list[CostRow] = []
        self.nodes: list[Node | None] = []  # per row: its node (None: not recorded)

    def forward(self, node: Node | None, prim: Any, out: Any) -> None:
        self.nodes.append(node)
        if node is None:  # the inputs are not known here: one FLOP per output element
            need(prim, "flops", "cr.cost")
            self.rows.append(CostRow(prim.name, "", _size(out), 0, _nbytes(out), 0))
            return
        self.rows.append(
            CostRow(
                prim.name,
                node.label or "",
                forward_flops(prim, node.kept, node.params, out),
                0,
                _bytes_forward(node.kept, out),
                0,
            )
        )

    def backward(self, node: Node) -> None:
        pass


def _reachable(root: Node) -> set[int]:
    seen: set[int] = set()
    stack = [root]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        stack.extend(p for p in n.parents if type(p) is Node)
    return seen


def cost(f: Callable[..., Any], *args: Any) -> CostReport:
    """FLOPs and bytes per node of ``f(*args)`` and of its backward pass, from shapes alone.

    ``args`` are :class:`ShapeDtype` (``requires_grad=True`` for what is differentiated),
    arrays or tensors (a model's parameters are used as they are). ``f`` runs on
    placeholders (:func:`chainrule.measure.shapes.abstract`): nothing is computed. If the result is
    a tensor with a graph, every node it depends on gets the FLOPs of its VJP rules.
    """
    h = _CostHook()
    with abstract() as mem:
        inputs = [placeholder(a, mem) if isinstance(a, ShapeDtype) else a for a in args]
        with hook(h):
            out = f(*inputs)
        if isinstance(out, Tensor) and out.node is not None:
            reach = _reachable(out.node)
            for node, row in zip(h.nodes, h.rows, strict=True):
                if node is not None and id(node) in reach:
                    row.backward_flops = backward_flops(node)
                    row.backward_bytes = _bytes_backward(node)
        del out, inputs
    return CostReport(h.rows)


# --- timing ------------------------------------------------------------------------------


@dataclass
class TimedEvent:
    name: str
    phase: str
    seconds: float
    flops: int


@dataclass
class TimingReport:
    """Per-node times of one profiled call (like ``torch.profiler``'s key averages)."""

    events: list[TimedEvent]
    wall: float  # the call's time, less the profiler's own bookkeeping (``overhead``)
    machine_gflops: float = 0.0
    overhead: float = 0.0  # seconds the Timer spent in its hooks (counting FLOPs, appending events)
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def node_seconds(self) -> float:
        return sum(e.seconds for e in self.events)

    def key_averages(self) -> list[dict[str, Any]]:
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for e in self.events:
            d = rows.setdefault(
                (e.name, e.phase), {"name": e.name, "phase": e.phase, "count": 0, "seconds": 0.0, "flops": 0}
            )
            d["count"] += 1
            d["seconds"] += e.seconds
            d["flops"] += e.flops
        out = sorted(rows.values(), key=lambda d: -d["seconds"])
        for d in out:
            d["gflops_per_s"] = d["flops"] / d["seconds"] / 1e9 if d["seconds"] > 0 else 0.0
        return out

    def table(self) -> str:
        lines = [
            "| op | phase | calls | total ms | % of step | GFLOP | GFLOP/s | % of matmul peak |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for d in self.key_averages():
            pct = 100 * d["gflops_per_s"] / self.machine_gflops if self.machine_gflops else 0.0
            lines.append(
                f"| {d['name']} | {d['phase']} | {d['count']} | {d['seconds'] * 1e3:.3f} | "
                f"{100 * d['seconds'] / self.wall:.1f} | {d['flops'] / 1e9:.4f} | {d['gflops_per_s']:.2f} | {pct:.1f} |"
            )
        outside = self.wall - self.node_seconds
        lines.append(
            f"| (outside any op: before the first, after the last, e.g. freeing the graph) | | | "
            f"{outside * 1e3:.3f} | {100 * outside / self.wall:.1f} | | | |"
        )
        lines.append(
            f"| (the profiler's own bookkeeping, measured and not in the wall time) | | | "
            f"{self.overhead * 1e3:.3f} | | | | |"
        )
        flops = sum(e.flops for e in self.events)
        lines.append(
            f"| **step** | | {len(self.events)} | {self.wall * 1e3:.3f} | 100 | {flops / 1e9:.4f} | "
            f"{flops / self.wall / 1e9:.2f} | {100 * flops / self.wall / 1e9 / max(self.machine_gflops, 1e-9):.1f} |"
        )
        return "\n".join(lines)


class Timer:
    """A graph hook that charges the time since the previous event to the op or node that just finished."""

    def __init__(self) -> None:
        self.events: list[TimedEvent] = []
        self.last = time.perf_counter()
        self.phase = "forward"
        self.overhead = 0.0

    def forward(self, node: Node | None, prim: Any, out: Any) -> None:
        now = time.perf_counter()
        ins = node.kept if node is not None else ()
        flops = forward_flops(prim, ins, node.params if node is not None else {}, out) if ins else _size(out)
        if prim.name == "matmul" and node is None:
            flops = 0  # shapes of unrecorded inputs are unknown here
        self.events.append(
            TimedEvent(
                prim.name, "forward" if self.phase == "forward" else "backward (recorded)", now - self.last, flops
            )
        )
        self.last = time.perf_counter()
        self.overhead += self.last - now

    def backward(self, node: Node) -> None:
        now = time.perf_counter()
        self.phase = "backward"
        flops = 0 if is_grad_enabled() else backward_flops(node)  # recorded rules were timed as ops
        self.events.append(TimedEvent(node.prim.name, "backward", now - self.last, flops))
        self.last = time.perf_counter()
        self.overhead += self.last - now


def profile_time(step_fn: Callable[..., Any], *args: Any, optimizer: Any = None, repeat: int = 1) -> TimingReport:
    """Run ``step_fn(*args)`` with a :class:`Timer` (``repeat`` times; the fastest run is kept).

    The garbage collector is off during a run (as ``timeit`` does), so a collection does not
    land between two ops; an optimizer's ``step`` is timed as one event. Time outside any op
    or node (before the first, after the last) is the report's ``wall - node_seconds``; the
    Timer's own bookkeeping is measured and left out of both (``report.overhead``).
    """
    best: TimingReport | None = None
    for _ in range(max(repeat, 1)):
        report = _profile_once(step_fn, args, optimizer)
        if best is None or report.wall < best.wall:
            best = report
    assert best is not None
    best.machine_gflops = machine_gflops()
    return best


def _profile_once(step_fn: Callable[..., Any], args: tuple[Any, ...], optimizer: Any) -> TimingReport:
    timer = Timer()
    if optimizer is not None:
        step = optimizer.step

        def timed_step() -> None:
            t = time.perf_counter()
            step()
            now = time.perf_counter()
            n = sum(p.size for p in optimizer.params)
            timer.events.append(TimedEvent("optimizer.step", "update", now - t, 2 * n))
            timer.last = time.perf_counter()

        optimizer.step = timed_step
    enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        timer.last = t0
        with hook(timer):
            step_fn(*args)
        wall = time.perf_counter() - t0
    finally:
        if enabled:
            gc.enable()
        if optimizer is not None:
            del optimizer.step
    return TimingReport(timer.events, wall - timer.overhead, overhead=timer.overhead)


_MACHINE: dict[str, float] = {}


def machine_gflops(n: int = 512, dtype: Any = np.float32, repeat: int = 5) -> float:
    """This machine's measured matmul rate (best of ``repeat`` ``n×n`` products), cached."""
    key = f"{n}-{np.dtype(dtype)}"
    if key not in _MACHINE:
        a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
        best = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - t)
        _MACHINE[key] = 2 * n**3 / best / 1e9
    return _MACHINE[key]


# ``cr.cost`` is the function; its companions ride along as attributes (``cr.cost.profile_time``).
for _f in (register_flops, profile_time, machine_gflops, forward_flops, backward_flops):
    setattr(cost, _f.__name__, _f)

__all__ = [
    "CostReport",
    "FlopCounter",
    "Timer",
    "TimingReport",
    "backward_flops",
    "cost",
    "forward_flops",
    "machine_gflops",
    "profile_time",
    "register_flops",
]
