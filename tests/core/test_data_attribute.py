"""``Tensor.data`` is PyTorch's ``.data`` (issue 18, F4): a tensor outside the graph that shares the
array, so in-place methods on it write into the parameter, compared with torch op by op. Where
PyTorch would silently give a wrong gradient (a write into an array a live graph saved) chainrule
raises, naming the node; ``t.data = v`` replaces the values, and refuses to change the dtype."""

import numpy as np
import pytest
import torch

import chainrule as cr

W0 = np.array([[1.0, -2.0, 3.0], [0.5, 4.0, -1.5]], np.float32)


def _pair():
    return cr.tensor(W0, requires_grad=True), torch.tensor(W0, requires_grad=True)


def test_data_is_a_detached_tensor_sharing_the_array():
    w, tw = _pair()
    d, td = w.data, tw.data
    assert isinstance(d, cr.Tensor) and d is not w
    assert (d.requires_grad, d.is_leaf, d.node) == (td.requires_grad, td.is_leaf, None) == (False, True, None)
    assert np.shares_memory(d.numpy(), w.numpy()) and td.data_ptr() == tw.data_ptr()
    assert np.asarray(d) is w.numpy()  # the NumPy array itself, no copy (as w.numpy())
    assert np.shares_memory(d.data.numpy(), w.numpy())  # .data of .data, as torch
    assert d.shape == w.shape and d.dtype == w.dtype


IN_PLACE = {
    "fill_": lambda d: d.fill_(0.25),
    "zero_": lambda d: d.zero_(),
    "mul_": lambda d: d.mul_(3.0),
    "add_": lambda d: d.add_(1.0, alpha=2),
    "sub_": lambda d: d.sub_(0.5),
    "div_": lambda d: d.div_(4.0),
    "clamp_": lambda d: d.clamp_(-1.0, 1.0),
    "-=": lambda d: d.__isub__(0.1),
    "+=": lambda d: d.__iadd__(0.1),
    "*=": lambda d: d.__imul__(-2.0),
    "/=": lambda d: d.__itruediv__(8.0),
    "t[i] = v": lambda d: d.__setitem__(0, 7.0),
    "t[:, 1] = v": lambda d: d.__setitem__((slice(None), 1), 5.0),
    "t[:] *= c": lambda d: d[:].__imul__(0.5),
}


@pytest.mark.parametrize("op", IN_PLACE)
def test_writes_through_data_reach_the_parameter_as_in_pytorch(op):
    w, tw = _pair()
    grad_enabled = torch.is_grad_enabled()
    IN_PLACE[op](w.data)  # outside no_grad, on a parameter that requires grad: the book's idiom
    IN_PLACE[op](tw.data)
    assert torch.is_grad_enabled() == grad_enabled
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-6)
    assert not np.array_equal(w.numpy(), W0)
    assert w.requires_grad and w.is_leaf and w.node is None


def test_copy_item_assignment_and_random_fills_through_data():
    w, tw = _pair()
    src = np.arange(6, dtype=np.float32).reshape(2, 3)
    w.data.copy_(cr.tensor(src))
    tw.data.copy_(torch.tensor(src))
    np.testing.assert_array_equal(w.numpy(), tw.detach().numpy())
    w.data[:] = 0  # the book's clip-style slice assignment
    np.testing.assert_array_equal(w.numpy(), np.zeros((2, 3)))
    cr.manual_seed(0)
    w.data.normal_(0, 0.01)
    first = w.numpy().copy()
    cr.manual_seed(0)
    w.data.normal_(0, 0.01)
    np.testing.assert_array_equal(w.numpy(), first)  # reproducible, and into w itself
    assert 0 < first.std() < 0.05
    w.data.uniform_(-0.1, 0.1)
    assert -0.1 <= w.numpy().min() and w.numpy().max() <= 0.1 and not np.array_equal(w.numpy(), first)


def test_a_write_into_an_array_a_live_graph_saved_raises_naming_the_node():
    w, tw = _pair()
    loss = (w * w).sum()
    for write in (
        lambda d: d.normal_(0, 0.01),
        lambda d: d.fill_(0),
        lambda d: d.__isub__(1.0),
        lambda d: d.__setitem__(0, 1.0),
    ):
        with pytest.raises(cr.InPlaceError, match=r"saved by a 'multiply' node .* gradients wrong"):
            write(w.data)
    np.testing.assert_array_equal(w.numpy(), W0)  # nothing was written
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), 2 * W0)  # the true gradient
    w.data.fill_(0)  # backward released the array
    np.testing.assert_array_equal(w.numpy(), np.zeros((2, 3)))
    # PyTorch's .data escapes its version counter: the same write gives a silently wrong gradient
    tloss = (tw * tw).sum()
    tw.data.fill_(0)
    tloss.backward()
    assert not np.allclose(tw.grad.numpy(), 2 * W0)


def test_data_of_a_gradient_and_of_a_read_only_view():
    w = cr.tensor(np.ones((3, 4)), requires_grad=True)
    b = cr.tensor(np.ones(4), requires_grad=True)
    (w + b).sum().backward()
    w.grad.data.zero_()
    b.grad.data.mul_(0.5)
    np.testing.assert_array_equal(w.grad.numpy(), np.zeros((3, 4)))
    np.testing.assert_array_equal(b.grad.numpy(), np.full(4, 1.5))
    view = cr.broadcast_to(cr.tensor([1.0, 2.0]), (3, 2))  # a read-only broadcast view
    view.data.fill_(5.0)  # the tensor gets its own copy first, so the write reaches it
    np.testing.assert_array_equal(view.numpy(), np.full((3, 2), 5.0))


