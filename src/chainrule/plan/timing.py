"""The planner's time model: a training step's seconds predicted from shapes and a short calibration.

**The model.** A pass over the graph is the sum over its nodes (found by running it on
placeholders, :mod:`chainrule.measure.shapes`; nothing is computed) of

* forward: ``c_fwd + t(op)``, and for a node backward reaches: ``c_bwd + Σ t(vjp op)`` over the
  inputs that receive a gradient;
* ``t(matmul)`` is the **measured** time of ``np.matmul`` on that exact product (operand shapes
  and transposition, forward ``x @ W``, backward ``g @ W.T`` and ``x.T @ g``), timed once per
  shape (best of 5 after two warm-up calls) and cached;
* ``t(any other op)`` is its FLOP count (:func:`chainrule.measure.cost.forward_flops` /
  :func:`chainrule.measure.cost.backward_flops`) times the measured seconds per element of an
  elementwise NumPy op on an array of that many elements (log-log interpolation of a table
  measured at 2^6 ... 2^22 elements);
* ``c_fwd``, ``c_bwd``: the engine's fixed cost per recorded node and per node of the backward
  pass, measured on a chain of 200 nodes on 2×2 arrays (less the NumPy time of such an op).

A step of ``k`` microbatches (sizes ``b_i``) with checkpointing on costs
``Σ_i [fb(b_i) + ckpt·fwd_model(b_i)] + [k>1]·k·acc + update``, where ``fb`` is the forward
and backward of the loss, ``fwd_model`` the recomputed forward of the model (a
``Sequential`` checkpoints every segment), ``acc`` the gradient accumulation of
:func:`chainrule.parallel.accumulate` (two parameter-sized elementwise ops per parameter and
microbatch) and ``update`` the optimizer's (two elementwise ops and ``c_fwd`` per parameter).

Calibration (:func:`calibrate`) takes about 0.2 s and is cached per process and dtype; the
matmul timings add about a millisecond per new product shape.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule.ops.vjp_memory import shape_of

__all__ = ["Calibration", "StepTimer", "calibrate"]


def _best(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@dataclass
class Calibration:
    """This machine's measured constants of the time model (see the module docstring)."""

    dtype: str
    forward_node: float  # seconds of engine overhead per recorded node
    backward_node: float  # seconds of engine overhead per node of the backward pass
    step_fixed: float  # seconds per microbatch pass beyond its nodes (objective, backward's setup)
    accumulate_param: float  # seconds per parameter and microbatch of gradient accumulation, beyond arithmetic
    checkpoint_segment: float  # seconds per checkpointed segment and microbatch (its node, the replay)
    recompute_node: float  # seconds of overhead per node recomputed in backward
    elementwise: list[tuple[int, float]]  # (elements, seconds of one elementwise op)
    copy_bytes_per_second: float  # memory copy bandwidth (the stand-in for a same-host MPI link)
    seconds: float = 0.0  # how long the calibration took
    matmuls: dict[tuple[int, int, int, bool, bool], float] = field(default_factory=dict)

    def elementwise_seconds(self, n: float) -> float:
        """Seconds of an elementwise op over ``n`` elements (log-log interpolation, linear beyond the table)."""
        if n <= 0:
            return 0.0
        sizes = np.log([s for s, _ in self.elementwise])
        times = np.log([t for _, t in self.elementwise])
        if n > self.elementwise[-1][0]:
            return float(self.elementwise[-1][1] * n / self.elementwise[-1][0])
        return float(np.exp(np.interp(np.log(n), sizes, times)))

    def matmul_seconds(self, m: int, k: int, n: int, ta: bool = False, tb: bool = False) -> float:
        """Measured seconds of ``(m×k) @ (k×n)`` (``ta``/``tb``: the operand is a transposed view)."""
        key = (m, k, n, ta, tb)
        if key not in self.matmuls:
            rng = np.random.default_rng(0)
            dt = np.dtype(self.dtype)
            a = rng.random((k, m) if ta else (m, k)).astype(dt)
            b = rng.random((n, k) if tb else (k, n)).astype(dt)
            a_ = a.T if ta else a
            b_ = b.T if tb else b
            a_ @ b_  # warm up (twice: BLAS threads start, the allocator settles)
            a_ @ b_
            self.matmuls[key] = _best(lambda: a_ @ b_, 5)
        return self.matmuls[key]


_CACHE: dict[str, Calibration] = {}


def _tiny_mlp(depth: int, dt: np.dtype[Any]) -> Any:
    from chainrule.nn import Linear, ReLU, Sequential

    rng = np.random.default_rng(0)
    layers: list[Any] = []
    for _ in range(depth):
        layers += [Linear(4, 4, rng=rng), ReLU()]
    model = Sequential(*layers, Linear(4, 3, rng=rng))
    for p in model.parameters():
        p._data = p._data.astype(dt)
    return model


