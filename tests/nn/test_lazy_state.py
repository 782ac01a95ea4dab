"""``nn.LazyLinear`` before its first call: ``load_state_dict`` materialises the weight from the
checkpoint's shape (as PyTorch does, but checking ``out_features``, which PyTorch does not),
``state_dict`` raises naming the fix (PyTorch stores an uninitialised placeholder), and the book's
fills (``weight.data.normal_(0, 0.01)``) are kept for the real weight (PyTorch drops them)."""

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import nn


def _checkpoint(in_features=5, out_features=3, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "weight": rng.standard_normal((out_features, in_features)).astype(np.float32),
        "bias": rng.standard_normal(out_features).astype(np.float32),
    }


def test_load_state_dict_before_the_first_call_materialises_as_pytorch():
    state = _checkpoint()
    ours = nn.LazyLinear(3)
    opt = cr.optim.SGD(ours.parameters(), lr=0.1)  # made before, as the book does: it must follow
    ours.load_state_dict(state)
    theirs = torch.nn.LazyLinear(3)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    assert ours.initialized and ours.in_features == 5 and ours.weight.shape == tuple(theirs.weight.shape) == (3, 5)
    np.testing.assert_array_equal(ours.weight.numpy(), state["weight"])
    assert not np.shares_memory(ours.weight.numpy(), state["weight"])  # a copy, as before
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    out = ours(cr.tensor(x))
    np.testing.assert_allclose(out.numpy(), theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-6, atol=1e-6)
    out.sum().backward()
    opt.step()  # the optimizer holds the same Parameter: the loaded weight moves
    np.testing.assert_allclose(ours.weight.numpy(), state["weight"] - 0.1 * x.sum(0), rtol=1e-5, atol=1e-6)
    with pytest.raises(cr.ShapeError, match="Linear: expected input with 5 features"):
        ours(cr.tensor(np.ones((2, 6))))


def test_load_state_dict_into_a_sequential_of_lazy_layers_round_trips():
    cr.manual_seed(0)
    trained = nn.Sequential(nn.Flatten(), nn.LazyLinear(8), nn.ReLU(), nn.LazyLinear(3))
    x = cr.tensor(np.random.default_rng(2).standard_normal((4, 2, 3)))
    want = trained(x).numpy()
    fresh = nn.Sequential(nn.Flatten(), nn.LazyLinear(8), nn.ReLU(), nn.LazyLinear(3))
    fresh.load_state_dict(trained.state_dict())
    assert [m.in_features for m in (fresh[1], fresh[3])] == [6, 8]
    np.testing.assert_array_equal(fresh(x).numpy(), want)


def test_a_checkpoint_that_cannot_be_the_layer_is_refused_and_nothing_is_written():
    ours = nn.Sequential(nn.Linear(5, 5), nn.LazyLinear(4))
    before = ours[0].weight.numpy().copy()
    state = {f"0.{k}": v for k, v in _checkpoint(5, 5, seed=3).items()}
    state |= {f"1.{k}": v for k, v in _checkpoint(5, 3).items()}
    with pytest.raises(
        cr.ShapeError, match=r"1\.weight of LazyLinear\(4\) must have shape \(4, in_features\).*gives \(3, 5\)"
    ):
        ours.load_state_dict(state)
    np.testing.assert_array_equal(ours[0].weight.numpy(), before)  # checked before anything is written
    assert not ours[1].initialized and ours[1].weight.shape == (4, 0)
    # PyTorch loads a (3, 5) weight into LazyLinear(4) without a word (its outputs then have 3 columns)
    theirs = torch.nn.LazyLinear(4)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in _checkpoint(5, 3).items()})
    assert tuple(theirs.weight.shape) == (3, 5) and theirs.out_features == 4
    for bad in (np.ones((4, 0), np.float32), np.ones((4, 5, 2), np.float32), np.ones(4, np.float32)):
        with pytest.raises(cr.ShapeError, match=r"weight of LazyLinear\(4\) must have shape"):
            nn.LazyLinear(4).load_state_dict({"weight": bad, "bias": np.zeros(4, np.float32)})
    with pytest.raises(cr.ShapeError, match=r"bias has shape \(4,\), checkpoint gives \(3,\)"):
        nn.LazyLinear(4).load_state_dict({"weight": np.ones((4, 2), np.float32), "bias": np.zeros(3, np.float32)})
    with pytest.raises(KeyError, match=r"unexpected \['bias'\]"):
        nn.LazyLinear(4, bias=False).load_state_dict(_checkpoint(5, 4))


def test_state_dict_before_the_first_call_names_the_fix():
    net = nn.Sequential(nn.Flatten(), nn.LazyLinear(3))
    with pytest.raises(
        cr.ShapeError,
        match=r"state_dict: '1\.weight' belongs to a LazyLinear\(3\) that was never called.*model\(x\[:1\]\)",
    ):
        net.state_dict()
    # PyTorch stores placeholders instead, which only another uninitialised layer can load
    sd = torch.nn.LazyLinear(3).state_dict()
    assert type(sd["weight"]).__name__ == "UninitializedParameter"
    net(cr.tensor(np.ones((1, 2, 2))))
    assert net.state_dict()["1.weight"].shape == (3, 4)


def test_fills_before_the_first_call_are_kept_other_updates_refused():
    layer = nn.LazyLinear(3, rng=np.random.default_rng(0))
    layer.weight.data.uniform_(-1, 1)
    layer.weight.data.fill_(0.5)  # applied in order: the last fill wins
    with cr.no_grad():
        layer.bias.zero_()
    for op, update in (
        ("mul_", lambda d: d.mul_(2.0)),
        ("-=", lambda d: d.__isub__(1.0)),
        (r"t\[index\] = v", lambda d: d.__setitem__(0, 1.0)),
        ("copy_", lambda d: d.copy_(np.ones((3, 0), np.float32))),
    ):
        with pytest.raises(
            cr.InPlaceError, match=rf"{op}: LazyLinear\(3\)\.weight has no values yet .*call the module once"
        ):
            update(layer.weight.data)
    layer(cr.tensor(np.ones((2, 4))))
    np.testing.assert_array_equal(layer.weight.numpy(), np.full((3, 4), 0.5))
    layer.weight.data.mul_(2.0)  # materialised: an ordinary weight
    np.testing.assert_array_equal(layer.weight.numpy(), np.full((3, 4), 1.0))
    loaded = nn.LazyLinear(3)
    loaded.weight.data.fill_(9.0)
    loaded.load_state_dict(_checkpoint(4, 3))  # loaded values replace the kept fills
    np.testing.assert_array_equal(loaded.weight.numpy(), _checkpoint(4, 3)["weight"])


def test_estimator_and_planner_handle_a_lazy_model_once_loaded():
    net = nn.Sequential(nn.LazyLinear(8), nn.ReLU(), nn.LazyLinear(3))
    eager = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    net.load_state_dict(eager.state_dict())
    specs = (cr.ShapeDtype((4, 5), "float32"), cr.ShapeDtype((4,), "int64"))
    opt = cr.optim.SGD(net.parameters(), lr=0.1)
    lazy_peak = cr.memory.estimate(net, *specs, optimizer=opt).peak
    assert lazy_peak == cr.memory.estimate(eager, *specs, optimizer=cr.optim.SGD(eager.parameters(), lr=0.1)).peak
    assert cr.plan.fit_budget(net, (5,), 4, 10**8).plan.microbatches >= 1
