"""Activation checkpointing: same gradients as the plain run, less saved memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.core.backward import toposort
from chainrule.transforms.remat import checkpoint, segment_bounds, sqrt_segments


def deep_mlp(depth: int = 8, width: int = 64, every: int = 0, seed: int = 0) -> nn.Sequential:
    rng = np.random.default_rng(seed)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width, rng=rng), nn.Tanh()]
    return nn.Sequential(*layers, checkpoint_every=every)


def grads_of(model: nn.Sequential, x: np.ndarray) -> tuple[float, list[np.ndarray], np.ndarray]:
    model.zero_grad()
    xt = cr.tensor(x, requires_grad=True)
    out = model(xt)
    loss = (out * out).mean()
    loss.backward()
    return loss.item(), [p.grad.numpy().copy() for p in model.parameters()], xt.grad.numpy().copy()


@pytest.mark.parametrize("every", [1, 2, 3, 4, 16])
def test_sequential_checkpoint_gradients_bitwise(every: int) -> None:
    x = np.random.default_rng(1).standard_normal((16, 64)).astype(np.float32)
    plain = grads_of(deep_mlp(), x)
    ckpt = grads_of(deep_mlp(every=every), x)
    assert plain[0] == ckpt[0]
    for a, b in zip(plain[1], ckpt[1], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(plain[2], ckpt[2])


def test_captured_tensors_get_gradients() -> None:
    rng = np.random.default_rng(2)
    w = cr.tensor(rng.standard_normal((5, 5)), requires_grad=True)
    x = cr.tensor(rng.standard_normal((3, 5)), requires_grad=True)

    def f(h: cr.Tensor) -> cr.Tensor:
        return cr.sin(h @ w) * cr.exp(h)

    (f(x) ** 2).sum().backward()
    gw, gx = w.grad.numpy().copy(), x.grad.numpy().copy()
    w.grad = x.grad = None
    y = checkpoint(f, x)
    assert y.node is not None and y.node.prim.name == "checkpoint"
    assert len(y.node.parents) == 2  # x and the captured w
    (y**2).sum().backward()
    np.testing.assert_array_equal(gw, w.grad.numpy())
    np.testing.assert_array_equal(gx, x.grad.numpy())


def test_only_parameters_require_grad_and_reuse_twice() -> None:
    model = deep_mlp(depth=3, width=8)
    x = np.ones((2, 8), np.float32)
    out = checkpoint(model, cr.tensor(x))  # the input needs no gradient; the parameters do
    out2 = checkpoint(model, cr.tensor(x))
    (out.sum() + out2.sum()).backward()
    got = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    (model(cr.tensor(x)).sum() * 2).backward()
    for a, p in zip(got, model.parameters(), strict=True):
        np.testing.assert_allclose(a, p.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_no_grad_and_values() -> None:
    model = deep_mlp(depth=2, width=8, every=1)
    x = cr.tensor(np.ones((2, 8), np.float32))
    with cr.no_grad():
        y = model(x)
    assert y.node is None
    model.checkpoint_every = 0
    np.testing.assert_array_equal(y.numpy(), model(x).numpy())


def test_higher_order_raises_naming_checkpoint() -> None:
    x = cr.tensor(np.array([0.3, 0.7]), requires_grad=True)
    y = checkpoint(lambda h: cr.sin(h) * h, x).sum()
    with pytest.raises(NotImplementedError, match="checkpoint"):
        cr.grad(lambda h: cr.grad(lambda u: checkpoint(lambda v: cr.sin(v) * v, u).sum())(h).sum())(x)
    y.backward()  # a first-order backward still works
    np.testing.assert_allclose(x.grad.numpy(), np.cos(x.numpy()) * x.numpy() + np.sin(x.numpy()))


def test_fn_must_return_a_tensor() -> None:
    x = cr.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(TypeError, match="checkpoint"):
        checkpoint(lambda h: (h, h), x)


def test_segments() -> None:
    assert sqrt_segments(16) == 4 and sqrt_segments(10) == 4
    assert segment_bounds(5, 2) == [(0, 2), (2, 4), (4, 5)]
    with pytest.raises(ValueError):
        segment_bounds(3, 0)
    with pytest.raises(ValueError):
        nn.Sequential(nn.ReLU(), checkpoint_every=-1)


def saved_bytes(t: cr.Tensor) -> int:
    return sum(n.saved_nbytes for n in toposort([t.node]))


def peak_backward(model: nn.Sequential, x: np.ndarray) -> tuple[int, int]:
    """(bytes saved by the graph after forward, peak NumPy bytes from forward start to backward end)."""
    model.zero_grad()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        out = model(cr.tensor(x))
        loss = out.sum()
        saved = saved_bytes(loss)
        loss.backward()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return saved, peak


def test_checkpoint_every_k_cuts_saved_and_peak_memory() -> None:
    depth, width, batch = 16, 64, 256
    x = np.random.default_rng(3).standard_normal((batch, width)).astype(np.float32)
    act = batch * width * 4  # one activation
    saved0, peak0 = peak_backward(deep_mlp(depth, width), x)
    params = sum(p.numpy().nbytes for p in deep_mlp(depth, width).parameters())
    # plain: one activation a layer stays alive (tanh's output is the next Linear's saved input)
    assert saved0 >= depth * act and peak0 >= depth * act
    for k in (2, 4, 8):  # k layers a segment = 2k modules (Linear + Tanh)
        saved, peak = peak_backward(deep_mlp(depth, width, every=2 * k), x)
        n_seg = depth // k
        # checkpointed: one input per segment (+ the parameters, which the plain graph also holds)
        assert saved <= n_seg * act + params + 4096
        # peak: the saved inputs, one recomputed segment, the parameters' gradients, a few temporaries
        assert peak <= (n_seg + k + 4) * act + params
    assert peak_backward(deep_mlp(depth, width, every=8), x)[1] < 0.75 * peak0  # √16 = 4 layers a segment


def test_dropout_inside_a_segment_draws_the_same_mask_when_recomputed() -> None:
    def make(every: int) -> nn.Sequential:
        rng = np.random.default_rng(5)
        return nn.Sequential(
            nn.Linear(8, 16, rng=rng), nn.ReLU(), nn.Dropout(0.5, seed=3), nn.Linear(16, 4, rng=rng),
            checkpoint_every=every,
        )  # fmt: skip

    x = np.random.default_rng(6).standard_normal((10, 8)).astype(np.float32)
    got = []
    for every in (0, 2, 4):
        model = make(every)
        for _ in range(2):  # the second step must continue the same random stream
            model.zero_grad()
            (model(cr.tensor(x)) ** 2).sum().backward()
        got.append([p.grad.numpy().copy() for p in model.parameters()])
    for other in got[1:]:
        for a, b in zip(got[0], other, strict=True):
            np.testing.assert_array_equal(a, b)
