"""Pipeline (model) parallelism: a sequential model cut into stages, one stage per rank.

Stage s runs layers ``bounds[s]``. A batch is cut into m microbatches; activations go forward
(rank s → s+1) and their gradients backward (s+1 → s) by Send/Recv. Two schedules:

* ``gpipe``: all m forwards, then all m backwards. Stage s keeps the saved activations of all
  m microbatches at once.
* ``1f1b``: after P-s-1 warm-up forwards, each stage alternates one forward and one backward,
  so stage s keeps at most P-s microbatches in flight: the same bubble as GPipe, (P-1)/(m+P-1)
  of the time idle, but activation memory bounded by the pipeline depth instead of by m.

Every rank holds the whole batch's inputs and labels (the data is small; only the first stage
reads x and only the last reads y). The loss is the mean over the batch, so microbatch i's loss
is scaled by n_i/N before its backward; the stage's parameters accumulate their gradients
across microbatches in ``.grad``, which equals single-process training up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chainrule.core.constructors import as_tensor
from chainrule.core.state import no_grad
from chainrule.core.tensor import Tensor
from chainrule.nn.modules import Module, Sequential
from chainrule.parallel.accumulate import split
from chainrule.parallel.comm import Comm

FORWARD_TAG, BACKWARD_TAG = 101, 202
SCHEDULES = ("gpipe", "1f1b")

Loss = Callable[[Tensor, Tensor], Tensor]


def layer_costs(layers: Sequence[Module], sample: np.ndarray[Any, Any]) -> list[int]:
    """Per layer: parameter bytes (weights, gradients) plus the bytes of its output for ``sample``.

    A stand-in for ``cr.memory.estimate`` until it lands; any list of per-layer costs works.
    """
    costs = []
    h: Any = as_tensor(sample)
    with no_grad():
        for layer in layers:
            h = layer(h)
            params = sum(p._data.nbytes for p in layer.parameters())
            costs.append(2 * params + h._data.nbytes)
    return costs


def balance(costs: Sequence[float], n_stages: int) -> list[tuple[int, int]]:
    """Contiguous stages minimizing the largest stage cost (exact, by dynamic programming)."""
    n = len(costs)
    if not 1 <= n_stages <= n:
        raise ValueError(f"pipeline: cannot cut {n} layers into {n_stages} stages (need 1 <= stages <= layers)")
    prefix = np.concatenate([[0.0], np.cumsum(np.asarray(costs, np.float64))])
    inf = float("inf")
    best = [[inf] * (n + 1) for _ in range(n_stages + 1)]
    cut = [[0] * (n + 1) for _ in range(n_stages + 1)]
    best[0][0] = 0.0
    for s in range(1, n_stages + 1):
        for j in range(s, n - (n_stages - s) + 1):
            for i in range(s - 1, j):
                value = max(best[s - 1][i], prefix[j] - prefix[i])
                if value < best[s][j]:
                    best[s][j], cut[s][j] = value, i
    bounds = []
    j = n
    for s in range(n_stages, 0, -1):
        i = cut[s][j]
        bounds.append((i, j))
        j = i
    return bounds[::-1]


class Pipeline:
    """This rank's stage of ``model`` and the schedule that runs a step through all stages.

    ``bounds``: explicit stages ``[(start, stop), ...]`` (e.g. from a memory plan); by default
    the layers are balanced by :func:`layer_costs` of one example of ``sample``.
    """

    def __init__(
        self,
        model: Sequential,
        comm: Comm,
        sample: np.ndarray[Any, Any] | None = None,
        bounds: Sequence[tuple[int, int]] | None = None,
        schedule: str = "1f1b",
    ) -> None:
        if not isinstance(model, Sequential):
            raise TypeError(f"pipeline: the model must be a Sequential, got {type(model).__name__}")
        if schedule not in SCHEDULES:
            raise ValueError(f"pipeline: schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
        self.comm = comm
        self.schedule = schedule
        n_stages = comm.size
        if bounds is None:
            if sample is None:
                costs: list[float] = [
                    2.0 * sum(p._data.nbytes for p in layer.parameters()) + 1 for layer in model.layers
                ]
            else:
                costs = [float(c) for c in layer_costs(model.layers, sample[:1])]
            bounds = balance(costs, n_stages)
        self.bounds: list[tuple[int, int]] = [(int(a), int(b)) for a, b in bounds]
        if len(self.bounds) != n_stages:
            raise ValueError(f"pipeline: {len(self.bounds)} stages given for {n_stages} ranks")
        self.stage = comm.rank
        self.first = self.stage == 0
        self.last = self.stage == n_stages - 1
        start, stop = self.bounds[self.stage]
        self.layers = model.layers[start:stop]
        self.params = [p for layer in self.layers for p in layer.parameters()]
        self.max_in_flight = 0  # the most microbatches whose activations this stage held at once

    def _forward(self, h: Any) -> Tensor:
        for layer in self.layers:
            h = layer(h)
        out: Tensor = h
        return out

    def step(
        self, x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], loss_fn: Loss, microbatches: int
    ) -> tuple[float, np.ndarray[Any, Any] | None]:
        """Forward and backward of one batch; this stage's parameters get their gradients in ``.grad``.

        Returns the batch loss and (on the last stage) the outputs, else ``None``; the loss is
        sent to every rank.
        """
        comm, n = self.comm, len(x)
        pieces = split(n, microbatches)
        m, P, s = len(pieces), comm.size, self.stage
        for p in self.params:
            p.grad = None
        inflight: dict[int, tuple[Tensor | None, Tensor]] = {}
        outs: list[np.ndarray[Any, Any]] = [np.empty(0)] * m
        loss = 0.0

        def forward(i: int) -> None:
            nonlocal loss
            piece = pieces[i]
            if self.first:
                inp: Tensor | None = None
                h = self._forward(as_tensor(x[piece]))
            else:
                data = comm.recv(s - 1, FORWARD_TAG, what=f"activations of microbatch {i}")
                if len(data) != piece.stop - piece.start:
                    raise ValueError(
                        f"rank {comm.rank}: microbatch {i} has {len(data)} rows, expected {piece.stop - piece.start}"
                    )
                inp = Tensor(data, requires_grad=True)
                h = self._forward(inp)
            if self.last:
                outs[i] = h._data
                w = (piece.stop - piece.start) / n
                J = loss_fn(h, as_tensor(y[piece]))
                loss += w * float(J._data)
                h = J * np.asarray(w, J.dtype)
            else:
                comm.send(h._data, s + 1, FORWARD_TAG, what=f"activations of microbatch {i}")
            inflight[i] = (inp, h)
            self.max_in_flight = max(self.max_in_flight, len(inflight))

        def backward(i: int) -> None:
            inp, h = inflight.pop(i)
            if self.last:
                h.backward()
            else:
                g = comm.recv(s + 1, BACKWARD_TAG, what=f"gradient of microbatch {i}", shape=h.shape)
                h.backward(g)
            if inp is not None:
                grad = inp.grad._data if inp.grad is not None else np.zeros_like(inp._data)
                comm.send(grad, s - 1, BACKWARD_TAG, what=f"gradient of microbatch {i}")

        if self.schedule == "gpipe":
            for i in range(m):
                forward(i)
            for i in range(m):
                backward(i)
        else:  # 1F1B
            warmup = min(P - s - 1, m)
            for i in range(warmup):
                forward(i)
            done = 0
            for i in range(warmup, m):
                forward(i)
                backward(done)
                done += 1
            while done < m:
                backward(done)
                done += 1
        comm.flush()
        # the loss lives on the last stage; every rank gets it (8 bytes)
        loss_buf = np.array([loss if self.last else 0.0])
        comm.allreduce_(loss_buf, what="loss allreduce")
        return float(loss_buf[0]), (np.concatenate(outs) if self.last else None)

    def sync_parameters(self, model: Sequential) -> None:
        """Give every rank the whole model: each stage broadcasts its layers' parameters (for
        evaluation and checkpoints; training itself never needs this)."""
        for stage, (start, stop) in enumerate(self.bounds):
            for layer in model.layers[start:stop]:
                for p in layer.parameters():
                    self.comm.bcast_(p._data, root=stage, what=f"parameters of stage {stage}")
