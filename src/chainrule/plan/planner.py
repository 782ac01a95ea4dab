"""Memory-budget planner: the fastest way (microbatches, checkpointing, stages) to fit a training step in a budget.

Every memory number comes from the shape-only estimator (:func:`chainrule.measure.memory.estimate`);
nothing runs for real except the time model's short calibration. The estimator has no model
of ``cr.checkpoint`` (the primitive has no shape rule), so the planner composes it:

* **microbatches k**: the step is estimated at the microbatch size ``b = ceil(B / k)``; for
  ``k > 1`` three parameter-sized arrays are added (the running gradient sum, the scaled
  gradient and the new sum while the old one is alive, in :func:`chainrule.parallel.accumulate`).
* **checkpoint_every e** (a ``Sequential``'s layers in segments of ``e``): from the plain
  estimate at ``b``, the saved activations at its peak are replaced by what checkpointing
  keeps: the input of every segment but the first (the first is the batch, already counted as
  an input), the model's output (saved by the loss), and the activations of the largest
  segment, which backward recomputes (each segment estimated on its own as
  ``segment(h).sum()`` with recording on, at ``b``).
* **ranks > 1**: pipeline stages and data parallelism, :mod:`chainrule.plan.ranks`.

A candidate fits when its predicted peak (per rank) times ``1 + margin`` is at most the budget.

**Time model** (:mod:`chainrule.plan.timing`): the predicted seconds of a step, summed over the
graph's nodes from their measured matmul times, FLOP counts times a measured elementwise rate,
and the engine's measured fixed costs per node, microbatch, checkpointed segment and
accumulated parameter; calibrated once per process (about 0.2 s). The chosen plan is the
fitting candidate with the least predicted step time (ties: fewer ranks, fewer microbatches,
then the lower peak).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from chainrule.core.errors import ChainruleError
from chainrule.measure.shapes import ShapeDtype
from chainrule.parallel.plan import Plan
from chainrule.transforms.remat import sqrt_segments

__all__ = ["Candidate", "MemoryBudgetError", "PlanReport", "fit_budget", "parse_size"]

MODES = ("none", "data", "pipeline")

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_size(text: str) -> int:
    """``"200MB"`` (10^6), ``"1.5GiB"`` (2^30), ``"123456"`` (bytes) -> bytes; ValueError if not a positive size."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    if m is None or m.group(2).lower() not in _UNITS:
        raise ValueError(f"{text!r} is not a size (examples: 200MB, 1.5GiB, 1000000)")
    n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if n < 1:
        raise ValueError(f"{text!r}: a memory budget must be at least 1 byte")
    return n


class MemoryBudgetError(ChainruleError, ValueError):
    """No candidate plan fits the budget; ``smallest`` is the least budget that would fit."""

    def __init__(self, message: str, smallest: int, report: PlanReport) -> None:
        super().__init__(message)
        self.smallest = smallest
        self.report = report


@dataclass
class Candidate:
    """One way to run the step: its predicted peak per rank, step time and communication."""

    microbatches: int
    checkpoint_every: int
    peak: int  # predicted peak bytes (per rank: the largest stage, or one rank's shard)
    seconds: float  # predicted seconds of one training step (the time model of chainrule.plan.timing)
    needs: int  # the least budget this candidate fits: ceil(peak * (1 + margin))
    fits: bool = False
    parallel: str = "none"  # none | data | pipeline
    ranks: int = 1
    stages: list[tuple[int, int]] | None = None  # pipeline: the layers of each stage
    schedule: str = "1f1b"  # pipeline: gpipe | 1f1b
    recompute: float = 0.0  # predicted seconds of checkpoint recomputation (part of ``seconds``)
    comm_bytes: int = 0  # bytes communicated per step (pipeline: all boundaries; data: per rank)
    bubble: float = 0.0  # pipeline: (S-1)/(M+S-1), the fraction of the step a stage is idle

    def describe(self) -> str:
        """``parallel=pipeline (1f1b, stages [(0, 3), (3, 5)]), microbatches=4, checkpoint_every=0``."""
        mode = self.parallel
        if self.parallel == "pipeline":
            mode += f" ({self.schedule}, stages {self.stages})"
        elif self.parallel == "data":
            mode += f" ({self.ranks} ranks)"
        return f"parallel={mode}, microbatches={self.microbatches}, checkpoint_every={self.checkpoint_every}"


