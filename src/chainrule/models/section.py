"""The section's model, written out equation by equation, with its hand-derived backward.

Forward (one example x as a column; a batch is a matrix with one column per example):
    z = W1 x            h = φ(z)            o = W2 h
    L = l(o, y)         s = λ/2 (‖W1‖F² + ‖W2‖F²)          J = L + s
with l the softmax cross-entropy averaged over the batch. ``hidden_bias=True`` is the
variant of exercise 2: z = W1 x + b1, with b1 not regularised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import chainrule.nn.functional as F
from chainrule.core.tensor import Tensor
from chainrule.nn import init as initializers
from chainrule.nn.modules import Module, Parameter
from chainrule.ops import sum, tanh

ACTIVATIONS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "relu": (F.relu, lambda z: (z > 0).astype(z.dtype)),
    "tanh": (tanh, lambda z: 1 - np.tanh(z) ** 2),
    "sigmoid": (F.sigmoid, lambda z: (s := 0.5 * (1 + np.tanh(0.5 * z))) * (1 - s)),
}


class SectionMLP(Module):
    def __init__(
        self,
        num_inputs: int = 784,
        num_hidden: int = 256,
        num_outputs: int = 10,
        weight_decay: float = 0.0,
        activation: str = "relu",
        hidden_bias: bool = False,
        init: str = "normal",
        seed: int = 0,
        dtype: Any = np.float32,
    ) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"SectionMLP: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        rng = np.random.default_rng(seed)
        init_fn = initializers.INITIALIZERS[init]
        self.W1 = Parameter(init_fn((num_hidden, num_inputs), rng).astype(dtype))
        self.W2 = Parameter(init_fn((num_outputs, num_hidden), rng).astype(dtype))
        if hidden_bias:
            self.b1 = Parameter(np.zeros(num_hidden, dtype))
        self.lam = weight_decay
        self.activation = activation
        self.hidden_bias = hidden_bias

    # Batches are rows (n, d) for speed; o = h W2ᵀ is the transpose of the section's W2 h.
    def forward(self, x: Any) -> Any:
        phi = ACTIVATIONS[self.activation][0]
        z = x @ self.W1.T
        if self.hidden_bias:
            z = z + self.b1
        return phi(z) @ self.W2.T

    def objective(self, x: Any, y: Any) -> dict[str, Tensor]:
        """Every quantity of the section as a named node of the graph: z, h, o, L, s, J."""
        phi = ACTIVATIONS[self.activation][0]
        z = x @ self.W1.T
        if self.hidden_bias:
            z = z + self.b1
        z = z.named("z")
        h = phi(z).named("h")
        o = (h @ self.W2.T).named("o")
        loss = F.cross_entropy(o, y).named("L")
        if self.lam:
            s = ((self.lam / 2) * (sum(self.W1 * self.W1) + sum(self.W2 * self.W2))).named("s")
        else:  # λ = 0: s is identically zero, so skip the two squared norms
            s = Tensor(np.zeros((), dtype=self.W1.dtype), dtype=self.W1.dtype).named("s")
        return {"z": z, "h": h, "o": o, "L": loss, "s": s, "J": (loss + s).named("J")}

    def manual_gradients(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """The section's backward equations in plain NumPy (columns are examples)."""
        phi_prime = ACTIVATIONS[self.activation][1]
        W1, W2, lam = self.W1._data, self.W2._data, self.lam
        xc = np.asarray(x).T  # d x n
        n = xc.shape[1]
        z = W1 @ xc + (self.b1._data[:, None] if self.hidden_bias else 0)
        h = ACTIVATIONS[self.activation][0](z)
        o = W2 @ h
        p = np.exp(o - o.max(axis=0, keepdims=True))
        p /= p.sum(axis=0, keepdims=True)
        onehot = np.zeros_like(o)
        onehot[np.asarray(y), np.arange(n)] = 1
        dJ_do = (p - onehot) / n  # ∂J/∂o = ∂L/∂o (the mean over the batch gives the 1/n)
        ds_dW1, ds_dW2 = lam * W1, lam * W2  # ∂s/∂W1, ∂s/∂W2
        dJ_dW2 = dJ_do @ h.T + ds_dW2  # ∂J/∂W2 = ∂J/∂o hᵀ + λW2
        dJ_dh = W2.T @ dJ_do  # ∂J/∂h = W2ᵀ ∂J/∂o
        dJ_dz = dJ_dh * phi_prime(z)  # ∂J/∂z = ∂J/∂h ⊙ φ′(z)
        dJ_dW1 = dJ_dz @ xc.T + ds_dW1  # ∂J/∂W1 = ∂J/∂z xᵀ + λW1
        grads = {"o": dJ_do.T, "h": dJ_dh.T, "z": dJ_dz.T, "W1": dJ_dW1, "W2": dJ_dW2}
        if self.hidden_bias:
            grads["b1"] = dJ_dz.sum(axis=1)  # ∂J/∂b1 = Σ_examples ∂J/∂z (no penalty on b1)
        return grads
