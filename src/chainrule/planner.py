"""Memory-budget planner: the cheapest way (microbatches, checkpointing) to fit a training step in a budget.

Every number comes from the shape-only estimator (:func:`chainrule.memory.estimate`); nothing
runs for real. The estimator has no model of ``cr.checkpoint`` (the primitive has no shape
rule), so the planner composes it:

* **microbatches k**: the step is estimated at the microbatch size ``b = ceil(B / k)``; for
  ``k > 1`` three parameter-sized arrays are added (the running gradient sum, the scaled
  gradient and the new sum while the old one is alive, in :func:`chainrule.parallel.accumulate`).
* **checkpoint_every e** (a ``Sequential``'s layers in segments of ``e``): from the plain
  estimate at ``b``, the saved activations at its peak are replaced by what checkpointing
  keeps: the input of every segment but the first (the first is the batch, already counted as
  an input), the model's output (saved by the loss), and the activations of the largest
  segment, which backward recomputes (each segment estimated on its own as
  ``segment(h).sum()`` with recording on, at ``b``).

A candidate fits when its predicted peak times ``1 + margin`` is at most the budget.

**Time model** (unit: one forward pass over the whole batch, so a plain step costs about 3):
checkpointing recomputes one forward of every checkpointed layer (``Sequential`` checkpoints
all of its segments), extra cost 1; each extra microbatch costs ``microbatch_overhead``
(default 0.1: the fixed per-call work of a step, relative to a forward pass; measure this
machine's with :func:`measure_microbatch_overhead`).
The chosen plan is the fitting candidate with the least extra cost (ties: fewer microbatches,
then lower peak).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from chainrule.core.errors import ChainruleError
from chainrule.parallel.plan import Plan
from chainrule.remat import sqrt_segments
from chainrule.shapes import ShapeDtype

__all__ = ["Candidate", "MemoryBudgetError", "PlanReport", "measure_microbatch_overhead", "parse_size", "plan"]

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
    microbatches: int
    checkpoint_every: int
    peak: int  # predicted peak bytes
    extra_cost: float  # forward passes over the whole batch, on top of a plain step
    needs: int  # the least budget this candidate fits: ceil(peak * (1 + margin))
    fits: bool = False


@dataclass
class PlanReport:
    """The chosen :class:`~chainrule.parallel.plan.Plan`, and every candidate that was weighed."""

    plan: Plan | None
    chosen: Candidate | None
    candidates: list[Candidate]
    budget: int
    margin: float

    def table(self) -> str:
        rows = [
            "| microbatches | checkpoint_every | predicted peak (MiB) | needs budget (MiB) | extra cost | fits "
            "| chosen |",
            "|---:|---:|---:|---:|---:|:-:|:-:|",
        ]
        for c in self.candidates:
            rows.append(
                f"| {c.microbatches} | {c.checkpoint_every or '-'} | {c.peak / 2**20:.3f} | {c.needs / 2**20:.3f} "
                f"| {c.extra_cost:.2f} | {'yes' if c.fits else 'no'} | {'**yes**' if c is self.chosen else ''} |"
            )
        return "\n".join(rows)

    def why(self) -> str:
        if self.chosen is None:
            return f"no candidate fits {self.budget:,} bytes"
        c = self.chosen
        return (
            f"microbatches={c.microbatches}, checkpoint_every={c.checkpoint_every}: predicted peak "
            f"{c.peak / 2**20:.2f} MiB (x{1 + self.margin:.2f} = {c.needs / 2**20:.2f} MiB) within the budget "
            f"{self.budget / 2**20:.2f} MiB at the least extra cost ({c.extra_cost:.2f} forward passes) "
            f"of {sum(x.fits for x in self.candidates)} fitting candidates out of {len(self.candidates)}"
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
        self.param_bytes = sum(int(p.data.nbytes) for p in model.parameters())

    def plain(self, b: int) -> tuple[int, int]:
        """(peak, saved activations at the peak) of the un-checkpointed step at batch ``b``."""
        if b not in self._plain:
            from chainrule.memory import estimate

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
            from chainrule.core.node import no_grad
            from chainrule.shapes import eval_shape

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
            from chainrule.memory import estimate

            layers = self.model.layers[start:stop]

            def fn(h: Any) -> Any:
                for layer in layers:
                    h = layer(h)
                return h

            prof = estimate(fn, ShapeDtype(self.shapes(b)[start], self.dtype, requires_grad=True), train=False)
            self._seg[key] = max((p.categories["activations"] for p in prof.points), default=0)
        return self._seg[key]

    def checkpointed(self, b: int, every: int) -> int:
        from chainrule.remat import segment_bounds

        peak, act = self.plain(b)
        itemsize = self.dtype.itemsize
        shapes = self.shapes(b)
        bounds = segment_bounds(len(self.model.layers), every)
        kept = sum(int(np.prod(shapes[s])) * itemsize for s, _ in bounds[1:])
        kept += int(np.prod(shapes[-1])) * itemsize  # the logits, saved by the loss
        live = max(self.segment(s, t, b) for s, t in bounds)
        return int(peak - act + kept + live)


def measure_microbatch_overhead(
    model: Any, input_shape: tuple[int, ...], batch_size: int, optimizer: Any = None, repeat: int = 5
) -> float:
    """The per-step constant for ``plan(microbatch_overhead=...)``, measured on this machine.

    A training step on one example is almost all fixed cost (Python, the graph, the update);
    its best time over ``repeat`` runs, divided by the best time of a forward pass over
    ``batch_size`` examples, is the cost of one extra microbatch in the planner's unit.
    """
    import time

    from chainrule.core.node import no_grad
    from chainrule.memory import training_step
    from chainrule.optim import SGD

    rng = np.random.default_rng(0)
    opt = optimizer if optimizer is not None else SGD(model.parameters(), 1e-3)
    saved = [p.data.copy() for p in model.parameters()]
    x1 = rng.random((1, *input_shape)).astype(np.float32)
    xb = rng.random((batch_size, *input_shape)).astype(np.float32)
    y1 = np.zeros(1, dtype=np.int64)
    step = training_step(model, opt)

    def best(fn: Any) -> float:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    try:
        fixed = best(lambda: step(x1, y1))
        with no_grad():
            forward = best(lambda: model(xb))
    finally:
        for p, d in zip(model.parameters(), saved, strict=True):
            p.data[...] = d
            p.grad = None
    return fixed / max(forward, 1e-9)


def plan(
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
    microbatch_overhead: float = 0.1,
    checkpoint_cost: float = 1.0,
    max_microbatches: int | None = None,
) -> PlanReport:
    """The cheapest plan whose predicted training-step peak fits ``budget_bytes`` (see the module doc).

    ``input_shape`` is one example's shape (without the batch axis). Returns a
    :class:`PlanReport` (``.plan`` to apply, ``.table()`` for every candidate, ``.why()``);
    raises :class:`MemoryBudgetError` naming the smallest budget that fits if none does.
    Candidates: microbatch counts 1, 2, 4, ... up to ``max_microbatches`` (default the batch
    size), each with no checkpointing and (for a ``Sequential``) segments of 1, 2, ... layers
    (a spread of sizes past 12 layers) including ⌈√n⌉ (:func:`chainrule.remat.sqrt_segments`).
    """
    from chainrule.nn.modules import Sequential
    from chainrule.optim import SGD

    if ranks != 1:
        raise NotImplementedError("memory.plan: ranks > 1 (pipeline stages) is not planned yet; use ranks=1")
    if type(batch_size) is not int or batch_size < 1:
        raise ValueError(f"memory.plan: batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(budget_bytes, int) or budget_bytes < 1:
        raise ValueError(f"memory.plan: budget_bytes must be a positive integer, got {budget_bytes!r}")
    if optimizer is None:
        optimizer = SGD(model.parameters(), 0.1)
    est = _Estimator(model, input_shape, optimizer, dtype, label_dtype)
    sequential = isinstance(model, Sequential) and len(model.layers) >= 2
    cands: list[Candidate] = []
    for k in _microbatch_counts(batch_size, max_microbatches or batch_size):
        b = math.ceil(batch_size / k)
        accum = 3 * est.param_bytes if k > 1 else 0
        overhead = microbatch_overhead * (k - 1)
        for e in [0, *(_segment_sizes(len(model.layers)) if sequential else [])]:
            peak = (est.checkpointed(b, e) if e else est.plain(b)[0]) + accum
            cost = overhead + (checkpoint_cost if e else 0.0)
            needs = math.ceil(peak * (1 + margin))
            cands.append(Candidate(k, e, peak, cost, needs, needs <= budget_bytes))
    fitting = [c for c in cands if c.fits]
    chosen = min(fitting, key=lambda c: (c.extra_cost, c.microbatches, c.peak), default=None)
    report = PlanReport(None, chosen, cands, budget_bytes, margin)
    if chosen is None:
        smallest = min(c.needs for c in cands)
        raise MemoryBudgetError(
            f"memory.plan: no plan fits {budget_bytes:,} bytes ({budget_bytes / 2**20:.2f} MiB); the smallest "
            f"budget that fits is {smallest:,} bytes ({smallest / 2**20:.2f} MiB)\n{report.table()}",
            smallest,
            report,
        )
    report.plan = Plan(
        microbatches=chosen.microbatches,
        checkpoint_every=chosen.checkpoint_every,
        notes=[report.why()],
    )
    return report
