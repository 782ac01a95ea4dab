"""Minibatches over arrays, and readers for a user's own data (.npz, CSV)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.core.errors import DataError, ShapeError
from chainrule.data.rng import default_generator


class DataLoader:
    """Iterate over ``(x_batch, y_batch, ...)`` minibatches of equally long arrays.

    With ``shuffle``, epoch ``e`` uses the permutation drawn from ``(seed, e)``, so any
    epoch can be reproduced on its own (this is what makes ``--resume`` exact). Without a
    ``seed``, one is drawn from the default generator when the loader is made, so each run
    shuffles differently unless ``cr.manual_seed`` was called (as PyTorch's loaders).
    """

    def __init__(
        self,
        *arrays: np.ndarray,
        batch_size: int = 256,
        shuffle: bool = False,
        seed: int | None = None,
        drop_last: bool = False,
    ) -> None:
        if not arrays:
            raise ValueError("DataLoader: expected at least one array, got none")
        lengths = {len(a) for a in arrays}
        if len(lengths) != 1:
            raise ShapeError(f"DataLoader: arrays must have the same length, got {[len(a) for a in arrays]}")
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        self.arrays = arrays
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = int(default_generator().integers(2**63)) if seed is None else seed
        self.drop_last = drop_last
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.arrays[0])
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        n = len(self.arrays[0])
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def index_batches(self, epoch: int, start: int = 0) -> Iterator[np.ndarray]:
        """The example indices of each batch of ``epoch``, beginning at batch number ``start``."""
        idx = self.order(epoch)
        for b in range(start, len(self)):
            yield idx[b * self.batch_size : (b + 1) * self.batch_size]

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[np.ndarray, ...]]:
        """Batches of ``epoch``, beginning at batch number ``start``."""
        for sel in self.index_batches(epoch, start):
            yield tuple(a[sel] for a in self.arrays)

    def __iter__(self) -> Iterator[tuple[np.ndarray, ...]]:
        yield from self.batches(self.epoch)
        self.epoch += 1


def load_npz(path: str | os.PathLike[str], x_key: str = "x", y_key: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """Read features and labels from an ``.npz`` (no pickle)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in (x_key, y_key) if k not in f.files]
            if missing:
                raise DataError(f"{path}: missing array(s) {missing}; it holds {f.files}")
            x, y = f[x_key], f[y_key]
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from exc
    if len(x) != len(y):
        raise DataError(f"{path}: {x_key} has {len(x)} rows but {y_key} has {len(y)}")
    return x, y


def load_csv(
    path: str | os.PathLike[str], label_column: int = -1, skip_header: bool | None = None, delimiter: str = ","
) -> tuple[np.ndarray, np.ndarray]:
    """Read a numeric CSV; one column is the integer label, the rest are float32 features."""
    path = Path(path)
    lines = path.read_text().splitlines()
    if skip_header is None:
        first = lines[0].split(delimiter) if lines else []
        skip_header = any(not _is_number(v) for v in first)
    rows: list[list[float]] = []
    width: int | None = None
    for lineno, line in enumerate(lines[1 if skip_header else 0 :], start=2 if skip_header else 1):
        if not line.strip():
            continue
        fields = line.split(delimiter)
        if width is None:
            width = len(fields)
        elif len(fields) != width:
            raise DataError(f"{path}:{lineno}: {len(fields)} columns, expected {width}")
        try:
            rows.append([float(v) for v in fields])
        except ValueError as exc:
            raise DataError(f"{path}:{lineno}: non-numeric value ({exc})") from exc
    if not rows:
        raise DataError(f"{path}: no data rows")
    table = np.array(rows)
    labels = table[:, label_column]
    if not np.all(labels == np.round(labels)):
        raise DataError(f"{path}: label column {label_column} holds non-integer values")
    features = np.delete(table, label_column % table.shape[1], axis=1).astype(np.float32)
    return features, labels.astype(np.int64)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def as_float_inputs(images: Any) -> np.ndarray:
    """uint8 images -> float32 in [0, 1], flattened per example."""
    x = np.asarray(images)
    return (x.reshape(len(x), -1).astype(np.float32)) / np.float32(255.0)
