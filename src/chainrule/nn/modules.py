"""Modules in the PyTorch style: parameters are discovered from attributes, in definition order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from chainrule.core import inplace
from chainrule.core.errors import ShapeError
from chainrule.core.tensor import Tensor
from chainrule.data.rng import default_generator
from chainrule.nn import functional as F
from chainrule.nn import hooks
from chainrule.nn import init as initializers
from chainrule.ops import reshape


class Parameter(Tensor):
    """A leaf tensor that a Module registers as trainable.

    ``data``: an array, list or tensor of any shape; float data keep their dtype, integer data
    become float32. ``requires_grad`` is True unless given.

    Examples:
        >>> w = Parameter([[1.0, 2.0]])
        >>> w.shape, w.dtype, w.requires_grad
        ((1, 2), dtype('float64'), True)
    """

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        array = np.asarray(data._data if isinstance(data, Tensor) else data)
        if array.dtype.kind != "f":
            array = array.astype(np.float32)
        super().__init__(array, requires_grad=requires_grad, dtype=array.dtype)


class Module:
    """Base class of layers and models: subclass it and define ``forward``.

    Parameters and sub-modules are found by looking at the attributes, in assignment order;
    ``parameters()`` lists them for an optimizer, ``named_parameters()`` with PyTorch-style names,
    ``train()``/``eval()`` switch dropout, ``state_dict()``/``load_state_dict()`` copy the arrays.

    Examples:
        >>> import numpy as np
        >>> class Affine(Module):
        ...     def __init__(self):
        ...         self.w = Parameter(np.ones(3, np.float32))
        ...     def forward(self, x):
        ...         return x * self.w
        >>> m = Affine()
        >>> [name for name, _ in m.named_parameters()], m.num_parameters()
        (['w'], 3)
    """

    training: bool = True

    def _children(self) -> Iterator[tuple[str, Parameter | Module]]:
        for name, value in vars(self).items():
            if isinstance(value, Parameter | Module):
                yield name, value
            elif isinstance(value, list | tuple):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield f"{name}.{i}", item

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.forward is not defined")

    def __call__(self, *args: Any) -> Any:
        own = self.__dict__.get("_forward_hooks")
        if own is None and not hooks.GLOBAL_PRE and not hooks.GLOBAL_POST:
            return self.forward(*args)
        pre = [*hooks.GLOBAL_PRE.values(), *(own[0].values() if own else ())]
        post = [*hooks.GLOBAL_POST.values(), *(own[1].values() if own else ())]
        return hooks.call(self, args, pre, post)

    def register_forward_pre_hook(self, hook: Callable[..., Any]) -> hooks.RemovableHandle:
        """Call ``hook(module, args)`` before each ``forward`` (a non-None result replaces ``args``)."""
        return hooks.add(self._hook_tables()[0], hook)

    def register_forward_hook(self, hook: Callable[..., Any]) -> hooks.RemovableHandle:
        """Call ``hook(module, args, output)`` after each ``forward`` (a non-None result replaces it)."""
        return hooks.add(self._hook_tables()[1], hook)

    def _hook_tables(self) -> tuple[dict[int, Any], dict[int, Any]]:
        tables = self.__dict__.get("_forward_hooks")
        if tables is None:
            tables = self.__dict__["_forward_hooks"] = ({}, {})
        return tables

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        stack: list[tuple[str, Module]] = [(prefix, self)]
        seen: set[int] = set()
        while stack:  # iterative: arbitrarily deep module trees
            pre, module = stack.pop(0)
            subs = []
            for name, child in module._children():
                if isinstance(child, Parameter):
                    if id(child) not in seen:
                        seen.add(id(child))
                        yield pre + name, child
                else:
                    subs.append((f"{pre}{name}.", child))
            stack[0:0] = subs

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def modules(self) -> Iterator[Module]:
        stack: list[Module] = [self]
        seen: set[int] = set()
        while stack:
            m = stack.pop(0)
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield m
            stack[0:0] = [c for _, c in m._children() if isinstance(c, Module)]

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter's array, by PyTorch-style name ("0.weight", ...).

        A ``LazyLinear`` that was never called has no weight yet: that raises a ``ShapeError``
        saying to call the model once (PyTorch stores an uninitialised placeholder instead).
        """
        named = list(self.named_parameters())
        for m in self.modules():
            if isinstance(m, LazyLinear) and not m.initialized:
                name = next(n for n, p in named if p is m.weight)
                raise ShapeError(
                    f"state_dict: '{name}' belongs to a LazyLinear({m.out_features}) that was never called, so "
                    f"it has no shape or values yet (got {m.weight.shape}); call the model once on a batch "
                    f"(model(x[:1])) before saving, or use nn.Linear(in_features, {m.out_features})"
                )
        return {name: p._data.copy() for name, p in named}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy ``state``'s arrays into the parameters (same names and shapes; cast to their dtype).

        Everything is checked before anything is written. A ``LazyLinear`` not yet called takes its
        ``in_features`` from the loaded weight, as PyTorch materialises lazy parameters (its
        ``out_features`` must match: PyTorch does not check that).
        """
        own = dict(self.named_parameters())
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise KeyError(f"load_state_dict: missing {missing}, unexpected {unexpected}")
        lazy = {id(m.weight): m for m in self.modules() if isinstance(m, LazyLinear) and not m.initialized}
        values = {}
        for name, p in own.items():
            value = np.asarray(state[name])
            m = lazy.get(id(p))
            if m is not None:
                m._check_loaded(name, value)
            elif value.shape != p.shape:
                raise ShapeError(f"load_state_dict: {name} has shape {p.shape}, checkpoint gives {value.shape}")
            values[name] = value.astype(p.dtype, copy=True)
        for name, p in own.items():
            m = lazy.get(id(p))
            if m is not None:
                m._materialise(values[name])
            else:
                p._data = values[name]

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())


class Linear(Module):
    """y = x Wᵀ + b with W of shape (out_features, in_features), as in PyTorch.

    Input (..., in_features), output (..., out_features), float32 parameters; ``init`` names an
    initializer of ``chainrule.nn.init`` ("normal", "xavier", "he", "he_uniform") or is a
    function ``(shape, rng) -> array``.

    Examples:
        >>> import numpy as np, chainrule as cr
        >>> layer = Linear(784, 256, rng=np.random.default_rng(0))
        >>> layer.weight.shape, layer.bias.shape, layer.weight.dtype
        ((256, 784), (256,), dtype('float32'))
        >>> layer(cr.tensor(np.zeros((32, 784)))).shape
        (32, 256)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        init: str | Callable[..., np.ndarray] = "he_uniform",
        rng: np.random.Generator | None = None,
    ) -> None:
        rng = rng if rng is not None else default_generator()
        init_fn = initializers.INITIALIZERS[init] if isinstance(init, str) else init
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(init_fn((out_features, in_features), rng))
        self.bias = Parameter(np.zeros(out_features, np.float32)) if bias else None

    def forward(self, x: Any) -> Any:
        x = F._operand(x)  # lists and arrays are accepted as everywhere else
        if x.shape[-1] != self.in_features:
            raise ShapeError(f"Linear: expected input with {self.in_features} features, got shape {x.shape}")
        out = x @ self.weight.T
        return out + self.bias if self.bias is not None else out


