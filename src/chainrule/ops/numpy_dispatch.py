"""NumPy's own functions on tensors: ``np.exp(t)``, ``np.dot(t, t)``, ``np.sum(t)`` record like ``cr.`` calls.

Tensor implements NumPy's dispatch protocols (NEP 13 ``__array_ufunc__`` and NEP 18
``__array_function__``): a NumPy ufunc or function called with a tensor among its
arguments runs chainrule's operation of the same name (``np.linalg.x`` runs
``cr.linalg.x``). A function chainrule does not have raises a ``TypeError`` naming it;
nothing falls back silently to plain arrays while a gradient is being recorded.
"""

from __future__ import annotations

import importlib
from typing import Any

from chainrule.core.tensor import Tensor

# NumPy names whose chainrule counterpart is spelled differently.
_ALIASES = {"true_divide": "divide", "absolute": "abs", "amax": "max", "amin": "min", "concat": "concatenate"}


def _lookup(name: str, module: str) -> Any:
    name = _ALIASES.get(name, name)
    try:
        target = importlib.import_module(
            "chainrule.ops.linalg" if module.startswith("numpy.linalg") else "chainrule.ops"
        )
    except ImportError:
        return None
    fn = getattr(target, name, None)
    return fn if callable(fn) and name in getattr(target, "__all__", ()) else None


def _unsupported(what: str) -> TypeError:
    return TypeError(
        f"{what} is not supported on chainrule tensors: chainrule has no differentiable version of it. "
        f"Use a chainrule operation, or call it on t.numpy() / cr.stop_gradient(t) if no gradient is needed"
    )


def array_ufunc(self: Tensor, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
    """``np.<ufunc>(..., tensor, ...)`` runs chainrule's operation of the same name."""
    if method != "__call__":
        raise _unsupported(f"np.{ufunc.__name__}.{method}")
    if kwargs.get("out") is not None:
        raise TypeError(f"np.{ufunc.__name__}: out= is not supported on tensors (tensors are not written in place)")
    if set(kwargs) - {"out"}:
        raise TypeError(f"np.{ufunc.__name__}: keyword arguments {sorted(kwargs)} are not supported on tensors")
    fn = _lookup(ufunc.__name__, "numpy")
    if fn is None:
        raise _unsupported(f"np.{ufunc.__name__}")
    return fn(*inputs)


def array_function(self: Tensor, func: Any, types: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``np.<function>(..., tensor, ...)`` runs chainrule's function of the same name and signature."""
    fn = _lookup(func.__name__, func.__module__ or "numpy")
    if fn is None:
        raise _unsupported(f"{func.__module__}.{func.__name__}")
    return fn(*args, **kwargs)


def install() -> None:
    """Attach the protocols to :class:`Tensor` (done once, when ``chainrule.ops`` is imported)."""
    Tensor.__array_ufunc__ = array_ufunc  # type: ignore[attr-defined]
    Tensor.__array_function__ = array_function  # type: ignore[attr-defined]


__all__: list[str] = []
