"""Memory predicted from shapes alone against memory measured, and eval_shape."""

from __future__ import annotations

import time

import numpy as np
import pytest

import chainrule as cr
from chainrule.cli.measure import build_mlp
from chainrule.measure import memory
from chainrule.measure.shapes import ShapeDtype, eval_shape
from chainrule.models import SectionMLP
from chainrule.nn import functional as F
from chainrule.optim import SGD, Adam


def _compare(model, opt, n: int, dtype) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    x = rng.random((n, 784)).astype(dtype)
    y = rng.integers(0, 10, n)
    est_train = memory.estimate(model, ShapeDtype(x.shape, dtype), ShapeDtype(y.shape, y.dtype), optimizer=opt)
    est_pred = memory.estimate(model, ShapeDtype(x.shape, dtype))
    prof = memory.profile(memory.training_step(model, opt), cr.as_tensor(x, dtype=x.dtype), y, optimizer=opt, warmup=1)
    model.zero_grad()
    pred = memory.profile(memory.prediction_step(model), cr.as_tensor(x, dtype=x.dtype), model=model)
    return (est_train.peak - prof.peak) / prof.peak, (est_pred.peak - pred.peak) / pred.peak


@pytest.mark.parametrize(
    ("depth", "width", "n", "dtype", "optimizer"),
    [
        (1, 16, 1, np.float32, SGD),
        (1, 4096, 2, np.float32, SGD),
        (2, 64, 64, np.float64, Adam),
        (3, 256, 512, np.float32, Adam),
        (8, 32, 4096, np.float32, SGD),
        (16, 16, 8, np.float64, SGD),
    ],
)
def test_mlp_prediction_within_5_percent(depth, width, n, dtype, optimizer) -> None:
    model = build_mlp(depth, width, dtype)
    err_train, err_pred = _compare(model, optimizer(model.parameters(), lr=0.01), n, dtype)
    assert abs(err_train) < 0.05, err_train
    assert abs(err_pred) < 0.05, err_pred


@pytest.mark.parametrize(
    ("n", "dtype", "wd", "activation"),
    [(1, np.float32, 0.0, "relu"), (256, np.float32, 1e-3, "tanh"), (64, np.float64, 0.1, "sigmoid")],
)
def test_section_model_prediction_within_5_percent(n, dtype, wd, activation) -> None:
    model = SectionMLP(784, 256, 10, weight_decay=wd, activation=activation, dtype=dtype)
    err_train, err_pred = _compare(model, SGD(model.parameters(), lr=0.1), n, dtype)
    assert abs(err_train) < 0.05, err_train
    assert abs(err_pred) < 0.05, err_pred


def test_estimate_leaves_the_model_alone() -> None:
    model = SectionMLP(784, 32, 10)
    opt = Adam(model.parameters())
    before = [p.numpy().copy() for p in model.parameters()]
    memory.estimate(model, ShapeDtype((8, 784)), ShapeDtype((8,), np.int64), optimizer=opt)
    assert all(p.grad is None for p in model.parameters())
    assert opt.steps == 0 and all(not st for st in opt.state)
    assert all(np.array_equal(a, p.numpy()) for a, p in zip(before, model.parameters(), strict=True))


def test_estimate_categories_add_up() -> None:
    model = build_mlp(2, 32, np.float32)
    opt = Adam(model.parameters())
    est = memory.estimate(model, ShapeDtype((16, 784)), ShapeDtype((16,), np.int64), optimizer=opt)
    assert est.predicted
    for p in est.points:
        assert sum(p.categories.values()) == p.total
    assert est.peak_categories()["optimizer"] == 2 * sum(p.numpy().nbytes for p in model.parameters())
    assert [p for p in est.points if p.phase == "backward"][-1].categories["activations"] == 0


def test_estimate_is_fast_for_a_100_layer_mlp_at_batch_4096() -> None:
    model = build_mlp(100, 64, np.float32)
    opt = SGD(model.parameters(), lr=0.01)
    specs = (ShapeDtype((4096, 784)), ShapeDtype((4096,), np.int64))
    memory.estimate(model, *specs, optimizer=opt)  # first call measures the optimizer's footprint once
    t = time.perf_counter()
    est = memory.estimate(model, *specs, optimizer=opt)
    assert time.perf_counter() - t < 1.0
    # 100 layers of 4096 x 64 activations are kept: far more than prediction needs
    assert est.peak > 100 * 4096 * 64 * 4
    pred = memory.estimate(model, specs[0])
    assert est.peak > 5 * pred.peak


