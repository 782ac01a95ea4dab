"""The backward walk adds gradients in place only into arrays no one else holds; large graphs and the GC."""

import gc

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
from chainrule.core import backward as backward_module
from chainrule.core import node as node_module


@pytest.fixture(params=["every size", "large only"])
def in_place(request, monkeypatch):
    """Run a test with the walk's in-place sums for every gradient (the threshold at 0 bytes) and as shipped."""
    if request.param == "every size":
        monkeypatch.setattr(backward_module, "IN_PLACE_BYTES", 0)
    return request.param


def _f32(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_many_gradients_of_one_value_sum_exactly_as_before(in_place):
    w_np, x_np = _f32(5, 3), _f32(5, 3, seed=1)
    w, x = cr.tensor(w_np, requires_grad=True), cr.tensor(x_np)
    h = w * x
    J = (h * h).sum() + (h * 3).sum() + (w * w).sum() + h.sum()  # h and w each reached by several gradients
    J.backward()
    hn = w_np * x_np
    dh = (2 * hn + np.float32(3)) + np.float32(1)
    expected = (dh * x_np + w_np * np.float32(2)).astype(np.float32)  # w gets x·dh and the two halves of w·w
    np.testing.assert_allclose(w.grad.numpy(), expected, rtol=1e-6)


def test_a_gradient_passed_on_unchanged_to_a_leaf_and_a_node_is_not_overwritten(in_place):
    # add's rule hands the same array to both inputs: one is a leaf, the other a node reached again
    a = cr.tensor(np.ones(4, np.float32), requires_grad=True)
    b = cr.tensor(np.full(4, 2.0, np.float32), requires_grad=True)
    m = b * 1.0
    s = a + m  # the gradient of s goes, unchanged, to a's .grad and to m
    J = s.sum() + (m * 5).sum() + (a * 7).sum()
    J.backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.full(4, 8.0, np.float32))  # 1 + 7
    np.testing.assert_array_equal(b.grad.numpy(), np.full(4, 6.0, np.float32))  # 1 + 5


def test_a_gradient_passed_on_to_two_nodes_then_reached_again_is_not_written_into(in_place):
    # built so that add's rule runs first (it was recorded last): m1 and m2 then share one pending
    # array, and m1's second gradient (from m1 * 5) must not be added into it
    a = cr.tensor(np.ones(4, np.float32), requires_grad=True)
    m1, m2 = a * 1.0, a * 2.0
    t = (m1 * 5.0).sum()
    J = t + ((m1 + m2) * 3.0).sum()  # mul's rule makes a writable array, which add passes on to both
    J.backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.full(4, 14.0, np.float32))  # (5 + 3) * 1 + 3 * 2


def test_a_gradient_shared_by_a_leaf_and_a_pending_node_is_not_written_into(in_place):
    # add's rule (recorded last, run first) hands one array to the leaf a and to the node m; the
    # gradients of a and m recorded earlier arrive afterwards and must not be added into it
    a = cr.tensor(np.ones(4, np.float32), requires_grad=True)
    b = cr.tensor(np.full(4, 2.0, np.float32), requires_grad=True)
    m = b * 1.0
    t1, t2 = (m * 5.0).sum(), (a * 7.0).sum()
    J = t1 + t2 + ((a + m) * 3.0).sum()  # mul's rule makes a writable array, which add passes on to both
    J.backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.full(4, 10.0, np.float32))  # 7 + 3
    np.testing.assert_array_equal(b.grad.numpy(), np.full(4, 8.0, np.float32))  # 5 + 3


def test_a_grad_from_an_earlier_backward_is_not_written_into(in_place):
    w = cr.tensor(np.ones(3, np.float32), requires_grad=True)
    (w * w).sum().backward()
    first = w.grad.numpy()
    held = first.copy()
    (w * w).sum().backward()  # accumulates: a new array, the one the caller holds is untouched
    np.testing.assert_array_equal(first, held)
    np.testing.assert_array_equal(w.grad.numpy(), 2 * held)


