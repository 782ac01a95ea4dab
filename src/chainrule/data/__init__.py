"""Datasets and minibatching."""

from chainrule.data.fashion_mnist import CLASSES, FashionMNIST, load_fashion_mnist, read_idx
from chainrule.data.loader import DataLoader, as_float_inputs, load_csv, load_npz

__all__ = [
    "CLASSES",
    "DataLoader",
    "FashionMNIST",
    "as_float_inputs",
    "load_csv",
    "load_fashion_mnist",
    "load_npz",
    "read_idx",
]