def test_update_footprint_of_sgd_and_adam() -> None:
    w = [cr.tensor(np.zeros(4), requires_grad=True)]
    assert memory.update_footprint(SGD(w, lr=0.1), np.float32) == (0.0, 1.0)
    assert memory.update_footprint(Adam(w), np.float32) == (2.0, 1.0)  # m, v; one fused scratch array
    # g + λw, then buf: below NumPy's 256 KiB elision threshold the sum is a second temporary
    heavy = SGD(w, lr=0.1, momentum=0.9, weight_decay=0.1)
    assert memory.update_footprint(heavy, np.float64, nbytes=1000) == (1.0, 2.0)
    assert memory.update_footprint(heavy, np.float64, nbytes=1 << 22) == (1.0, 1.0)


def test_eval_shape_matches_real_shapes() -> None:
    def f(x, w):
        h = cr.tanh(x @ w.T)
        return {"s": cr.sum(h, axis=0, keepdims=True), "m": cr.max(h, axis=1), "c": h[:, :2].astype(np.float64)}

    out = eval_shape(f, ShapeDtype((5, 3)), ShapeDtype((4, 3)))
    real = f(cr.tensor(np.ones((5, 3))), cr.tensor(np.ones((4, 3))))
    for k in real:
        assert out[k] == ShapeDtype(real[k].shape, real[k].dtype)


def test_eval_shape_allocates_nothing_big() -> None:
    x = ShapeDtype((200_000, 100_000), np.float64, requires_grad=True)  # 160 GB if it were real
    w = ShapeDtype((100_000, 50_000), np.float64)
    t = time.perf_counter()
    out = eval_shape(lambda a, b: cr.sum(F.relu(a @ b) * 2.0), x, w)
    assert out == ShapeDtype((), np.float64)
    assert time.perf_counter() - t < 1.0


def test_estimate_of_a_step_function() -> None:
    model = build_mlp(2, 32, np.float32)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    rng = np.random.default_rng(0)
    x, y = rng.random((64, 784)).astype(np.float32), rng.integers(0, 10, 64)
    est = memory.estimate(step, ShapeDtype(x.shape), ShapeDtype(y.shape, y.dtype), optimizer=opt)
    prof = memory.profile(step, cr.as_tensor(x, dtype=x.dtype), y, optimizer=opt, warmup=1)
    assert abs(est.peak - prof.peak) / prof.peak < 0.05
    assert est.peak_categories()["optimizer"] == prof.peak_categories()["optimizer"] > 0


def test_estimate_refuses_a_recorded_backward() -> None:
    def step(x):
        (x * x).sum().backward(create_graph=True)

    with pytest.raises(NotImplementedError, match="first-order"):
        memory.estimate(step, ShapeDtype((3,), requires_grad=True))


def test_estimate_models_a_checkpointed_step() -> None:
    """cr.checkpoint's facts run its segment shape-only (forward and recomputation): the estimate of
    a checkpointed step is within 5% of the measured peak, and below the plain step's."""
    rng = np.random.default_rng(0)
    ws = [cr.tensor(rng.normal(size=(512, 512)).astype(np.float32) * 0.05, requires_grad=True) for _ in range(8)]

    def segment(h, w1, w2):
        return cr.tanh(cr.tanh(h @ w1) @ w2)

    def make(checkpointed):
        def step(x):
            h = x
            for i in range(0, 8, 2):
                h = cr.checkpoint(segment, h, ws[i], ws[i + 1]) if checkpointed else segment(h, ws[i], ws[i + 1])
            cr.sum(h).backward()

        return step

    peaks = {}
    for checkpointed in (False, True):
        for w in ws:
            w.grad = None
        est = memory.estimate(make(checkpointed), ShapeDtype((1024, 512), requires_grad=True), params=ws)
        for w in ws:
            w.grad = None
        x = cr.tensor(rng.normal(size=(1024, 512)).astype(np.float32), requires_grad=True)
        prof = memory.profile(make(checkpointed), x, params=ws)
        assert abs(est.peak - prof.peak) / prof.peak < 0.05, (checkpointed, est.peak, prof.peak)
        peaks[checkpointed] = est.peak
    assert peaks[True] < peaks[False]