class LazyLinear(Linear):
    """A :class:`Linear` whose ``in_features`` is the last axis of its first input (``nn.LazyLinear``).

    Until the first call ``weight`` is a Parameter of shape (out_features, 0) (an optimizer can
    already hold it: it is filled in place) and ``in_features`` is None; the first call on a real
    array fixes both, after which it is a ``Linear`` (another width is a ``ShapeError``). The fills
    applied before (the book's ``net.weight.data.normal_(0, 0.01)``; also ``uniform_``, ``fill_``,
    ``zero_``) are kept and applied, in order, after the initialiser (PyTorch silently drops them);
    other in-place updates of the empty weight raise ``InPlaceError``. ``load_state_dict`` before
    the first call takes ``in_features`` from the checkpoint; ``state_dict`` before it raises.
    Shape-only evaluation (``cr.memory.estimate``, ``cr.plan.fit_budget``, ``cr.eval_shape``) cannot
    infer the weight: before the first call it raises a ``ShapeError`` saying to call the model once.

    Examples:
        >>> import numpy as np, chainrule as cr
        >>> layer = LazyLinear(3, rng=np.random.default_rng(0))
        >>> layer.weight.shape, layer.in_features
        ((3, 0), None)
        >>> _ = layer.weight.data.fill_(0.5)  # kept until the weight exists
        >>> layer(cr.tensor(np.ones((2, 5)))).shape, layer.weight.shape
        ((2, 3), (3, 5))
        >>> float(layer.weight.numpy().max())
        0.5
    """

    def __init__(
        self,
        out_features: int,
        bias: bool = True,
        init: str | Callable[..., np.ndarray] = "he_uniform",
        rng: np.random.Generator | None = None,
    ) -> None:
        if type(out_features) is not int or out_features < 1:
            raise ValueError(f"LazyLinear: out_features must be a positive integer, got {out_features!r}")
        self._rng = rng if rng is not None else default_generator()
        self._init = initializers.INITIALIZERS[init] if isinstance(init, str) else init
        self.out_features = out_features
        self.in_features: int | None = None  # type: ignore[assignment]
        self.weight = Parameter(np.zeros((out_features, 0), np.float32))
        inplace.placeholder(self.weight._data, f"LazyLinear({out_features}).weight")
        self.bias = Parameter(np.zeros(out_features, np.float32)) if bias else None

    @property
    def initialized(self) -> bool:
        """Whether the first call (or ``load_state_dict``) has fixed ``in_features`` and the weight."""
        return self.in_features is not None

    def _check_loaded(self, name: str, value: np.ndarray) -> None:
        """Refuse a checkpoint weight that cannot be this layer's (before anything is written)."""
        if value.ndim != 2 or value.shape[0] != self.out_features or value.shape[1] < 1:
            raise ShapeError(
                f"load_state_dict: {name} of LazyLinear({self.out_features}) must have shape "
                f"({self.out_features}, in_features) with in_features >= 1, checkpoint gives {value.shape}"
            )

    def _materialise(self, values: np.ndarray | None, in_features: int = 0) -> None:
        """Fix ``in_features`` and the weight: ``values`` loaded, or (None) the initialiser and the kept fills."""
        placeholder = self.weight._data
        if values is None:
            values = np.asarray(self._init((self.out_features, in_features), self._rng))
            inplace.materialise(placeholder, values)
        else:
            inplace.materialise(placeholder, None)  # loaded values replace the fills
        self.in_features = int(values.shape[1])
        self.weight._data = values

    def forward(self, x: Any) -> Any:
        """``x Wᵀ + b``; the first call fixes ``in_features`` from ``x``'s last axis."""
        if self.in_features is None:
            x = F._operand(x)
            a = x._data
            if a.ndim == 0:
                raise ShapeError("LazyLinear: expected input of shape (..., in_features), got a 0-d tensor")
            if a.ndim and a.flags.writeable and not any(a.strides) and a.size:  # a shape-only placeholder
                raise ShapeError(
                    f"LazyLinear({self.out_features}): its weight's shape is inferred on the first call, and "
                    f"shape-only evaluation (cr.memory.estimate, cr.plan.fit_budget, cr.eval_shape) cannot make "
                    f"it; call the model once on a real batch (e.g. model(x[:1])) first, or use "
                    f"nn.Linear(in_features, {self.out_features})"
                )
            self._materialise(None, int(x.shape[-1]))
        return super().forward(x)


