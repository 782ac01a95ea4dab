"""PyTorch's in-place idioms (issue 18, F1/F2): ``-=`` and friends, ``zero_``/``fill_``/``normal_``/
``uniform_``/``copy_``/``clamp_``/``mul_``/``add_``/``sub_``, ``t[i] = v`` and ``t[:] *= c``, with
PyTorch's rules: written under no_grad (parameters, ``.grad``), refused on a parameter outside
no_grad and while a recorded node saved the array, recorded (differentiable) on non-leaves."""

import numpy as np
import pytest
import torch

import chainrule as cr


def _w():
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    (w * w).sum().backward()
    return w


def test_the_books_sgd_step_moves_the_parameter_in_place():
    w = _w()
    params = [w]
    with cr.no_grad():
        for p in params:
            p -= 0.1 * p.grad  # F1: used to rebind p silently and leave w at [1, 2]
            p.grad.zero_()
    np.testing.assert_allclose(w.numpy(), [0.8, 1.6])
    assert params[0] is w and w.requires_grad and w.is_leaf
    np.testing.assert_array_equal(w.grad.numpy(), [0.0, 0.0])


@pytest.mark.parametrize(
    "update, expected",
    [
        (lambda p: p.__iadd__(1.0), [2.0, 3.0]),
        (lambda p: p.__imul__(2.0), [2.0, 4.0]),
        (lambda p: p.__itruediv__(2.0), [0.5, 1.0]),
        (lambda p: p.__ipow__(2.0), [1.0, 4.0]),
        (lambda p: p.__imod__(1.5), [1.0, 0.5]),
        (lambda p: p.__ifloordiv__(1.5), [0.0, 1.0]),
        (lambda p: p.add_(cr.tensor([1.0, 1.0]), alpha=2), [3.0, 4.0]),
        (lambda p: p.sub_(1.0), [0.0, 1.0]),
        (lambda p: p.mul_(3.0), [3.0, 6.0]),
        (lambda p: p.div_(4.0), [0.25, 0.5]),
        (lambda p: p.clamp_(1.5, 1.8), [1.5, 1.8]),
        (lambda p: p.copy_(cr.tensor([7.0, 8.0])), [7.0, 8.0]),
        (lambda p: p.fill_(0.5), [0.5, 0.5]),
        (lambda p: p.zero_(), [0.0, 0.0]),
    ],
)
def test_in_place_forms_under_no_grad_write_into_the_array(update, expected):
    w = _w()
    array = w.numpy()
    with cr.no_grad():
        assert update(w) is w
    assert w.numpy() is array
    np.testing.assert_allclose(w.numpy(), expected)


def test_item_assignment_and_the_books_gradient_clipping():
    w = _w()
    with cr.no_grad():
        w[0] = 5.0
    np.testing.assert_allclose(w.numpy(), [5.0, 2.0])
    grad = w.grad
    norm = cr.sqrt((w.grad**2).sum())  # d2l's clip_gradients, no no_grad needed: .grad does not require grad
    w.grad[:] *= 1.0 / norm
    assert w.grad is grad
    np.testing.assert_allclose(w.grad.numpy(), np.array([2.0, 4.0]) / np.sqrt(20.0), rtol=1e-6)


def test_normal_and_uniform_follow_manual_seed():
    w = cr.tensor(np.zeros((3, 4)), requires_grad=True)
    cr.manual_seed(0)
    with cr.no_grad():
        w.normal_(0, 0.01)
    first = w.numpy().copy()
    cr.manual_seed(0)
    with cr.no_grad():
        w.normal_(0, 0.01)
    np.testing.assert_array_equal(w.numpy(), first)
    assert 0 < first.std() < 0.05
    with cr.no_grad():
        w.uniform_(-1, 1)
    assert -1 <= w.numpy().min() and w.numpy().max() <= 1
    w.data.fill_(3.0)  # PyTorch's w.data: shares the array, outside the graph rules
    np.testing.assert_array_equal(w.numpy(), np.full((3, 4), 3.0))


def test_a_parameter_outside_no_grad_is_refused():
    w = _w()
    for update in (lambda: w.__isub__(0.1), lambda: w.zero_(), lambda: w.normal_(), lambda: w.__setitem__(0, 1.0)):
        with pytest.raises(cr.InPlaceError, match="leaf tensor that requires grad.*cr.no_grad"):
            update()
    np.testing.assert_array_equal(w.numpy(), [1.0, 2.0])


def test_writing_an_array_a_live_node_saved_is_refused():
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    with cr.no_grad(), pytest.raises(cr.InPlaceError, match="saved by a 'multiply' node"):
        w -= 1.0
    np.testing.assert_array_equal(w.numpy(), [1.0, 2.0])
    loss.backward()
    with cr.no_grad():
        w -= 1.0  # backward released it
    np.testing.assert_array_equal(w.numpy(), [0.0, 1.0])


def test_recorded_in_place_on_a_non_leaf_is_differentiable():
    x0 = np.array([0.5, -1.0, 2.0])

    def ours(x):
        h = x * 2.0
        h += x**2
        h *= cr.tanh(x)
        h[1] = x[0] * 3.0
        h[-1:] = x[2:] ** 3
        return h.sum()

    def theirs(x):
        h = x * 2.0
        h += x**2
        h *= torch.tanh(x)
        h[1] = x[0] * 3.0
        h[-1:] = x[2:] ** 3
        return h.sum()

    x = cr.tensor(x0, dtype="float64", requires_grad=True)
    ours(x).backward()
    tx = torch.tensor(x0, requires_grad=True)
    theirs(tx).backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    assert cr.check_grad(ours, x0, order=2, modes=("rev",)).ok
    assert cr.check_grad(lambda a: cr.index_update(a * 1.0, (slice(0, 2),), a[1:] ** 2), x0, order=2).ok


def test_what_cannot_be_honoured_raises_instead_of_rebinding():
    x = cr.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    h = (x * 2.0).reshape(2)
    view = x * 1.0
    part = view[0:1]
    with pytest.raises(cr.InPlaceError, match="view of another tensor"):
        part += 1.0
    with pytest.raises(cr.InPlaceError, match="a = a @ b"):
        h @= h
    with pytest.raises(cr.InPlaceError, match="recorded graph; overwriting it"):
        view.zero_()
    with pytest.raises(cr.InPlaceError, match="not supported inside cr.jvp"):

        def f(a):
            b = a * 1.0
            b += 1.0
            return b

        cr.jvp(f, (np.ones(2),), (np.ones(2),))
    with pytest.raises(cr.DTypeError, match=r"\+=: cannot write the result into a int64 tensor"):
        ints = cr.tensor(np.array([1, 2]))
        ints += 0.5
    with pytest.raises(cr.ShapeError, match=r"-=: an operand of shape \(3,\) does not broadcast"):
        fresh = cr.tensor([1.0, 2.0], requires_grad=True)
        with cr.no_grad():
            fresh -= np.ones(3)
    with pytest.raises(ValueError, match="index_update: repeated indices"):
        y = x * 1.0
        y[np.array([0, 0])] = cr.tensor([1.0, 2.0], dtype="float64")


def test_a_buffer_updated_from_a_parameter_joins_the_graph():
    w = cr.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    acc = cr.tensor([0.0, 0.0], dtype="float64")
    acc += w * 3.0
    assert acc.requires_grad and not acc.is_leaf
    acc.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 3.0])