@dataclass
class PlanReport:
    """The chosen :class:`~chainrule.parallel.plan.Plan`, and every candidate that was weighed."""

    plan: Plan | None
    chosen: Candidate | None
    candidates: list[Candidate]
    budget: int
    margin: float

    def table(self) -> str:
        """Every candidate as a Markdown table (predicted peak per rank, time, recompute, bytes, bubble)."""
        rows = [
            "| parallel | stages | schedule | microbatches | checkpoint_every | predicted peak/rank (MiB) "
            "| needs budget (MiB) | predicted step (ms) | recompute (ms) | comm bytes/step | bubble | fits | chosen |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|:-:|:-:|",
        ]
        for c in self.candidates:
            pipe = c.parallel == "pipeline"
            rows.append(
                f"| {c.parallel} | {c.stages if pipe else '-'} | {c.schedule if pipe else '-'} | {c.microbatches} "
                f"| {c.checkpoint_every or '-'} | {c.peak / 2**20:.3f} | {c.needs / 2**20:.3f} "
                f"| {c.seconds * 1e3:.2f} | {c.recompute * 1e3:.2f} | {c.comm_bytes:,} | {c.bubble:.2f} "
                f"| {'yes' if c.fits else 'no'} | {'**yes**' if c is self.chosen else ''} |"
            )
        return "\n".join(rows)

    def why(self) -> str:
        """One sentence: the chosen candidate, its predicted peak against the budget, and its predicted time."""
        if self.chosen is None:
            return f"no candidate fits {self.budget:,} bytes"
        c = self.chosen
        fitting = [x for x in self.candidates if x.fits]
        runner = min((x for x in fitting if x is not c), key=lambda x: x.seconds, default=None)
        tail = f"; next fastest: {runner.describe()} at {runner.seconds * 1e3:.2f} ms" if runner else ""
        extra = ""
        if c.parallel == "pipeline":
            extra = f", bubble {c.bubble:.2f}, {c.comm_bytes:,} bytes sent per step"
        elif c.parallel == "data":
            extra = f", Allreduce {c.comm_bytes:,} bytes per rank per step"
        return (
            f"{c.describe()}: predicted peak {c.peak / 2**20:.2f} MiB per rank (x{1 + self.margin:.2f} = "
            f"{c.needs / 2**20:.2f} MiB) within the budget {self.budget / 2**20:.2f} MiB, the least predicted step "
            f"time ({c.seconds * 1e3:.2f} ms, of which recompute {c.recompute * 1e3:.2f} ms{extra}) of "
            f"{len(fitting)} fitting candidates out of {len(self.candidates)}{tail}"
        )


def _microbatch_counts(batch: int, most: int) -> list[int]:
    """1, 2, 4, ... up to ``most`` (and ``most`` itself), at most one example per microbatch."""
    most = min(batch, most)
    ks = {1, most}
    k = 2
    while k < most:
        ks.add(k)
        k *= 2
    return sorted(ks)


