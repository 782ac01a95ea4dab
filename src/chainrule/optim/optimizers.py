"""Optimizers. Updates are in place on parameter data; gradients are read, never modified."""

from __future__ import annotations

import copy
import gc
import math
from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np

from chainrule.core.errors import InPlaceError
from chainrule.core.node import holder_of
from chainrule.core.tensor import Tensor


def _check_not_saved(p: Tensor, optimizer: str) -> None:
    """Refuse to update a parameter that a live graph saved for its backward pass."""
    op = holder_of(p.data)
    if op is not None:
        gc.collect()  # a graph that is only unreachable (a reference cycle) lets go when collected
        op = holder_of(p.data)
    if op is not None:
        name = f"'{p.name}' " if p.name else ""
        raise InPlaceError(
            f"{optimizer}.step: parameter {name}of shape {p.shape} is saved by a '{op}' node of a graph that "
            f"has not been backpropagated yet (or was kept with retain_graph=True); updating it in place "
            f"would make that graph's gradients wrong. Call backward first, or drop that graph (compute "
            f"evaluation outputs under cr.no_grad())"
        )


class Stepper(Protocol):
    """What a training loop needs of an optimizer: an :class:`Optimizer`, or a wrapper such as
    :class:`chainrule.parallel.ShardedDataParallel` that steps one with its state sharded."""

    params: list[Tensor]
    lr: float

    def zero_grad(self) -> None:
        """Clear the parameters' gradients."""

    def step(self) -> None:
        """Update the parameters from their gradients."""

    def state_dict(self) -> dict[str, Any]:
        """The state to checkpoint (``lr``, ``steps`` and ``"i.slot"`` arrays)."""

    def load_state_dict(self, flat: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class Optimizer:
    """Base class: holds the parameters, a learning rate ``lr`` and per-parameter state.

    ``params``: ``nn.Parameter``s (``model.parameters()``) or tensors that require grad; a
    NumPy array or a tensor that does not require grad is refused with a ``TypeError`` or
    ``ValueError`` naming the optimizer. ``step()`` updates each parameter's data in place from
    its ``.grad``; ``zero_grad()`` clears the gradients.

    Examples:
        >>> import chainrule as cr
        >>> w = cr.tensor([1.0, 2.0], requires_grad=True)
        >>> opt = SGD([w], lr=0.5)
        >>> (w * w).sum().backward()
        >>> opt.step()
        >>> w
        tensor([0., 0.], requires_grad=True)
    """

    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        name = f"optim.{type(self).__name__}"
        if isinstance(params, Tensor | np.ndarray):
            raise TypeError(
                f"{name}: expected an iterable of Parameters (model.parameters()), got a single {type(params).__name__}"
            )
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{name}: got an empty parameter list")
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"{name}: expected Parameters or tensors that require grad (e.g. model.parameters() or "
                    f"cr.tensor(a, requires_grad=True)), got {type(p).__name__} at position {i}"
                )
            if not p.requires_grad:
                raise ValueError(f"{name}: a parameter of shape {p.shape} does not require grad")
        if lr <= 0:
            raise ValueError(f"{type(self).__name__}: lr must be positive, got {lr}")
        self.lr = lr
        self.state: list[dict[str, np.ndarray]] = [{} for _ in self.params]
        self.steps = 0

    def rebind(self, params: Iterable[Tensor]) -> Optimizer:
        """A copy of this optimizer (class, hyperparameters, ``lr``, step count) over ``params``, with fresh state.

        Examples:
            >>> import chainrule as cr
            >>> opt = SGD([cr.tensor([1.0], requires_grad=True)], lr=0.5)
            >>> other = opt.rebind([cr.tensor([2.0, 3.0], requires_grad=True)])
            >>> type(other).__name__, other.lr, other.params[0].shape
            ('SGD', 0.5, (2,))
        """
        new = copy.copy(self)
        Optimizer.__init__(new, params, self.lr)
        new.steps = self.steps
        return new

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.data[...] = 0

    def step(self) -> None:
        for p in self.params:
            _check_not_saved(p, type(self).__name__)
        self.steps += 1
        for p, state in zip(self.params, self.state, strict=True):
            if p.grad is not None:
                self._update(p.data, p.grad.data, state)

    def _update(self, w: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        flat: dict[str, Any] = {"lr": self.lr, "steps": self.steps}
        for i, st in enumerate(self.state):
            for k, v in st.items():
                flat[f"{i}.{k}"] = v.copy()
        return flat

    def load_state_dict(self, flat: dict[str, Any]) -> None:
        self.lr = float(flat["lr"])
        self.steps = int(flat["steps"])
        self.state = [{} for _ in self.params]
        for key, value in flat.items():
            if key in ("lr", "steps"):
                continue
            i, name = key.split(".", 1)
            self.state[int(i)][name] = np.array(value, copy=True)


class SGD(Optimizer):
    """SGD with optional momentum and L2 weight decay (adds ``weight_decay * w`` to the gradient,
    which is the gradient of the section's penalty (λ/2)‖w‖² with λ = weight_decay).

    ``params``: Parameters or tensors that require grad (any shapes, float32 or float64);
    updates are in place and keep each parameter's dtype.

    Examples:
        >>> import chainrule as cr
        >>> w = cr.tensor([1.0], requires_grad=True)
        >>> opt = SGD([w], lr=0.1, weight_decay=1.0)
        >>> (w * 2).sum().backward()
        >>> opt.step()           # w - 0.1 * (2 + 1.0 * w)
        >>> w
        tensor([0.7], requires_grad=True)
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(params, lr)
        if momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: momentum and weight_decay must be >= 0, got {momentum}, {weight_decay}")
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, nesterov

    def _update(self, w: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        if self.weight_decay and not self.momentum:
            # w - lr (g + λw) = (1 - lr λ) w - lr g, with no temporary for g + λw
            w *= w.dtype.type(1 - self.lr * self.weight_decay)
            w -= w.dtype.type(self.lr) * g
            return
        if self.weight_decay:
            g = g + w.dtype.type(self.weight_decay) * w
        if self.momentum:
            buf = state.get("momentum")
            if buf is None:
                buf = state["momentum"] = g.copy()
            else:
                buf *= self.momentum
                buf += g
            g = g + self.momentum * buf if self.nesterov else buf
        w -= w.dtype.type(self.lr) * g


class Adam(Optimizer):
    """Adam; ``weight_decay`` adds L2 to the gradient (PyTorch's Adam), AdamW decouples it.

    Parameters of any shape and float dtype, updated in place; ``betas`` and ``eps`` as in PyTorch.

    Examples:
        >>> import chainrule as cr
        >>> w = cr.tensor([1.0], requires_grad=True)
        >>> opt = Adam([w], lr=0.1)
        >>> (w * w).sum().backward()
        >>> opt.step()           # the first Adam step moves each weight by about lr
        >>> w
        tensor([0.9], requires_grad=True)
    """

    decoupled = False

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        self.beta1, self.beta2 = betas
        self.eps, self.weight_decay = eps, weight_decay

    def _update(self, w: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        # PyTorch's arithmetic, fused into one scratch array (no other temporaries):
        # m ← β1 m + (1-β1) g;  v ← β2 v + (1-β2) g²;  w ← w - lr/(1-β1ᵗ) · m / (√v / √(1-β2ᵗ) + ε)
        t = w.dtype.type
        if self.weight_decay and self.decoupled:
            w *= t(1 - self.lr * self.weight_decay)
        elif self.weight_decay:
            g = g + t(self.weight_decay) * w
        if "m" not in state:
            state["m"] = np.zeros_like(w)
            state["v"] = np.zeros_like(w)
        m, v = state["m"], state["v"]
        tmp = np.empty_like(w)
        m *= t(self.beta1)
        m += np.multiply(g, t(1 - self.beta1), out=tmp)
        v *= t(self.beta2)
        np.multiply(g, g, out=tmp)
        v += np.multiply(tmp, t(1 - self.beta2), out=tmp)
        np.sqrt(v, out=tmp)
        tmp /= t(math.sqrt(1 - self.beta2**self.steps))  # bias corrections; steps counts this step
        tmp += t(self.eps)
        np.divide(m, tmp, out=tmp)
        w -= np.multiply(tmp, t(self.lr / (1 - self.beta1**self.steps)), out=tmp)


class AdamW(Adam):
    """Adam with decoupled weight decay: each step first scales w by (1 - lr·weight_decay).

    Parameters of any shape and float dtype, updated in place.

    Examples:
        >>> import chainrule as cr
        >>> w = cr.tensor([1.0], requires_grad=True)
        >>> opt = AdamW([w], lr=0.1, weight_decay=0.5)
        >>> (w * 0).sum().backward()   # a zero gradient: only the decay acts
        >>> opt.step()
        >>> w
        tensor([0.95], requires_grad=True)
    """

    decoupled = True

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)


class StepLR:
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs (call ``set_epoch(e)`` per epoch).

    Examples:
        >>> import chainrule as cr
        >>> opt = SGD([cr.tensor([1.0], requires_grad=True)], lr=0.1)
        >>> schedule = StepLR(opt, step_size=2, gamma=0.5)
        >>> [schedule.lr_at(e) for e in range(5)]
        [0.1, 0.1, 0.05, 0.05, 0.025]
    """

    def __init__(self, optimizer: Stepper, step_size: int, gamma: float = 0.1) -> None:
        self.optimizer, self.step_size, self.gamma = optimizer, step_size, gamma
        self.base_lr = optimizer.lr

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)

    def set_epoch(self, epoch: int) -> None:
        self.optimizer.lr = self.lr_at(epoch)


class CosineAnnealingLR:
    """Cosine decay from the base learning rate to ``eta_min`` over ``t_max`` epochs (call ``set_epoch(e)``).

    Examples:
        >>> import chainrule as cr
        >>> opt = SGD([cr.tensor([1.0], requires_grad=True)], lr=0.1)
        >>> schedule = CosineAnnealingLR(opt, t_max=4)
        >>> schedule.set_epoch(2)
        >>> round(opt.lr, 6)
        0.05
    """

    def __init__(self, optimizer: Stepper, t_max: int, eta_min: float = 0.0) -> None:
        self.optimizer, self.t_max, self.eta_min = optimizer, t_max, eta_min
        self.base_lr = optimizer.lr

    def lr_at(self, epoch: int) -> float:
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.t_max)) / 2

    def set_epoch(self, epoch: int) -> None:
        self.optimizer.lr = self.lr_at(epoch)
