"""Neural-network building blocks: ``Module``, ``Parameter``, layers (``Linear``, ``LazyLinear``, ``ReLU``,
``Tanh``, ``Sigmoid``, ``Dropout``, ``Flatten``, ``Sequential``, ``MSELoss``), ``functional`` (activations and
losses) and ``init`` (initializers). Batches are rows: (batch, features).

Examples:
    >>> import numpy as np, chainrule as cr
    >>> from chainrule import nn
    >>> model = nn.Sequential(nn.Linear(784, 256, rng=np.random.default_rng(0)), nn.ReLU(), nn.Linear(256, 10))
    >>> model(cr.tensor(np.zeros((2, 784)))).shape, model.num_parameters()
    ((2, 10), 203530)
"""

from chainrule.nn import functional, init, lowering  # noqa: F401  (lowering: registers cr.compile's rules)
from chainrule.nn.modules import (
    Dropout,
    Flatten,
    LazyLinear,
    Linear,
    Module,
    MSELoss,
    Parameter,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
)

__all__ = [
    "Dropout",
    "Flatten",
    "LazyLinear",
    "Linear",
    "Module",
    "MSELoss",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "functional",
    "init",
]
