"""The graph, backward, transforms and errors."""

import gc
import sys

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
from chainrule.core.backward import toposort


def test_float32_by_default_and_float64_on_request():
    assert cr.tensor(1.5).dtype == np.float32
    assert cr.tensor([1.0, 2.0]).dtype == np.float32
    assert cr.tensor(np.zeros(3)).dtype == np.float32
    assert cr.tensor(np.zeros(3), dtype="float64").dtype == np.float64
    assert cr.tensor([1, 2]).dtype.kind == "i"
    x = cr.tensor(np.ones((2, 2)), dtype=np.float64, requires_grad=True)
    (x * 3.0).sum().backward()
    assert x.grad.dtype == np.float64
    y = cr.tensor(np.ones((2, 2)), requires_grad=True)
    (cr.exp(y) * np.ones((2, 2))).sum().backward()
    assert y.grad.dtype == np.float32  # a float64 constant does not upcast


def test_tensor_basics():
    t = cr.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert t.shape == (2, 2) and t.ndim == 2 and t.size == 4
    assert isinstance(np.asarray(t.detach()), np.ndarray)
    with pytest.raises(TypeError, match="drop its gradient"):
        np.asarray(t)  # a recorded tensor never silently becomes a plain array
    assert t.sum().item() == 10.0
    assert t.detach().requires_grad is False
    assert t.T.shape == (2, 2) and t.numpy()[1, 0] == 3.0
    assert (np.ones(2) * t).shape == (2, 2)  # ndarray on the left defers to the tensor
    with cr.no_grad():
        assert (t * 2).node is None
    assert (t * 2).node.name == "multiply"
    assert cr.zeros(2, 3).shape == (2, 3) and cr.ones((4,)).dtype == np.float32


@pytest.mark.parametrize("shape", [(1, 1), (3, 4), (7, 2), (5, 1), (1, 9)])
def test_exercise1_gradient_has_the_input_shape(shape):
    """Section exercise 1: for f of an n x m input, df/dX is n x m."""
    x = cr.tensor(np.random.default_rng(0).standard_normal(shape), requires_grad=True)
    f = (cr.tanh(x @ x.T) ** 2).sum()
    f.backward()
    assert x.grad.shape == shape
    g = cr.grad(lambda a: (cr.tanh(a @ a.T) ** 2).sum())(x.numpy())
    assert g.shape == shape
    np.testing.assert_allclose(g.numpy(), x.grad.numpy(), rtol=1e-5)


@pytest.mark.parametrize("n,m", [(2, 3), (4, 1), (6, 5)])
def test_exercise1_gradient_wrt_intermediates(n, m):
    rng = np.random.default_rng(1)
    w = cr.tensor(rng.standard_normal((n, m)), requires_grad=True)
    x = cr.tensor(rng.standard_normal((m, 3)))
    z = w @ x  # intermediate, n x 3
    h = F.relu(z)
    loss = (h * h).sum()
    gz, gh, gw = cr.grad(loss, [z, h, w])
    assert gz.shape == z.shape and gh.shape == h.shape and gw.shape == w.shape
    np.testing.assert_allclose(gh.numpy(), 2 * h.numpy(), rtol=1e-6)
    np.testing.assert_allclose(gz.numpy(), 2 * h.numpy() * (z.numpy() > 0), rtol=1e-6)
    np.testing.assert_allclose(gw.numpy(), gz.numpy() @ x.numpy().T, rtol=1e-5)
    assert w.grad is None  # cr.grad does not touch .grad


def test_grad_wrt_intermediate_stops_there_and_keeps_the_rest_of_the_graph():
    w = cr.tensor(np.array([[1.0, -2.0], [0.5, 3.0]]), requires_grad=True)
    x = cr.tensor(np.array([[1.0], [2.0]]))
    z = w @ x
    loss = (cr.tanh(z) ** 2).sum()
    (gz,) = cr.grad(loss, [z], retain_graph=True)
    assert z.node.saved_arrays()  # the matmul below z was neither run nor freed
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), gz.numpy() @ x.numpy().T, rtol=1e-6)


