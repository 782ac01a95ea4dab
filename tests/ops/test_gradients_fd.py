"""Every operation's first and second derivatives against float64 central finite differences."""

import numpy as np
import pytest
from tests.op_cases import CASES

import chainrule as cr


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_first_and_second_order_match_finite_differences(case):
    """Both modes and all four second-order compositions (rev/fwd over rev/fwd)."""
    report = cr.check_grad(case.fn, *case.inputs(), order=2, modes=("rev", "fwd"), rtol=1e-5)
    assert report.ok, str(report)


def test_check_grad_catches_a_wrong_rule():
    wrong = cr.Primitive("wrong_square", np.square, save=(0,))
    wrong.defvjp(lambda g, out, x: g * x * 3)  # should be 2x
    with pytest.raises(cr.GradCheckError, match="wrong|MISMATCH"):
        cr.check_grad(lambda a: wrong(a), np.array([0.5, -1.0, 2.0]), order=1)


def test_check_grad_reports_where():
    wrong = cr.Primitive("half_wrong", np.sin, save=(0,))
    wrong.defvjp(lambda g, out, x: g * cr.cos(x) * cr.where(x > 1, 2.0, 1.0))
    report = cr.check_grad(lambda a: wrong(a), np.array([0.5, -1.0, 2.0]), order=1, raise_on_error=False)
    assert not report.ok
    assert report.index == (2,) and report.order == 1


def test_check_grad_catches_a_wrong_jvp_rule():
    wrong = cr.Primitive("wrong_jvp_square", np.square, save=(0,))
    wrong.defvjp(lambda g, out, x: g * x * 2)
    wrong.defjvp(lambda t, out, x: t * x * 3)  # should be 2x
    assert cr.check_grad(lambda a: wrong(a), np.array([0.5, -1.0, 2.0]), modes=("rev",)).ok
    report = cr.check_grad(lambda a: wrong(a), np.array([0.5, -1.0, 2.0]), modes=("fwd",), raise_on_error=False)
    assert not report.ok and report.mode == "fwd"


def test_forward_mode_without_jvp_rule_transposes_the_vjp():
    softplus = cr.Primitive("softplus_vjp_only", lambda x: np.logaddexp(0, x), save=(0,))
    softplus.defvjp(lambda g, out, x: g * cr.nn.functional.sigmoid(x))
    report = cr.check_grad(lambda a: softplus(a) * a, np.array([0.5, -1.0, 2.0]), modes=("rev", "fwd"))
    assert report.ok


class _SeenPrimitives:
    """A graph hook recording which primitives ran (forward, with a node)."""

    def __init__(self):
        self.names = set()

    def forward(self, node, prim, out):
        self.names.add(prim.name)

    def backward(self, node):
        self.names.add(node.prim.name)


def test_every_differentiable_primitive_has_a_case():
    """A primitive registered by chainrule but exercised by no case in the table fails here."""
    seen = _SeenPrimitives()
    with cr.hook(seen):
        for case in CASES:
            xs = [cr.tensor(x, dtype="float64", requires_grad=True) for x in case.inputs()]
            out = case.fn(*xs)
            if out.requires_grad:
                cr.sum(out * 1.0).backward()
    from chainrule.core.primitive import REGISTRY

    ours = {
        name
        for name, prim in REGISTRY.items()
        if prim.differentiable and prim.module.startswith("chainrule.") and name != "watch"
    }
    # A cast cannot be checked in the float64 table (float32 rounding swamps finite differences):
    # tests/transforms/test_transforms_levels.py::test_astype_gradients_in_both_modes checks it instead.
    # pinv's primitive is the rank-deficient path, whose rule raises by design (no derivative there);
    # tests/ops/test_ops_linalg_values.py checks that error.
    # checkpoint wraps any function: its derivative is the wrapped function's, checked bit for bit
    # against the plain run in tests/transforms/test_remat_checkpoint.py.
    exempt = {"astype", "pinv", "checkpoint"}
    missing = sorted(ours - seen.names - exempt)
    assert not missing, f"primitives with no case in tests/op_cases.py: {missing}"


def test_every_primitive_has_its_facts():
    """Every primitive of chainrule carries what the instruments need, registered with it
    (``prim.deffacts``): a shape rule and a FLOP rule; for a differentiable one, the FLOPs and the
    memory model of its VJP rule; and a notation (its own, or ``viz.notation.GENERIC``)."""
    import chainrule.nn  # noqa: F401  (every module that defines primitives)
    import chainrule.viz  # noqa: F401
    from chainrule.core.primitive import REGISTRY

    ours = {name: p for name, p in REGISTRY.items() if p.module.startswith("chainrule.")}
    assert len(ours) >= 97, sorted(ours)
    missing = {}
    for fact in ("shape", "flops", "vjp_flops", "memory", "notation"):
        needed = [p for p in ours.values() if p.differentiable or fact in ("shape", "flops", "notation")]
        names = sorted(p.name for p in needed if getattr(p.facts, fact) is None)
        if names:
            missing[fact] = names
    assert not missing, "primitives without their facts (register them with prim.deffacts): " + "; ".join(
        f"{fact}: {', '.join(names)}" for fact, names in missing.items()
    )