class Sequential(Module):
    """Layers applied one after another; parameters are named "0.weight", "2.bias", ... as in PyTorch.

    ``checkpoint_every=k`` (k > 0) runs each run of k layers under ``chainrule.transforms.remat.checkpoint``:
    only every k-th activation is kept, the rest are recomputed in backward (k = ⌈√n⌉ is Chen
    et al.'s rule, ``chainrule.transforms.remat.sqrt_segments``).

    Examples:
        >>> import numpy as np, chainrule as cr
        >>> rng = np.random.default_rng(0)
        >>> net = Sequential(Linear(4, 8, rng=rng), ReLU(), Linear(8, 3, rng=rng))
        >>> [name for name, _ in net.named_parameters()]
        ['0.weight', '0.bias', '2.weight', '2.bias']
        >>> net(cr.tensor(np.ones((5, 4)))).shape
        (5, 3)
    """

    def __init__(self, *layers: Module, checkpoint_every: int = 0) -> None:
        if type(checkpoint_every) is not int or checkpoint_every < 0:
            raise ValueError(f"Sequential: checkpoint_every must be an integer >= 0, got {checkpoint_every!r}")
        self.layers = list(layers)
        self.checkpoint_every = checkpoint_every

    def _children(self) -> Iterator[tuple[str, Parameter | Module]]:
        for i, layer in enumerate(self.layers):  # PyTorch's names: "0.weight", "1.bias", ...
            yield str(i), layer

    def forward(self, x: Any) -> Any:
        if self.checkpoint_every:
            from chainrule.transforms.remat import checkpoint_sequential

            return checkpoint_sequential(self.layers, x, self.checkpoint_every)
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, i: int) -> Module:
        layer: Module = self.layers[i]
        return layer

    def __len__(self) -> int:
        return len(self.layers)


