"""Data parallelism with the optimizer sharded over a host's ranks (ZeRO stage 1) in shared memory.

:class:`DataParallel` sums whole gradients with MPI Allreduce and lets every rank repeat the
whole optimizer update. :class:`ShardedDataParallel` does less work per rank:

* The ranks of one host (``MPI_COMM_TYPE_SHARED``) keep **one copy** of the parameters in an
  MPI shared-memory window; every rank's model parameters are views into it.
* Each rank writes its scaled gradient into its own row of a shared ``[ranks, n]`` array. After
  a barrier, rank ``r`` sums the rows over its shard ``r`` of the flattened parameters (a
  reduce-scatter through shared memory: it reads ``(L-1)/L`` of the other rows' bytes) and
  updates that shard with its own optimizer, which holds state for that shard only.
* Across hosts, the ranks with the same local rank sum their shard with ``MPI_Allreduce`` (a
  hierarchical allreduce, as Horovod's): ``2(H-1)/H · n·itemsize/L`` bytes per rank per step for
  ``H`` hosts of ``L`` ranks. Every host then holds identical parameters.
* A second barrier publishes the updated shards; the next forward pass reads them in place.

So per step a rank packs its gradient once (``n`` elements), reads its ``L-1`` peers' rows over
its shard (``(L-1) · n/L`` elements), and updates ``n/L`` parameters; the optimizer state per rank is
``1/L`` of the usual. Optimizers are elementwise, so the result equals one process stepping on
the whole batch up to the order of the gradient sum.

``ranks_per_host`` (or ``CHAINRULE_RANKS_PER_HOST``) groups ranks into pretend hosts of that
many consecutive ranks: with 1, every rank is its own host and the gradients travel by
Allreduce, which tests the multi-host path on one machine.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule.core.tensor import Tensor
from chainrule.optim.optimizers import Optimizer, _check_not_saved
from chainrule.parallel.comm import Comm
from chainrule.parallel.data import scaled_copy

STATE_TAG = 31000  # optimizer-state shards gathered for a checkpoint


class ShardedDataParallel:
    """Average gradients and step ``optimizer`` with its state sharded over the ranks of a host.

    Use it in place of the optimizer: ``zero_grad()``, then the backward pass of this rank's
    shard of the batch, then :meth:`reduce_gradients` with this rank's share of the batch mean,
    then :meth:`step`. ``lr``, ``steps``, ``state_dict()`` and ``load_state_dict()`` behave as the
    wrapped optimizer's, in the single-process layout (a checkpoint is the same either way).
    Every rank must start with the same parameter values (broadcast them first).

    Examples:
        Under ``mpiexec -n 2``::

            dp = ShardedDataParallel(model.parameters(), Adam(model.parameters()), Comm())
            dp.zero_grad()
            J = F.cross_entropy(model(x[part]), y[part]); J.backward()
            dp.reduce_gradients(weight=len(x[part]) / len(x))
            dp.step()
    """

    def __init__(
        self, params: Sequence[Tensor], optimizer: Optimizer, comm: Comm, ranks_per_host: int | None = None
    ) -> None:
        self.params = list(params)
        self.comm = comm
        MPI = comm.MPI
        world = comm.comm
        dtypes = {p._data.dtype for p in self.params}
        if len(dtypes) != 1:
            raise ValueError(
                f"ShardedDataParallel: the parameters must share one dtype, got {sorted(str(d) for d in dtypes)}; "
                f"use DataParallel (per-dtype Allreduce) instead"
            )
        self.dtype = dtypes.pop()
        if ranks_per_host is None and os.environ.get("CHAINRULE_RANKS_PER_HOST"):
            text = os.environ["CHAINRULE_RANKS_PER_HOST"]
            if not text.isdigit():
                raise ValueError(
                    f"ShardedDataParallel: CHAINRULE_RANKS_PER_HOST must be a positive integer, got {text!r}"
                )
            ranks_per_host = int(text)
        # MPI has no non-blocking split or window allocation: each is Comm.blocking (a polled barrier
        # first, then the call under a watchdog), so a missing or failed rank never hangs the others
        if ranks_per_host is None:
            shared, key = MPI.COMM_TYPE_SHARED, comm.rank
            self.host = comm.blocking("splitting the ranks by host", lambda: world.Split_type(shared, key=key))
        else:
            if ranks_per_host < 1:
                raise ValueError(f"ShardedDataParallel: ranks_per_host must be >= 1, got {ranks_per_host}")
            color = comm.rank // ranks_per_host
            self.host = comm.blocking("splitting the ranks by host", lambda: world.Split(color=color, key=comm.rank))
        self.local, self.local_size = self.host.Get_rank(), self.host.Get_size()
        local = self.local  # the same local rank on every host:
        self.cross = comm.blocking("splitting the ranks across hosts", lambda: world.Split(color=local, key=comm.rank))
        ranks = np.zeros(self.local_size, np.int64)
        comm.wait(self.host.Iallgather(np.array([comm.rank], np.int64), ranks), "gathering the host's ranks")
        self.host_world_ranks: list[int] = [int(r) for r in ranks]

        self.n = sum(p._data.size for p in self.params)
        self.shard_size = -(-self.n // self.local_size)
        self.lo = min(self.local * self.shard_size, self.n)
        self.hi = min(self.lo + self.shard_size, self.n)
        padded = self.shard_size * self.local_size
        item = self.dtype.itemsize
        self._wins: list[Any] = []
        self.flat = self._shared(padded * item if self.local == 0 else 0, self.dtype, (padded,), owner=0)
        rows = self._shared(padded * item, self.dtype, (padded,), owner=None)
        self.grad_rows: list[np.ndarray[Any, Any]] = rows
        stats_bytes = self.local_size * 4 * 8 if self.local == 0 else 0
        self.stats = self._shared(stats_bytes, np.float64, (self.local_size, 4), owner=0)  # 4 numbers per rank
        self._views: list[np.ndarray[Any, Any]] = []
        self._adopt(first=True)

        shard = Tensor._make(self.flat[self.lo : self.hi], None)
        shard.requires_grad = True
        self.shard = shard
        self.optimizer = optimizer.rebind([shard])
        self._shard_grad = np.empty(self.hi - self.lo, self.dtype)
        self.shared_bytes_read = 0  # peers' gradient bytes this rank read through shared memory

    # --- shared memory ----------------------------------------------------------------------
    def _shared(self, nbytes: int, dtype: Any, shape: tuple[int, ...], owner: int | None) -> Any:
        """A window of ``nbytes`` on this rank; ``owner``'s segment as an array (None: every rank's)."""
        MPI = self.comm.MPI
        item = np.dtype(dtype).itemsize
        win = self.comm.blocking(
            f"allocating {nbytes} bytes of shared memory",
            lambda: MPI.Win.Allocate_shared(nbytes, item, comm=self.host),
            group=self.host,
        )
        win.Lock_all(MPI.MODE_NOCHECK)
        self._wins.append(win)

        def segment(rank: int) -> np.ndarray[Any, Any]:
            buffer, _ = win.Shared_query(rank)
            return np.ndarray(buffer=buffer, dtype=dtype, shape=shape)

        if owner is not None:
            return segment(owner)
        return [segment(r) for r in range(self.local_size)]

    def _barrier(self, what: str) -> None:
        """Every rank of this host has reached this point, and sees the others' writes before it."""
        for win in self._wins:
            win.Sync()
        self.comm.wait(self.host.Ibarrier(), what)
        for win in self._wins:
            win.Sync()

    def _adopt(self, first: bool = False) -> None:
        """Make every parameter's ``.data`` a view into the shared copy (again, if one was replaced)."""
        if not first and all(p._data is v for p, v in zip(self.params, self._views, strict=True)):
            return
        values = np.concatenate([np.asarray(p._data, self.dtype).ravel() for p in self.params])
        if values.size != self.n:
            raise ValueError(f"ShardedDataParallel: the parameters now hold {values.size} numbers, not {self.n}")
        self._barrier("sharing parameters (before)")  # nobody still reads the old values
        self.flat[self.lo : self.hi] = values[self.lo : self.hi]
        self._barrier("sharing parameters")
        self._views, offset = [], 0
        for p in self.params:
            view = self.flat[offset : offset + p._data.size].reshape(p._data.shape)
            offset += p._data.size
            p._data = view
            self._views.append(view)

    # --- one step -----------------------------------------------------------------------------
    def zero_grad(self) -> None:
        """Clear every parameter's ``.grad``."""
        for p in self.params:
            p.grad = None

    def reduce_gradients(self, weight: float, stats: Sequence[float] = ()) -> np.ndarray[Any, Any]:
        """Sum ``weight · grad`` over all ranks into this rank's shard; returns ``stats`` summed over ranks.

        ``weight`` is this rank's share of the batch mean (``n_r / N``); a parameter without a
        gradient contributes zeros. ``stats``: up to 4 numbers to sum as well (e.g. loss and
        correct predictions), at no extra synchronisation on one host.
        """
        if len(stats) > 4:
            raise ValueError(f"ShardedDataParallel.reduce_gradients: at most 4 statistics, got {len(stats)}")
        self._adopt()
        row, g = self.grad_rows[self.local], self._shard_grad
        lo, hi = self.lo, self.hi
        offset = 0
        for p in self.params:  # this rank's shard straight into g; the peers' shards into the shared row
            end = offset + p._data.size
            grad = None if p.grad is None else p.grad._data.reshape(-1)
            a, b = max(offset, lo), min(end, hi)  # the part of p inside this rank's shard, if a < b
            if a < b:
                scaled_copy(g[a - lo : b - lo], _part(grad, a - offset, b - offset), weight)
                scaled_copy(row[offset:a], _part(grad, 0, a - offset), weight)
                scaled_copy(row[b:end], _part(grad, b - offset, end - offset), weight)
            else:
                scaled_copy(row[offset:end], grad, weight)
            offset = end
        values = np.zeros(4)
        values[: len(stats)] = stats
        self.stats[self.local] = values
        self._barrier("gradients written to shared memory")
        for r in range(self.local_size):
            if r != self.local:
                g += self.grad_rows[r][lo:hi]
        self.shared_bytes_read += (self.local_size - 1) * g.nbytes
        total: np.ndarray[Any, Any] = np.array(self.stats.sum(axis=0), np.float64)
        if self.cross.Get_size() > 1:
            MPI = self.comm.MPI
            self.comm.wait(self.cross.Iallreduce(MPI.IN_PLACE, g, op=MPI.SUM), "gradient allreduce across hosts")
            self.comm.wait(self.cross.Iallreduce(MPI.IN_PLACE, total, op=MPI.SUM), "statistics across hosts")
            self.comm.sent_bytes += g.nbytes + total.nbytes  # counted as Comm.allreduce_ counts
            self.comm.recv_bytes += g.nbytes + total.nbytes
        self.shard.grad = Tensor._make(g, None)
        return total[: len(stats)]

    def step(self) -> None:
        """Update this rank's shard with the wrapped optimizer, then publish it to the host's ranks."""
        for p in self.params:
            _check_not_saved(p, type(self.optimizer).__name__)
        self.optimizer.step()
        self._barrier("parameter shards updated")

    # --- the optimizer's face -------------------------------------------------------------------
    @property
    def lr(self) -> float:
        """The wrapped optimizer's learning rate (schedules set it here)."""
        return self.optimizer.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.optimizer.lr = value

    @property
    def steps(self) -> int:
        """Updates applied so far."""
        return self.optimizer.steps

    def state_dict(self) -> dict[str, Any]:
        """The optimizer state in the single-process layout (``"i.slot"`` per parameter).

        A collective over the host's ranks: every rank must call it. The host's first rank gets
        the whole state; the others get ``lr`` and ``steps`` only.
        """
        inner = self.optimizer.state_dict()
        out: dict[str, Any] = {"lr": inner["lr"], "steps": inner["steps"]}
        for slot in sorted(k[2:] for k in inner if k.startswith("0.")):
            full = self._gather(np.ascontiguousarray(inner[f"0.{slot}"]), slot)
            if full is None:
                continue
            offset = 0
            for i, p in enumerate(self.params):
                out[f"{i}.{slot}"] = full[offset : offset + p._data.size].reshape(p._data.shape).copy()
                offset += p._data.size
        return out

    def _gather(self, shard: np.ndarray[Any, Any], slot: str) -> np.ndarray[Any, Any] | None:
        if self.local != 0:
            self.comm.send(shard, self.host_world_ranks[0], STATE_TAG, what=f"optimizer state '{slot}'")
            self.comm.flush()
            return None
        parts = [shard]
        for q in range(1, self.local_size):
            parts.append(self.comm.recv(self.host_world_ranks[q], STATE_TAG, what=f"optimizer state '{slot}'"))
        return np.concatenate(parts)[: self.n]

    def load_state_dict(self, flat: dict[str, Any]) -> None:
        """Load a single-process optimizer state; this rank keeps its shard of each slot."""
        slots: dict[str, dict[int, np.ndarray[Any, Any]]] = {}
        for key, value in flat.items():
            if key in ("lr", "steps"):
                continue
            index, _, slot = key.partition(".")
            slots.setdefault(slot, {})[int(index)] = np.asarray(value)
        inner: dict[str, Any] = {"lr": flat["lr"], "steps": flat["steps"]}
        for slot, arrays in slots.items():
            if sorted(arrays) != list(range(len(self.params))):
                raise ValueError(f"ShardedDataParallel.load_state_dict: optimizer slot '{slot}' misses parameters")
            whole = np.concatenate([arrays[i].ravel() for i in range(len(self.params))])
            inner[f"0.{slot}"] = whole[self.lo : self.hi].astype(self.dtype)
        self.optimizer.load_state_dict(inner)

    def close(self) -> None:
        """Give the parameters private copies and free the shared windows."""
        for p in self.params:
            p._data = p._data.copy()
        for win in self._wins:
            win.Unlock_all()
            self.comm.blocking("freeing shared memory", win.Free, group=self.host)
        self._wins = []


def _part(grad: np.ndarray[Any, Any] | None, start: int, stop: int) -> np.ndarray[Any, Any] | None:
    return None if grad is None else grad[start:stop]
