"""Optimizers (``SGD``, ``Adam``, ``AdamW``) and learning-rate schedules (``StepLR``,
``CosineAnnealingLR``). An optimizer takes ``model.parameters()`` (or tensors that require grad).

Examples:
    >>> import numpy as np, chainrule as cr
    >>> from chainrule import nn, optim
    >>> model = nn.Linear(3, 1, rng=np.random.default_rng(0))
    >>> opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    >>> loss = (model(cr.tensor(np.ones((4, 3)))) ** 2).mean()
    >>> opt.zero_grad(); loss.backward(); opt.step()
    >>> opt.steps
    1
"""

from chainrule.optim.optimizers import SGD, Adam, AdamW, CosineAnnealingLR, Optimizer, StepLR, Stepper

__all__ = ["SGD", "Adam", "AdamW", "CosineAnnealingLR", "Optimizer", "StepLR", "Stepper"]
