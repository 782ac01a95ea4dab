"""chainrule: automatic differentiation on NumPy with the computational graph as a first-class object.

The subpackages ``nn``, ``optim``, ``data``, ``viz``, ``linalg``, ``memory``, ``plan``,
``models``, ``train`` and ``cli``, and the transforms and instruments (``cr.grad``,
``cr.compile``, ``cr.checkpoint``, ``cr.check_grad``, ``cr.eval_shape``, ``cr.cost``, ...) are
imported on first use (``cr.optim.SGD`` works after a plain ``import chainrule``), so importing
chainrule loads only the engine and its operations.

Examples:
    >>> import chainrule as cr
    >>> x = cr.tensor([1.0, 2.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    tensor([2., 4.])
    >>> cr.optim.SGD([x], lr=0.1).lr
    0.1
"""

import importlib
from typing import TYPE_CHECKING, Any

from chainrule import ops

if TYPE_CHECKING:  # for type checkers and linters; at run time these load on first use (below)
    from chainrule import cli, data, models, nn, optim, plan, train, viz  # noqa: F401
    from chainrule.measure import memory  # noqa: F401
    from chainrule.ops import linalg  # noqa: F401
from chainrule.core.constructors import (
    arange,
    as_tensor,
    empty,
    full,
    ones,
    ones_like,
    randn,
    zeros,
    zeros_like,
)
from chainrule.core.errors import (
    AnomalyError,
    ChainruleError,
    DataError,
    DTypeError,
    GraphReleasedError,
    InPlaceError,
    ShapeError,
)
from chainrule.core.interpret import GraphHook, Interpreter, detect_anomaly, hook
from chainrule.core.node import Meta, Node
from chainrule.core.primitive import Primitive
from chainrule.core.state import enable_grad, is_grad_enabled, no_grad
from chainrule.core.tensor import Tensor, tensor
from chainrule.ops import *  # noqa: F403  (the NumPy-named operations are the public API)
from chainrule.ops import __all__ as _ops_all

if TYPE_CHECKING:  # the transforms and instruments: at run time each loads on first use (below)
    from chainrule.measure.cost import cost
    from chainrule.measure.shapes import ShapeDtype, eval_shape
    from chainrule.train.threads import set_threads
    from chainrule.transforms.check import GradCheckError, GradCheckReport, check_grad
    from chainrule.transforms.compile import compile
    from chainrule.transforms.functional import (
        grad,
        gradients,
        hessian,
        hvp,
        jacfwd,
        jacobian,
        jacrev,
        jvp,
        value_and_grad,
        vjp,
    )
    from chainrule.transforms.remat import checkpoint
    from chainrule.transforms.tree import tree_flatten, tree_map, tree_unflatten

float32 = "float32"
float64 = "float64"

__version__ = "0.1.0"

# Names loaded on first attribute access (PEP 562), so ``import chainrule`` loads only the engine
# and its operations: a training script does not pay (in memory and start-up time) for the
# transforms, the instruments and the namespaces it never touches.
_FUNCTIONAL = ("grad", "gradients", "hessian", "hvp", "jacfwd", "jacobian", "jacrev", "jvp", "value_and_grad", "vjp")
_LAZY_NAMES = {
    "cost": "chainrule.measure.cost",
    "ShapeDtype": "chainrule.measure.shapes",
    "eval_shape": "chainrule.measure.shapes",
    "set_threads": "chainrule.train.threads",
    "GradCheckError": "chainrule.transforms.check",
    "GradCheckReport": "chainrule.transforms.check",
    "check_grad": "chainrule.transforms.check",
    "compile": "chainrule.transforms.compile",
    "checkpoint": "chainrule.transforms.remat",
    "tree_flatten": "chainrule.transforms.tree",
    "tree_map": "chainrule.transforms.tree",
    "tree_unflatten": "chainrule.transforms.tree",
    **dict.fromkeys(_FUNCTIONAL, "chainrule.transforms.functional"),
}
_LAZY_SUBMODULES = {
    "cli": "chainrule.cli",
    "data": "chainrule.data",
    "linalg": "chainrule.ops.linalg",
    "memory": "chainrule.measure.memory",
    "models": "chainrule.models",
    "nn": "chainrule.nn",
    "optim": "chainrule.optim",
    "plan": "chainrule.plan",
    "train": "chainrule.train",
    "viz": "chainrule.viz",
}


def manual_seed(seed: int) -> Any:
    """Seed the default generator that ``nn`` layers' initialisation, ``Dropout`` masks and
    ``DataLoader`` shuffling draw from (as ``torch.manual_seed``); returns it. See
    :mod:`chainrule.data.rng`.

    Examples:
        >>> import chainrule as cr
        >>> _ = cr.manual_seed(0)
        >>> a = cr.nn.Dropout(0.5)(cr.ones(6)).numpy()
        >>> _ = cr.manual_seed(0)
        >>> bool((cr.nn.Dropout(0.5)(cr.ones(6)).numpy() == a).all())
        True
    """
    from chainrule.data.rng import manual_seed as seed_default_generator

    return seed_default_generator(seed)


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        value = importlib.import_module(_LAZY_SUBMODULES[name])
    elif name in _LAZY_NAMES:
        value = getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    else:
        raise AttributeError(f"module 'chainrule' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_SUBMODULES) | set(_LAZY_NAMES))


__all__ = [
    "AnomalyError",
    "ChainruleError",
    "DTypeError",
    "DataError",
    "GradCheckError",
    "GradCheckReport",
    "GraphReleasedError",
    "GraphHook",
    "InPlaceError",
    "Interpreter",
    "Meta",
    "Node",
    "Primitive",
    "ShapeDtype",
    "ShapeError",
    "Tensor",
    "arange",
    "as_tensor",
    "check_grad",
    "checkpoint",
    "compile",
    "cost",
    "data",
    "detect_anomaly",
    "empty",
    "enable_grad",
    "eval_shape",
    "full",
    "grad",
    "gradients",
    "hessian",
    "hook",
    "hvp",
    "is_grad_enabled",
    "jacfwd",
    "jacobian",
    "jacrev",
    "tree_flatten",
    "tree_map",
    "tree_unflatten",
    "jvp",
    "linalg",
    "manual_seed",
    "memory",
    "nn",
    "no_grad",
    "ones",
    "ones_like",
    "ops",
    "optim",
    "plan",
    "randn",
    "set_threads",
    "tensor",
    "train",
    "value_and_grad",
    "vjp",
    "viz",
    "zeros",
    "zeros_like",
    *_ops_all,
]