def _segment_sizes(n: int) -> list[int]:
    if n < 2:
        return []
    es = set(range(1, n + 1)) if n <= 12 else {1, 2, 3, n // 4, n // 2, n}
    es.add(sqrt_segments(n))  # Chen et al.'s rule: about sqrt(n) layers per segment
    return sorted(e for e in es if 1 <= e < n) or [1]


class _Estimator:
    """The estimates a sweep needs, each computed once."""

    def __init__(self, model: Any, input_shape: tuple[int, ...], optimizer: Any, dtype: Any, label_dtype: Any):
        self.model, self.input_shape, self.optimizer = model, tuple(input_shape), optimizer
        self.dtype, self.label_dtype = np.dtype(dtype), np.dtype(label_dtype)
        self._plain: dict[int, tuple[int, int]] = {}
        self._seg: dict[tuple[int, int, int], int] = {}
        self._shapes: dict[int, list[tuple[int, ...]]] = {}
        self.params = list(model.parameters())
        self.param_bytes = sum(int(p.data.nbytes) for p in self.params)

    def plain(self, b: int) -> tuple[int, int]:
        """(peak, saved activations at the peak) of the un-checkpointed step at batch ``b``."""
        if b not in self._plain:
            from chainrule.measure.memory import estimate

            saved = getattr(self.model, "checkpoint_every", None)
            if saved:
                self.model.checkpoint_every = 0
            try:
                prof = estimate(
                    self.model,
                    ShapeDtype((b, *self.input_shape), self.dtype),
                    ShapeDtype((b,), self.label_dtype),
                    optimizer=self.optimizer,
                )
            finally:
                if saved:
                    self.model.checkpoint_every = saved
            self._plain[b] = (prof.peak, prof.peak_categories()["activations"])
        return self._plain[b]

    def shapes(self, b: int) -> list[tuple[int, ...]]:
        """The input shape of every layer of the Sequential, then the output's, at batch ``b``."""
        if b not in self._shapes:
            from chainrule.core.state import no_grad
            from chainrule.measure.shapes import eval_shape

            out = [(b, *self.input_shape)]
            spec = ShapeDtype(out[0], self.dtype)
            for layer in self.model.layers:
                with no_grad():
                    spec = eval_shape(layer, spec)
                out.append(tuple(spec.shape))
            self._shapes[b] = out
        return self._shapes[b]

    def segment(self, start: int, stop: int, b: int) -> int:
        """Saved activations of layers[start:stop] recorded on an input of batch ``b`` (the recomputation)."""
        key = (start, stop, b)
        if key not in self._seg:
            from chainrule.measure.memory import estimate

            layers = self.model.layers[start:stop]

            def fn(h: Any) -> Any:
                for layer in layers:
                    h = layer(h)
                return h

            prof = estimate(fn, ShapeDtype(self.shapes(b)[start], self.dtype, requires_grad=True), train=False)
            self._seg[key] = max((p.categories["activations"] for p in prof.points), default=0)
        return self._seg[key]

    def checkpointed(self, b: int, every: int) -> int:
        from chainrule.transforms.remat import segment_bounds

        peak, act = self.plain(b)
        itemsize = self.dtype.itemsize
        shapes = self.shapes(b)
        bounds = segment_bounds(len(self.model.layers), every)
        kept = sum(int(np.prod(shapes[s])) * itemsize for s, _ in bounds[1:])
        kept += int(np.prod(shapes[-1])) * itemsize  # the logits, saved by the loss
        live = max(self.segment(s, t, b) for s, t in bounds)
        return int(peak - act + kept + live)


def _single(
    est: _Estimator, timer: Any, batch: int, most: int, sequential: bool, margin: float, budget: int
) -> list[Candidate]:
    """One process's candidates for a batch of ``batch`` examples: microbatches x checkpoint segments."""
    from chainrule.parallel.accumulate import split

    out = []
    for k in _microbatch_counts(batch, most):
        pieces = [s.stop - s.start for s in split(batch, k)]
        b = pieces[0]
        accum = 3 * est.param_bytes if k > 1 else 0
        for e in [0, *(_segment_sizes(len(est.model.layers)) if sequential else [])]:
            peak = (est.checkpointed(b, e) if e else est.plain(b)[0]) + accum
            seconds, recompute = timer.step_seconds(pieces, e)
            needs = math.ceil(peak * (1 + margin))
            out.append(Candidate(k, e, peak, seconds, needs, needs <= budget, recompute=recompute))
    return out


def fit_budget(
    model: Any,
    input_shape: tuple[int, ...],
    batch_size: int,
    budget_bytes: int,
    ranks: int = 1,
    optimizer: Any = None,
    *,
    dtype: Any = np.float32,
    label_dtype: Any = np.int64,
    margin: float = 0.05,
    max_microbatches: int | None = None,
    parallel: tuple[str, ...] | None = None,
    calibration: Any = None,
    link_latency: float = 1e-4,
    link_bandwidth: float | None = None,
) -> PlanReport:
    """The fastest plan whose predicted per-rank training-step peak fits ``budget_bytes`` (see the module doc).

    ``input_shape`` is one example's shape (without the batch axis). Returns a
    :class:`PlanReport` (``.plan`` to apply, ``.table()`` for every candidate, ``.why()``);
    raises :class:`MemoryBudgetError` naming the smallest budget that fits if none does.
    Candidates: microbatch counts 1, 2, 4, ... up to ``max_microbatches`` (default the batch
    size), each with no checkpointing and (for a ``Sequential``) segments of 1, 2, ... layers
    (a spread of sizes past 12 layers) including ⌈√n⌉ (:func:`chainrule.transforms.remat.sqrt_segments`).
    With ``ranks`` > 1 the candidates are data parallel over ``ranks`` processes (each of the
    above on a shard) and, for a ``Sequential``, pipeline stages over ``ranks`` processes
    (each microbatch count, GPipe and 1F1B; :mod:`chainrule.plan.ranks`). ``parallel`` limits
    the modes weighed (``("pipeline",)`` for ``--parallel pipeline``); by default ``("none",)``
    for one rank and ``("data", "pipeline")`` for more. ``calibration``: a
    :class:`chainrule.plan.timing.Calibration` (default: measured once per process);
    ``link_latency``/``link_bandwidth`` (seconds, bytes/s): the interconnect's, for the
    communication time (default bandwidth: half this machine's measured memory-copy rate).
    """
    from chainrule.nn.modules import Sequential
    from chainrule.optim import SGD
    from chainrule.plan.ranks import data_parallel_candidates, pipeline_candidates
    from chainrule.plan.timing import StepTimer, calibrate

    if type(ranks) is not int or ranks < 1:
        raise ValueError(f"plan.fit_budget: ranks must be a positive integer, got {ranks!r}")
    if type(batch_size) is not int or batch_size < 1:
        raise ValueError(f"plan.fit_budget: batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(budget_bytes, int) or budget_bytes < 1:
        raise ValueError(f"plan.fit_budget: budget_bytes must be a positive integer, got {budget_bytes!r}")
    modes = tuple(parallel) if parallel is not None else (("none",) if ranks == 1 else ("data", "pipeline"))
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"plan.fit_budget: parallel modes must be among {', '.join(MODES)}, got {mode!r}")
        if (mode == "none") != (ranks == 1):
            raise ValueError(
                f"plan.fit_budget: parallel mode {mode!r} with ranks={ranks}: 'none' is one process, "
                "'data' and 'pipeline' need ranks > 1"
            )
    sequential = isinstance(model, Sequential) and len(model.layers) >= 2
    if "pipeline" in modes and not (sequential and len(model.layers) >= ranks):
        n = len(model.layers) if isinstance(model, Sequential) else 0
        raise ValueError(
            f"plan.fit_budget: pipeline stages need a Sequential of at least ranks={ranks} layers, got "
            f"{type(model).__name__}" + (f" of {n} layers" if isinstance(model, Sequential) else "")
        )
    if optimizer is None:
        optimizer = SGD(model.parameters(), 0.1)
    est = _Estimator(model, input_shape, optimizer, dtype, label_dtype)
    cal = calibration if calibration is not None else calibrate(dtype)
    timer = StepTimer(model, est.input_shape, est.dtype, est.label_dtype, est.shapes, cal)
    bandwidth = link_bandwidth if link_bandwidth is not None else cal.copy_bytes_per_second / 2
    most = max_microbatches or batch_size
    cands: list[Candidate] = []
    if "none" in modes:
        cands += _single(est, timer, batch_size, most, sequential, margin, budget_bytes)
    if "data" in modes:
        shard = _single(est, timer, math.ceil(batch_size / ranks), most, sequential, margin, budget_bytes)
        cands += data_parallel_candidates(shard, est, batch_size, ranks, link_latency, bandwidth, margin, budget_bytes)
    if "pipeline" in modes:
        counts = _microbatch_counts(batch_size, most)
        cands += pipeline_candidates(
            est, timer, batch_size, ranks, counts, link_latency, bandwidth, margin, budget_bytes
        )
    fitting = [c for c in cands if c.fits]
    chosen = min(fitting, key=lambda c: (c.seconds, c.ranks, c.microbatches, c.peak), default=None)
    report = PlanReport(None, chosen, cands, budget_bytes, margin)
    if chosen is None:
        smallest = min(c.needs for c in cands)
        raise MemoryBudgetError(
            f"plan.fit_budget: no plan fits {budget_bytes:,} bytes ({budget_bytes / 2**20:.2f} MiB) per rank; the "
            f"smallest budget that fits is {smallest:,} bytes ({smallest / 2**20:.2f} MiB)\n{report.table()}",
            smallest,
            report,
        )
    report.plan = Plan(
        microbatches=chosen.microbatches,
        checkpoint_every=chosen.checkpoint_every,
        parallel=chosen.parallel,
        stages=chosen.stages,
        schedule=chosen.schedule,
        notes=[report.why()],
    )
    return report
