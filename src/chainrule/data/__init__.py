"""Datasets and minibatching.

- ``load_fashion_mnist(data_dir=None)``: uint8 images (N, 28, 28) and uint8 labels (N,) for the
  train and test splits; an explicit ``data_dir`` is the only place looked at.
- ``as_float_inputs(images)``: float32 rows (N, 784) in [0, 1].
- ``DataLoader(*arrays, batch_size=256, shuffle=False, seed=None)``: minibatches of equally long
  arrays, each epoch's order reproducible from ``(seed, epoch)`` (no seed: one drawn from the
  default generator, which ``cr.manual_seed`` seeds).

Examples:
    >>> import numpy as np
    >>> x, y = np.arange(10, dtype=np.float32).reshape(5, 2), np.arange(5)
    >>> [yb.tolist() for _, yb in DataLoader(x, y, batch_size=2)]
    [[0, 1], [2, 3], [4]]
    >>> as_float_inputs(np.full((1, 2, 2), 255, np.uint8))
    array([[1., 1., 1., 1.]], dtype=float32)
"""

from chainrule.data.fashion_mnist import CLASSES, FashionMNIST, load_fashion_mnist, read_idx
from chainrule.data.loader import DataLoader, as_float_inputs, load_csv, load_npz
from chainrule.data.rng import default_generator, manual_seed

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
