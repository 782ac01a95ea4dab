"""``nn.LazyLinear`` (shapes from the first call, then fixed; shape-only tools refuse it before) and
``cr.manual_seed`` (layers' initialisation, Dropout masks and DataLoader shuffling reproducible)."""

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.data import DataLoader


def test_lazy_linear_infers_then_fixes_its_shape():
    layer = nn.LazyLinear(3, rng=np.random.default_rng(0))
    opt = cr.optim.SGD(layer.parameters(), lr=0.1)  # made before the first call, as the book does
    assert layer.weight.shape == (3, 0) and layer.in_features is None and not layer.initialized
    x = cr.tensor(np.ones((4, 5)))
    out = layer(x)
    assert out.shape == (4, 3) and layer.weight.shape == (3, 5) and layer.in_features == 5
    reference = nn.Linear(5, 3, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(layer.weight.numpy(), reference.weight.numpy())
    (out**2).sum().backward()
    before = layer.weight.numpy().copy()
    opt.step()  # the optimizer holds the same Parameter: it moves
    assert not np.array_equal(before, layer.weight.numpy())
    with pytest.raises(cr.ShapeError, match="Linear: expected input with 5 features, got shape"):
        layer(cr.tensor(np.ones((4, 6))))


def test_shape_only_tools_refuse_an_uninitialised_lazy_layer_then_work():
    net = nn.Sequential(nn.LazyLinear(8), nn.ReLU(), nn.LazyLinear(3))
    opt = cr.optim.SGD(net.parameters(), lr=0.1)
    specs = (cr.ShapeDtype((4, 5), "float32"), cr.ShapeDtype((4,), "int64"))
    with pytest.raises(cr.ShapeError, match=r"LazyLinear\(8\).*call the model once"):
        cr.memory.estimate(net, *specs, optimizer=opt)
    with pytest.raises(cr.ShapeError, match=r"LazyLinear\(8\).*call the model once"):
        cr.plan.fit_budget(net, (5,), 4, 10**8)
    assert net[0].weight.shape == (8, 0)  # not materialised by the refused attempt
    net(cr.tensor(np.ones((1, 5))))
    eager = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    lazy_peak = cr.memory.estimate(net, *specs, optimizer=opt).peak
    eager_peak = cr.memory.estimate(eager, *specs, optimizer=cr.optim.SGD(eager.parameters(), lr=0.1)).peak
    assert lazy_peak == eager_peak
    assert cr.plan.fit_budget(net, (5,), 4, 10**8).plan.microbatches >= 1


def test_lazy_linear_bad_arguments():
    with pytest.raises(ValueError, match="LazyLinear: out_features must be a positive integer"):
        nn.LazyLinear(0)
    with pytest.raises(cr.ShapeError, match="LazyLinear: expected input of shape"):
        nn.LazyLinear(2)(cr.tensor(1.0))


def _run_once():
    cr.manual_seed(42)
    net = nn.Sequential(nn.Linear(4, 6), nn.Dropout(0.5), nn.LazyLinear(2))
    out = net(cr.tensor(np.ones((3, 4)))).numpy()
    loader = DataLoader(np.arange(10), batch_size=3, shuffle=True)
    order = [b[0].tolist() for b in loader] + [b[0].tolist() for b in loader]
    return net[0].weight.numpy(), out, order


def test_manual_seed_makes_layers_dropout_and_loaders_reproducible():
    w1, out1, order1 = _run_once()
    w2, out2, order2 = _run_once()
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(out1, out2)
    assert order1 == order2
    assert order1[:4] != order1[4:]  # two epochs, two orders
    cr.manual_seed(7)
    assert not np.array_equal(w1, nn.Linear(4, 6).weight.numpy())


def test_manual_seed_reseeds_layers_made_before_the_call():
    drop = nn.Dropout(0.5)
    cr.manual_seed(1)
    a = drop(cr.ones(20)).numpy()
    cr.manual_seed(1)
    np.testing.assert_array_equal(drop(cr.ones(20)).numpy(), a)


def test_loaders_without_a_seed_differ_between_seeds_and_an_explicit_seed_wins():
    cr.manual_seed(0)
    a = DataLoader(np.arange(50), shuffle=True).order(0)
    cr.manual_seed(1)
    b = DataLoader(np.arange(50), shuffle=True).order(0)
    assert not np.array_equal(a, b)
    cr.manual_seed(5)
    c = DataLoader(np.arange(50), shuffle=True, seed=3).order(0)
    np.testing.assert_array_equal(c, np.random.default_rng([3, 0]).permutation(50))


def test_manual_seed_refuses_bad_seeds():
    with pytest.raises(TypeError, match="manual_seed: expected a non-negative integer seed, got float"):
        cr.manual_seed(1.5)
    with pytest.raises(ValueError, match="manual_seed: expected a non-negative integer seed, got -1"):
        cr.manual_seed(-1)