def test_gradients_accumulate_and_repeated_use():
    x = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * x.numpy())


def test_non_scalar_backward_needs_gradient():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(cr.ShapeError, match="explicit `gradient`"):
        (x * 2).backward()
    (x * 2).backward(gradient=np.array([1.0, -1.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, -2.0])


def test_second_backward_without_retain_graph_names_the_op():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = cr.exp(x).sum()
    y.backward()
    with pytest.raises(cr.GraphReleasedError, match=r"exp.*retain_graph=True"):
        y.backward()
    x.grad = None
    y2 = cr.exp(x).sum()
    y2.backward(retain_graph=True)
    y2.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp(x.numpy()), rtol=1e-6)


def _all_nodes(t):
    return toposort([t.node])


def test_backward_frees_every_saved_array():
    rng = np.random.default_rng(0)
    w1 = cr.tensor(rng.standard_normal((8, 5)), requires_grad=True)
    w2 = cr.tensor(rng.standard_normal((3, 8)), requires_grad=True)
    x = cr.tensor(rng.standard_normal((5, 4)))
    h = cr.tanh(w1 @ x)
    loss = F.cross_entropy((w2 @ h).T, np.array([0, 1, 2, 0])) + 0.5 * ((w1 * w1).sum() + (w2**2).sum())
    nodes = _all_nodes(loss)
    assert sum(n.saved_nbytes for n in nodes) > 0
    loss.backward()
    assert all(n.saved_arrays() == [] for n in nodes)
    assert all(n.released for n in nodes)


