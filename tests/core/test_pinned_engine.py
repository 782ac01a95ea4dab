"""Pins of the engine core's behaviour (core/backward.py, core/tensor.py ``bind``, core/node.py).

Written before the core is rewritten: each test passes on the current engine and fails if the
behaviour it names breaks. Values are checked, not just shapes or types.
"""

import numpy as np
import pytest

import chainrule as cr
from chainrule.core.backward import backward as core_backward

F32 = np.float32
F64 = np.float64


def test_gradient_of_a_leaf_with_respect_to_itself_is_the_seed():
    """backward from a leaf root with targets=[that leaf] and an explicit seed returns the seed."""
    x = cr.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    seed = np.array([1.5, -2.0, 0.25], dtype=F32)
    g = cr.gradients(x, x, gradient=seed)
    assert isinstance(g, cr.Tensor)
    assert g.dtype == F32
    np.testing.assert_array_equal(g.numpy(), [1.5, -2.0, 0.25])
    # the same through the core function, with a Tensor seed, next to another target
    y = x * 2.0
    gx, gy = core_backward([x], [cr.tensor([4.0, 5.0, 6.0])], retain_graph=True, targets=[x, y])
    np.testing.assert_array_equal(gx.numpy(), [4.0, 5.0, 6.0])
    np.testing.assert_array_equal(gy.numpy(), [0.0, 0.0, 0.0])  # y is not below the root x
    assert x.grad is None  # with targets no .grad is touched


def test_tensor_cotangent_keeps_its_graph_under_create_graph():
    """With create_graph=True a seed that requires grad stays in the graph: the gradient depends on it."""
    x = cr.tensor(np.array([0.5, -1.0, 2.0], dtype=F64), requires_grad=True)
    seed = cr.tensor(np.array([3.0, 0.5, -2.0], dtype=F64), requires_grad=True)
    y = x * x
    gx = cr.gradients(y, x, gradient=seed, create_graph=True)
    np.testing.assert_allclose(gx.numpy(), 2.0 * x.numpy() * seed.numpy())
    assert gx.requires_grad
    # d(sum(2 x s))/ds = 2x and d/dx = 2s: the result is differentiable in the seed and in x
    d_seed, d_x = cr.gradients(gx.sum(), [seed, x])
    np.testing.assert_allclose(d_seed.numpy(), 2.0 * x.numpy())
    np.testing.assert_allclose(d_x.numpy(), 2.0 * seed.numpy())


def test_backward_does_not_make_the_callers_seed_the_grad():
    """x.backward(t) copies t: x.grad is not t, and writing into t afterwards leaves x.grad alone."""
    x = cr.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    t = cr.tensor(np.array([7.0, 8.0, 9.0]))
    x.backward(t)
    assert x.grad is not t
    assert not np.shares_memory(x.grad.numpy(), t.numpy())
    t.data[...] = -1.0
    np.testing.assert_array_equal(x.grad.numpy(), [7.0, 8.0, 9.0])

    # a plain ndarray seed of the root's dtype (passed on as is by the seeding) is copied too
    w = cr.tensor(np.array([1.0, 2.0]), requires_grad=True)
    a = np.array([0.5, 0.25], dtype=F32)
    w.backward(a)
    assert not np.shares_memory(w.grad.numpy(), a)
    a[...] = 100.0
    np.testing.assert_array_equal(w.grad.numpy(), [0.5, 0.25])


def test_float64_seed_for_a_float32_root_is_cast():
    """A float64 seed given to a float32 root is cast to float32 before it flows anywhere."""
    seed = np.array([0.1, 0.2, 0.3], dtype=F64)
    x = cr.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)  # float32
    x.backward(seed)  # the root is the leaf itself: the seed becomes its .grad
    assert x.grad.dtype == F32
    np.testing.assert_allclose(x.grad.numpy(), seed.astype(F32), rtol=0, atol=0)

    z = cr.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = z * 2.0
    gz, gy = cr.gradients(y, [z, y], gradient=seed)
    assert gz.dtype == F32 and gy.dtype == F32
    np.testing.assert_allclose(gy.numpy(), seed.astype(F32), rtol=0, atol=0)
    np.testing.assert_allclose(gz.numpy(), 2.0 * seed.astype(F32), rtol=1e-6)


def test_several_roots_sharing_one_node_accumulate():
    """backward([y, y], [g, g]) for y = 3x adds both seeds at y's node: gradient 6, not 3."""
    x = cr.tensor(np.array([1.0, -2.0]), requires_grad=True)
    y = 3.0 * x
    g = np.ones(2, dtype=F32)
    core_backward([y, y], [g, g])
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 6.0])

    # the public route to several roots: vjp of a function returning the same tensor twice
    def f(a):
        b = 3.0 * a
        return b, b

    _, vjp_fn = cr.vjp(f, np.array([1.0, -2.0], dtype=F32))
    (ct,) = vjp_fn((np.ones(2, dtype=F32), np.full(2, 2.0, dtype=F32)))
    np.testing.assert_array_equal(ct.numpy(), [9.0, 9.0])


