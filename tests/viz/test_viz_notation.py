"""Every primitive of the engine is written with its own notation, forward and backward."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
from chainrule.core.primitive import REGISTRY
from chainrule.transforms.functional import watch
from chainrule.viz.equations import explain
from chainrule.viz.notation import GENERIC, notation_of

PRIMITIVES = (
    "add subtract multiply divide power negative exp log sqrt abs tanh sin cos maximum minimum where clip sum max "
    "min reshape transpose broadcast_to getitem concatenate astype matmul relu sigmoid softmax cross_entropy watch"
).split()

Build = Callable[[Any, Any], Any]
CASES: dict[str, Build] = {
    "add": lambda w, v: w + v,
    "subtract": lambda w, v: w - v,
    "multiply": lambda w, v: w * v,
    "divide": lambda w, v: w / v,
    "power": lambda w, v: w**3,
    "negative": lambda w, v: -w,
    "exp": lambda w, v: cr.exp(w),
    "log": lambda w, v: cr.log(w),
    "sqrt": lambda w, v: cr.sqrt(w),
    "abs": lambda w, v: cr.abs(w),
    "tanh": lambda w, v: cr.tanh(w),
    "sin": lambda w, v: cr.sin(w),
    "cos": lambda w, v: cr.cos(w),
    "maximum": lambda w, v: cr.maximum(w, v),
    "minimum": lambda w, v: cr.minimum(w, v),
    "where": lambda w, v: cr.where(w.data > 1, w, v),
    "clip": lambda w, v: cr.clip(w, 0.5, 1.5),
    "sum": lambda w, v: cr.sum(w, axis=0),
    "max": lambda w, v: cr.max(w),
    "min": lambda w, v: cr.min(w, axis=1),
    "reshape": lambda w, v: cr.reshape(w, (4, 3)),
    "transpose": lambda w, v: w.T,
    "broadcast_to": lambda w, v: cr.broadcast_to(w, (2, 3, 4)),
    "getitem": lambda w, v: w[1:],
    "concatenate": lambda w, v: cr.concatenate([w, v], axis=0),
    "astype": lambda w, v: w.astype(np.float64),
    "matmul": lambda w, v: w @ v.T,
    "relu": lambda w, v: F.relu(w),
    "sigmoid": lambda w, v: F.sigmoid(w),
    "softmax": lambda w, v: F.softmax(w),
    "cross_entropy": lambda w, v: F.cross_entropy(w, np.array([0, 1, 3])),
    "watch": lambda w, v: watch(w),
}


def test_every_primitive_has_notation() -> None:
    """Each primitive of the engine is written its own way (PRIMITIVES) or generically on purpose (GENERIC)."""
    assert set(PRIMITIVES) <= set(REGISTRY), set(PRIMITIVES) - set(REGISTRY)
    own = {n for n in PRIMITIVES if notation_of(n) is not None and notation_of(n).forward is not None}
    assert own == set(PRIMITIVES), set(PRIMITIVES) - own
    generic = {p.name for p in GENERIC}
    assert not generic & set(PRIMITIVES), generic & set(PRIMITIVES)
    ours = {n for n, p in REGISTRY.items() if p.module.startswith("chainrule.")}
    undecided = sorted(ours - set(PRIMITIVES) - generic)
    assert not undecided, (
        f"primitives with no notation decision (viz.notation: register or list in GENERIC): {undecided}"
    )
    assert set(CASES) == set(PRIMITIVES)


@pytest.mark.parametrize("name", PRIMITIVES)
def test_each_primitive_is_explained_with_its_own_notation(name: str) -> None:
    rng = np.random.default_rng(0)
    w = cr.tensor(rng.uniform(0.5, 2, (3, 4)).astype(np.float32), requires_grad=True).named("w")
    v = cr.tensor(rng.uniform(0.5, 2, (3, 4)).astype(np.float32), requires_grad=True).named("v")
    out = CASES[name](w, v)
    u = out.named("u")
    J = cr.sum(u * u).named("J") if u.ndim else (u * u).named("J")
    ops = {n.prim.name for n in cr.core.backward.toposort([J.node])}
    assert name in ops
    ex = explain(J)
    text = ex.text()
    assert f"(∂{name}(" not in text, text  # not the generic fallback
    assert "u = " in text and "∂J/∂w = " in text
    assert ex.markdown().count("$$") % 2 == 0


def test_a_second_order_graph_is_explained_too() -> None:
    rng = np.random.default_rng(0)
    w = cr.tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True).named("w")
    J = cr.sum(cr.tanh(w[1:]) ** 2).named("J")
    J.backward(create_graph=True)
    G = cr.sum(w.grad * w.grad).named("G")
    text = explain(G).text()
    assert "∂G/∂w = " in text
