"""Microbatching: the gradient of a batch as the weighted sum of its microbatches' gradients.

With a loss that is a mean over examples, the batch gradient is Σ_i (n_i / N) g_i, where g_i
is the gradient of microbatch i's mean loss. Only one microbatch's activations are alive at
a time, so the activation memory drops about k-fold, at the cost of k smaller (less
efficient) matrix products. The update equals one step on the whole batch up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chainrule.core.constructors import as_tensor
from chainrule.core.tensor import Tensor
from chainrule.parallel.data import shard

Step = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def split(n: int, k: int) -> list[slice]:
    """``k`` contiguous microbatches of ``n`` examples (sizes differ by at most one; none empty)."""
    if k < 1:
        raise ValueError(f"microbatches must be >= 1, got {k}")
    k = min(k, max(n, 1))
    return [shard(n, i, k) for i in range(k)]


def accumulate(
    step: Step,
    params: Sequence[Tensor],
    x: np.ndarray[Any, Any],
    y: np.ndarray[Any, Any],
    microbatches: int,
    total: int | None = None,
) -> tuple[float, np.ndarray[Any, Any]]:
    """Run ``step(x_i, y_i)`` (which backpropagates a mean loss into ``.grad``) on each microbatch.

    Afterwards ``p.grad`` holds Σ_i (n_i / total) g_i; ``total`` defaults to ``len(x)`` (pass
    the global batch size when ``x`` is this rank's shard). Returns the same weighted sum of
    the losses and the concatenated outputs (logits).
    """
    total = len(x) if total is None else total
    pieces = split(len(x), microbatches)
    if len(pieces) == 1 and total == len(x):  # the plain step, untouched
        J, out = step(as_tensor(x), as_tensor(y))
        return float(J._data), out._data
    sums: list[np.ndarray[Any, Any] | None] = [None] * len(params)
    loss = 0.0
    outs = []
    for piece in pieces:
        for p in params:
            p.grad = None
        J, out = step(as_tensor(x[piece]), as_tensor(y[piece]))
        w = (piece.stop - piece.start) / total
        loss += w * float(J._data)
        outs.append(out._data)
        for i, p in enumerate(params):
            if p.grad is not None:
                g = p.grad._data * np.asarray(w, p.grad.dtype)
                sums[i] = g if sums[i] is None else sums[i] + g
    for p, s in zip(params, sums, strict=True):
        p.grad = None if s is None else Tensor._make(s, None)
    return loss, np.concatenate(outs)
