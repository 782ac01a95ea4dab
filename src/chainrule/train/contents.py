"""A checkpoint's content checked against itself before anything is built from it.

The digest in a checkpoint proves only that the file was not damaged by accident: anyone who
edits it can recompute it. So the metadata is not trusted to size anything: the parameter
shapes a configuration implies are derived from its numbers (no allocation), and must equal
the shapes of the arrays actually in the file (which are bounded by the file's size) before a
model is built; every parameter and optimizer array must hold finite numbers, and the run
state's numbers must be finite. Every failure is a :class:`~chainrule.train.snapshot.CheckpointError`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.train.snapshot import CheckpointError

__all__ = ["check_arrays", "check_history", "parameter_shapes"]


def parameter_shapes(model: str, hidden: int, dropout: float, inputs: int, classes: int) -> dict[str, tuple[int, ...]]:
    """The state-dict names and shapes of the trainer's model for these settings, computed, not built."""
    if model in ("section", "section-bias"):
        shapes: dict[str, tuple[int, ...]] = {"W1": (hidden, inputs), "W2": (classes, hidden)}
        if model == "section-bias":
            shapes["b1"] = (hidden,)
        return shapes
    last = 3 if dropout else 2  # Linear, activation, [Dropout,] Linear
    return {
        "0.weight": (hidden, inputs),
        "0.bias": (hidden,),
        f"{last}.weight": (classes, hidden),
        f"{last}.bias": (classes,),
    }


def check_arrays(arrays: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]], path: Path) -> None:
    """The checkpoint's ``param/`` arrays are exactly ``expected`` (names, shapes, float dtype); all arrays finite."""
    params = {k[len("param/") :]: v for k, v in arrays.items() if k.startswith("param/")}
    missing = sorted(set(expected) - set(params))
    extra = sorted(set(params) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{path}: checkpoint parameters do not fit its configuration "
            f"(missing {missing}, unexpected {extra}): corrupt"
        )
    for name, shape in expected.items():
        a = params[name]
        if a.shape != shape:
            raise CheckpointError(
                f"{path}: checkpoint parameter {name!r} has shape {a.shape}; its configuration implies {shape}: corrupt"
            )
        if a.dtype.kind != "f":
            raise CheckpointError(f"{path}: checkpoint parameter {name!r} has dtype {a.dtype}, not a float: corrupt")
    for key, a in sorted(arrays.items()):
        if (key.startswith("param/") or key.startswith("optim/")) and a.dtype.kind in "fc" and not np.isfinite(a).all():
            bad = int(a.size - np.count_nonzero(np.isfinite(a)))
            raise CheckpointError(
                f"{path}: checkpoint array {key!r} holds {bad} non-finite value(s) (NaN or Inf): corrupt or diverged"
            )


def check_history(state: dict[str, Any], path: Path) -> None:
    """Every number of the run state (running sums, seconds, each epoch's metrics) is finite."""
    numbers = [(k, state[k]) for k in ("loss_sum", "seconds")]
    for i, h in enumerate(state.get("history", [])):
        for k, v in h.items():
            if k != "epoch" and type(v) not in (int, float):
                raise CheckpointError(f"{path}: checkpoint history epoch {i + 1} has {k}={v!r}, not a number: corrupt")
            numbers.append((f"history[{i}].{k}", v))
        if h.get("epoch") != i + 1:
            raise CheckpointError(f"{path}: checkpoint history entry {i + 1} says epoch {h.get('epoch')!r}: corrupt")
    for name, v in numbers:
        if not math.isfinite(v):
            raise CheckpointError(f"{path}: checkpoint run state {name} = {v!r} is not finite: corrupt")