def test_hundred_thousand_op_chain():
    x = cr.tensor(np.array([0.5]), dtype="float64", requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0000001
    y.sum().backward()
    assert sys.getrecursionlimit() < 100_000
    np.testing.assert_allclose(x.grad.numpy(), [1.0000001**100_000], rtol=1e-9)
    assert all(n.saved_arrays() == [] for n in _all_nodes(y)[:100])
    del y
    gc.collect()


def test_deep_chain_graph_is_freed_without_recursion():
    x = cr.tensor(np.ones(2), requires_grad=True)
    y = x
    for _ in range(50_000):
        y = cr.tanh(y)
    del y  # dropping the last reference must not overflow the stack
    gc.collect()


def test_traversal_order_is_deterministic():
    def names():
        a = cr.tensor(np.ones(3), requires_grad=True)
        b = cr.tensor(np.ones(3), requires_grad=True)
        out = (cr.exp(a) * cr.sin(b) + cr.tanh(a) - b).sum()
        return [n.name for n in toposort([out.node])]

    assert names() == names() == ["exp", "sin", "multiply", "tanh", "add", "subtract", "sum"]


def test_nodes_are_inspectable():
    x = cr.tensor(np.ones((2, 3)), requires_grad=True)
    w = cr.tensor(np.ones((3, 4)), requires_grad=True)
    z = x @ w
    assert z.node.name == "matmul"
    assert z.node.parents == (x, w)
    assert [a.shape for a in z.node.saved_arrays()] == [(2, 3), (3, 4)]
    h = F.relu(z)
    assert h.node.parents == (z.node,)
    assert [a.shape for a in h.node.saved_arrays()] == [(2, 4)]  # relu keeps only its output
    s = z + 1.0
    assert s.node.saved_arrays() == []  # add keeps nothing


def test_shape_error_names_op_shapes_and_line():
    a = cr.tensor(np.ones((3, 4)), requires_grad=True)
    b = cr.tensor(np.ones((5,)))
    with pytest.raises(cr.ShapeError) as info:
        a + b  # noqa: B018
    msg = str(info.value)
    assert "add" in msg and "[3, 4]" in msg and "[5]" in msg and "test_engine.py" in msg
    with pytest.raises(cr.ShapeError, match=r"matmul.*\(3, 4\).*\(5,\).*test_engine.py"):
        a @ b  # noqa: B018


def test_a_rule_returning_the_wrong_shape_is_named():
    bad = cr.Primitive("bad_rule", np.sin, save=(0,))
    bad.defvjp(lambda g, out, x: g[:1])
    x = cr.tensor(np.ones(3), requires_grad=True)
    with cr.detect_anomaly():
        y = bad(x).sum()
    with pytest.raises(
        cr.ShapeError, match=r"bad_rule: the VJP rule for input 0 returned shape \(1,\).*\(3,\).*test_engine.py"
    ):
        y.backward()


def test_dtype_error_names_op_and_dtypes():
    a = cr.tensor(np.ones(3), dtype="float32")
    b = cr.tensor(np.ones(3), dtype="float64")
    with pytest.raises(cr.DTypeError, match=r"multiply.*float32.*float64.*astype"):
        a * b
    with pytest.raises(cr.DTypeError, match="floating"):
        cr.tensor([1, 2], requires_grad=True)


def test_losses_do_not_broadcast_silently():
    with pytest.raises(cr.ShapeError, match=r"mse_loss.*\(4, 1\).*\(4,\)"):
        F.mse_loss(cr.tensor(np.ones((4, 1))), cr.tensor(np.ones(4)))
    with pytest.raises(cr.ShapeError, match="cross_entropy"):
        F.cross_entropy(cr.tensor(np.ones((4, 3))), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        F.cross_entropy(cr.tensor(np.ones((2, 3))), np.array([0, 3]))


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_detect_anomaly_names_first_bad_op():
    x = cr.tensor(np.array([1.0, -1.0]), requires_grad=True)
    with cr.detect_anomaly():
        with pytest.raises(cr.AnomalyError, match="log"):
            cr.log(x - 1.0)
        y = cr.sqrt(x * x - 1.0)  # sqrt(0) is fine forward, infinite slope backward
        with pytest.raises(cr.AnomalyError, match=r"sqrt.*backward.*test_engine.py"):
            y.sum().backward()


def test_hessian_of_tanh_tanh_matches_closed_form():
    x0 = np.array([0.3, -0.7, 1.2])
    h = cr.hessian(lambda a: cr.tanh(cr.tanh(a)).sum())(cr.tensor(x0, dtype="float64"))
    t = np.tanh(x0)
    u = np.tanh(t)
    d2 = -2 * u * (1 - u**2) * (1 - t**2) ** 2 + (1 - u**2) * (-2 * t * (1 - t**2))
    np.testing.assert_allclose(h.numpy(), np.diag(d2), rtol=1e-12, atol=1e-14)


def test_third_derivative():
    f = lambda a: cr.sin(a).sum()  # noqa: E731
    d3 = cr.grad(lambda a: cr.grad(lambda b: cr.grad(f)(b).sum())(a).sum())
    x = cr.tensor(np.array([0.1, 0.9]), dtype="float64")
    np.testing.assert_allclose(d3(x).numpy(), -np.cos(x.numpy()), rtol=1e-12)


def _section_objective(params, x, y, lam):
    w1, w2 = params
    z = w1 @ x
    h = F.relu(z)
    o = w2 @ h
    loss = F.cross_entropy(o.T, y)
    s = (lam / 2) * ((w1 * w1).sum() + (w2 * w2).sum())
    return loss + s


def test_hessian_of_section_objective_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    d, hdim, q, n, lam = 3, 4, 3, 5, 0.1
    w1 = rng.standard_normal((hdim, d))
    w2 = rng.standard_normal((q, hdim))
    x = rng.standard_normal((d, n))
    y = np.array([0, 2, 1, 1, 0])
    flat = np.concatenate([w1.ravel(), w2.ravel()])

    def j_of_flat(p):
        a = cr.reshape(p[: hdim * d], (hdim, d))
        b = cr.reshape(p[hdim * d :], (q, hdim))
        return _section_objective((a, b), cr.tensor(x, dtype="float64"), y, lam)

    ours = cr.hessian(j_of_flat)(cr.tensor(flat, dtype="float64")).numpy()

    def torch_j(p):
        a = p[: hdim * d].reshape(hdim, d)
        b = p[hdim * d :].reshape(q, hdim)
        o = b @ torch.relu(a @ torch.tensor(x))
        loss = torch.nn.functional.cross_entropy(o.T, torch.tensor(y))
        return loss + lam / 2 * ((a * a).sum() + (b * b).sum())

    ref = torch.autograd.functional.hessian(torch_j, torch.tensor(flat)).numpy()
    assert ours.shape == (flat.size, flat.size)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12)
    v = rng.standard_normal(flat.size)
    hv = cr.hvp(j_of_flat, cr.tensor(flat, dtype="float64"), v).numpy()
    np.testing.assert_allclose(hv, ours @ v, rtol=1e-9, atol=1e-12)


def test_jvp_vjp_jacobian_agree():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 4))

    def f(x):
        return cr.tanh(cr.tensor(a, dtype="float64") @ x) * 2.0

    x = cr.tensor(rng.standard_normal(4), dtype="float64")
    jac = cr.jacobian(f)(x).numpy()
    assert jac.shape == (3, 4)
    v = rng.standard_normal(4)
    out, tangent = cr.jvp(f, (x,), (v,))
    np.testing.assert_allclose(tangent.numpy(), jac @ v, rtol=1e-10)
    out2, vjp_fn = cr.vjp(f, x)
    u = rng.standard_normal(3)
    (ct,) = vjp_fn(u)
    np.testing.assert_allclose(ct.numpy(), u @ jac, rtol=1e-10)
    np.testing.assert_allclose(out.numpy(), out2.numpy())
    value, g = cr.value_and_grad(lambda x: f(x).sum())(x)
    np.testing.assert_allclose(g.numpy(), jac.sum(axis=0), rtol=1e-10)
    np.testing.assert_allclose(value.item(), out.numpy().sum())


