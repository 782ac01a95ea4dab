"""The default random generator of the whole package: what ``nn`` layers' initialisation,
``Dropout`` masks, ``DataLoader`` shuffling, ``cr.randn`` without a seed and the in-place
``normal_``/``uniform_`` draw from. ``cr.manual_seed`` (``chainrule.data.rng``) reseeds it in
place, so everything holding it follows."""

from __future__ import annotations

import numpy as np

GENERATOR = np.random.default_rng()