def test_a_callers_seed_is_never_written_into(in_place):
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


def test_section_gradients_are_bitwise_those_of_the_plain_sums(in_place):
    """The in-place sums round exactly as ``a + b`` (what the walk does under an interpreter)."""
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 784), dtype=np.float32), rng.integers(0, 10, 16)
    args = (x, y, _f32(784, 32), np.zeros(32, np.float32), _f32(32, 10, seed=2))
    fast = _section_grads(*args)
    with cr.Interpreter():  # an installed interpreter sees every sum: the walk makes new arrays
        plain = _section_grads(*args)
    for a, b in zip(fast, plain, strict=True):
        np.testing.assert_array_equal(a, b)


def test_more_shared_arrays_are_never_written_into(in_place):
    """Views, saved arrays, outputs the user holds and a leaf's .grad reached again: all stay as they were."""
    a_np = _f32(6, 4)
    a = cr.tensor(a_np, requires_grad=True)
    b = a * 2.0
    kept = b.numpy().copy()
    v = b.reshape(24)  # reshape's rule hands back a view of the gradient it gets
    J = (v * 3.0).sum() + (b * b).sum() + b.sum() + (a * a).sum() + a.sum()
    J.backward()
    np.testing.assert_array_equal(b.numpy(), kept)  # an output the user holds: untouched
    expected = (np.float32(3) + 2 * kept + np.float32(1)) * np.float32(2) + 2 * a_np + np.float32(1)
    np.testing.assert_allclose(a.grad.numpy(), expected, rtol=1e-6)
    first = a.grad
    held = first.numpy().copy()
    J2 = (a * 5.0).sum() + (a * 7.0).sum()
    J2.backward()  # accumulates into a .grad made by an earlier walk: a new array, the old one untouched
    np.testing.assert_array_equal(first.numpy(), held)
    np.testing.assert_allclose(a.grad.numpy(), held + np.float32(12), rtol=1e-6)


def test_a_value_reached_by_many_gradients_is_summed_into_one_array(monkeypatch):
    """Past the first, the gradients of one value are added into the pending array: ``total + g`` would hold
    the old total, the new gradient and the new total at once (NumPy reports its arrays to tracemalloc)."""
    import tracemalloc

    def peak(threshold):
        monkeypatch.setattr(backward_module, "IN_PLACE_BYTES", threshold)
        x = cr.tensor(np.ones((512, 512), np.float32), requires_grad=True)  # 1 MiB per array
        h = x * 1.0
        J = h.sum()
        for k in range(2, 10):
            J = J + (h * float(k)).sum()  # h is reached by 9 gradients, x by one
        tracemalloc.start()
        J.backward()
        top = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        np.testing.assert_array_equal(x.grad.numpy(), np.full((512, 512), 45.0, np.float32))
        return top

    summed_in_place, new_arrays = peak(0), peak(1 << 62)
    assert summed_in_place < new_arrays - (3 << 18)  # one 1 MiB array fewer at the peak


def test_a_leaf_reached_by_many_gradients_takes_the_first_as_its_grad_and_adds_the_rest_into_it(monkeypatch):
    """A rule's fresh result becomes the leaf's ``.grad`` and the later gradients are added into it:
    adding the second into a new array would hold three arrays at once."""
    import tracemalloc

    def peak(threshold):
        monkeypatch.setattr(backward_module, "IN_PLACE_BYTES", threshold)
        x = cr.tensor(np.ones((512, 512), np.float32), requires_grad=True)  # 1 MiB per array
        J = (x * 1.0).sum()
        for k in range(2, 10):
            J = J + (x * float(k)).sum()  # mul's rule makes a new array for x each time
        tracemalloc.start()
        J.backward()
        top = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        np.testing.assert_array_equal(x.grad.numpy(), np.full((512, 512), 45.0, np.float32))
        return top

    summed_in_place, new_arrays = peak(0), peak(1 << 62)
    assert summed_in_place < new_arrays - (3 << 18)  # one 1 MiB array fewer at the peak


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