def test_grad_argnums():
    f = lambda a, b: (a * b * b).sum()  # noqa: E731
    a = cr.tensor(np.array([1.0, 2.0]), dtype="float64")
    b = cr.tensor(np.array([3.0, 4.0]), dtype="float64")
    ga, gb = cr.grad(f, argnums=(0, 1))(a, b)
    np.testing.assert_allclose(ga.numpy(), [9.0, 16.0])
    np.testing.assert_allclose(gb.numpy(), [6.0, 16.0])


def test_hooks_see_every_recorded_node_forward_and_backward():
    class Counter:
        def __init__(self):
            self.forward_names, self.backward_names, self.bytes_saved = [], [], 0

        def forward(self, node, prim, out):
            if node is not None:
                self.forward_names.append(node.name)
                self.bytes_saved += node.saved_nbytes

        def backward(self, node):
            self.backward_names.append(node.name)

    x = cr.tensor(np.ones((4, 3)), requires_grad=True)
    with cr.hook(Counter()) as counter:
        y = (cr.exp(x) * 2.0).sum()
        y.backward()
    assert counter.forward_names == ["exp", "multiply", "sum"]
    assert counter.backward_names == ["sum", "multiply", "exp"]
    assert counter.bytes_saved == 4 * 3 * 4 + 4 * 3 * 4  # exp keeps its output, multiply its tensor input
    (x * 2).sum()  # no hook installed any more
    assert len(counter.forward_names) == 3


def test_boolean_mask_indexing_gradient():
    x = cr.tensor(np.array([[1.0, -2.0], [3.0, -4.0]]), requires_grad=True)
    mask = x.numpy() > 0
    (x[mask] * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.where(mask, 3.0, 0.0))


def test_as_tensor_shares_memory():
    a = np.ones(3, np.float32)
    t = cr.as_tensor(a)
    assert np.shares_memory(t.numpy(), a)
    assert cr.as_tensor([1.0, 2.0]).dtype == np.float32


def test_tensor_and_as_tensor_share_one_dtype_rule():
    for data in (1.5, [1.0, 2.0], np.zeros(3), np.zeros(3, np.float32), np.arange(3), [True, False]):
        assert cr.tensor(data).dtype == cr.as_tensor(data).dtype, data
        assert cr.tensor(data, dtype="float64").dtype == cr.as_tensor(data, dtype="float64").dtype == np.float64
    assert cr.as_tensor(np.zeros(3)).dtype == np.float32  # float64 data: float32 unless dtype= says so
    a64 = np.zeros(3)
    assert np.shares_memory(cr.as_tensor(a64, dtype="float64").numpy(), a64)


