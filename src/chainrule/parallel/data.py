"""Data parallelism: every rank a shard of the global batch, gradients summed with bucketed Allreduce.

The loss is a mean over the global batch of N examples. Rank r holds n_r of them and computes
the gradient g_r of its shard's mean loss; the global gradient is Σ_r (n_r / N) g_r, so each
rank scales by n_r / N and the ranks *sum* (one Allreduce). The result equals the
single-process gradient on the same global batch up to float rounding (the order of the sums
differs). Parameters are made identical on every rank by a Bcast from rank 0 at the start.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule.core.tensor import Tensor
from chainrule.parallel.comm import Comm

DEFAULT_BUCKET_BYTES = 4 << 20  # 4 MiB per Allreduce: large enough to amortize latency


def shard(n: int, rank: int, size: int) -> slice:
    """Rank ``rank``'s contiguous part of ``n`` examples (sizes differ by at most one)."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def scaled_copy(dest: np.ndarray[Any, Any], grad: np.ndarray[Any, Any] | None, weight: float) -> None:
    """``dest ← weight · grad`` in one pass (zeros for a parameter without a gradient)."""
    if grad is None:
        dest[...] = 0
    elif weight == 1.0:
        np.copyto(dest, grad)
    else:
        np.multiply(grad, dest.dtype.type(weight), out=dest)


def buckets(params: Sequence[Tensor], bucket_bytes: int) -> list[list[int]]:
    """Group parameter indices (in order) into buckets of at most ``bucket_bytes`` (one big one alone)."""
    groups: list[list[int]] = []
    current: list[int] = []
    size = 0
    for i, p in enumerate(params):
        nbytes = p._data.nbytes
        if current and size + nbytes > bucket_bytes:
            groups.append(current)
            current, size = [], 0
        current.append(i)
        size += nbytes
    if current:
        groups.append(current)
    return groups


class DataParallel:
    """Keep ``params`` identical across ranks and average their gradients."""

    def __init__(self, params: Sequence[Tensor], comm: Comm, bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> None:
        self.params = list(params)
        self.comm = comm
        self.groups = buckets(self.params, bucket_bytes)
        self.allreduce_bytes = 0  # gradient payload reduced so far

    def broadcast_parameters(self, root: int = 0) -> None:
        """Every rank takes rank ``root``'s parameter values (bucketed Bcast)."""
        for group in self.groups:
            flat = np.concatenate([self.params[i]._data.ravel() for i in group])
            self.comm.bcast_(flat, root, what="broadcasting parameters")
            self._unpack(flat, group)

    def allreduce_gradients(self, weight: float) -> None:
        """``p.grad ← Σ_ranks weight_r · p.grad_r`` for every parameter (``weight`` = n_r / N here).

        Each bucket is packed once (the scaling fused into the copy), reduced in place, and the
        parameters' ``.grad`` become views into it: one pass over the gradients besides MPI's.
        A parameter without a gradient on this rank contributes zeros.
        """
        for group in self.groups:
            dtype = np.result_type(*[self.params[i]._data.dtype for i in group])
            flat = np.empty(sum(self.params[i]._data.size for i in group), dtype)
            offset = 0
            for i in group:
                p = self.params[i]
                piece = flat[offset : offset + p._data.size].reshape(p._data.shape)
                offset += p._data.size
                scaled_copy(piece, None if p.grad is None else p.grad._data, weight)
            self.comm.allreduce_(flat, what=f"gradient allreduce ({flat.nbytes} bytes)")
            self.allreduce_bytes += flat.nbytes
            offset = 0
            for i in group:
                p = self.params[i]
                p.grad = Tensor._make(flat[offset : offset + p._data.size].reshape(p._data.shape), None)
                offset += p._data.size

    def _unpack(self, flat: np.ndarray[Any, Any], group: list[int]) -> None:
        offset = 0
        for i in group:
            p = self.params[i]
            n = p._data.size
            p._data = flat[offset : offset + n].reshape(p._data.shape).astype(p._data.dtype, copy=True)
            offset += n
