"""Writing into an array that a recorded node saved for backward raises instead of giving a
silently wrong gradient: a leaf's data, an as_tensor source, an optimizer step between forward
and backward. After backward (or once the graph is dropped) the arrays are writable again."""

import gc

import numpy as np
import pytest

import chainrule as cr
from chainrule import optim


def _graph(W, x):
    return (cr.tanh(W @ x) * W.sum()).sum()


def test_writing_a_leafs_data_before_backward_raises():
    W = cr.tensor(np.ones((3, 4)), requires_grad=True)
    loss = _graph(W, np.ones((4, 2), np.float32))
    with pytest.raises(ValueError, match="read-only"):
        W.numpy()[0, 0] = 5.0  # the NumPy array itself
    with pytest.raises(ValueError, match="read-only"):
        W.numpy()[...] -= 1.0
    with pytest.raises(cr.InPlaceError, match="saved by a '(matmul|sum)' node"):
        W.data[0, 0] = 5.0  # PyTorch's .data: the same protection
    with pytest.raises(cr.InPlaceError, match="-=: this tensor's array .* is saved by a '(matmul|sum)' node"):
        W.data -= 1.0
    np.testing.assert_array_equal(W.numpy(), np.ones((3, 4)))
    loss.backward()
    W.data[0, 0] = 5.0  # released: writable again
    assert W.numpy()[0, 0] == 5.0


def test_writing_an_as_tensor_source_before_backward_raises():
    source = np.ones((4, 2), np.float32)
    x = cr.as_tensor(source)
    assert np.shares_memory(x.numpy(), source)
    W = cr.tensor(np.ones((3, 4)), requires_grad=True)
    loss = _graph(W, x)
    with pytest.raises(ValueError, match="read-only"):
        source[0, 0] = 2.0
    loss.backward()
    np.testing.assert_array_equal(W.grad.numpy(), _graph_grad(np.ones((3, 4)), np.ones((4, 2))))
    source[0, 0] = 2.0


def _graph_grad(W0, x0):
    W = cr.tensor(W0, requires_grad=True)
    _graph(W, x0.astype(np.float32)).backward()
    return W.grad.numpy()


def test_optimizer_step_between_forward_and_backward_names_the_op_and_tensor():
    W = cr.tensor(np.ones((3, 4)), requires_grad=True).named("W1")
    W.grad = cr.tensor(np.ones((3, 4)))
    opt = optim.SGD([W], lr=0.1)
    loss = _graph(W, np.ones((4, 2), np.float32))
    with pytest.raises(cr.InPlaceError, match=r"SGD\.step: parameter 'W1' of shape \(3, 4\) is saved by a '\w+' node"):
        opt.step()
    np.testing.assert_array_equal(W.numpy(), np.ones((3, 4)))  # nothing was applied
    loss.backward()
    opt.step()


def test_a_graph_that_is_dropped_lets_go_of_its_arrays():
    W = cr.tensor(np.ones((3, 4)), requires_grad=True)
    W.grad = cr.tensor(np.ones((3, 4)))
    opt = optim.SGD([W], lr=0.1)
    loss = _graph(W, np.ones((4, 2), np.float32))
    del loss  # never backpropagated
    opt.step()
    cycle = [_graph(W, np.ones((4, 2), np.float32))]
    cycle.append(cycle)  # only a gc frees it: the optimizer collects before it refuses
    del cycle
    opt.step()
    gc.collect()


def test_retain_graph_keeps_the_arrays_read_only_until_the_graph_is_gone():
    W = cr.tensor(np.ones((3, 4)), requires_grad=True)
    loss = _graph(W, np.ones((4, 2), np.float32))
    loss.backward(retain_graph=True)
    with pytest.raises(ValueError, match="read-only"):
        W.numpy()[0, 0] = 3.0
    with pytest.raises(cr.InPlaceError, match="kept with retain_graph=True"):
        W.data[0, 0] = 3.0
    loss.backward()  # the second backward still sees the original W
    del loss
    W.data[0, 0] = 3.0
    assert W.numpy()[0, 0] == 3.0


def test_arrays_read_only_by_their_owner_stay_read_only():
    frozen = np.ones((4, 2), np.float32)
    frozen.flags.writeable = False
    W = cr.tensor(np.ones((3, 4)), requires_grad=True)
    _graph(W, frozen).backward()
    assert not frozen.flags.writeable


def test_the_table_of_held_arrays_does_not_grow_over_steps():
    """Each node that made arrays read-only is listed until it is released or dropped: a training
    loop, a dropped graph and a collected cycle all leave the table as they found it."""
    from chainrule.core import node as node_module

    W = cr.tensor(np.ones((3, 4)), requires_grad=True)
    before = (len(node_module._DROPPED), len(node_module._HELD))
    kept = []  # backpropagated graphs still referenced: released, so no longer listed
    for _ in range(50):
        loss = _graph(W, np.ones((4, 2), np.float32))
        loss.backward()
        kept.append(loss)
        _graph(W, np.ones((4, 2), np.float32))  # dropped unreleased
    assert (len(node_module._DROPPED), len(node_module._HELD)) == before
    cycle = [_graph(W, np.ones((4, 2), np.float32))]
    cycle.append(cycle)
    del cycle
    gc.collect()
    assert (len(node_module._DROPPED), len(node_module._HELD)) == before
    assert W.numpy().flags.writeable
