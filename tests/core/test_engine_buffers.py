"""The backward walk adds gradients in place only into arrays no one else holds; large graphs and the GC."""

import gc

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
from chainrule.core import node as node_module


def _f32(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_many_gradients_of_one_value_sum_exactly_as_before():
    w_np, x_np = _f32(5, 3), _f32(5, 3, seed=1)
    w, x = cr.tensor(w_np, requires_grad=True), cr.tensor(x_np)
    h = w * x
    J = (h * h).sum() + (h * 3).sum() + (w * w).sum() + h.sum()  # h and w each reached by several gradients
    J.backward()
    hn = w_np * x_np
    dh = (2 * hn + np.float32(3)) + np.float32(1)
    expected = (dh * x_np + w_np * np.float32(2)).astype(np.float32)  # w gets x·dh and the two halves of w·w
    np.testing.assert_allclose(w.grad.numpy(), expected, rtol=1e-6)


def test_a_gradient_passed_on_unchanged_to_a_leaf_and_a_node_is_not_overwritten():
    # add's rule hands the same array to both inputs: one is a leaf, the other a node reached again
    a = cr.tensor(np.ones(4, np.float32), requires_grad=True)
    b = cr.tensor(np.full(4, 2.0, np.float32), requires_grad=True)
    m = b * 1.0
    s = a + m  # the gradient of s goes, unchanged, to a's .grad and to m
    J = s.sum() + (m * 5).sum() + (a * 7).sum()
    J.backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.full(4, 8.0, np.float32))  # 1 + 7
    np.testing.assert_array_equal(b.grad.numpy(), np.full(4, 6.0, np.float32))  # 1 + 5


def test_a_grad_from_an_earlier_backward_is_not_written_into():
    w = cr.tensor(np.ones(3, np.float32), requires_grad=True)
    (w * w).sum().backward()
    first = w.grad.numpy()
    held = first.copy()
    (w * w).sum().backward()  # accumulates: a new array, the one the caller holds is untouched
    np.testing.assert_array_equal(first, held)
    np.testing.assert_array_equal(w.grad.numpy(), 2 * held)


def test_a_callers_seed_is_never_written_into():
    x = cr.tensor(np.ones(3, np.float32), requires_grad=True)
    seed = np.ones(3, np.float32)
    y = x * 1.0
    (y + y).backward(seed)  # add passes the seed on to both inputs, which are the same node
    np.testing.assert_array_equal(seed, np.ones(3, np.float32))
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 2.0, np.float32))


def _section_grads(x, y, w1, b1, w2):
    W1, B1, W2 = (cr.tensor(a, requires_grad=True) for a in (w1, b1, w2))
    h = F.relu(cr.tensor(x) @ W1 + B1)
    J = F.cross_entropy(h @ W2, y) + 1e-4 / 2 * ((W1 * W1).sum() + (W2 * W2).sum())
    J.backward()
    return [t.grad.numpy() for t in (W1, B1, W2)]


def test_section_gradients_are_bitwise_those_of_the_plain_sums():
    """The in-place sums round exactly as ``a + b`` (what the walk does under an interpreter)."""
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 784), dtype=np.float32), rng.integers(0, 10, 16)
    args = (x, y, _f32(784, 32), np.zeros(32, np.float32), _f32(32, 10, seed=2))
    fast = _section_grads(*args)
    with cr.Interpreter():  # an installed interpreter sees every sum: the walk makes new arrays
        plain = _section_grads(*args)
    for a, b in zip(fast, plain, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(not gc.isenabled(), reason="the cyclic GC is disabled in this process")
def test_a_large_graph_is_kept_out_of_the_gcs_sight_until_backward(monkeypatch):
    monkeypatch.setattr(node_module, "FREEZE_EVERY", 200)
    monkeypatch.setattr(node_module._GC, "next_freeze", 0)  # the next node freezes, then every 200
    assert gc.get_freeze_count() == 0
    x = cr.tensor(np.ones(4, np.float32), requires_grad=True)
    y = x
    for _ in range(500):
        y = cr.tanh(y)
    assert gc.get_freeze_count() > 0  # the graph built so far is exempt from collections
    y.sum().backward()
    assert gc.get_freeze_count() == 0  # and handed back when backward is done
    assert np.isfinite(x.grad.numpy()).all()


def test_objects_someone_else_froze_stay_frozen(monkeypatch):
    gc.freeze()
    try:
        theirs = gc.get_freeze_count()
        monkeypatch.setattr(node_module._GC, "next_freeze", 0)  # the next node would freeze, were it the engine's
        x = cr.tensor(np.ones(2, np.float32), requires_grad=True)
        cr.tanh(x).sum().backward()
        assert gc.get_freeze_count() >= theirs  # not unfrozen by the engine
        assert not node_module._GC.frozen
    finally:
        gc.unfreeze()
