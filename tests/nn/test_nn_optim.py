"""Modules and optimizers, cross-checked against PyTorch."""

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn, optim

torch = pytest.importorskip("torch")


def _mlp(seed=0):
    rng = np.random.default_rng(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 5, rng=rng), nn.Tanh(), nn.Linear(5, 3, init="xavier", rng=rng))


def _torch_copy(model):
    t = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    with torch.no_grad():
        for (name, p), (tname, tp) in zip(model.named_parameters(), t.named_parameters(), strict=True):
            assert name == tname
            tp.copy_(torch.tensor(p.numpy()))
    return t


@pytest.mark.parametrize(
    "make,tmake",
    [
        (lambda ps: optim.SGD(ps, 0.1), lambda ps: torch.optim.SGD(ps, 0.1)),
        (
            lambda ps: optim.SGD(ps, 0.1, momentum=0.9, weight_decay=0.01),
            lambda ps: torch.optim.SGD(ps, 0.1, momentum=0.9, weight_decay=0.01),
        ),
        (
            lambda ps: optim.SGD(ps, 0.1, momentum=0.9, nesterov=True),
            lambda ps: torch.optim.SGD(ps, 0.1, momentum=0.9, nesterov=True),
        ),
        (
            lambda ps: optim.Adam(ps, 0.01, weight_decay=0.001),
            lambda ps: torch.optim.Adam(ps, 0.01, weight_decay=0.001),
        ),
        (lambda ps: optim.AdamW(ps, 0.01, weight_decay=0.1), lambda ps: torch.optim.AdamW(ps, 0.01, weight_decay=0.1)),
    ],
    ids=["sgd", "momentum_wd", "nesterov", "adam", "adamw"],
)
def test_training_steps_match_pytorch(make, tmake):
    model = _mlp()
    tmodel = _torch_copy(model)
    opt, topt = make(model.parameters()), tmake(tmodel.parameters())
    rng = np.random.default_rng(1)
    for _ in range(5):
        x = rng.standard_normal((4, 2, 3)).astype(np.float32)
        y = rng.integers(0, 3, 4)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(cr.tensor(x)), y)
        loss.backward()
        opt.step()
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(tmodel(torch.tensor(x)), torch.tensor(y))
        tloss.backward()
        topt.step()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-5)
    for p, tp in zip(model.parameters(), tmodel.parameters(), strict=True):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-4, atol=1e-6)


def test_optimizer_state_round_trip():
    model = _mlp()
    opt = optim.Adam(model.parameters(), 0.01)
    x = cr.tensor(np.ones((2, 6)))
    for _ in range(2):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    clone = _mlp()
    clone.load_state_dict(model.state_dict())
    opt2 = optim.Adam(clone.parameters(), 0.01)
    opt2.load_state_dict(opt.state_dict())
    for m, o in ((model, opt), (clone, opt2)):
        o.zero_grad()
        m(x).sum().backward()
        o.step()
    for a, b in zip(model.parameters(), clone.parameters(), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_zero_grad_semantics():
    model = _mlp()
    x = cr.tensor(np.ones((2, 6)))
    model(x).sum().backward()
    g1 = model[1].weight.grad.numpy().copy()
    model(x).sum().backward()  # no zero_grad: accumulates, as users expect
    np.testing.assert_allclose(model[1].weight.grad.numpy(), 2 * g1, rtol=1e-6)
    opt = optim.SGD(model.parameters(), 0.1)
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_module_basics():
    model = _mlp()
    names = [n for n, _ in model.named_parameters()]
    assert names == ["1.weight", "1.bias", "3.weight", "3.bias"]
    assert model.num_parameters() == 6 * 5 + 5 + 5 * 3 + 3
    with pytest.raises(cr.ShapeError, match="Linear: expected input with 6 features"):
        model[1](cr.tensor(np.ones((2, 4))))
    state = model.state_dict()
    state["1.weight"] = np.ones((2, 2))
    with pytest.raises(cr.ShapeError, match="1.weight"):
        model.load_state_dict(state)
    drop = nn.Dropout(0.5, seed=0)
    x = cr.tensor(np.ones((100, 100)))
    y = drop(x).numpy()
    assert set(np.unique(y)) == {0.0, 2.0} and 0.4 < (y == 0).mean() < 0.6
    drop.eval()
    assert drop(x) is x


def test_initializers_have_documented_scale():
    rng = np.random.default_rng(0)
    assert nn.init.normal((400, 400), rng).std() == pytest.approx(0.01, rel=0.02)
    assert nn.init.he_normal((400, 200), rng).std() == pytest.approx(np.sqrt(2 / 200), rel=0.02)
    assert nn.init.xavier_uniform((400, 200), rng).std() == pytest.approx(np.sqrt(2 / 600), rel=0.02)


def test_lr_schedules():
    p = cr.tensor(np.ones(1), requires_grad=True)
    opt = optim.SGD([p], 1.0)
    cos = optim.CosineAnnealingLR(opt, 10)
    assert cos.lr_at(0) == 1.0 and cos.lr_at(5) == pytest.approx(0.5) and cos.lr_at(10) == pytest.approx(0.0)
    step = optim.StepLR(opt, 3, 0.1)
    step.set_epoch(7)
    assert opt.lr == pytest.approx(0.01)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("kind", [float, np.float64, np.float32])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_updates_in_the_parameters_dtype_whatever_the_type_of_its_hyperparameters(dtype, kind, momentum):
    """A NumPy float64 lr must not turn a float32 update into a float64 one rounded back: every
    step is the parameter dtype's own arithmetic, bit for bit, written out here by hand."""
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(7).astype(dtype)
    grads = [rng.standard_normal(7).astype(dtype) for _ in range(3)]
    w = cr.tensor(w0.copy(), dtype=dtype, requires_grad=True)
    opt = optim.SGD([w], kind(0.1), momentum=kind(momentum), weight_decay=kind(1e-2))
    ref, buf, t = w0.copy(), None, np.dtype(dtype).type
    lr, mom, wd = (float(kind(v)) for v in (0.1, momentum, 1e-2))  # the values as given (np.float32(0.1) != 0.1)
    for g in grads:
        w.grad = cr.tensor(g, dtype=dtype)
        opt.step()
        assert w.numpy().dtype == dtype
        if momentum:
            d = g + t(wd) * ref
            buf = d.copy() if buf is None else buf * t(mom) + d
            ref = ref - t(lr) * buf
        else:
            ref = ref * t(1 - lr * wd) - t(lr) * g
        assert w.numpy().tobytes() == ref.tobytes()
