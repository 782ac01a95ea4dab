"""Every differentiable operation, with inputs (broadcasting, size-1 and 0-d cases) and the
PyTorch expression that should agree with it. Shared by the finite-difference and PyTorch tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import chainrule as cr
import chainrule.nn.functional as F


@dataclass
class Case:
    name: str
    fn: Callable[..., Any]
    torch_fn: Callable[..., Any]
    shapes: tuple[tuple[int, ...], ...]
    domain: str = "any"  # any | positive | away_from_zero

    @property
    def id(self) -> str:
        return f"{self.name}-" + "x".join(str(list(s)) for s in self.shapes)

    def inputs(self, seed: int = 0) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        out = []
        for s in self.shapes:
            x = rng.standard_normal(s)
            if self.domain == "positive":
                x = np.abs(x) + 0.5
            elif self.domain == "away_from_zero":
                x = np.sign(x) * (np.abs(x) + 0.5)
            out.append(x)
        return out


REPEATED = np.array([0, 2, 2, 1, 0])
LABELS = np.array([1, 0, 2, 2])


def _partition_summary(p: Any) -> Any:
    """Per row: the value at k = 2, the sum of the values before it and the sum of those after."""
    return p[:, 2] * 3.0 + p[:, :2].sum(axis=1) * 5.0 + p[:, 3:].sum(axis=1) * 7.0


def _cases() -> list[Case]:
    c: list[Case] = []
    binary_shapes = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (3,)), ((1,), (2, 2))]
    for shapes in binary_shapes:
        c.append(Case("add", lambda a, b: a + b, lambda a, b: a + b, shapes))
        c.append(Case("subtract", lambda a, b: a - b, lambda a, b: a - b, shapes))
        c.append(Case("multiply", lambda a, b: a * b, lambda a, b: a * b, shapes))
        c.append(Case("divide", lambda a, b: a / b, lambda a, b: a / b, shapes, "away_from_zero"))
        c.append(Case("maximum", cr.maximum, lambda a, b: a.maximum(b), shapes))
        c.append(Case("minimum", cr.minimum, lambda a, b: a.minimum(b), shapes))
    c.append(Case("power", lambda a, b: a**b, lambda a, b: a**b, ((3, 4), (4,)), "positive"))
    c.append(Case("power_scalar", lambda a: a**3, lambda a: a**3, ((2, 3),)))
    c.append(Case("rpow_scalar", lambda a: 2.0**a, lambda a: 2.0**a, ((2, 3),)))
    c.append(Case("rsub_scalar", lambda a: 1.5 - a, lambda a: 1.5 - a, ((2, 3),)))
    c.append(Case("rdiv_scalar", lambda a: 1.5 / a, lambda a: 1.5 / a, ((2, 3),), "away_from_zero"))
    for shape in [(3, 4), (), (1,), (2, 1, 3)]:
        c.append(Case("negative", lambda a: -a, lambda a: -a, (shape,)))
        c.append(Case("exp", cr.exp, lambda a: a.exp(), (shape,)))
        c.append(Case("log", cr.log, lambda a: a.log(), (shape,), "positive"))
        c.append(Case("sqrt", cr.sqrt, lambda a: a.sqrt(), (shape,), "positive"))
        c.append(Case("abs", cr.abs, lambda a: a.abs(), (shape,), "away_from_zero"))
        c.append(Case("tanh", cr.tanh, lambda a: a.tanh(), (shape,)))
        c.append(Case("sin", cr.sin, lambda a: a.sin(), (shape,)))
        c.append(Case("cos", cr.cos, lambda a: a.cos(), (shape,)))
        c.append(Case("relu", F.relu, lambda a: a.relu(), (shape,), "away_from_zero"))
        c.append(Case("sigmoid", F.sigmoid, lambda a: a.sigmoid(), (shape,)))
    c.append(Case("clip", lambda a: cr.clip(a, -0.5, 0.7), lambda a: a.clamp(-0.5, 0.7), ((4, 5),)))
    c.append(Case("clip_min", lambda a: cr.clip(a, -0.5, None), lambda a: a.clamp(min=-0.5), ((4, 5),)))
    c.append(
        Case(
            "where",
            lambda a, b: cr.where(a > 0, a, b),
            lambda a, b: a.where(a > 0, b),
            ((3, 4), (4,)),
        )
    )
    every_axis = (0, 1, 2)  # PyTorch's amax/amin/logsumexp take all axes explicitly
    reductions = [
        ("sum", cr.sum, lambda a, ax, k: a.sum(dim=ax, keepdim=k) if ax is not None else a.sum()),
        ("mean", cr.mean, lambda a, ax, k: a.mean(dim=ax, keepdim=k) if ax is not None else a.mean()),
        ("max", cr.max, lambda a, ax, k: a.amax(dim=every_axis if ax is None else ax, keepdim=k)),
        ("min", cr.min, lambda a, ax, k: a.amin(dim=every_axis if ax is None else ax, keepdim=k)),
        ("logsumexp", cr.logsumexp, lambda a, ax, k: a.logsumexp(dim=every_axis if ax is None else ax, keepdim=k)),
    ]
    for axis, keep in [(None, False), (0, False), (1, True), ((0, 2), False), (-1, True)]:
        for name, ours, theirs in reductions:
            c.append(
                Case(
                    f"{name}{axis}{keep}",
                    lambda a, f=ours, ax=axis, k=keep: f(a, axis=ax, keepdims=k),
                    lambda a, f=theirs, ax=axis, k=keep: f(a, ax, k),
                    ((2, 3, 4),),
                )
            )
    c.append(Case("sum0d", lambda a: cr.sum(a), lambda a: a.sum(), ((),)))
    c.append(Case("reshape", lambda a: cr.reshape(a, (4, 3)), lambda a: a.reshape(4, 3), ((2, 6),)))
    c.append(Case("reshape-1", lambda a: a.reshape(-1, 2), lambda a: a.reshape(-1, 2), ((2, 6),)))
    c.append(Case("transpose", lambda a: a.T, lambda a: a.permute(1, 0), ((2, 5),)))
    c.append(Case("transpose_axes", lambda a: cr.transpose(a, (2, 0, 1)), lambda a: a.permute(2, 0, 1), ((2, 3, 4),)))
    c.append(Case("expand_dims", lambda a: cr.expand_dims(a, 1), lambda a: a.unsqueeze(1), ((3, 4),)))
    c.append(Case("squeeze", lambda a: cr.squeeze(a), lambda a: a.squeeze(), ((3, 1, 4),)))
    c.append(Case("broadcast_to", lambda a: cr.broadcast_to(a, (2, 3, 4)), lambda a: a.expand(2, 3, 4), ((3, 1),)))
    c.append(Case("getitem_slice", lambda a: a[1:, ::2], lambda a: a[1:, ::2], ((4, 5),)))
    c.append(Case("getitem_int", lambda a: a[2], lambda a: a[2], ((4, 5),)))
    c.append(Case("getitem_repeated", lambda a: a[REPEATED], lambda a: a[REPEATED], ((3, 4),)))
    c.append(
        Case(
            "scatter_add",
            lambda a: cr.ops.shape._scatter_add_p(a, index=REPEATED, shape=(3, 4)),
            lambda a: (
                __import__("torch").zeros(3, 4, dtype=a.dtype).index_add(0, __import__("torch").tensor(REPEATED), a)
            ),
            ((5, 4),),
        )
    )
    c.append(Case("getitem_mixed", lambda a: a[1:, REPEATED], lambda a: a[1:, REPEATED], ((3, 4),)))
    c.append(
        Case(
            "concatenate",
            lambda a, b: cr.concatenate([a, b, a], axis=1),
            lambda a, b: __import__("torch").cat([a, b, a], dim=1),
            ((2, 3), (2, 1)),
        )
    )
    c.append(
        Case(
            "stack",
            lambda a, b: cr.stack([a, b], axis=1),
            lambda a, b: __import__("torch").stack([a, b], dim=1),
            ((2, 3), (2, 3)),
        )
    )
    c.append(
        Case(
            "split",
            lambda a: cr.split(a, [1, 3], axis=1)[1] * cr.split(a, 2, axis=0)[0][:, :1],
            lambda a: a[:, 1:3] * a[:1, :1],
            ((2, 4),),
        )
    )
    for sa, sb in [
        ((3, 4), (4, 5)),
        ((4,), (4, 5)),
        ((3, 4), (4,)),
        ((4,), (4,)),
        ((2, 3, 4), (4, 2)),
        ((2, 1, 3, 4), (5, 4, 2)),
    ]:
        c.append(Case("matmul", cr.matmul, lambda a, b: a @ b, (sa, sb)))
    # NumPy's numerical helpers (compositions): linspace in start/stop, gradient, partition.
    c.append(
        Case(
            "linspace",
            lambda a, b: cr.linspace(a, b, 5),
            lambda a, b: a + (b - a) * __import__("torch").linspace(0, 1, 5, dtype=a.dtype).reshape(5, 1, 1),
            ((2, 3), (2, 3)),
        )
    )
    c.append(
        Case(
            "linspace_axis1_open",
            lambda a, b: cr.linspace(a, b, 4, endpoint=False, axis=1),
            lambda a, b: (a + (b - a) * __import__("torch").arange(4, dtype=a.dtype).reshape(4, 1) / 4).permute(1, 0),
            ((3,), ()),
        )
    )
    c.append(Case("gradient_1d", lambda a: cr.gradient(a), lambda a: __import__("torch").gradient(a)[0], ((6,),)))
    c.append(
        Case(
            "gradient_2d_spacing",
            lambda a: cr.stack(cr.gradient(a, 0.5)),
            lambda a: __import__("torch").stack(__import__("torch").gradient(a, spacing=0.5)),
            ((3, 4),),
        )
    )
    c.append(
        Case(  # what partition defines: the k-th value in place, the smaller and larger groups around it
            "partition",
            lambda a: _partition_summary(cr.partition(a, 2, axis=1)),
            lambda a: _partition_summary(a.sort(dim=1).values),
            ((3, 5),),
        )
    )
    c.append(Case("repeated_use", lambda a: a * a + cr.tanh(a) * a, lambda a: a * a + a.tanh() * a, ((3, 3),)))
    c.append(Case("softmax", lambda a: F.softmax(a, axis=1), lambda a: a.softmax(dim=1), ((4, 3),)))
    c.append(Case("log_softmax", lambda a: F.log_softmax(a), lambda a: a.log_softmax(dim=-1), ((4, 3),)))
    c.append(
        Case(
            "cross_entropy",
            lambda a: F.cross_entropy(a, LABELS),
            lambda a: __import__("torch").nn.functional.cross_entropy(a, __import__("torch").tensor(LABELS)),
            ((4, 3),),
        )
    )
    c.append(
        Case(
            "cross_entropy_none",
            lambda a: F.cross_entropy(a, LABELS, reduction="none"),
            lambda a: __import__("torch").nn.functional.cross_entropy(
                a, __import__("torch").tensor(LABELS), reduction="none"
            ),
            ((4, 3),),
        )
    )
    c.append(
        Case("mse_loss", F.mse_loss, lambda a, b: __import__("torch").nn.functional.mse_loss(a, b), ((4, 3), (4, 3)))
    )
    return c


from tests.cases_linalg_shape import cases as _linalg_shape_cases  # noqa: E402
from tests.cases_math import cases as _math_cases  # noqa: E402
from tests.cases_vocab import cases as _vocab_cases  # noqa: E402

CASES = _cases() + _math_cases() + _linalg_shape_cases() + _vocab_cases()
