"""What a run does to fit in memory: one object a memory planner can fill in.

``cr.plan.fit_budget`` (after the estimator lands) can return a :class:`Plan`; the Trainer and
:class:`~chainrule.parallel.pipeline.Pipeline` only read its fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MODES = ("none", "data", "pipeline")


@dataclass
class Plan:
    microbatches: int = 1  # gradient accumulation (and the pipeline's microbatches)
    checkpoint_every: int = 0  # checkpoint every k layers of a Sequential (0: off)
    parallel: str = "none"  # none | data | pipeline
    stages: list[tuple[int, int]] | None = None  # pipeline: layers of each stage (None: balance by bytes)
    schedule: str = "1f1b"  # pipeline schedule: gpipe | 1f1b
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if type(self.microbatches) is not int or self.microbatches < 1:
            raise ValueError(f"plan: microbatches must be a positive integer, got {self.microbatches!r}")
        if type(self.checkpoint_every) is not int or self.checkpoint_every < 0:
            raise ValueError(f"plan: checkpoint_every must be an integer >= 0, got {self.checkpoint_every!r}")
        if self.parallel not in MODES:
            raise ValueError(f"plan: parallel must be one of {', '.join(MODES)}, got {self.parallel!r}")

    def config_fields(self) -> dict[str, object]:
        """The trainer Config fields this plan sets: ``Config(**{..., **plan.config_fields()})``."""
        return {"microbatches": self.microbatches, "parallel": self.parallel, "pipeline_schedule": self.schedule}

    def apply_to(self, model: object) -> None:
        """Set ``checkpoint_every`` on every ``nn.Sequential`` in ``model`` (itself included)."""
        from chainrule.nn.modules import Module, Sequential

        if isinstance(model, Module):
            for m in model.modules():
                if isinstance(m, Sequential):
                    m.checkpoint_every = self.checkpoint_every