def test_data_of_a_non_leaf_writes_its_values_as_in_pytorch():
    x, tx = cr.tensor([1.0, 2.0], requires_grad=True), torch.tensor([1.0, 2.0], requires_grad=True)
    z, tz = x * 2, tx * 2
    assert not z.data.requires_grad and z.data.is_leaf and not tz.data.requires_grad
    z.data.fill_(7.0)
    tz.data.fill_(7.0)
    np.testing.assert_array_equal(z.numpy(), tz.detach().numpy())
    assert z.node is not None  # still in its graph


def test_a_recorded_update_through_data_is_refused_not_lost():
    w = cr.tensor(W0, requires_grad=True)
    p = cr.tensor(np.full((2, 3), 2.0), requires_grad=True)
    with pytest.raises(
        cr.InPlaceError, match=r"copy_: this tensor is another's \.data or \.detach\(\) .* operand\.detach\(\)"
    ):
        w.data.copy_(p)  # PyTorch writes w and records on the .data tensor: it could not reach w here
    with pytest.raises(cr.InPlaceError, match=r"\+=: this tensor is another's \.data"):
        w.data += p
    np.testing.assert_array_equal(w.numpy(), W0)
    w.data.copy_(p.detach())
    np.testing.assert_array_equal(w.numpy(), np.full((2, 3), 2.0))
    with cr.no_grad():
        w.data += p
    np.testing.assert_array_equal(w.numpy(), np.full((2, 3), 4.0))
    with pytest.raises(cr.InPlaceError, match=r"add_: this tensor is another's \.data or \.detach\(\)"):
        w.detach().add_(p)  # detach shares the array too: the same refusal
    tw, tp = torch.zeros(3), torch.ones(3, requires_grad=True)
    tw.detach().add_(tp)  # torch: written into tw, and recorded on the detached tensor
    np.testing.assert_array_equal(tw.numpy(), np.ones(3))
    np.testing.assert_array_equal(w.numpy(), np.full((2, 3), 4.0))


def test_assigning_data_replaces_the_values_as_in_pytorch():
    w, tw = _pair()
    new = cr.tensor(np.zeros(5, np.float32))
    w.data = new  # another shape: allowed, as in PyTorch
    tw.data = torch.zeros(5)
    assert w.shape == tuple(tw.shape) == (5,) and w.requires_grad and tw.requires_grad
    assert np.shares_memory(w.numpy(), new.numpy())  # shares, as torch does (data_ptr equal)
    v = torch.ones(5)
    tw.data = v
    assert tw.data_ptr() == v.data_ptr()
    array = np.ones((2, 2), np.float32)
    w.data = array  # a NumPy array of the same dtype too (PyTorch takes only tensors)
    assert w.numpy() is array
    (w * 3).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.full((2, 2), 3.0))


def test_assigning_data_refuses_to_change_the_dtype():
    w = cr.tensor(W0, requires_grad=True)
    with pytest.raises(cr.DTypeError, match=r"t\.data = value: the tensor is float32 and the new values are float64"):
        w.data = np.zeros((2, 3))  # PyTorch would make w float64 silently
    with pytest.raises(cr.DTypeError, match="float32 and the new values are int64"):
        w.data = cr.tensor(np.zeros((2, 3), np.int64))
    with pytest.raises(RuntimeError, match="must be floating point"):  # PyTorch refuses this one too
        torch.tensor(W0, requires_grad=True).data = torch.zeros((2, 3), dtype=torch.int64)
    with pytest.raises(TypeError, match=r"t\.data = value: expected a tensor or a NumPy array, got float"):
        w.data = 3.0
    with pytest.raises(TypeError, match="has to be a tensor"):  # PyTorch: the same refusal
        torch.tensor(W0).data = 3.0
    np.testing.assert_array_equal(w.numpy(), W0)
    w.data = np.zeros((2, 3)).astype(w.dtype)  # the spelling the message names
    np.testing.assert_array_equal(w.numpy(), np.zeros((2, 3)))


def test_a_view_taken_before_the_graph_cannot_write_the_saved_array():
    w, tw = _pair()
    early = w.data[0]  # a view of w's array, made while it was still writable
    with cr.no_grad():
        sliced = w[:, 1:]
    loss = (w * w).sum()
    for view in (early, sliced):
        with pytest.raises(cr.InPlaceError, match="saved by a 'multiply' node"):
            view.fill_(0.0)
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), 2 * W0)  # it used to be silently wrong through `sliced`
    early.fill_(0.0)  # released
    np.testing.assert_array_equal(w.numpy()[0], np.zeros(3))
    # torch: a view of .data escapes the version counter, and the gradient goes silently wrong
    tearly = tw.data[0]
    tloss = (tw * tw).sum()
    tearly.fill_(0.0)
    tloss.backward()
    assert not np.allclose(tw.grad.numpy(), 2 * W0)
