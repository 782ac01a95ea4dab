"""What the planner weighs: a :class:`Candidate` (one way to run the step) and the :class:`Estimator`
that prices candidates (every estimate computed once), shared by the one-process sweep
(:mod:`chainrule.plan.planner`) and the multi-rank candidates (:mod:`chainrule.plan.ranks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from chainrule.measure.shapes import ShapeDtype


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


class Estimator:
    """The estimates a sweep needs, each computed once."""

    def __init__(self, model: Any, input_shape: tuple[int, ...], optimizer: Any, dtype: Any, label_dtype: Any):
        self.model, self.input_shape, self.optimizer = model, tuple(input_shape), optimizer
        self.dtype, self.label_dtype = np.dtype(dtype), np.dtype(label_dtype)
        self._plain: dict[int, tuple[int, int]] = {}
        self._seg: dict[tuple[int, int, int], int] = {}
        self._shapes: dict[int, list[tuple[int, ...]]] = {}
        self.params = list(model.parameters())
        self.param_bytes = sum(int(p._data.nbytes) for p in self.params)
        from chainrule.plan.budget import StepExtras

        self.extras = StepExtras(self.input_shape, self.dtype, self.label_dtype, self.outputs(), self.param_bytes)

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

    def outputs(self) -> int:
        """The model's output size per example (the logits a step keeps)."""
        from chainrule.core.state import no_grad
        from chainrule.measure.shapes import eval_shape

        with no_grad():
            out = eval_shape(self.model, ShapeDtype((1, *self.input_shape), self.dtype))
        return int(np.prod(out.shape))

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
