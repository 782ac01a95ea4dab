"""Parameter initialisers. Each takes a shape and a NumPy Generator and returns float32 data.

``nn.Linear(init=...)`` and ``chainrule train --init`` name them: "normal" (N(0, 0.01²), the
book's), "xavier", "he", "he_uniform".

Examples:
    >>> import numpy as np
    >>> w = normal((256, 784), np.random.default_rng(0))
    >>> w.shape, w.dtype, bool(abs(w.std() - 0.01) < 1e-3)
    ((256, 784), dtype('float32'), True)
"""

from __future__ import annotations

import numpy as np


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) < 2:
        return shape[0] if shape else 1, shape[0] if shape else 1
    receptive = int(np.prod(shape[2:], dtype=np.int64)) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive  # (fan_in, fan_out) for (out, in, ...)


def normal(shape: tuple[int, ...], rng: np.random.Generator, std: float = 0.01) -> np.ndarray:
    """N(0, std^2); the book's choice for the section's MLP is std = 0.01."""
    return (rng.standard_normal(shape) * std).astype(np.float32)


def xavier_uniform(shape: tuple[int, ...], rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    fan_in, fan_out = _fans(shape)
    bound = gain * np.sqrt(6.0 / (fan_in + fan_out))
    return np.asarray(rng.uniform(-bound, bound, shape), dtype=np.float32)


def xavier_normal(shape: tuple[int, ...], rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    fan_in, fan_out = _fans(shape)
    return np.asarray(rng.standard_normal(shape) * gain * np.sqrt(2.0 / (fan_in + fan_out)), dtype=np.float32)


def he_normal(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Kaiming/He normal for ReLU layers: std = sqrt(2 / fan_in)."""
    fan_in, _ = _fans(shape)
    return np.asarray(rng.standard_normal(shape) * np.sqrt(2.0 / fan_in), dtype=np.float32)


def he_uniform(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    fan_in, _ = _fans(shape)
    bound = np.sqrt(6.0 / fan_in)
    return np.asarray(rng.uniform(-bound, bound, shape), dtype=np.float32)


def zeros(shape: tuple[int, ...], rng: np.random.Generator | None = None) -> np.ndarray:
    return np.zeros(shape, np.float32)


INITIALIZERS = {
    "normal": normal,
    "xavier": xavier_uniform,
    "xavier_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "he": he_normal,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
}
