"""Datasets and minibatching.

- ``load_fashion_mnist(data_dir=None)``: uint8 images (N, 28, 28) and uint8 labels (N,) for the
  train and test splits; an explicit ``data_dir`` is the only place looked at.
- ``as_float_inputs(images)``: float32 rows (N, 784) in [0, 1].
- ``DataLoader(*arrays, batch_size=256, shuffle=False, seed=None)``: minibatches of equally long
  arrays, each epoch's order reproducible from ``(seed, epoch)`` (no seed: one drawn from the
  default generator, which ``cr.manual_seed`` seeds).

Each name is loaded from its module on first use (PEP 562), so ``chainrule.nn``, which needs
only the default generator, does not load the readers and the loader.

Examples:
    >>> import numpy as np
    >>> from chainrule.data import DataLoader, as_float_inputs
    >>> x, y = np.arange(10, dtype=np.float32).reshape(5, 2), np.arange(5)
    >>> [yb.tolist() for _, yb in DataLoader(x, y, batch_size=2)]
    [[0, 1], [2, 3], [4]]
    >>> as_float_inputs(np.full((1, 2, 2), 255, np.uint8))
    array([[1., 1., 1., 1.]], dtype=float32)
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and the API reference; at run time each loads on first use
    from chainrule.data.fashion_mnist import CLASSES, FashionMNIST, load_fashion_mnist, read_idx
    from chainrule.data.loader import DataLoader, as_float_inputs, load_csv, load_npz
    from chainrule.data.rng import default_generator, manual_seed

_HOME = {
    "CLASSES": "fashion_mnist",
    "FashionMNIST": "fashion_mnist",
    "load_fashion_mnist": "fashion_mnist",
    "read_idx": "fashion_mnist",
    "DataLoader": "loader",
    "as_float_inputs": "loader",
    "load_csv": "loader",
    "load_npz": "loader",
    "default_generator": "rng",
    "manual_seed": "rng",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        value = getattr(importlib.import_module(f"chainrule.data.{_HOME[name]}"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'chainrule.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))


__all__ = [
    "CLASSES",
    "DataLoader",
    "FashionMNIST",
    "as_float_inputs",
    "default_generator",
    "load_csv",
    "load_fashion_mnist",
    "load_npz",
    "manual_seed",
    "read_idx",
]