def _engine_overheads(dt: np.dtype[Any], tiny: float) -> dict[str, float]:
    """The engine's fixed costs, fitted on training steps of 4-wide MLPs on 2 examples (no arithmetic to speak of)."""
    from chainrule.core.constructors import as_tensor
    from chainrule.models.objective import objective
    from chainrule.optim import SGD
    from chainrule.parallel import accumulate

    x = np.ones((4, 4), dt)
    y = np.zeros(4, np.int64)
    depths = (2, 10)
    got: dict[tuple[int, str], float] = {}
    counts: dict[int, tuple[int, int, int]] = {}
    for depth in depths:
        model = _tiny_mlp(depth, dt)
        opt = SGD(model.parameters(), 1e-9)
        n_layers = len(model.layers)

        def grads(xt: Any, yt: Any, model: Any = model) -> Any:
            J, out = objective(model, xt, yt)
            J.backward()
            return J, out

        def run(k: int, every: int, model: Any = model, opt: Any = opt, grads: Any = grads) -> None:
            model.checkpoint_every = every
            opt.zero_grad()
            accumulate(grads, opt.params, x, y, k)
            opt.step()

        def forward(model: Any = model) -> None:
            model.checkpoint_every = 0
            objective(model, as_tensor(x), as_tensor(y))

        for name, fn in (
            ("plain", lambda run=run: run(1, 0)),
            ("mb4", lambda run=run: run(4, 0)),
            ("ckpt1", lambda run=run: run(1, 1)),
            ("ckptall", lambda run=run, n=n_layers: run(1, n)),
            ("forward", forward),
        ):
            fn()
            got[depth, name] = min(_best(fn, 1) for _ in range(7))
        model.checkpoint_every = 0
        counts[depth] = (n_layers, 2 * n_layers + 2, len(model.parameters()))  # layers, nodes (+ loss), params
    (_, n0, _), (l1, n1, p1) = counts[depths[0]], counts[depths[1]]
    fwd_node = max((got[depths[1], "forward"] - got[depths[0], "forward"]) / (n1 - n0) - tiny, 1e-7)
    step_node = max((got[depths[1], "plain"] - got[depths[0], "plain"]) / (n1 - n0) - 2 * tiny, 1e-7)
    bwd_node = max(step_node - fwd_node - tiny, 1e-7)
    step_fixed = max(got[depths[0], "plain"] - n0 * (fwd_node + bwd_node + 2 * tiny), 0.0)
    # 4 microbatches: 3 more passes, plus the accumulation of every parameter per microbatch
    acc = (got[depths[1], "mb4"] - got[depths[1], "plain"] - 3 * (got[depths[1], "plain"] - p1 * tiny)) / (4 * p1)
    # checkpointing every layer vs all layers in one segment: the per-segment cost
    seg = (got[depths[1], "ckpt1"] - got[depths[1], "ckptall"]) / max(l1 - 1, 1)
    rec = (got[depths[1], "ckptall"] - got[depths[1], "plain"] - seg) / max(n1 - 2, 1)
    return {
        "forward_node": fwd_node,
        "backward_node": bwd_node,
        "step_fixed": step_fixed,
        "accumulate_param": max(acc, 0.0),
        "checkpoint_segment": max(seg, 0.0),
        "recompute_node": max(rec, fwd_node),
    }


def calibrate(dtype: Any = np.float32, refresh: bool = False) -> Calibration:
    """Measure the time model's constants on this machine (well under a second; cached per process and dtype)."""
    dt = np.dtype(dtype)
    if dt.str in _CACHE and not refresh:
        return _CACHE[dt.str]
    t0 = time.perf_counter()
    table = []
    for p in range(6, 23, 2):
        n = 2**p
        x = np.random.default_rng(0).random(n).astype(dt)
        np.maximum(x, 0)
        table.append((n, _best(lambda x=x: np.maximum(x, 0), 5 if n < 2**20 else 3)))  # type: ignore[misc]
    big = np.ones(2**21, dt)
    dst = np.empty_like(big)
    copy = big.nbytes / _best(lambda: np.copyto(dst, big), 3)
    fixed = _engine_overheads(dt, table[0][1])
    cal = Calibration(
        dtype=dt.str,
        elementwise=table,
        copy_bytes_per_second=copy,
        forward_node=fixed["forward_node"],
        backward_node=fixed["backward_node"],
        step_fixed=fixed["step_fixed"],
        accumulate_param=fixed["accumulate_param"],
        checkpoint_segment=fixed["checkpoint_segment"],
        recompute_node=fixed["recompute_node"],
    )
    cal.seconds = time.perf_counter() - t0
    _CACHE[dt.str] = cal
    return cal


