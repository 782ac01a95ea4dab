"""Forward hooks on modules, with PyTorch's semantics (checked against torch.nn.Module)."""

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.nn.hooks import register_module_forward_hook, register_module_forward_pre_hook

torch = pytest.importorskip("torch")


def _pair():
    ours = nn.Linear(3, 2)
    theirs = torch.nn.Linear(3, 2)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.weight.numpy()))
        theirs.bias.copy_(torch.from_numpy(ours.bias.numpy()))
    return ours, theirs


def test_pre_hook_replaces_args_and_hook_replaces_output_as_in_pytorch():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    results = []
    ours, theirs = _pair()
    for m, wrap in [(ours, cr.tensor), (theirs, torch.from_numpy)]:
        seen = []
        h1 = m.register_forward_pre_hook(lambda mod, args: (args[0] * 2,))
        h2 = m.register_forward_hook(lambda mod, args, out, seen=seen: seen.append(type(mod).__name__) or out + 1)
        first = m(wrap(x))
        h1.remove()
        h2.remove()
        h2.remove()  # removing twice is harmless, as in PyTorch
        results.append((first, m(wrap(x)), seen))
    (a1, a2, seen_a), (b1, b2, seen_b) = results
    np.testing.assert_allclose(a1.numpy(), b1.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(a2.numpy(), b2.detach().numpy(), rtol=1e-6)
    assert seen_a == seen_b == ["Linear"]


def test_global_hooks_run_for_every_module_before_its_own_and_stop_when_removed():
    order = []
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    model[0].register_forward_pre_hook(lambda m, a: order.append(("own", type(m).__name__)))
    with register_module_forward_pre_hook(lambda m, a: order.append(("all", type(m).__name__))):
        model(cr.ones((1, 3)))
    assert order == [("all", "Sequential"), ("all", "Linear"), ("own", "Linear"), ("all", "ReLU")]
    order.clear()
    model(cr.ones((1, 3)))
    assert order == [("own", "Linear")]


def test_hooks_see_the_graph_and_gradients_flow_through_a_replaced_output():
    lin = nn.Linear(3, 1)
    with register_module_forward_hook(lambda m, a, out: out * 3.0):
        y = lin(cr.ones((1, 3))).sum()
    y.backward()
    np.testing.assert_allclose(lin.bias.grad.numpy(), [3.0])


def test_a_hook_that_is_not_callable_is_refused_by_name():
    with pytest.raises(TypeError, match="expected a callable, got int"):
        nn.Linear(2, 2).register_forward_hook(3)


def test_track_modules_patches_nothing_and_survives_a_forward_that_raised():
    class Boom(nn.Module):
        def forward(self, x):
            raise ValueError("boom")

    class Net(nn.Module):
        def __init__(self):
            self.a, self.bad, self.b = nn.Linear(3, 3), Boom(), nn.Linear(3, 2)

        def forward(self, x, fail):
            h = self.a(x)
            if fail:
                try:
                    self.bad(h)
                except ValueError:
                    pass
            return self.b(h)

    net = Net()
    with cr.viz.track_modules(net, "net"):
        assert "forward" not in vars(net.a)  # nothing is set on the instances
        out = net(cr.ones((1, 3)), True)
    from chainrule.viz.trace import module_of

    assert module_of(out.node) == "net.b"  # not filed under the module whose forward raised