class ReLU(Module):
    """``F.relu`` as a layer: max(x, 0), any shape, dtype kept.

    Examples:
        >>> import chainrule as cr
        >>> ReLU()(cr.tensor([-1.0, 2.0]))
        tensor([0., 2.])
    """

    def forward(self, x: Any) -> Any:
        return F.relu(x)


class Tanh(Module):
    """``F.tanh`` as a layer: any shape, dtype kept.

    Examples:
        >>> import chainrule as cr
        >>> Tanh()(cr.tensor([0.0]))
        tensor([0.])
    """

    def forward(self, x: Any) -> Any:
        return F.tanh(x)


class Sigmoid(Module):
    """``F.sigmoid`` as a layer: 1 / (1 + exp(-x)), any shape, dtype kept.

    Examples:
        >>> import chainrule as cr
        >>> Sigmoid()(cr.tensor([0.0]))
        tensor([0.5])
    """

    def forward(self, x: Any) -> Any:
        return F.sigmoid(x)


class Flatten(Module):
    """Reshape (batch, d1, d2, ...) to (batch, d1·d2·...); dtype kept.

    Examples:
        >>> import numpy as np, chainrule as cr
        >>> Flatten()(cr.tensor(np.zeros((2, 28, 28)))).shape
        (2, 784)
    """

    def forward(self, x: Any) -> Any:
        x = F._operand(x)
        return reshape(x, (x.shape[0], -1))


class MSELoss(Module):
    """``F.mse_loss`` as a module (PyTorch's ``nn.MSELoss``): mean (or ``reduction="sum"``/``"none"``)
    of the squared differences; prediction and target of the same shape.

    Examples:
        >>> float(MSELoss()([1.0, 2.0], [1.0, 4.0]))
        2.0
    """

    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = reduction

    def forward(self, prediction: Any, target: Any) -> Any:
        return F.mse_loss(prediction, target, reduction=self.reduction)


class Dropout(Module):
    """Zero each element with probability p in training, scale the rest by 1/(1-p).

    Any shape, dtype kept; the identity after ``model.eval()``. ``seed`` seeds its own generator;
    without it the masks come from the default generator (``cr.manual_seed`` makes them reproducible).

    Examples:
        >>> import numpy as np, chainrule as cr
        >>> drop = Dropout(0.5, seed=0)
        >>> drop(cr.tensor(np.ones(4)))
        tensor([2., 2., 2., 0.])
        >>> drop.eval()(cr.tensor(np.ones(4)))
        tensor([1., 1., 1., 1.])
    """

    def __init__(self, p: float = 0.5, seed: int | None = None) -> None:
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p
        self.rng = np.random.default_rng(seed) if seed is not None else default_generator()
        self.draws_per_example: int | None = None  # random numbers drawn per example (seen in training)

    def forward(self, x: Any) -> Any:
        if self.training and self.p > 0:
            shape = x.shape if hasattr(x, "shape") else np.shape(x)
            self.draws_per_example = int(np.prod(shape[1:]))
        return F.dropout(x, self.p, self.rng, self.training)