def test_backward_runs_each_node_after_all_its_consumers():
    class Order:
        def __init__(self):
            self.nodes = []

        def forward(self, node, prim, out):
            pass

        def backward(self, node):
            self.nodes.append(node)

    x = cr.tensor(np.linspace(0.1, 1.0, 6), dtype="float64", requires_grad=True)
    a = cr.tanh(x)  # consumed by three later nodes, one of them far downstream
    b = a * a
    c = cr.exp(a) + b
    d = (c * a).sum() + b.sum()
    with cr.hook(Order()) as order:
        d.backward()
    seen = order.nodes
    assert len(seen) == len({id(n) for n in seen})  # every node once
    position = {id(n): k for k, n in enumerate(seen)}
    for node in seen:
        for parent in node.parents:
            if isinstance(parent, cr.Node):
                assert position[id(node)] < position[id(parent)]  # consumers first
    xs = x.numpy()
    t = np.tanh(xs)
    dd_da = np.exp(t) * t + (np.exp(t) + t * t) + 2 * t * t + 2 * t
    np.testing.assert_allclose(x.grad.numpy(), dd_da * (1 - t * t), rtol=1e-12)


def test_the_callers_gradient_array_never_becomes_a_grad():
    x = cr.tensor(np.ones(3), dtype="float64", requires_grad=True)
    g = np.array([1.0, 2.0, 3.0])
    (x + 0.0).backward(g)  # add passes the incoming gradient straight through
    assert x.grad.numpy() is not g
    g[0] = 100.0
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 2.0, 3.0])
    x.grad = None
    x.backward(g)  # a leaf as the root
    g[1] = -5.0
    np.testing.assert_allclose(x.grad.numpy(), [100.0, 2.0, 3.0])


@pytest.mark.parametrize("method", ["var", "std", "prod", "cumsum", "cumprod", "ravel", "trace", "diagonal", "flatten"])
def test_numpy_style_methods_match_numpy_and_differentiate(method):
    a = np.arange(1.0, 7.0).reshape(2, 3)
    x = cr.tensor(a, dtype="float64", requires_grad=True)
    np.testing.assert_allclose(getattr(x, method)().numpy(), getattr(a, method)(), rtol=1e-12)
    assert cr.check_grad(lambda t: getattr(t, method)(), a, order=1).ok


@pytest.mark.parametrize("scalar", [np.float64(0.5), np.int64(3), np.float16(0.25), np.bool_(True), np.int8(-2)])
def test_numpy_scalars_are_numbers_like_pythons_as_in_pytorch(scalar):
    """``lr = np.float64(0.1)`` (from np.logspace, say) in ``p -= lr * p.grad`` keeps float32, as in PyTorch."""
    torch = pytest.importorskip("torch")
    x = cr.tensor([1.0, -2.0, 3.0], requires_grad=True)
    for got, want in [
        (x * scalar, torch.tensor([1.0, -2.0, 3.0]) * scalar),
        (scalar - x, scalar - torch.tensor([1.0, -2.0, 3.0])),
    ]:
        assert got.dtype == np.float32 and want.dtype == torch.float32
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    (x * scalar).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, np.float32(scalar.item())))
    assert (cr.tensor(np.arange(3, dtype=np.int32)) * np.int64(2)).dtype == np.int32  # an int, as 2 is


def test_integer_operand_that_would_upcast_a_float32_result_raises_naming_the_op():
    x = cr.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(cr.DTypeError, match=r"multiply: .*int64.*float64.*astype"):
        x * cr.arange(3)
    with pytest.raises(cr.DTypeError, match=r"add: .*int64"):
        x + np.arange(3)
    assert (x * 2).dtype == np.float32  # Python scalars follow the tensor (NEP 50)
    assert (x * np.arange(3, dtype=np.int8)).dtype == np.float32  # int8 fits: NumPy keeps float32
    assert (x * cr.arange(3).astype(np.float32)).dtype == np.float32
    assert x.astype(np.float64).dtype == np.float64  # an explicit cast is not an upcast
