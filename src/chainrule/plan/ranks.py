"""The memory planner's candidates over several ranks: pipeline stages and data parallelism.

**Pipeline** (a ``Sequential`` over S = ``ranks`` stages, :class:`chainrule.parallel.Pipeline`):
the stages are cut as the Pipeline cuts them, :func:`chainrule.parallel.pipeline.balance` over
:func:`chainrule.parallel.pipeline.layer_costs` of one example. Stage s's peak at microbatch
size b is the shape-only estimate (:func:`chainrule.measure.memory.estimate`) of one microbatch's
forward and backward through the stage (its input received, the loss on the last stage, the
incoming gradient on the others), with every parameter of the model counted (each rank holds
the whole model) and this stage's gradients; plus, for every further microbatch in flight,
the activations its forward saved, its received input and its output (1F1B keeps
``min(S - s, M)`` microbatches in flight on stage s, GPipe all M); plus the whole batch's
inputs and labels (every rank holds them), one parameter-sized array of gradient
accumulation when M > 1, and the optimizer's state for the stage's parameters. The
candidate's peak is the largest stage's.

Time (see :mod:`chainrule.plan.timing` for a pass's seconds ``t_s``):
``Σ_s t_s + (M - 1)·max_s t_s`` (fill, steady state, drain: the bubble is ``(S-1)/(M+S-1)``
of the time when the stages are equal) ``+ 2·M·Σ_boundaries (latency + bytes/bandwidth)``
``+`` the largest stage's update. Communication per step: the activations forward and their
gradients backward across every boundary, ``2·B·width·itemsize`` each.

**Data parallel** over P ranks: each rank's step is the single-process candidate on its shard
``⌈B/P⌉`` (with its own microbatches and checkpointing), plus the Allreduce's bucket buffer
and the rest of the global batch's inputs (every rank holds the whole batch); time adds the
ring Allreduce, ``2(P-1)/P × gradient bytes`` over the bandwidth and a latency per bucket.

The link's bandwidth defaults to this machine's measured memory-copy rate halved (MPI on one
host copies through shared memory twice); its latency to 100 µs per message (an assumption:
pass ``link_latency``/``link_bandwidth`` measured on your network).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from chainrule.measure.shapes import ShapeDtype
from chainrule.plan.candidates import Candidate, Estimator

if TYPE_CHECKING:
    from chainrule.plan.timing import StepTimer

__all__ = ["data_parallel_candidates", "pipeline_candidates", "pipeline_stages"]

BUCKET_BYTES = 4 << 20  # chainrule.parallel.data.DEFAULT_BUCKET_BYTES


def pipeline_stages(model: Any, input_shape: tuple[int, ...], dtype: Any, ranks: int) -> list[tuple[int, int]]:
    """The stages :class:`~chainrule.parallel.Pipeline` cuts by default (balanced by ``layer_costs``)."""
    from chainrule.parallel.pipeline import balance, layer_costs

    sample = np.zeros((1, *input_shape), dtype)
    return balance([float(c) for c in layer_costs(model.layers, sample)], ranks)


class _Stages:
    """Per-stage estimates, each computed once."""

    def __init__(self, est: Estimator) -> None:
        self.est = est
        self._cache: dict[tuple[int, int, int], tuple[int, int]] = {}

    def one_microbatch(self, start: int, stop: int, b: int) -> tuple[int, int]:
        """(peak, bytes one more microbatch in flight holds) of the stage ``layers[start:stop]``."""
        key = (start, stop, b)
        if key in self._cache:
            return self._cache[key]
        import chainrule.nn.functional as F
        from chainrule.measure.memory import estimate

        est = self.est
        layers = est.model.layers[start:stop]
        first, last = start == 0, stop == len(est.model.layers)
        shapes = est.shapes(b)
        itemsize = est.dtype.itemsize

        def step(h: Any, other: Any) -> None:
            out = h
            for layer in layers:
                out = layer(out)
            if last:
                F.cross_entropy(out, other).backward()
            else:
                out.backward(other)

        other = ShapeDtype((b,), est.label_dtype) if last else ShapeDtype(shapes[stop], est.dtype)
        prof = estimate(step, ShapeDtype(shapes[start], est.dtype, requires_grad=not first), other, params=est.params)
        forward_saved = max((p.categories["activations"] for p in prof.points if p.phase == "forward"), default=0)
        held = forward_saved
        held += 0 if first else int(np.prod(shapes[start])) * itemsize  # the received input
        held += 0 if last else int(np.prod(shapes[stop])) * itemsize  # the output, kept for its gradient
        self._cache[key] = (prof.peak, held)
        return self._cache[key]


def pipeline_candidates(
    est: Estimator,
    timer: StepTimer,
    batch: int,
    ranks: int,
    counts: Sequence[int],
    link_latency: float,
    link_bandwidth: float,
    margin: float,
    budget: int,
) -> list[Candidate]:
    """Pipeline candidates: every microbatch count in ``counts`` under both schedules."""
    from chainrule.measure.memory import update_footprint
    from chainrule.parallel.accumulate import split

    model = est.model
    bounds = pipeline_stages(model, est.input_shape, est.dtype, ranks)
    stages = _Stages(est)
    itemsize = est.dtype.itemsize
    batch_bytes = batch * int(np.prod(est.input_shape)) * itemsize + batch * est.label_dtype.itemsize
    k_state = update_footprint(est.optimizer, est.dtype)[0]
    out: list[Candidate] = []
    for m in counts:
        pieces = [s.stop - s.start for s in split(batch, m)]
        b = pieces[0]
        peaks: dict[str, int] = {"gpipe": 0, "1f1b": 0}
        times = []
        for s, (start, stop) in enumerate(bounds):
            peak, held = stages.one_microbatch(start, stop, b)
            stage_params = [p._data.nbytes for layer in model.layers[start:stop] for p in layer.parameters()]
            extra = batch_bytes + int(k_state * sum(stage_params)) + est.extras.fixed  # + the runtime's overhead
            if len(pieces) > 1:
                extra += max(stage_params, default=0)  # the gradient sum while the new one is added
            for schedule, inflight in (("gpipe", len(pieces)), ("1f1b", min(ranks - s, len(pieces)))):
                peaks[schedule] = max(peaks[schedule], peak + (inflight - 1) * held + extra)
            times.append(timer.pass_seconds(start, stop, b, stop == len(model.layers))[0])
        boundary = [int(np.prod(est.shapes(b)[stop])) * itemsize for _, stop in bounds[:-1]]
        comm_seconds = 2 * len(pieces) * sum(link_latency + nbytes / link_bandwidth for nbytes in boundary)
        largest_update = max(
            timer.update_seconds([p._data.size for layer in model.layers[a:z] for p in layer.parameters()] or [0])
            for a, z in bounds
        )
        seconds = sum(times) + (len(pieces) - 1) * max(times) + comm_seconds + largest_update
        comm_bytes = sum(2 * batch * nbytes // b for nbytes in boundary)
        bubble = (ranks - 1) / (len(pieces) + ranks - 1)
        for schedule in ("1f1b", "gpipe"):
            needs = math.ceil(peaks[schedule] * (1 + margin))
            out.append(
                Candidate(
                    microbatches=len(pieces),
                    checkpoint_every=0,
                    peak=peaks[schedule],
                    seconds=seconds,
                    needs=needs,
                    fits=needs <= budget,
                    parallel="pipeline",
                    ranks=ranks,
                    stages=list(bounds),
                    schedule=schedule,
                    comm_bytes=comm_bytes,
                    bubble=bubble,
                )
            )
    return out


def data_parallel_candidates(
    single: Sequence[Candidate],
    est: Estimator,
    batch: int,
    ranks: int,
    link_latency: float,
    link_bandwidth: float,
    margin: float,
    budget: int,
) -> list[Candidate]:
    """Data-parallel candidates from the single-process candidates of one shard (``⌈B/P⌉`` examples)."""

    shard = math.ceil(batch / ranks)
    grad_bytes = est.param_bytes
    example = int(np.prod(est.input_shape)) * est.dtype.itemsize + est.label_dtype.itemsize
    extra = min(grad_bytes, BUCKET_BYTES) + (batch - shard) * example
    n_buckets = max(1, math.ceil(grad_bytes / BUCKET_BYTES))
    comm_bytes = int(2 * (ranks - 1) / ranks * grad_bytes)
    comm_seconds = comm_bytes / link_bandwidth + n_buckets * link_latency
    out = []
    for c in single:
        peak = c.peak + extra
        needs = math.ceil(peak * (1 + margin))
        out.append(
            Candidate(
                microbatches=c.microbatches,
                checkpoint_every=c.checkpoint_every,
                peak=peak,
                seconds=c.seconds + comm_seconds,
                needs=needs,
                fits=needs <= budget,
                parallel="data",
                ranks=ranks,
                recompute=c.recompute,
                comm_bytes=comm_bytes,
            )
        )
    return out
