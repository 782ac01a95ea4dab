"""micrograd's engine tests (karpathy/micrograd, test/test_engine.py), ported to chainrule tensors.

The same expressions, built with chainrule (float64 scalars) and with PyTorch, must agree in value
and gradient; micrograd's ``Value.relu()`` is ``F.relu`` here.
"""

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F

torch = pytest.importorskip("torch")


def scalar(v):
    return cr.tensor(np.float64(v), dtype="float64", requires_grad=True)


def relu(v):
    return F.relu(v) if isinstance(v, cr.Tensor) else v.relu()


def sanity(x):
    z = 2 * x + 2 + x
    q = relu(z) + z * x
    h = relu(z * z)
    return h + q + q * x


def more_ops(a, b):
    c = a + b
    d = a * b + b**3
    c = c + c + 1
    c = c + 1 + c + (-a)
    d = d + d * 2 + relu(b + a)
    d = d + 3 * d + relu(b - a)
    e = c - d
    f = e**2
    g = f / 2.0
    g = g + 10.0 / f
    return g


def test_sanity_check():
    x = scalar(-4.0)
    y = sanity(x)
    y.backward()
    xt = torch.tensor([-4.0], dtype=torch.float64, requires_grad=True)
    yt = sanity(xt)
    yt.backward()
    assert y.item() == yt.item()
    assert x.grad.item() == xt.grad.item()


def test_more_ops():
    a, b = scalar(-4.0), scalar(2.0)
    g = more_ops(a, b)
    g.backward()
    at = torch.tensor([-4.0], dtype=torch.float64, requires_grad=True)
    bt = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    gt = more_ops(at, bt)
    gt.backward()
    tol = 1e-6
    assert abs(g.item() - gt.item()) < tol
    assert abs(a.grad.item() - at.grad.item()) < tol
    assert abs(b.grad.item() - bt.grad.item()) < tol


def test_more_ops_through_the_functional_transforms():
    """The same gradient by cr.grad (reverse) and by cr.jvp (forward), one input at a time."""
    at = torch.tensor([-4.0], dtype=torch.float64, requires_grad=True)
    bt = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    more_ops(at, bt).backward()
    ga, gb = cr.grad(more_ops, argnums=(0, 1))(np.float64(-4.0), np.float64(2.0))
    assert ga.item() == pytest.approx(at.grad.item(), rel=1e-12)
    assert gb.item() == pytest.approx(bt.grad.item(), rel=1e-12)
    _, ta = cr.jvp(more_ops, (np.float64(-4.0), np.float64(2.0)), (np.float64(1.0), np.float64(0.0)))
    assert ta.item() == pytest.approx(at.grad.item(), rel=1e-12)
