"""Optimizers. Updates are in place on parameter data; gradients are read, never modified."""

from __future__ import annotations

import copy
import gc
import math
from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np

from chainrule.core.errors import InPlaceError
from chainrule.core.node import holder_of, holds_any
from chainrule.core.state import THREAD
from chainrule.core.tensor import Tensor


def _check_not_saved(p: Tensor, optimizer: str) -> None:
    """Refuse to update a parameter that a live graph saved for its backward pass."""
    op = holder_of(p._data)
    if op is not None:
        gc.collect()  # a graph that is only unreachable (a reference cycle) lets go when collected
        op = holder_of(p._data)
    if op is not None:
        name = f"'{p.name}' " if p.name else ""
        raise InPlaceError(
            f"{optimizer}.step: parameter {name}of shape {p.shape} is saved by a '{op}' node of a graph that "
            f"has not been backpropagated yet (or was kept with retain_graph=True); updating it in place "
            f"would make that graph's gradients wrong. Call backward first, or drop that graph (compute "
            f"evaluation outputs under cr.no_grad())"
        )


def _not_captured(name: str, method: str) -> None:
    """An update inside a function cr.compile captures would run once, at capture, and never on replay."""
    if THREAD.state.capturing:
        raise RuntimeError(
            f"{name}.{method}(): called inside a function that cr.compile is capturing; the replay "
            f"would skip it (an optimizer's update is not a recorded operation), so every later call "
            f"would silently leave the parameters as they are. Call opt.{method}() outside the compiled function"
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
    """Base class: holds the parameters in parameter groups, and per-parameter state.

    ``params``: ``nn.Parameter``s (``model.parameters()``) or tensors that require grad, or, as
    PyTorch's ``param_groups``, a list of dicts ``{"params": ..., "lr": ..., "weight_decay": ...}``
    whose keys override the constructor's defaults for that group. A NumPy array, a tensor that
    does not require grad, a parameter in two groups or an unknown key is refused with a
    ``TypeError`` or ``ValueError`` naming the optimizer. ``step()`` updates each parameter's data
    in place from its ``.grad`` with its group's hyperparameters; ``zero_grad()`` clears the
    gradients. ``lr`` reads the first group's learning rate and sets every group's.

    Examples:
        >>> import chainrule as cr
        >>> w = cr.tensor([1.0, 2.0], requires_grad=True)
        >>> opt = SGD([w], lr=0.5)
        >>> (w * w).sum().backward()
        >>> opt.step()
        >>> w
        tensor([0., 0.], requires_grad=True)
        >>> b = cr.tensor([1.0], requires_grad=True)
        >>> opt = SGD([{"params": [w], "weight_decay": 3.0}, {"params": b}], lr=0.1)
        >>> [g["weight_decay"] for g in opt.param_groups]
        [3.0, 0.0]
    """

    def __init__(self, params: Iterable[Any], lr: float, **hyper: Any) -> None:
        name = f"optim.{type(self).__name__}"
        if isinstance(params, Tensor | np.ndarray | dict):
            raise TypeError(
                f"{name}: expected an iterable of Parameters (model.parameters()) or of parameter-group dicts, "
                f"got a single {type(params).__name__}"
            )
        self.defaults: dict[str, Any] = {"lr": lr, **hyper}
        for key, value in hyper.items():  # the defaults, also as attributes (what measure.memory reads)
            setattr(self, key, value)
        specs = list(params)
        if not specs:
            raise ValueError(f"{name}: got an empty parameter list")
        if not all(isinstance(s, dict) for s in specs):
            if any(isinstance(s, dict) for s in specs):
                raise TypeError(f"{name}: mix of parameter-group dicts and tensors; put every tensor in a group")
            specs = [{"params": specs}]
        self.param_groups: list[dict[str, Any]] = [self._group(spec, g, name) for g, spec in enumerate(specs)]
        self.params: list[Tensor] = [p for group in self.param_groups for p in group["params"]]
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        self.state: list[dict[str, np.ndarray]] = [{} for _ in self.params]
        self.steps = 0
        self._active: dict[str, Any] | None = None

    def _group(self, spec: dict[str, Any], g: int, name: str) -> dict[str, Any]:
        """One parameter group: its tensors checked, unknown keys refused, missing ones from the defaults."""
        if "params" not in spec:
            raise ValueError(f"{name}: parameter group {g} has no 'params' entry")
        unknown = sorted(set(spec) - set(self.defaults) - {"params"})
        if unknown:
            raise ValueError(
                f"{name}: parameter group {g} has unknown option(s) {unknown}; this optimizer takes "
                f"{sorted(self.defaults)}"
            )
        tensors = spec["params"]
        tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
        if not tensors:
            raise ValueError(f"{name}: parameter group {g} is empty")
        for i, p in enumerate(tensors):
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"{name}: expected Parameters or tensors that require grad (e.g. model.parameters() or "
                    f"cr.tensor(a, requires_grad=True)), got {type(p).__name__} at position {i}"
                    + (f" of parameter group {g}" if g else "")
                )
            if not p.requires_grad:
                raise ValueError(f"{name}: a parameter of shape {p.shape} does not require grad")
        group = {**self.defaults, **{k: v for k, v in spec.items() if k != "params"}, "params": tensors}
        if not group["lr"] > 0:
            raise ValueError(f"{type(self).__name__}: lr must be positive, got {group['lr']}")
        self._check_group(group)
        return group

    def _check_group(self, group: dict[str, Any]) -> None:
        """Refuse a group's invalid hyperparameters (subclasses check their own)."""

    @property
    def lr(self) -> float:
        """The first parameter group's learning rate; setting it sets every group's (schedules do)."""
        return float(self.param_groups[0]["lr"])

    @lr.setter
    def lr(self, value: float) -> None:
        for group in self.param_groups:
            group["lr"] = value

    def rebind(self, params: Iterable[Tensor]) -> Optimizer:
        """A copy of this optimizer (class, hyperparameters, ``lr``, step count) over ``params``, with fresh state.

        Only an optimizer whose groups all share their hyperparameters can be rebound (the new
        one has one group); otherwise a ``ValueError``.

        Examples:
            >>> import chainrule as cr
            >>> opt = SGD([cr.tensor([1.0], requires_grad=True)], lr=0.5)
            >>> other = opt.rebind([cr.tensor([2.0, 3.0], requires_grad=True)])
            >>> type(other).__name__, other.lr, other.params[0].shape
            ('SGD', 0.5, (2,))
        """
        hypers = [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups]
        if any(h != hypers[0] for h in hypers):
            raise ValueError(
                f"{type(self).__name__}.rebind: its {len(hypers)} parameter groups have different "
                f"hyperparameters ({hypers}); one flat parameter list cannot keep them"
            )
        new = copy.copy(self)
        hyper = dict(hypers[0])
        Optimizer.__init__(new, params, hyper.pop("lr"), **hyper)
        new.steps = self.steps
        return new

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients (``set_to_none``: drop them, else write zeros into them)."""
        _not_captured(type(self).__name__, "zero_grad")
        for p in self.params:
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad._data[...] = 0

    def step(self) -> None:
        """Update every parameter from its ``.grad`` (parameters without one are left as they are)."""
        _not_captured(type(self).__name__, "step")
        if holds_any():  # else no live graph saved any array, so none of the parameters
            for p in self.params:
                _check_not_saved(p, type(self).__name__)
        self.steps += 1
        i = 0
        try:
            for group in self.param_groups:
                self._active = group  # what _update reads (its signature stays (w, g, state))
                for p in group["params"]:
                    if p.grad is not None:
                        self._update(p._data, p.grad._data, self.state[i])
                    i += 1
        finally:
            self._active = None

    def _update(self, w: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        """Update ``w`` in place from ``g`` with the hyperparameters of :meth:`_hyper`."""
        raise NotImplementedError

    def _hyper(self) -> dict[str, Any]:
        """The parameter group being stepped, or (outside ``step``) the defaults with the current ``lr``."""
        group = self._active
        return group if group is not None else {**self.defaults, "lr": self.lr}

    def state_dict(self) -> dict[str, Any]:
        """``lr``, ``steps``, the ``"i.slot"`` arrays of parameter ``i`` and, with several parameter
        groups, each group's hyperparameters as ``"group.g.name"`` scalars."""
        flat: dict[str, Any] = {"lr": self.lr, "steps": self.steps}
        for i, st in enumerate(self.state):
            for k, v in st.items():
                flat[f"{i}.{k}"] = v.copy()
        if len(self.param_groups) > 1:
            for g, group in enumerate(self.param_groups):
                for k, v in group.items():
                    if k != "params":
                        flat[f"group.{g}.{k}"] = np.asarray(v, dtype=np.float64)
        return flat

    def load_state_dict(self, flat: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (the parameter groups must be the same)."""
        groups = {k: v for k, v in flat.items() if k.startswith("group.")}
        count = len({k.split(".")[1] for k in groups})
        if count and count != len(self.param_groups):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the state has {count} parameter groups, "
                f"this optimizer {len(self.param_groups)}"
            )
        self.lr = float(flat["lr"])
        for key, value in groups.items():
            _, g, name = key.split(".", 2)
            group = self.param_groups[int(g)]
            if name not in group or name == "params":
                raise ValueError(f"{type(self).__name__}.load_state_dict: unknown group entry {key!r}")
            default = self.defaults[name]
            value = np.asarray(value)
            group[name] = tuple(float(v) for v in value) if isinstance(default, tuple) else type(default)(value.item())
        self.steps = int(flat["steps"])
        self.state = [{} for _ in self.params]
        for key, value in flat.items():
            if key in ("lr", "steps") or key in groups:
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
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(params, lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)

    def _check_group(self, group: dict[str, Any]) -> None:
        if group["momentum"] < 0 or group["weight_decay"] < 0:
            raise ValueError(
                f"SGD: momentum and weight_decay must be >= 0, got {group['momentum']}, {group['weight_decay']}"
            )

    def _update(self, w: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        # Python floats: NumPy converts each to the parameter's dtype before the arithmetic (NEP 50),
        # so a float32 parameter is updated in float32 (a NumPy float64 lr would make it float64)
        h = self._hyper()
        lr, momentum, weight_decay = float(h["lr"]), float(h["momentum"]), float(h["weight_decay"])
        if weight_decay and not momentum:
            # w - lr (g + λw) = (1 - lr λ) w - lr g, with no temporary for g + λw
            w *= 1 - lr * weight_decay
            w -= lr * g
            return
        if weight_decay:
            g = g + weight_decay * w
        if momentum:
            buf = state.get("momentum")
            if buf is None:
                buf = state["momentum"] = g.copy()
            else:
                buf *= momentum
                buf += g
            g = g + momentum * buf if h["nesterov"] else buf
        w -= lr * g


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
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        self.beta1, self.beta2 = betas

    def _update(self, w: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        # PyTorch's arithmetic, fused into one scratch array (no other temporaries):
        # m ← β1 m + (1-β1) g;  v ← β2 v + (1-β2) g²;  w ← w - lr/(1-β1ᵗ) · m / (√v / √(1-β2ᵗ) + ε)
        h = self._hyper()
        lr, weight_decay, (beta1, beta2) = h["lr"], h["weight_decay"], h["betas"]
        t = w.dtype.type
        if weight_decay and self.decoupled:
            w *= t(1 - lr * weight_decay)
        elif weight_decay:
            g = g + t(weight_decay) * w
        if "m" not in state:
            state["m"] = np.zeros_like(w)
            state["v"] = np.zeros_like(w)
        m, v = state["m"], state["v"]
        tmp = np.empty_like(w)
        m *= t(beta1)
        m += np.multiply(g, t(1 - beta1), out=tmp)
        v *= t(beta2)
        np.multiply(g, g, out=tmp)
        v += np.multiply(tmp, t(1 - beta2), out=tmp)
        np.sqrt(v, out=tmp)
        tmp /= t(math.sqrt(1 - beta2**self.steps))  # bias corrections; steps counts this step
        tmp += t(h["eps"])
        np.divide(m, tmp, out=tmp)
        w -= np.multiply(tmp, t(lr / (1 - beta1**self.steps)), out=tmp)


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
        params: Iterable[Any],
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
        self.base_lrs = _base_lrs(optimizer)

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)

    def set_epoch(self, epoch: int) -> None:
        """Set the learning rate of ``epoch`` (each parameter group's, from its own starting lr)."""
        _set_lrs(self.optimizer, [b * self.gamma ** (epoch // self.step_size) for b in self.base_lrs])


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
        self.base_lrs = _base_lrs(optimizer)

    def lr_at(self, epoch: int) -> float:
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.t_max)) / 2

    def set_epoch(self, epoch: int) -> None:
        """Set the learning rate of ``epoch`` (each parameter group's, from its own starting lr)."""
        c = (1 + math.cos(math.pi * epoch / self.t_max)) / 2
        _set_lrs(self.optimizer, [self.eta_min + (b - self.eta_min) * c for b in self.base_lrs])


def _base_lrs(optimizer: Stepper) -> list[float]:
    groups = getattr(optimizer, "param_groups", None)
    return [float(g["lr"]) for g in groups] if groups else [optimizer.lr]


def _set_lrs(optimizer: Stepper, lrs: list[float]) -> None:
    groups = getattr(optimizer, "param_groups", None)
    if groups and len(groups) == len(lrs) > 1:
        for group, lr in zip(groups, lrs, strict=True):
            group["lr"] = lr
    else:
        optimizer.lr = lrs[0]