def test_variadic_rule_reading_an_unsaved_input_names_save():
    """A defvjp_argnum rule that reads an input the primitive does not save raises a TypeError about save=."""
    prod = cr.Primitive("pinned_variadic_forgot_to_save", np.multiply)  # save=(): inputs arrive as Meta
    prod.defvjp_argnum(lambda i, g, out, *xs: g * xs[1 - i] * 1.0)
    a = cr.tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = cr.tensor(np.array([3.0, 4.0]), requires_grad=True)
    np.testing.assert_array_equal(prod(a, b).numpy(), [3.0, 8.0])
    with pytest.raises(TypeError, match=r"pinned_variadic_forgot_to_save.*save=\(\.\.\.\)"):
        prod(a, b).sum().backward()

    # saving the inputs makes the same rule work
    good = cr.Primitive("pinned_variadic_saved", np.multiply, save=(0, 1))
    good.defvjp_argnum(lambda i, g, out, *xs: g * xs[1 - i])
    good(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [3.0, 4.0])
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 2.0])


def test_backward_to_an_intermediate_target_keeps_the_graph_below_it():
    """targets=[b] with retain_graph=False frees only what is above b; a later backward through b works."""
    x0 = np.array([0.3, -0.7, 1.1], dtype=F64)
    x = cr.tensor(x0, requires_grad=True)
    a = cr.sin(x)
    b = cr.exp(a)
    c = (b * b).sum()
    gb = cr.gradients(c, b, retain_graph=False)
    np.testing.assert_allclose(gb.numpy(), 2.0 * np.exp(np.sin(x0)))
    assert x.grad is None
    assert not b.node.released and not a.node.released
    b.sum().backward()  # retain_graph=False above must not have freed exp or sin
    np.testing.assert_allclose(x.grad.numpy(), np.exp(np.sin(x0)) * np.cos(x0))


def test_create_graph_backward_accumulates_into_existing_grad():
    """A second backward(create_graph=True) adds to .grad, and the sum is differentiable again."""
    x0 = np.array([0.5, -1.5, 2.0], dtype=F64)
    x = cr.tensor(x0, requires_grad=True)
    (x**3).sum().backward(create_graph=True)
    np.testing.assert_allclose(x.grad.numpy(), 3.0 * x0**2)
    (x * x).sum().backward(create_graph=True)
    np.testing.assert_allclose(x.grad.numpy(), 3.0 * x0**2 + 2.0 * x0)
    assert x.grad.requires_grad
    g = x.grad
    h = cr.gradients(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), 6.0 * x0 + 2.0)

    # an array .grad from a plain backward, then a create_graph backward on top of it
    w = cr.tensor(x0, requires_grad=True)
    (w * w).sum().backward()
    (w**3).sum().backward(create_graph=True)
    np.testing.assert_allclose(w.grad.numpy(), 2.0 * x0 + 3.0 * x0**2)
    np.testing.assert_allclose(cr.gradients(w.grad.sum(), w).numpy(), 6.0 * x0)


@pytest.mark.parametrize("requires_grad", [False, True])
def test_float64_times_float32_raises_in_both_orders(requires_grad):
    """Mixing float64 and float32 tensors raises DTypeError whichever operand comes first."""
    a64 = cr.tensor(np.array([1.0, 2.0]), dtype=F64, requires_grad=requires_grad)
    b32 = cr.tensor(np.array([3.0, 4.0]), requires_grad=requires_grad)
    assert a64.dtype == F64 and b32.dtype == F32
    with pytest.raises(cr.DTypeError, match="float64"):
        a64 * b32
    with pytest.raises(cr.DTypeError, match="float64"):
        b32 * a64
    np.testing.assert_array_equal((a64 * a64).numpy(), [1.0, 4.0])  # same dtypes still multiply


def _vjp_only_sin():
    sin = cr.Primitive("pinned_sin_vjp_only", np.sin, save=(0,))
    sin.defvjp(lambda g, out, x: g * cr.cos(x))
    assert sin.jvps == () and sin.jvp_any is None  # forward mode has to transpose the VJP
    return sin


def test_forward_mode_second_order_through_a_transposed_vjp():
    """jvp of jvp and jvp of grad of a VJP-only primitive match -sin(x) and finite differences (float64)."""
    sin = _vjp_only_sin()
    x0 = np.array([0.3, -1.2, 2.0], dtype=F64)
    v = np.array([1.0, 0.5, -2.0], dtype=F64)

    def first(x):
        return cr.jvp(sin, (x,), (v,))[1]  # cos(x) v

    _, first_t = cr.jvp(sin, (x0,), (v,))
    np.testing.assert_allclose(first_t.numpy(), np.cos(x0) * v, rtol=1e-12)

    _, second = cr.jvp(first, (x0,), (v,))  # -sin(x) v^2
    np.testing.assert_allclose(second.numpy(), -np.sin(x0) * v * v, rtol=1e-12)
    h = 1e-5
    fd = (first(x0 + h * v).numpy() - first(x0 - h * v).numpy()) / (2 * h)
    np.testing.assert_allclose(second.numpy(), fd, rtol=1e-7, atol=1e-9)

    grad_f = cr.grad(lambda x: sin(x).sum())  # cos(x)
    _, hv = cr.jvp(grad_f, (x0,), (v,))  # -sin(x) v
    np.testing.assert_allclose(hv.numpy(), -np.sin(x0) * v, rtol=1e-12)
    fd = (grad_f(x0 + h * v).numpy() - grad_f(x0 - h * v).numpy()) / (2 * h)
    np.testing.assert_allclose(hv.numpy(), fd, rtol=1e-7, atol=1e-9)
