"""Planning a training step around a memory budget: microbatches, checkpointing, pipeline stages, data parallelism.

:func:`fit_budget` predicts every candidate's peak with :func:`chainrule.measure.memory.estimate`
(shapes only) and its time with a calibrated model, and returns the fastest that fits.
"""

from chainrule.plan.candidates import Candidate
from chainrule.plan.planner import MemoryBudgetError, PlanReport, fit_budget, parse_size

__all__ = ["Candidate", "MemoryBudgetError", "PlanReport", "fit_budget", "parse_size"]
