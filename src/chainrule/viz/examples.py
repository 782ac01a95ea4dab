"""The section's models built in the book's notation (examples are columns), every tensor named.

Used by ``chainrule graph`` / ``chainrule explain``, the documentation figures and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

import chainrule.nn.functional as F
from chainrule.core.tensor import Tensor, tensor
from chainrule.nn.modules import Linear, ReLU, Sequential
from chainrule.viz.trace import track_modules

MODELS = ("section", "section-bias", "mlp")


@dataclass
class Example:
    J: Tensor  # the objective
    tensors: dict[str, Any]  # every named quantity (x and y included)
    names: dict[str, Any]  # what names constants by identity (x, y)
    symbols: dict[str, float] = field(default_factory=dict)  # {"λ": 1e-3}
    batch_axis: int | None = None
    model: Any = None  # the nn.Module, for the mlp
    layout: str = "dot"  # how ``draw`` lays it out by default ("book" for the section's model: Figure 5.3.1)


def section(
    bias: bool = False,
    batch: int = 4,
    inputs: int = 784,
    hidden: int = 256,
    outputs: int = 10,
    lam: float = 1e-3,
    seed: int = 0,
) -> Example:
    """z = W1 x (+ b1), h = φ(z), o = W2 h, L = l(o, y), s = λ/2 (‖W1‖² + ‖W2‖²), J = L + s."""
    rng = np.random.default_rng(seed)
    x = tensor(rng.standard_normal((inputs, batch)).astype(np.float32)).named("x")
    y = rng.integers(0, outputs, size=batch)
    W1 = tensor((rng.standard_normal((hidden, inputs)) * 0.01).astype(np.float32), requires_grad=True).named("W1")
    W2 = tensor((rng.standard_normal((outputs, hidden)) * 0.01).astype(np.float32), requires_grad=True).named("W2")
    named: dict[str, Any] = {"x": x, "y": y, "W1": W1, "W2": W2}
    z = W1 @ x
    if bias:
        b1 = tensor(np.zeros((hidden, 1), np.float32), requires_grad=True).named("b1")
        named["b1"] = b1
        z = z + b1
    z = z.named("z")
    h = F.relu(z).named("h")
    o = (W2 @ h).named("o")
    L = F.cross_entropy(o.T, y).named("L")  # the loss takes (batch, classes)
    s = ((lam / 2) * ((W1 * W1).sum() + (W2 * W2).sum())).named("s")
    J = (L + s).named("J")
    named.update(z=z, h=h, o=o, L=L, s=s, J=J)
    return Example(J, named, {"x": x, "y": y}, {"λ": lam}, batch_axis=1, layout="book")


def mlp(batch: int = 4, sizes: tuple[int, ...] = (784, 256, 10), seed: int = 0) -> Example:
    """An ``nn.Sequential`` of Linear/ReLU layers (rows are examples), tracked by module."""
    rng = np.random.default_rng(seed)
    layers: list[Any] = []
    for k in range(len(sizes) - 1):
        layers.append(Linear(sizes[k], sizes[k + 1], rng=rng))
        if k < len(sizes) - 2:
            layers.append(ReLU())
    model = Sequential(*layers)
    x = tensor(rng.standard_normal((batch, sizes[0])).astype(np.float32)).named("x")
    y = rng.integers(0, sizes[-1], size=batch)
    with track_modules(model, "mlp"):
        o = model(x).named("o")
    L = F.cross_entropy(o, y).named("L")
    J = L
    named: dict[str, Any] = {"x": x, "y": y, "o": o, "L": L}
    for name, p in model.named_parameters():
        p.name = p.name or name
        named[name] = p
    return Example(J, named, {"x": x, "y": y}, batch_axis=0, model=model)


def build(model: str, **kwargs: Any) -> Example:
    if model == "section":
        return section(bias=False, **kwargs)
    if model == "section-bias":
        return section(bias=True, **kwargs)
    if model == "mlp":
        return mlp(**kwargs)
    raise ValueError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
