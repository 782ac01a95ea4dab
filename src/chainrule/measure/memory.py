"""Memory of a training or prediction step: measured from real allocations, or predicted from shapes.

**Measured** (:func:`profile`, :func:`profiling`): NumPy reports every data buffer it
allocates and frees to ``tracemalloc`` under its own domain (``np.lib.tracemalloc_domain``).
At each point of the step (after every operation, after every node of the backward pass,
after every parameter's update) the engine's hooks sum the live buffers of that domain and
attribute them: parameters, gradients, optimizer state, inputs, saved activations (what the
graph's live nodes keep for backward) and temporaries (everything else that is live). Each
buffer is counted once, by the array that owns its memory, so a view (``W.T``) or an array
saved by two nodes counts once, under the first category that claims it in that order.
Peaks between two points (inside an operation) come from ``tracemalloc``'s peak.

**Predicted** (:func:`estimate`): the same step runs on placeholders
(:mod:`chainrule.measure.shapes`): the forward pass through the real engine with every primitive
evaluated by its shape rule, the backward pass through the engine's real walk with each
derivative rule replaced by its primitive's ``memory`` fact (a model of what the rule allocates,
:mod:`chainrule.ops.vjp_memory`, or the rule itself evaluated shape-only), and the optimizer's
update by its per-element footprint measured once on a small array. Lifetimes are Python's
own: a placeholder's bytes are freed when the last reference to it goes, exactly as the real
array's would be.
"""

from __future__ import annotations

import contextlib
import threading
import time
import tracemalloc
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule.core.interpret import hook
from chainrule.core.node import Node
from chainrule.core.state import no_grad
from chainrule.core.tensor import Tensor
from chainrule.measure.shapes import Abstract, AbstractMemory, ShapeDtype, placeholder, root_of
from chainrule.ops.facts import RULE_ITSELF, need
from chainrule.ops.vjp_memory import ELIDE_BYTES

DOMAIN = int(np.lib.tracemalloc_domain)
CATEGORIES = ("parameters", "optimizer", "gradients", "inputs", "activations", "temporaries")


@dataclass
class Point:
    """Memory right after one event of the step (``peak``: the highest total since the previous point)."""

    index: int
    phase: str
    label: str
    total: int
    peak: int
    categories: dict[str, int]


