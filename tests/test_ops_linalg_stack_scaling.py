"""The backward of ``stack``/``concatenate`` must be linear in the number of inputs.

Each input's gradient used to be found by summing the lengths of all the inputs before
it (quadratic). This compares the backward time for n and 4n inputs: linear work grows
about 4x, quadratic about 16x; the threshold sits between them, far from both.
"""

import time

import numpy as np

import chainrule as cr


def _backward_seconds(join, n: int) -> float:
    xs = [cr.tensor(np.ones(2), dtype="float64", requires_grad=True) for _ in range(n)]
    out = cr.sum(join(xs))
    start = time.perf_counter()
    out.backward()
    return time.perf_counter() - start


def _growth(join, n: int) -> float:
    small = min(_backward_seconds(join, n) for _ in range(3))
    large = min(_backward_seconds(join, 4 * n) for _ in range(2))
    return large / small


def test_stack_backward_is_linear_in_inputs():
    assert _growth(lambda xs: cr.stack(xs, axis=0), 3000) < 8


def test_concatenate_backward_is_linear_in_inputs():
    assert _growth(lambda xs: cr.concatenate(xs, axis=0), 3000) < 8
