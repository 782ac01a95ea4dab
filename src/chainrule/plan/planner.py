"""Memory-budget planner: the fastest way (microbatches, checkpointing, stages) to fit a training step in a budget.

Every memory number comes from the shape-only estimator (:func:`chainrule.measure.memory.estimate`);
nothing runs for real except the time model's short calibration. Rather than estimating every
candidate step, the planner composes a few estimates:

* **microbatches k**: the step is estimated at the microbatch size ``b = ceil(B / k)``, and
  what a real step holds beside it is added (:mod:`chainrule.plan.budget`): the rest of the
  whole batch (alive through every microbatch), the kept outputs, for ``k > 1`` three
  parameter-sized arrays of accumulation, and the runtime's fixed overhead, measured once.
  A microbatch count is weighed only if it lowers the least need of fewer microbatches by 1%:
  where the batch itself dominates, more microbatches cannot help, and the error says so.
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
from fractions import Fraction
from typing import Any

import numpy as np

from chainrule.core.errors import ChainruleError
from chainrule.parallel.plan import MODES, Plan
from chainrule.plan.candidates import Candidate, Estimator
from chainrule.transforms.remat import sqrt_segments

__all__ = ["Candidate", "MemoryBudgetError", "PlanReport", "fit_budget", "parse_size"]

_GAIN = 0.01  # more microbatches must lower the least need of fewer by this fraction to be weighed

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


_LARGEST = 2**63  # 8 EiB: more than any machine; past it a size is a typo


def parse_size(text: str) -> int:
    """``"200MB"`` (10^6), ``"1.5GiB"`` (2^30), ``"123456"`` (bytes) -> bytes; ValueError if not a positive size."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    if m is None or m.group(2).lower() not in _UNITS:
        raise ValueError(f"{text!r} is not a size (examples: 200MB, 1.5GiB, 1000000)")
    whole, _, frac = m.group(1).partition(".")
    # past 30 digits a size is over the limit anyway (and Python's int() stops at 4300 digits)
    number = "1" + "0" * 30 if len(whole) > 30 else f"{whole or 0}.{frac[:30] or 0}"
    n = int(Fraction(number) * _UNITS[m.group(2).lower()])  # exact: no float overflow or rounding
    if n < 1:
        raise ValueError(f"{text!r}: a memory budget must be at least 1 byte")
    if n > _LARGEST:
        raise ValueError(f"{text[:40]!r}{'...' if len(text) > 40 else ''}: a memory budget must be at most 2^63 bytes")
    return n


class MemoryBudgetError(ChainruleError, ValueError):
    """No candidate plan fits the budget; ``smallest`` is the least budget that would fit."""

    def __init__(self, message: str, smallest: int, report: PlanReport) -> None:
        super().__init__(message)
        self.smallest = smallest
        self.report = report


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


def _single(
    est: Estimator, timer: Any, batch: int, most: int, sequential: bool, margin: float, budget: int
) -> list[Candidate]:
    """One process's candidates for a batch of ``batch`` examples: microbatches x checkpoint segments."""
    from chainrule.parallel.accumulate import split

    out: list[Candidate] = []
    for k in _microbatch_counts(batch, most):
        pieces = [s.stop - s.start for s in split(batch, k)]
        b = pieces[0]
        held = est.extras(batch, b, len(pieces))  # the whole batch, the outputs, the accumulation, the overhead
        least = min((c.needs for c in out), default=None)  # the least need with fewer microbatches
        for e in [0, *(_segment_sizes(len(est.model.layers)) if sequential else [])]:
            peak = (est.checkpointed(b, e) if e else est.plain(b)[0]) + held
            needs = math.ceil(peak * (1 + margin))
            if least is not None and needs > (1 - _GAIN) * least:
                continue  # more microbatches that save (almost) nothing: the batch itself dominates
            seconds, recompute = timer.step_seconds(pieces, e)
            out.append(Candidate(k, e, peak, seconds, needs, needs <= budget, recompute=recompute))
    return out


def _no_fit(est: Estimator, report: PlanReport, batch: int) -> MemoryBudgetError:
    """The error naming the smallest budget that fits (the least need of any candidate), and why it is that large."""
    least = min(report.candidates, key=lambda c: (c.needs, c.seconds))
    budget, smallest = report.budget, least.needs
    return MemoryBudgetError(
        f"plan.fit_budget: no plan fits {budget:,} bytes ({budget / 2**20:.2f} MiB) per rank; the "
        f"smallest budget that fits is {smallest:,} bytes ({smallest / 2**20:.2f} MiB, {least.describe()})"
        f"{_floor(est, least, batch)}\n{report.table()}",
        smallest,
        report,
    )


def _floor(est: Estimator, least: Candidate, batch: int) -> str:
    """When the batch itself is most of the least need: say that microbatching cannot help (empty otherwise)."""
    rows = math.ceil(batch / least.ranks) if least.parallel == "data" else batch
    held = est.extras.batch(rows)
    if held * 2 < least.needs:
        return ""
    return (
        f"; {held:,} bytes of it ({held / least.needs:.0%}) are the batch itself ({rows} examples of inputs and "
        "labels, alive through every microbatch), which no microbatching or checkpointing reduces: the step is "
        "input-dominated, use a smaller batch size"
    )


def _modes(model: Any, ranks: int, batch_size: int, budget_bytes: int, parallel: Any) -> tuple[str, ...]:
    """fit_budget's arguments checked (ValueError naming the bad one); the parallel modes to weigh."""
    from chainrule.nn.modules import Sequential

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
    return modes


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

    modes = _modes(model, ranks, batch_size, budget_bytes, parallel)
    sequential = isinstance(model, Sequential) and len(model.layers) >= 2
    if optimizer is None:
        optimizer = SGD(model.parameters(), 0.1)
    est = Estimator(model, input_shape, optimizer, dtype, label_dtype)
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
        raise _no_fit(est, report, batch_size)
    report.plan = Plan(
        microbatches=chosen.microbatches,
        checkpoint_every=chosen.checkpoint_every,
        parallel=chosen.parallel,
        stages=chosen.stages,
        schedule=chosen.schedule,
        notes=[report.why()],
    )
    return report
