"""The default random generator: what ``nn`` layers' initialisation, ``Dropout`` masks and
``DataLoader`` shuffling, ``cr.randn`` and the in-place ``normal_``/``uniform_`` draw from when
not given a generator or seed of their own (it lives in :mod:`chainrule.core.random`).

:func:`manual_seed` (``cr.manual_seed``, as ``torch.manual_seed``) reseeds it in place, so one
call makes a run reproducible, including layers and loaders made before the call.

Examples:
    >>> import chainrule as cr
    >>> _ = cr.manual_seed(0)
    >>> a = cr.nn.Linear(2, 2).weight.numpy()
    >>> _ = cr.manual_seed(0)
    >>> bool((cr.nn.Linear(2, 2).weight.numpy() == a).all())
    True
"""

from __future__ import annotations

import numpy as np

from chainrule.core.random import GENERATOR as _GENERATOR


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the default generator (in place: everything holding it follows) and return it.

    ``seed``: a non-negative integer; anything else is a ``TypeError``/``ValueError``.

    Examples:
        >>> g = manual_seed(3)
        >>> x = g.random()
        >>> _ = manual_seed(3)
        >>> g.random() == x
        True
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"manual_seed: expected a non-negative integer seed, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"manual_seed: expected a non-negative integer seed, got {seed}")
    _GENERATOR.bit_generator.state = np.random.PCG64(int(seed)).state
    return _GENERATOR


def default_generator() -> np.random.Generator:
    """The generator :func:`manual_seed` seeds."""
    return _GENERATOR


__all__ = ["default_generator", "manual_seed"]
