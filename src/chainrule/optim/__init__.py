"""Optimizers and learning-rate schedules."""

from chainrule.optim.optimizers import SGD, Adam, AdamW, CosineAnnealingLR, Optimizer, StepLR

__all__ = ["SGD", "Adam", "AdamW", "CosineAnnealingLR", "Optimizer", "StepLR"]