class _Nodes:
    """A hook that keeps every recorded node of a placeholder run (and counts unrecorded ops)."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.unrecorded: list[tuple[str, Any]] = []

    def forward(self, node: Any, prim: Any, out: Any) -> None:
        if node is None:
            self.unrecorded.append((prim.name, out))
        else:
            self.nodes.append((node, out))

    def backward(self, node: Any) -> None:
        pass


class StepTimer:
    """The time model applied to one model: seconds of passes over its layers at any batch size.

    ``model`` is any module (then only the whole step is timed) or a ``Sequential`` (then
    also runs of its layers, for pipeline stages). ``shapes(b)`` must give the input shape of
    every layer and the output's (the planner's estimator provides it).
    """

    def __init__(
        self,
        model: Any,
        input_shape: tuple[int, ...],
        dtype: Any,
        label_dtype: Any,
        shapes: Callable[[int], list[tuple[int, ...]]],
        cal: Calibration,
    ) -> None:
        self.model, self.input_shape, self.shapes, self.cal = model, tuple(input_shape), shapes, cal
        self.dtype, self.label_dtype = dtype, label_dtype
        self._cache: dict[tuple[int, int, int, bool], tuple[float, float, int]] = {}
        self.param_sizes = [int(p._data.size) for p in model.parameters()]

    def _node_seconds(self, node: Any, out: Any, backward: bool) -> float:
        from chainrule.measure.cost import backward_flops, forward_flops

        cal = self.cal
        name = node.prim.name
        ins = node.kept
        if name == "matmul" and all(len(shape_of(a)) == 2 for a in ins[:2]):
            (m, k), (_, n) = shape_of(ins[0]), shape_of(ins[1])
            if not backward:
                return cal.forward_node + cal.matmul_seconds(m, k, n)
            t = cal.backward_node
            if node.parents[0] is not None:
                t += cal.matmul_seconds(m, n, k, False, True)  # g @ W.T
            if node.parents[1] is not None:
                t += cal.matmul_seconds(k, m, n, True, False)  # x.T @ g
            return t
        if backward:
            return cal.backward_node + cal.elementwise_seconds(backward_flops(node))
        return cal.forward_node + cal.elementwise_seconds(forward_flops(node.prim, ins, node.params, out))

    def seconds(self, start: int, stop: int, b: int, loss: bool) -> tuple[float, float, int]:
        """(forward seconds, backward seconds, forward nodes) of ``layers[start:stop]`` (the whole model if not a
        ``Sequential``) on ``b`` examples, with the loss after it if ``loss``."""
        key = (start, stop, b, loss)
        if key in self._cache:
            return self._cache[key]
        import chainrule.nn.functional as F
        from chainrule.core.interpret import hook
        from chainrule.measure.cost import _reachable
        from chainrule.measure.shapes import ShapeDtype, abstract, placeholder

        layers = getattr(self.model, "layers", None)
        rec = _Nodes()
        with abstract() as mem:
            shape = self.shapes(b)[start] if layers is not None else (b, *self.input_shape)
            x = placeholder(ShapeDtype(shape, self.dtype, requires_grad=start > 0), mem)
            y = placeholder(ShapeDtype((b,), self.label_dtype), mem)
            with hook(rec):
                if layers is None:
                    from chainrule.models.objective import objective

                    out = objective(self.model, x, y)[0]
                else:
                    out = x
                    for layer in layers[start:stop]:
                        out = layer(out)
                    if loss:
                        out = F.cross_entropy(out, y)
            reach = _reachable(out.node) if out.node is not None else set()
            fwd = sum(self._node_seconds(n, o, False) for n, o in rec.nodes)
            bwd = sum(self._node_seconds(n, o, True) for n, o in rec.nodes if id(n) in reach)
            count = len(rec.nodes)
            del out, x, y, rec
        self._cache[key] = (fwd, bwd, count)
        return self._cache[key]

    def update_seconds(self, sizes: Sequence[int] | None = None) -> float:
        """The optimizer's update of parameters of these sizes (default: all of the model's)."""
        cal = self.cal
        return sum(cal.forward_node + 2 * cal.elementwise_seconds(n) for n in (sizes or self.param_sizes))

    def accumulate_seconds(self, sizes: Sequence[int] | None = None) -> float:
        """One microbatch's gradient accumulation (scale and add) over these parameter sizes."""
        cal = self.cal
        return sum(cal.accumulate_param + 2 * cal.elementwise_seconds(n) for n in (sizes or self.param_sizes))

    def pass_seconds(self, start: int, stop: int, b: int, loss: bool, every: int = 0) -> tuple[float, float]:
        """(seconds, of which recompute) of one microbatch's forward and backward of ``layers[start:stop]``,
        checkpointing every ``every`` layers (0: off)."""
        fwd, bwd, _ = self.seconds(start, stop, b, loss)
        recompute = 0.0
        if every:
            model_fwd, _, nodes = self.seconds(start, stop, b, False)
            cal = self.cal
            segments = -(-(stop - start) // every)
            recompute = model_fwd + nodes * (cal.recompute_node - cal.forward_node) + segments * cal.checkpoint_segment
        return fwd + bwd + self.cal.step_fixed + recompute, recompute

    def step_seconds(self, pieces: Sequence[int], every: int) -> tuple[float, float]:
        """(step seconds, recompute seconds) of one process's step over microbatches of these sizes,
        checkpointing every ``every`` layers (0: off)."""
        n = len(getattr(self.model, "layers", [None]))
        total = recompute = 0.0
        for b in pieces:
            t, r = self.pass_seconds(0, n, b, True, every)
            total += t
            recompute += r
        if len(pieces) > 1:
            total += len(pieces) * self.accumulate_seconds()
        return total + self.update_seconds(), recompute
