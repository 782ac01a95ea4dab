"""What a training step holds besides one microbatch's own step: the terms the planner adds to the estimate.

:func:`chainrule.measure.memory.estimate` predicts one step on one microbatch of ``b``
examples (parameters, gradients, optimizer state, that microbatch's inputs, activations,
temporaries). A step of the trainer on a batch of ``B`` examples in ``k`` microbatches also holds:

* **the whole batch**: its inputs and labels are gathered before the first microbatch and
  stay alive until after the update (the microbatches are views of it): ``(B - b)`` more rows
  than the estimate's own microbatch;
* **the outputs**: every microbatch's logits are kept and concatenated at the end
  (:func:`chainrule.parallel.accumulate`): ``2 B`` rows of logits for ``k > 1``, ``B`` for the plain step;
* **the accumulation** (``k > 1``): the running gradient sum, each scaled gradient and the new
  sum while the old one is alive: three parameter-sized arrays;
* **the runtime's fixed overhead**: what a real step allocates that the estimate does not
  model (0-d arrays, the loss, index arrays...), measured once per process on a tiny model
  (:func:`fixed_overhead`, as :func:`chainrule.plan.timing.calibrate` measures the time model).

The first step is priced like the others because under a budget the trainer does not compile
its step: a capture (``cr.compile``'s first call) keeps every intermediate array of the step alive.
"""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys
import tracemalloc
from typing import Any

import numpy as np

__all__ = ["StepExtras", "fixed_overhead", "measure_overhead"]


class StepExtras:
    """The bytes a ``B``-example step in ``k`` microbatches of ``b`` holds beyond the estimate at ``b``."""

    def __init__(self, input_shape: tuple[int, ...], dtype: Any, label_dtype: Any, outputs: int, params: int) -> None:
        self.row: int = int(np.prod(input_shape)) * np.dtype(dtype).itemsize + np.dtype(label_dtype).itemsize
        self.out_row: int = outputs * np.dtype(dtype).itemsize
        self.params: int = params
        self.fixed: int = fixed_overhead(np.dtype(dtype).str)

    def batch(self, batch: int) -> int:
        """The whole batch's inputs and labels."""
        return int(batch * self.row)

    def __call__(self, batch: int, b: int, k: int) -> int:
        rest = (batch - b) * self.row
        outputs = (2 if k > 1 else 1) * batch * self.out_row
        accumulation = 3 * self.params if k > 1 else 0
        return int(rest + outputs + accumulation + self.fixed)


@functools.cache
def fixed_overhead(dtype: str) -> int:
    """:func:`measure_overhead`, once per process; in a fresh process if this one is already tracing.

    ``cr.memory.profiling`` needs tracemalloc to itself: when the caller is tracing (measuring a
    run from outside), the same measurement runs in a child Python, so that the planner's numbers,
    and the smallest budget its error names, do not depend on who is watching.
    """
    if not tracemalloc.is_tracing():
        return measure_overhead(dtype)
    code = f"from chainrule.plan.budget import measure_overhead; print(measure_overhead({dtype!r}))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        return int(done.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"plan.fit_budget: could not measure the runtime's memory overhead ({exc})") from exc


def measure_overhead(dtype: str) -> int:
    """Bytes a real training step allocates beyond the composed prediction, measured once (tiny MLP, k = 1, 2, 3).

    The measured peak (``cr.memory.profiling``: NumPy's tracemalloc domain) of the trainer's
    step (zero_grad, :func:`chainrule.parallel.accumulate`, the update) on a batch of 6, minus the
    prediction composed as the planner does; the largest excess, rounded up to 4 KiB (never 0).
    """
    import chainrule.nn.functional as F
    from chainrule.measure.memory import estimate, profiling
    from chainrule.measure.shapes import ShapeDtype
    from chainrule.nn import Linear, ReLU, Sequential
    from chainrule.optim import SGD
    from chainrule.parallel.accumulate import accumulate, split

    rng = np.random.default_rng(0)
    model = Sequential(Linear(12, 8, rng=rng), ReLU(), Linear(8, 5, rng=rng))
    for p in model.parameters():
        p._data = p._data.astype(dtype)
    opt = SGD(model.parameters(), 0.01, momentum=0.9)
    x = rng.random((6, 12)).astype(dtype)
    y = rng.integers(0, 5, 6).astype(np.int64)
    params = sum(p._data.nbytes for p in model.parameters())

    def grads(xt: Any, yt: Any) -> Any:
        logits = model(xt)  # the trainer's objective for a Sequential
        J = F.cross_entropy(logits, yt)
        J.backward()
        return J, logits

    excess = 0
    for k in (1, 2, 3):
        b = split(6, k)[0].stop
        extras = StepExtras.__new__(StepExtras)
        extras.row, extras.out_row, extras.params, extras.fixed = x[0].nbytes + 8, 5 * x.itemsize, params, 0
        for _ in range(2):  # the second step: the optimizer's state exists, as in the steady state predicted
            with profiling(optimizer=opt) as prof:
                xb, yb = x[np.arange(6)], y[np.arange(6)]
                opt.zero_grad()
                accumulate(grads, opt.params, xb, yb, k)
                opt.step()
                del xb, yb
        predicted = estimate(model, ShapeDtype((b, 12), dtype), ShapeDtype((b,), np.int64), optimizer=opt).peak
        excess = max(excess, prof.peak - predicted - extras(6, b, k))
    return max(4096, math.ceil(excess / 4096) * 4096)
