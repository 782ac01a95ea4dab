"""Optimizer parameter groups (PyTorch's ``param_groups``): per-group hyperparameters, the same
updates as PyTorch, schedules per group, and the groups saved and restored through a checkpoint."""

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import optim
from chainrule.train.snapshot import load_checkpoint, save_checkpoint


def _pair(seed=0):
    rng = np.random.default_rng(seed)
    w0, b0 = rng.standard_normal((3, 2)), rng.standard_normal(2)
    return w0, b0


def _run(make_ours, make_theirs, steps=4):
    w0, b0 = _pair()
    x = np.random.default_rng(1).standard_normal((5, 3))
    w, b = cr.tensor(w0, dtype="float64", requires_grad=True), cr.tensor(b0, dtype="float64", requires_grad=True)
    tw, tb = torch.tensor(w0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    ours, theirs = make_ours(w, b), make_theirs(tw, tb)
    for _ in range(steps):
        ours.zero_grad()
        (cr.tanh(cr.tensor(x, dtype="float64") @ w + b) ** 2).sum().backward()
        ours.step()
        theirs.zero_grad()
        (torch.tanh(torch.tensor(x) @ tw + tb) ** 2).sum().backward()
        theirs.step()
    return (w.numpy(), b.numpy()), (tw.detach().numpy(), tb.detach().numpy())


@pytest.mark.parametrize(
    "name, kwargs, groups",
    [
        ("SGD", {"lr": 0.1}, [{"weight_decay": 3.0}, {}]),
        ("SGD", {"lr": 0.1, "momentum": 0.9}, [{"lr": 0.02, "nesterov": True}, {"momentum": 0.5}]),
        ("Adam", {"lr": 0.01}, [{"betas": (0.8, 0.99), "weight_decay": 0.1}, {"eps": 1e-3}]),
        ("AdamW", {"lr": 0.01}, [{"weight_decay": 0.5}, {"lr": 0.05}]),
    ],
)
def test_groups_update_like_pytorch(name, kwargs, groups):
    ours_cls, theirs_cls = getattr(optim, name), getattr(torch.optim, name)
    (w, b), (tw, tb) = _run(
        lambda w, b: ours_cls([{"params": w, **groups[0]}, {"params": [b], **groups[1]}], **kwargs),
        lambda w, b: theirs_cls([{"params": w, **groups[0]}, {"params": [b], **groups[1]}], **kwargs),
    )
    np.testing.assert_allclose(w, tw, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b, tb, rtol=1e-10, atol=1e-12)


def test_the_books_weight_decay_groups():
    """d2l's concise weight decay: ``SGD([{'params': w, 'weight_decay': wd}, {'params': b}], lr=lr)``."""
    w, b = cr.tensor([1.0, 2.0], requires_grad=True), cr.tensor([1.0], requires_grad=True)
    opt = optim.SGD([{"params": w, "weight_decay": 3}, {"params": b}], lr=0.1)
    (w.sum() * 0 + b.sum() * 0).backward()  # zero gradients: only the decay acts
    opt.step()
    np.testing.assert_allclose(w.numpy(), [0.7, 1.4])
    np.testing.assert_allclose(b.numpy(), [1.0])
    assert [g["weight_decay"] for g in opt.param_groups] == [3, 0.0]
    assert opt.param_groups[0]["params"][0] is w


def test_groups_are_refused_with_clear_errors():
    w, b = cr.tensor([1.0], requires_grad=True), cr.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"SGD: parameter group 1 has unknown option\(s\) \['betas'\]"):
        optim.SGD([{"params": w}, {"params": b, "betas": (0.9, 0.9)}], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": w}, {"params": [b, w]}], lr=0.1)
    with pytest.raises(ValueError, match="parameter group 0 has no 'params'"):
        optim.SGD([{"lr": 0.1}], lr=0.1)
    with pytest.raises(TypeError, match="mix of parameter-group dicts and tensors"):
        optim.SGD([{"params": w}, b], lr=0.1)
    with pytest.raises(ValueError, match="momentum and weight_decay must be >= 0"):
        optim.SGD([{"params": w, "momentum": -1}], lr=0.1)
    with pytest.raises(ValueError, match="lr must be positive"):
        optim.Adam([{"params": w, "lr": 0}], lr=0.1)
    with pytest.raises(ValueError, match="rebind: its 2 parameter groups have different"):
        optim.SGD([{"params": w, "lr": 0.5}, {"params": b}], lr=0.1).rebind([w])


def test_lr_and_schedules_with_groups():
    w, b = cr.tensor([1.0], requires_grad=True), cr.tensor([1.0], requires_grad=True)
    opt = optim.SGD([{"params": w, "lr": 1.0}, {"params": b}], lr=0.1)
    assert opt.lr == 1.0  # the first group's
    schedule = optim.StepLR(opt, step_size=1, gamma=0.5)
    schedule.set_epoch(2)
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.025]
    cos = optim.CosineAnnealingLR(opt, t_max=2)
    cos.set_epoch(1)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.125, 0.0125])
    opt.lr = 0.3  # sets every group's
    assert [g["lr"] for g in opt.param_groups] == [0.3, 0.3]


def test_groups_round_trip_through_a_checkpoint(tmp_path):
    def make():
        w, b = cr.tensor(np.ones((2, 2)), requires_grad=True), cr.tensor(np.ones(2), requires_grad=True)
        return w, b, optim.Adam([{"params": w, "betas": (0.8, 0.9), "weight_decay": 0.1}, {"params": b}], lr=0.01)

    w, b, opt = make()
    (w.sum() ** 2 + b.sum()).backward()
    opt.step()
    opt.param_groups[1]["lr"] = 0.5
    arrays = {f"optim/{k}": np.asarray(v) for k, v in opt.state_dict().items()}
    save_checkpoint(tmp_path / "c.npz", arrays, {})
    loaded, _ = load_checkpoint(tmp_path / "c.npz")
    _, _, fresh = make()
    fresh.param_groups[0]["betas"] = (0.1, 0.1)
    fresh.load_state_dict({k[len("optim/") :]: v for k, v in loaded.items()})
    assert fresh.param_groups[0]["betas"] == (0.8, 0.9) and fresh.param_groups[0]["weight_decay"] == 0.1
    assert [g["lr"] for g in fresh.param_groups] == [0.01, 0.5]
    assert fresh.steps == 1
    np.testing.assert_array_equal(fresh.state[0]["m"], opt.state[0]["m"])
    with pytest.raises(ValueError, match="the state has 2 parameter groups, this optimizer 1"):
        optim.Adam([w, b], lr=0.01).load_state_dict(opt.state_dict())


def test_one_group_keeps_the_flat_checkpoint_layout():
    w = cr.tensor([1.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.1, momentum=0.9)
    (w * w).sum().backward()
    opt.step()
    assert sorted(opt.state_dict()) == ["0.momentum", "lr", "steps"]
