"""Transformations as levels: every nesting of grad and jvp, checked against finite differences
and PyTorch; the bugs of the first edition, each with its regression test."""

import threading

import numpy as np
import pytest

import chainrule as cr

X = np.array([0.3, -0.7])
V = np.array([1.0, 2.0])


def f(x):
    return cr.sin(x) * x


def fd_grad(fun, x, eps=1e-6):
    """Float64 central differences of a scalar function of an array."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        hi, lo = x.copy(), x.copy()
        hi[i] += eps
        lo[i] -= eps
        g[i] = (fun(hi) - fun(lo)) / (2 * eps)
    return g


def np_f(x):
    return np.sin(x) * x


def np_df(x):  # f'
    return np.sin(x) + x * np.cos(x)


def np_d2f(x):  # f''
    return 2 * np.cos(x) - x * np.sin(x)


# --- the bugs listed in the issue ---------------------------------------------------------


def test_grad_of_jvp_output_is_not_zero():
    g = cr.grad(lambda x: cr.sum(cr.jvp(f, (x,), (V,))[1]))(X)
    np.testing.assert_allclose(g.numpy(), [1.822, 2.157], atol=1e-3)
    np.testing.assert_allclose(g.numpy(), np_d2f(X) * V, rtol=1e-12)


def test_primitive_without_vjp_rule_raises_naming_it():
    cube = cr.Primitive("cube_without_rule", lambda x: x**3)
    x = cr.tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(NotImplementedError, match="cube_without_rule.*no VJP rule"):
        cube(x).sum().backward()
    with pytest.raises(NotImplementedError, match="cube_without_rule"):
        cr.grad(lambda a: cube(a).sum())(np.array([1.0, 2.0]))
    with pytest.raises(NotImplementedError, match="cube_without_rule"):
        cr.jvp(lambda a: cube(a), (np.array([1.0]),), (np.array([1.0]),))


def test_rule_reading_an_unsaved_input_names_the_op():
    bad = cr.Primitive("forgot_to_save", np.square)  # the rule reads x, but save=() keeps only its shape
    bad.defvjp(lambda g, out, x: g * 2.0 * x)
    x = cr.tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(TypeError, match=r"forgot_to_save.*save=\(\.\.\.\)"):
        bad(x).sum().backward()


def test_list_of_tensors_is_stacked_not_dropped():
    x0 = np.array([1.0, 2.0])
    np.testing.assert_allclose(cr.grad(lambda x: cr.mean([x, x + 2]))(x0).numpy(), [0.5, 0.5])
    np.testing.assert_allclose(cr.grad(lambda x: cr.sum([x, x]))(x0).numpy(), [2.0, 2.0])
    np.testing.assert_allclose(cr.grad(lambda x: cr.sum([[x, x * x]]))(x0).numpy(), 1 + 2 * x0)


def test_numpy_functions_record_on_tensors():
    x0 = np.array([0.5, -1.5, 2.0])
    np.testing.assert_allclose(cr.grad(lambda x: np.dot(x, x))(x0).numpy(), 2 * x0)
    np.testing.assert_allclose(cr.grad(lambda x: np.sum(np.exp(x)))(x0).numpy(), np.exp(x0))
    np.testing.assert_allclose(
        cr.grad(lambda x: np.mean(np.tanh(x) * x))(x0).numpy(),
        fd_grad(lambda a: np.mean(np.tanh(a) * a), x0),
        rtol=1e-7,
    )
    y = np.exp(cr.tensor(x0, dtype="float64"))
    assert isinstance(y, cr.Tensor)


def test_numpy_function_without_counterpart_raises_naming_it():
    x = cr.tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(TypeError, match="fft"):
        np.fft.fft(x)
    with pytest.raises(TypeError, match="out="):
        np.exp(x, out=np.empty(2))
    with pytest.raises(TypeError, match="drop its gradient"):
        np.asarray(x * 2)


def test_grad_of_closure_over_trainable_parameter_is_graph_free():
    W = cr.tensor(np.array([1.0, 2.0]), requires_grad=True, dtype="float64")
    g = cr.grad(lambda x: (W * x).sum())(np.array([3.0, 4.0]))
    assert g.node is None and not g.requires_grad
    np.testing.assert_allclose(g.numpy(), [1.0, 2.0])
    assert W.grad is None


def test_grad_of_complex_output_raises():
    with pytest.raises(TypeError, match="real floating-point"):
        cr.grad(lambda x: cr.sum(x).astype(np.complex128))(np.array([1.0, 2.0]))


def test_grad_of_integer_input_raises():
    with pytest.raises(TypeError, match="floating-point"):
        cr.grad(lambda x: cr.sum(x))(np.array([1, 2]))


# --- every nesting agrees with finite differences and with each other ------------------------


def test_jvp_matches_closed_form_and_vjp():
    out, t = cr.jvp(f, (X,), (V,))
    np.testing.assert_allclose(out.numpy(), np_f(X), rtol=1e-14)
    np.testing.assert_allclose(t.numpy(), np_df(X) * V, rtol=1e-14)
    _, vjp_fn = cr.vjp(f, X)
    np.testing.assert_allclose(vjp_fn(V)[0].numpy(), np_df(X) * V, rtol=1e-14)


@pytest.mark.parametrize(
    "route",
    ["grad_grad", "grad_jvp", "jvp_grad", "jvp_jvp", "vjp_jvp", "jvp_vjp"],
)
def test_second_derivative_by_every_nesting(route):
    def scalar(x):
        return cr.sum(f(x))

    if route == "grad_grad":  # d/dx <grad f, v>
        got = cr.grad(lambda x: cr.sum(cr.grad(scalar)(x) * V))(X)
    elif route == "grad_jvp":  # d/dx <J v, 1>
        got = cr.grad(lambda x: cr.sum(cr.jvp(f, (x,), (V,))[1]))(X)
    elif route == "jvp_grad":  # (grad f)' v
        got = cr.jvp(cr.grad(scalar), (X,), (V,))[1]
    elif route == "jvp_jvp":  # d/dx (f'(x) v) v, elementwise here
        got = cr.jvp(lambda x: cr.jvp(f, (x,), (V,))[1], (X,), (np.ones(2),))[1]
    elif route == "vjp_jvp":  # vjp of the jvp, cotangent 1
        got = cr.vjp(lambda x: cr.jvp(f, (x,), (V,))[1], X)[1](np.ones(2))[0]
    else:  # jvp of the vjp (cotangent 1) along v: its backward runs on tangents, unrecorded
        got = cr.jvp(lambda x: cr.vjp(f, x)[1](np.ones(2))[0], (X,), (V,))[1]
    np.testing.assert_allclose(got.numpy(), np_d2f(X) * V, rtol=1e-12)
    assert got.node is None


def test_third_order_mixed_nesting_matches_finite_differences():
    # d/dx of <(grad f)' v, 1>: grad of jvp of grad
    def third(x):
        return cr.sum(cr.jvp(cr.grad(lambda y: cr.sum(f(y))), (x,), (V,))[1])

    got = cr.grad(third)(X).numpy()
    expected = fd_grad(lambda a: np.sum(np_d2f(a) * V), X)
    np.testing.assert_allclose(got, expected, rtol=1e-7)


def test_hessian_both_routes_agree_with_finite_differences():
    def loss(x):
        return cr.sum(cr.tanh(x) ** 3 * cr.exp(x[0]))

    x0 = np.array([0.2, -0.4, 0.9])
    h_fwd = cr.hessian(loss)(x0).numpy()
    h_rev = cr.jacrev(cr.grad(loss))(x0).numpy()
    fd = np.stack([fd_grad(lambda a, i=i: float(cr.grad(loss)(a).numpy()[i]), x0) for i in range(3)])
    np.testing.assert_allclose(h_fwd, h_rev, rtol=1e-12)
    np.testing.assert_allclose(h_fwd, fd, rtol=1e-6, atol=1e-8)
    v = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(cr.hvp(loss, x0, v).numpy(), h_fwd @ v, rtol=1e-12)
    np.testing.assert_allclose(cr.hvp(loss, x0, v, mode="rev").numpy(), h_fwd @ v, rtol=1e-12)
    np.testing.assert_allclose(cr.jacfwd(f)(X).numpy(), cr.jacrev(f)(X).numpy(), rtol=1e-14)


def test_no_perturbation_confusion():
    # d/dx [x * d/dy (x*y)] = d/dx x*x = 2x: the inner grad must not differentiate the outer x.
    got = cr.grad(lambda x: x * cr.grad(lambda y: x * y)(x))(np.float64(3.0))
    assert float(got) == pytest.approx(6.0)
    # Forward mode: d/dx [x * (d/dy x*y)·1] = 2x, too.
    got_fwd = cr.jvp(
        lambda x: x * cr.jvp(lambda y: x * y, (x,), (np.float64(1.0),))[1], (np.float64(3.0),), (np.float64(1.0),)
    )[1]
    assert float(got_fwd) == pytest.approx(6.0)


def test_second_order_matches_pytorch_on_section_objective():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    W1, W2 = rng.standard_normal((5, 4)) * 0.5, rng.standard_normal((3, 5)) * 0.5
    x, y = rng.standard_normal((4, 6)), np.array([0, 2, 1, 1, 0, 2])
    lam = 0.1

    def J(params):
        z = params["W1"] @ x
        h = cr.tanh(z)
        o = params["W2"] @ h
        L = cr.nn.functional.cross_entropy(o.T, y)
        return L + lam / 2 * (cr.sum(params["W1"] ** 2) + cr.sum(params["W2"] ** 2))

    params = {"W1": W1, "W2": W2}
    dirs = {"W1": rng.standard_normal(W1.shape), "W2": rng.standard_normal(W2.shape)}
    hv = cr.jvp(cr.grad(J), (params,), (dirs,))[1]

    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}

    def tJ(W1, W2):
        o = W2 @ torch.tanh(W1 @ torch.tensor(x))
        L = torch.nn.functional.cross_entropy(o.T, torch.tensor(y))
        return L + lam / 2 * ((W1**2).sum() + (W2**2).sum())

    _, ref = torch.autograd.functional.hvp(
        tJ, (tp["W1"], tp["W2"]), (torch.tensor(dirs["W1"]), torch.tensor(dirs["W2"]))
    )
    np.testing.assert_allclose(hv["W1"].numpy(), ref[0].numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hv["W2"].numpy(), ref[1].numpy(), rtol=1e-10, atol=1e-12)


# --- pytrees -----------------------------------------------------------------------------


def test_grad_with_respect_to_dicts_lists_tuples():
    params = {"a": np.float64(2.0), "b": [np.array([3.0, 1.0]), (np.float64(0.5),)]}

    def loss(p):
        return p["a"] * cr.sum(p["b"][0] ** 2) + p["b"][1][0] ** 3

    g = cr.grad(loss)(params)
    assert set(g) == {"a", "b"} and isinstance(g["b"], list) and isinstance(g["b"][1], tuple)
    np.testing.assert_allclose(g["a"].numpy(), 10.0)
    np.testing.assert_allclose(g["b"][0].numpy(), [12.0, 4.0])
    np.testing.assert_allclose(g["b"][1][0].numpy(), 0.75)
    out, t = cr.jvp(loss, (params,), (cr.tree_map(np.ones_like, params),))
    np.testing.assert_allclose(t.numpy(), 10.0 + 16.0 + 0.75)


def test_grad_of_module_parameters_dict():
    model = cr.nn.Linear(3, 2)
    x = np.ones((4, 3), dtype=np.float32)
    params = dict(model.named_parameters())

    def loss(p):
        return cr.sum(x @ p["weight"].T + p["bias"])

    g = cr.grad(loss)(params)
    np.testing.assert_allclose(g["weight"].numpy(), np.full((2, 3), 4.0))
    np.testing.assert_allclose(g["bias"].numpy(), np.full(2, 4.0))


def test_value_and_grad_argnums_and_has_aux():
    def fn(a, b):
        return cr.sum(a * b), "aux"

    (value, aux), (ga, gb) = cr.value_and_grad(fn, argnums=(0, 1), has_aux=True)(
        np.array([1.0, 2.0]), np.array([3.0, 4.0])
    )
    assert aux == "aux" and float(value) == 11.0
    np.testing.assert_allclose(ga.numpy(), [3.0, 4.0])
    np.testing.assert_allclose(gb.numpy(), [1.0, 2.0])


# --- levels are per thread ---------------------------------------------------------------------


def test_two_threads_no_grad_and_training_do_not_interfere():
    def train(seed, results):
        rng = np.random.default_rng(seed)
        w = cr.tensor(rng.standard_normal(8), requires_grad=True, dtype="float64")
        for _ in range(200):
            loss = cr.sum(cr.tanh(w) ** 2)
            loss.backward()
            w.data -= 0.1 * w.grad.data  # PyTorch's .data: outside the graph, into w
            w.grad = None
        results["train"] = w.numpy().copy()

    def predict(results):
        rng = np.random.default_rng(1)
        w = cr.tensor(rng.standard_normal(8), requires_grad=True, dtype="float64")
        outs = []
        with cr.no_grad():
            for _ in range(200):
                out = cr.tanh(w) * 2
                outs.append(out.node is None)
        results["predict"] = all(outs)

    sequential: dict = {}
    train(0, sequential)
    predict(sequential)
    concurrent: dict = {}
    threads = [
        threading.Thread(target=train, args=(0, concurrent)),
        threading.Thread(target=predict, args=(concurrent,)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_array_equal(concurrent["train"], sequential["train"])
    assert concurrent["predict"] and sequential["predict"]
    assert cr.is_grad_enabled()


def test_astype_gradients_in_both_modes():
    x0 = np.array([0.25, -1.5, 3.0])
    g = cr.grad(lambda x: cr.sum(cr.astype(x, np.float32) ** 2))(x0)
    assert g.dtype == np.float64
    np.testing.assert_allclose(g.numpy(), 2 * x0.astype(np.float32), rtol=1e-6)
    _, t = cr.jvp(lambda x: cr.astype(x, np.float32) ** 2, (x0,), (np.ones(3),))
    assert t.dtype == np.float32
    np.testing.assert_allclose(t.numpy(), 2 * x0, rtol=1e-6)


def test_tensor_dot_is_numpys_dot_not_matmul():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 2, 3)), rng.standard_normal((2, 3, 4))
    ta = cr.tensor(a, dtype="float64", requires_grad=True)
    out = ta.dot(b)
    assert out.shape == np.dot(a, b).shape == (2, 2, 2, 4)
    np.testing.assert_allclose(out.numpy(), np.dot(a, b), rtol=1e-12)
    out.sum().backward()
    np.testing.assert_allclose(ta.grad.numpy(), np.broadcast_to(b.sum(axis=(0, 2)), (2, 2, 3)), rtol=1e-12)
