"""JVP rules of the shape, product and linear-algebra primitives agree with their VJP rules.

Besides forward mode against finite differences (tests/ops/test_gradients_fd.py), each rule is
checked directly: every primitive call made while running a case is captured, and for random ``t`` and ``g``
``<g, jvp(t)> == <vjp(g), t>`` must hold (the VJP rules are checked against finite
differences and PyTorch elsewhere).
"""

from typing import Any

import numpy as np
import pytest
from tests.cases_linalg_shape import cases

import chainrule as cr

MINE = {
    "reshape", "transpose", "broadcast_to", "getitem", "scatter_add", "concatenate", "stack", "astype",
    "matmul", "einsum", "solve", "inv", "det", "slogdet", "cholesky", "eigh", "svd",
}  # fmt: skip
CASES = cases()


class _Capture(cr.Interpreter):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Any, list[Any], dict[str, Any], np.ndarray]] = []

    def recorded(self, node: Any, prim: Any, args: Any, datas: Any, params: Any, out: Any) -> None:
        if prim.name in MINE:
            self.calls.append((prim, list(datas), dict(params), out))


def _calls(case: Any) -> list[Any]:
    capture = _Capture()
    with capture:
        case.fn(*[cr.tensor(x, dtype="float64") for x in case.inputs(seed=11)])
    return capture.calls


def _rule(rules: Any, any_rule: Any, i: int) -> Any:
    if any_rule is not None:
        return lambda *a, **p: any_rule(i, *a, **p)
    return rules[i] if i < len(rules) else None


def _sum_to(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    x = np.asarray(x)
    while x.ndim > len(shape):
        x = x.sum(axis=0)
    for ax, n in enumerate(shape):
        if n == 1 and x.shape[ax] != 1:
            x = x.sum(axis=ax, keepdims=True)
    return x


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_jvp_rules_are_the_transpose_of_vjp_rules(case):
    rng = np.random.default_rng(0)
    for prim, datas, params, out in _calls(case):
        for i, x in enumerate(datas):
            if not (isinstance(x, np.ndarray) and x.dtype.kind == "f"):
                continue
            vjp = _rule(prim.vjps, prim.vjp_any, i)
            if vjp is None:
                continue
            jvp = _rule(prim.jvps, prim.jvp_any, i)
            assert jvp is not None, f"{prim.name}: no JVP rule for input {i}"
            t = rng.standard_normal(x.shape)
            g = rng.standard_normal(out.shape)
            forward = np.broadcast_to(np.asarray(jvp(t, out, *datas, **params)), out.shape)
            backward = _sum_to(vjp(g, out, *datas, **params), x.shape)
            lhs, rhs = np.sum(g * forward), np.sum(backward * t)
            assert abs(lhs - rhs) <= 1e-8 * (1 + abs(lhs)), f"{prim.name} input {i}: {lhs} != {rhs}"
