"""Autodiff gradients of the section's model agree with the hand-derived equations (float64)."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.models import SectionMLP


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("hidden_bias", [False, True])
def test_autodiff_matches_hand_derived(activation, hidden_bias):
    rng = np.random.default_rng(0)
    model = SectionMLP(
        12, 7, 5, weight_decay=0.3, activation=activation, hidden_bias=hidden_bias, init="xavier", dtype=np.float64
    )
    if hidden_bias:
        model.b1.data[:] = rng.standard_normal(7)
    x = cr.tensor(rng.standard_normal((9, 12)), dtype="float64")
    y = rng.integers(0, 5, 9)
    nodes = model.objective(x, y)
    assert [nodes[k].name for k in "z h o L s J".split()] == ["z", "h", "o", "L", "s", "J"]
    auto = cr.grad(nodes["J"], [nodes["o"], nodes["h"], nodes["z"]], retain_graph=True)
    nodes["J"].backward()
    manual = model.manual_gradients(x.numpy(), y)
    for name, g in zip(["o", "h", "z"], auto, strict=True):
        np.testing.assert_allclose(g.numpy(), manual[name], rtol=1e-10, atol=1e-12)
    params = {"W1": model.W1, "W2": model.W2} | ({"b1": model.b1} if hidden_bias else {})
    for name, p in params.items():
        np.testing.assert_allclose(p.grad.numpy(), manual[name], rtol=1e-10, atol=1e-12)
    assert set(manual) == {"o", "h", "z"} | set(params)


def test_weight_decay_term_is_lambda_over_two_frobenius():
    model = SectionMLP(4, 3, 2, weight_decay=0.5, dtype=np.float64)
    nodes = model.objective(cr.tensor(np.ones((2, 4)), dtype="float64"), np.array([0, 1]))
    expected = 0.25 * ((model.W1.numpy() ** 2).sum() + (model.W2.numpy() ** 2).sum())
    assert nodes["s"].item() == pytest.approx(expected, rel=1e-12)
    assert nodes["J"].item() == pytest.approx(nodes["L"].item() + expected, rel=1e-12)
