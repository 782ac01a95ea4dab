"""The JVP rules of the elementwise, reduction and nn primitives, checked before forward mode uses
them: every primitive call that a case makes is recorded, and for each one the sum of its JVP
rules (tangent of each input) must equal central finite differences of its NumPy implementation
along those tangents. The same rules run on tensors must give the same values (higher orders)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from tests.op_cases import CASES

import chainrule as cr
from chainrule.nn import functional
from chainrule.ops import elementwise, reduce

OURS = {
    p.name
    for module in (elementwise, reduce, functional)
    for p in vars(module).values()
    if isinstance(p, cr.Primitive) and p.differentiable
}


class _Recorder(cr.Interpreter):
    """An interpreter that keeps each primitive call of a forward pass (as cr.compile's capture does)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[cr.Primitive, list[Any], dict[str, Any], Any]] = []

    def recorded(self, node: Any, prim: Any, args: Any, datas: Any, params: dict[str, Any], out: Any) -> None:
        self.calls.append((prim, list(datas), dict(params), out))


def _record(case: Any) -> list[tuple[cr.Primitive, list[Any], dict[str, Any], Any]]:
    recorder = _Recorder()
    inputs = [cr.tensor(x, dtype="float64", requires_grad=True) for x in case.inputs(seed=11)]
    with recorder:
        case.fn(*inputs)
    return recorder.calls


def _is_float(d: Any) -> bool:
    return np.asarray(d).dtype.kind == "f"


def _jvp(prim: cr.Primitive, i: int, t: Any, out: Any, datas: list[Any], params: dict[str, Any]) -> Any:
    if prim.jvp_any is not None:
        return prim.jvp_any(i, t, out, *datas, **params)
    rule = prim.jvps[i] if i < len(prim.jvps) else None
    return None if rule is None else rule(t, out, *datas, **params)


def _as_tensor(d: Any) -> Any:
    return cr.tensor(d, dtype=d.dtype) if isinstance(d, np.ndarray) and d.dtype.kind == "f" else d


def _check_call(prim: cr.Primitive, datas: list[Any], params: dict[str, Any], out: Any, seed: int) -> None:
    assert prim.jvps or prim.jvp_any is not None, f"{prim.name}: no JVP rule"
    rng = np.random.default_rng(seed)
    wrt = [i for i, d in enumerate(datas) if _is_float(d)]
    tangents = {i: rng.standard_normal(np.shape(datas[i])) for i in wrt}
    total = np.zeros(out.shape)
    total_on_tensors = np.zeros(out.shape)
    for i in wrt:
        ti = tangents[i]
        contribution = _jvp(prim, i, ti, out, datas, params)
        if contribution is None:
            continue
        total = total + np.broadcast_to(np.asarray(contribution), out.shape)
        recorded = _jvp(
            prim,
            i,
            cr.tensor(ti, dtype="float64"),
            cr.tensor(out, dtype=out.dtype),
            [_as_tensor(d) for d in datas],
            params,
        )
        total_on_tensors = total_on_tensors + np.broadcast_to(recorded.numpy(), out.shape)
    eps = 1e-6

    def at(sign: float) -> Any:
        moved = [d + sign * eps * tangents[i] if i in tangents else d for i, d in enumerate(datas)]
        return prim.impl(*moved, **params)

    with np.errstate(invalid="ignore", divide="ignore"):
        numeric = (at(1.0) - at(-1.0)) / (2 * eps)
    # Where differences are not finite (a cusp, e.g. |x|^(1/3) at 0 inside a norm case) there is
    # nothing to compare with; the rule's documented choice there is tested in the op's own file.
    defined = np.isfinite(numeric)
    assert defined.any(), f"{prim.name}: finite differences undefined everywhere"
    total, numeric = np.broadcast_to(total, numeric.shape)[defined], numeric[defined]
    scale = 1e-6 * (1.0 + np.abs(numeric))
    assert np.all(np.abs(total - numeric) <= scale), f"{prim.name}{params}: JVP {total} vs finite differences {numeric}"
    np.testing.assert_allclose(
        np.broadcast_to(total_on_tensors, defined.shape)[defined], total, rtol=1e-12, atol=1e-14, err_msg=prim.name
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_jvp_rules_match_finite_differences(case):
    calls = [c for c in _record(case) if c[0].name in OURS]
    for k, (prim, datas, params, out) in enumerate(calls):
        if out.dtype.kind != "f":
            continue
        _check_call(prim, datas, params, out, seed=k)


def test_every_differentiable_primitive_here_has_jvp_rules():
    missing = sorted(name for name in OURS if not (_primitive(name).jvps or _primitive(name).jvp_any is not None))
    assert not missing, f"primitives without JVP rules: {missing}"


def _primitive(name: str) -> cr.Primitive:
    from chainrule.core.primitive import REGISTRY

    return REGISTRY[name]