@dataclass
class MemoryProfile:
    """Bytes by category at every point of a step, and the peak (measured or predicted)."""

    points: list[Point]
    saved_by_node: list[tuple[str, int]] = field(default_factory=list)
    predicted: bool = False
    seconds: float = 0.0

    @property
    def peak(self) -> int:
        return max((p.peak for p in self.points), default=0)

    @property
    def peak_point(self) -> Point:
        return max(self.points, key=lambda p: p.peak)

    def peak_categories(self) -> dict[str, int]:
        """The breakdown at the peak: the point's categories plus its in-operation spike as temporaries."""
        p = self.peak_point
        cats = dict(p.categories)
        cats["temporaries"] += p.peak - p.total
        return cats

    def phase_peaks(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.points:
            out[p.phase] = max(out.get(p.phase, 0), p.peak)
        return out

    def table(self) -> str:
        """The peak and its breakdown, and the peak of each phase, as a Markdown table."""
        kind = "predicted" if self.predicted else "measured"
        cats = self.peak_categories()
        rows = [f"| category ({kind}, at peak) | bytes | MiB |", "|---|---:|---:|"]
        for c in CATEGORIES:
            rows.append(f"| {c} | {cats[c]:,} | {cats[c] / 2**20:.3f} |")
        rows.append(
            f"| **peak** ({self.peak_point.phase}: {self.peak_point.label}) | {self.peak:,} | {self.peak / 2**20:.3f} |"
        )
        for ph, v in self.phase_peaks().items():
            rows.append(f"| peak during {ph} | {v:,} | {v / 2**20:.3f} |")
        return "\n".join(rows)

    def _repr_html_(self) -> str:
        """Jupyter: the breakdown at the peak as a table and the timeline as inline SVG."""
        from chainrule.viz.notebook import memory_html

        return memory_html(self)

    def _repr_markdown_(self) -> str:
        return self.table()

    def plot(self, path: str, title: str | None = None) -> None:
        """Bytes over the sequence of events, stacked by category, phases marked (PNG, matplotlib Agg)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        x = np.arange(len(self.points))
        ys = [np.array([p.categories[c] for p in self.points]) / 2**20 for c in CATEGORIES]
        fig, ax = plt.subplots(figsize=(9, 4.5))
        ax.stackplot(x, *ys, labels=CATEGORIES, step="post", alpha=0.85)
        ax.plot(x, np.array([p.peak for p in self.points]) / 2**20, "k:", lw=1, label="peak inside op")
        start = 0
        for i in range(1, len(self.points) + 1):
            if i == len(self.points) or self.points[i].phase != self.points[start].phase:
                ax.axvspan(
                    start, i, alpha=0.06, color={"forward": "C0", "backward": "C3"}.get(self.points[start].phase, "C2")
                )
                ax.text((start + i) / 2, ax.get_ylim()[1] * 0.97, self.points[start].phase, ha="center", va="top")
                start = i
        ax.set_xlabel("event (op in forward, node in backward, parameter in update)")
        ax.set_ylabel("MiB")
        ax.set_title(
            title or f"{'predicted' if self.predicted else 'measured'} memory, peak {self.peak / 2**20:.2f} MiB"
        )
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    def to_dict(self) -> dict[str, Any]:
        return {
            "predicted": self.predicted,
            "peak": self.peak,
            "peak_categories": self.peak_categories(),
            "phase_peaks": self.phase_peaks(),
            "points": len(self.points),
            "seconds": self.seconds,
        }


# --- the meter: a graph hook that attributes live buffers ------------------------------


class _Meter:
    """Records a :class:`Point` after every engine event; subclasses say how the total is read."""

    predicted = False

    def __init__(self, params: Sequence[Tensor], optimizer: Any, inputs: Sequence[Any]) -> None:
        self.params = list(params)
        self.optimizer = optimizer
        self.inputs = [a for a in inputs if isinstance(a, np.ndarray)]
        self.points: list[Point] = []
        self.phase = "forward"
        # saved activations: owner id -> [count, bytes]; per node: the owner ids it holds
        self.saved: dict[int, list[int]] = {}
        self.saved_total = 0
        self.node_owners: dict[int, tuple[int, ...]] = {}
        self.node_refs: dict[int, Any] = {}
        self.saved_by_node: list[tuple[str, int]] = []
        self.extra_optimizer: list[np.ndarray[Any, Any]] = []  # predicted state (estimate only)
        self.lock = threading.Lock()

    # sizes and totals (overridden)
    def size_of(self, owner: Any, array: Any) -> int:
        return int(owner.nbytes) if isinstance(owner, np.ndarray) else int(array.nbytes)

    def read(self) -> tuple[int, int]:
        raise NotImplementedError

    def untracked(self, owner: Any) -> bool:
        return False

    # graph hook protocol
    def forward(self, node: Node | None, prim: Any, out: Any) -> None:
        if node is not None:
            self._track(node)
        self.point(prim.name if node is None or node.label is None else f"{prim.name} ({node.label})")

    def backward(self, node: Node) -> None:
        if self.phase == "forward":
            self.phase = "backward"
        if node.released:
            self._untrack(id(node))
        self.point(f"d {node.prim.name}" + (f" ({node.label})" if node.label else ""))

    # saved activations, incrementally
    def _track(self, node: Node) -> None:
        owners: dict[int, int] = {}
        for a in node.saved_arrays():
            o = root_of(a)
            if id(o) not in owners:
                owners[id(o)] = self.size_of(o, a)
        key = id(node)
        self.node_owners[key] = tuple(owners)
        self.node_refs[key] = weakref.ref(node, self._on_node_death(key))
        for oid, n in owners.items():
            entry = self.saved.get(oid)
            if entry is None:
                static = oid in self._static_seen  # a parameter or input: counted there, not here
                self.saved[oid] = [1, 0 if static else n]
                self.saved_total += 0 if static else n
            else:
                entry[0] += 1
        own = sum(n for oid, n in owners.items() if oid not in self._static_seen)
        self.saved_by_node.append((node.prim.name + (f" ({node.label})" if node.label else ""), own))

    def _on_node_death(self, key: int) -> Callable[[Any], None]:
        def callback(_ref: Any) -> None:
            self._untrack(key)

        return callback

    def _untrack(self, key: int) -> None:
        self.node_refs.pop(key, None)
        for oid in self.node_owners.pop(key, ()):
            entry = self.saved[oid]
            entry[0] -= 1
            if entry[0] == 0:
                self.saved_total -= entry[1]
                del self.saved[oid]

    def start(self) -> None:
        self._input_owners = [(root_of(a), a) for a in self.inputs]
        self._grad_cache: dict[int, tuple[Any, int, int, bool]] = {}
        self._refresh_static()

    def _refresh_static(self) -> None:
        """Parameters, optimizer state and inputs: fixed during forward and backward, so summed once."""
        cats = dict.fromkeys(CATEGORIES, 0)
        seen: set[int] = set()
        untracked = 0

        def claim(cat: str, array: Any) -> None:
            nonlocal untracked
            owner = root_of(array)
            if id(owner) in seen:
                return
            seen.add(id(owner))
            n = self.size_of(owner, array)
            cats[cat] += n
            if self.untracked(owner):
                untracked += n

        for p in self.params:
            claim("parameters", p._data)
        if self.optimizer is not None:
            for st in self.optimizer.state:
                for v in st.values():
                    if isinstance(v, np.ndarray):
                        claim("optimizer", v)
        for v in self.extra_optimizer:
            claim("optimizer", v)
        for _, a in self._input_owners:
            claim("inputs", a)
        self._static_cats, self._static_seen, self._static_untracked = cats, seen, untracked
        self._signature = self._state_signature()

    def _state_signature(self) -> tuple[int, int]:
        n = sum(len(st) for st in self.optimizer.state) if self.optimizer is not None else 0
        return n, len(self.extra_optimizer)

    def attribute(self) -> tuple[dict[str, int], int]:
        """Bytes per category (each owner once) and the bytes of owners the allocator count does not see."""
        if self.phase == "update" and self._state_signature() != self._signature:
            self._refresh_static()  # the optimizer created its state
        cats = dict(self._static_cats)
        seen = self._static_seen
        untracked = self._static_untracked
        extra: set[int] = set()
        cache = self._grad_cache
        for p in self.params:
            g = p.grad
            if g is None:
                continue
            hit = cache.get(id(p))
            if hit is None or hit[0] is not g:
                owner = root_of(g._data)
                hit = (g, id(owner), self.size_of(owner, g._data), self.untracked(owner))
                cache[id(p)] = hit
            oid = hit[1]
            if oid in seen or oid in extra:
                continue
            extra.add(oid)
            cats["gradients"] += hit[2]
            if hit[3]:
                untracked += hit[2]
        act = self.saved_total
        saved = self.saved
        if saved:
            for oid in extra:
                entry = saved.get(oid)
                if entry is not None:
                    act -= entry[1]
        cats["activations"] = act
        return cats, untracked

    stride = 1  # record every event; >1 samples (in-between peaks still count, through tracemalloc's peak)
    _events = 0

    def point(self, label: str, force: bool = False) -> None:
        if self.stride > 1 and not force:
            self._events += 1
            if self._events % self.stride:
                return
        cats, untracked = self.attribute()
        current, peak = self.read()
        total = current + untracked
        cats["temporaries"] = total - sum(cats[c] for c in CATEGORIES if c != "temporaries")
        peak = max(peak + untracked, total)
        self.points.append(Point(len(self.points), self.phase, label, total, peak, cats))

    # optimizer: one point after each parameter's update
    @contextlib.contextmanager
    def watching(self, optimizer: Any) -> Iterator[None]:
        if optimizer is None:
            yield
            return
        step, update = optimizer.step, optimizer._update
        counter = iter(range(1 << 30))

        def wrapped_step() -> None:
            self.phase = "update"
            self.point("update start", force=True)  # splits what the backward's teardown frees from the update
            step()

        def wrapped_update(w: Any, g: Any, state: Any) -> None:
            self.update(update, w, g, state)
            self.point(f"update param {next(counter)}")

        optimizer.step = wrapped_step
        optimizer._update = wrapped_update
        try:
            yield
        finally:
            del optimizer.step
            del optimizer._update

    def update(self, update: Callable[..., Any], w: Any, g: Any, state: Any) -> None:
        update(w, g, state)


class _Measured(_Meter):
    """Totals from tracemalloc's NumPy domain; buffers that existed before tracing are added by owner."""

    def start(self) -> None:
        self._before: dict[int, Any] = {}
        for p in self.params:
            self._remember(p._data)
            if p.grad is not None:
                self._remember(p.grad._data)
        if self.optimizer is not None:
            for st in self.optimizer.state:
                for v in st.values():
                    if isinstance(v, np.ndarray):
                        self._remember(v)
        for a in self.inputs:
            self._remember(a)
        super().start()
        self._py = 0
        self._np = 0
        self.read()  # baselines for the first interval

    def _remember(self, a: Any) -> None:
        o = root_of(a)
        try:
            self._before[id(o)] = weakref.ref(o)  # not kept alive by us; checked by identity
        except TypeError:
            pass

    def untracked(self, owner: Any) -> bool:
        ref = self._before.get(id(owner))
        return ref is not None and ref() is owner

    def numpy_now(self) -> int:
        traces = tracemalloc._get_traces()  # type: ignore[attr-defined]
        total = 0
        for t in traces:
            if t[0] == DOMAIN:
                total += t[1]
        del traces
        return total

    def read(self) -> tuple[int, int]:
        all_now, all_peak = tracemalloc.get_traced_memory()
        np_now = self.numpy_now()
        after, _ = tracemalloc.get_traced_memory()
        py_before = self._py
        np_before = self._np
        self._py = after - np_now
        self._np = np_now
        tracemalloc.reset_peak()
        interval_peak = max(all_peak - max(py_before, self._py), np_now, np_before)
        return np_now, interval_peak


def _params_of(params: Any, optimizer: Any, model: Any) -> list[Tensor]:
    if params is not None:
        return list(params)
    if optimizer is not None:
        return list(optimizer.params)
    if model is not None:
        return list(model.parameters())
    return []


def _flat_arrays(args: Sequence[Any]) -> list[Any]:
    out = []
    for a in args:
        if isinstance(a, Tensor):
            out.append(a._data)
        elif isinstance(a, np.ndarray):
            out.append(a)
    return out


@contextlib.contextmanager
def profiling(
    params: Any = None, optimizer: Any = None, model: Any = None, inputs: Sequence[Any] = (), stride: int = 1
) -> Iterator[MemoryProfile]:
    """Measure what runs inside the block; the yielded profile is filled in when the block ends.

    ``stride`` > 1 records one point every ``stride`` events (for long computations: each point
    reads all of tracemalloc's traces); peaks in between are still caught, categories are sampled.
    """
    if tracemalloc.is_tracing():
        raise RuntimeError("memory.profiling: tracemalloc is already tracing; nested profiles are not supported")
    meter = _Measured(_params_of(params, optimizer, model), optimizer, _flat_arrays(inputs))
    meter.stride = stride
    result = MemoryProfile(points=[])
    tracemalloc.start(1)
    t0 = time.perf_counter()
    try:
        meter.start()
        meter.point("start", force=True)
        with hook(meter), meter.watching(optimizer):
            yield result
        meter.phase = "update" if meter.phase == "update" else meter.phase
        meter.point("end", force=True)
    finally:
        tracemalloc.stop()
    result.points = meter.points
    result.saved_by_node = meter.saved_by_node
    result.seconds = time.perf_counter() - t0


def profile(
    step_fn: Callable[..., Any],
    *args: Any,
    params: Any = None,
    optimizer: Any = None,
    model: Any = None,
    warmup: int = 0,
    stride: int = 1,
) -> MemoryProfile:
    """Run ``step_fn(*args)`` once (after ``warmup`` unmeasured calls) and measure its memory.

    ``params``/``optimizer``/``model`` say which arrays are parameters and optimizer state
    (and, if the optimizer is given, its updates are points of the timeline). Arguments that
    are arrays or tensors are the step's inputs.
    """
    for _ in range(warmup):
        step_fn(*args)
    with profiling(params, optimizer, model, inputs=args, stride=stride) as result:
        step_fn(*args)
    return result


# --- steps for a model --------------------------------------------------------------------


def _loss(model: Any, x: Any, y: Any) -> Any:
    from chainrule.models.objective import objective

    return objective(model, x, y)[0]


def training_step(model: Any, optimizer: Any) -> Callable[[Any, Any], Any]:
    """``zero_grad``, the objective, ``backward``, ``step``: the step both measured and predicted."""

    def step(x: Any, y: Any) -> Any:
        optimizer.zero_grad()
        loss = _loss(model, x, y)
        loss.backward()
        optimizer.step()
        return loss

    return step


def prediction_step(model: Any) -> Callable[[Any], Any]:
    """The model's output under ``no_grad`` (nothing is kept for backward)."""

    def predict(x: Any) -> Any:
        with no_grad():
            return model(x)

    return predict


# --- prediction from shapes ------------------------------------------------------------------


class _Estimated(_Meter):
    predicted = True

    def __init__(self, mem: AbstractMemory, *args: Any) -> None:
        super().__init__(*args)
        self.mem = mem

    def size_of(self, owner: Any, array: Any) -> int:
        n = self.mem.nbytes_of(owner)
        return super().size_of(owner, array) if n is None else n

    def untracked(self, owner: Any) -> bool:
        return self.mem.nbytes_of(owner) is None  # a real array (a parameter): not in the pretend allocator

    def read(self) -> tuple[int, int]:
        return self.mem.current, self.mem.mark()

    def update(self, update: Callable[..., Any], w: Any, g: Any, state: Any) -> None:
        n = w.size * w.dtype.itemsize
        k_state, k_peak = update_footprint(self.optimizer, w.dtype, n)
        if not state and id(state) not in self._state_made:
            self._state_made.add(id(state))
            if k_state:
                self.extra_optimizer.append(self.mem.new((int(round(k_state * w.size)),), w.dtype))
        self.mem.spike(int(k_peak * n))

    def steady_state(self) -> None:
        """Optimizer state as after one step (so the prediction is of a steady-state step)."""
        self._state_made: set[int] = set()
        if self.optimizer is None:
            return
        for p, st in zip(self.optimizer.params, self.optimizer.state, strict=True):
            if not st:
                k_state, _ = update_footprint(self.optimizer, p.dtype, p.size * p.dtype.itemsize)
                self._state_made.add(id(st))
                if k_state:
                    self.extra_optimizer.append(self.mem.new((int(round(k_state * p.size)),), p.dtype))


_FOOTPRINTS: dict[tuple[Any, ...], tuple[float, float]] = {}
_STATIC_FOOTPRINT = {"SGD": (0.0, 1.0), "Adam": (2.0, 1.0), "AdamW": (2.0, 1.0)}


def update_footprint(optimizer: Any, dtype: Any, nbytes: int = 1 << 20) -> tuple[float, float]:
    """(state bytes, peak temporary bytes) of one parameter's update, per byte of the parameter.

    Measured once per optimizer configuration by running its real ``_update`` under tracemalloc
    (steady state: the second call), on a parameter on the same side of NumPy's temporary-elision
    threshold (256 KiB: larger temporaries of an expression are reused in place) as ``nbytes``;
    a fixed table if tracemalloc is already busy.
    """
    hyper = tuple(
        sorted((k, v) for k, v in vars(optimizer).items() if k != "steps" and isinstance(v, int | float | bool | tuple))
    )
    dt = np.dtype(dtype)
    large = nbytes >= ELIDE_BYTES
    key = (type(optimizer), dt.str, hyper, large)
    if key in _FOOTPRINTS:
        return _FOOTPRINTS[key]
    if tracemalloc.is_tracing():
        return _STATIC_FOOTPRINT.get(type(optimizer).__name__, (2.0, 1.0))
    n = (4 * ELIDE_BYTES if large else ELIDE_BYTES // 4) // dt.itemsize
    w = np.ones(n, dt)
    g = np.full(n, 0.5, dt)
    state: dict[str, Any] = {}
    steps = optimizer.steps
    optimizer.steps = max(steps, 1)
    meter = _Measured([], None, [])
    tracemalloc.start(1)
    try:
        meter.start()
        meter.read()
        type(optimizer)._update(optimizer, w, g, state)
        after_first, _ = meter.read()
        meter.read()
        type(optimizer)._update(optimizer, w, g, state)
        now, peak = meter.read()
    finally:
        tracemalloc.stop()
        optimizer.steps = steps
    size = n * dt.itemsize
    result = (round(after_first / size, 2), round(max(peak - now, 0) / size, 2))
    _FOOTPRINTS[key] = result
    return result


class _Simulation(Abstract):
    """The estimate's interpreter: shape-only forward, and the engine's real backward walk with
    each derivative rule replaced by its primitive's ``memory`` fact: a model of what the rule
    allocates, in order, or (:data:`~chainrule.ops.facts.RULE_ITSELF`) the rule itself, whose
    primitives this interpreter evaluates shape-only."""

    def vjp(self, node: Node, i: int, g: Any, out: Any, args: Any) -> Any:
        if isinstance(g, Tensor):
            raise NotImplementedError("memory.estimate: only a first-order backward() is modelled")
        model = need(node.prim, "memory", "memory.estimate")
        if model is RULE_ITSELF:
            with np.errstate(all="ignore"):  # a rule's own NumPy on placeholders reads meaningless values
                return super().vjp(node, i, g, out, args)
        return model(self.mem, i, g, out, args, node.params)


def estimate(
    fn: Any,
    *specs: Any,
    optimizer: Any = None,
    params: Any = None,
    train: bool | None = None,
) -> MemoryProfile:
    """Predict the memory of a step from shapes alone: no arithmetic, no real allocation.

    ``fn`` is a step function (called on placeholders for ``specs``; it may call
    ``loss.backward()`` and ``optimizer.step()``) or a model: with ``train`` (the default when
    an optimizer is given) the step is :func:`training_step` (``specs`` = inputs and labels),
    else :func:`prediction_step` (``specs`` = inputs). ``specs`` are :class:`ShapeDtype`
    (arrays and tensors are used as they are). The optimizer's state is predicted as after
    one step (a steady-state step); the parameters are the model's own arrays, untouched:
    their gradients and the optimizer's step count are restored afterwards.
    """
    from chainrule.nn.modules import Module

    t0 = time.perf_counter()
    model = fn if isinstance(fn, Module) else None
    if model is not None:
        if train is None:
            train = optimizer is not None
        if train:
            if optimizer is None:
                raise ValueError("memory.estimate: a training step needs the optimizer")
            fn = training_step(model, optimizer)
        else:
            fn = prediction_step(model)
    plist = _params_of(params, optimizer, model)
    saved_grads = [p.grad for p in plist]
    steps = optimizer.steps if optimizer is not None else 0
    mem = AbstractMemory()
    real_inputs = _flat_arrays(specs)
    meter = _Estimated(mem, plist, optimizer, real_inputs)
    try:
        with _Simulation(mem):
            args = [placeholder(s, mem) if isinstance(s, ShapeDtype) else s for s in specs]
            meter.inputs = real_inputs + [a._data for a in args if isinstance(a, Tensor)]
            meter.start()
            meter.steady_state()
            meter.point("start", force=True)
            with hook(meter), meter.watching(optimizer):
                out = fn(*args)
                del out
            meter.point("end", force=True)
            del args
    finally:
        for p, g in zip(plist, saved_grads, strict=True):
            p.grad = g
        if optimizer is not None:
            optimizer.steps = steps
    return MemoryProfile(meter.points, meter.saved_by_node, predicted=True, seconds=time.perf_counter() - t0)


__all__ = [
    "CATEGORIES",
    "MemoryProfile",
    "Point",
    "estimate",
    "prediction_step",
    "profile",
    "profiling",
    "training_step",
    "update_footprint",
]
