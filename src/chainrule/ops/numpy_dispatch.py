"""NumPy's own functions on tensors: ``np.exp(t)``, ``np.dot(t, t)``, ``np.sum(t)`` record like ``cr.`` calls.

Tensor implements NumPy's dispatch protocols (NEP 13 ``__array_ufunc__`` and NEP 18
``__array_function__``): a NumPy ufunc or function called with a tensor among its
arguments runs chainrule's operation of the same name (``np.linalg.x`` runs
``cr.linalg.x``). A function chainrule does not have raises a ``TypeError`` naming it;
nothing falls back silently to plain arrays while a gradient is being recorded.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from typing import Any

import numpy as np

from chainrule.core.primitive import Primitive
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


# Functions that only read shapes or compare values: run on the tensors' arrays (no gradient to record).
_ON_DATA = frozenset(
    {"ndim", "shape", "size", "result_type", "iscomplexobj", "isrealobj", "may_share_memory", "shares_memory"}
)
# A ufunc's keyword arguments at their defaults (NumPy passes them on): accepted and dropped.
_UFUNC_DEFAULTS: dict[str, Any] = {"where": True, "casting": "same_kind", "order": "K", "subok": True}


def _data(x: Any) -> Any:
    if isinstance(x, Tensor):
        return x._data
    if type(x) is list or type(x) is tuple:
        return type(x)(_data(e) for e in x)
    return x


@functools.lru_cache(maxsize=512)
def _parameters(fn: Any) -> tuple[frozenset[str], bool, dict[str, Any]]:
    """The keyword names ``fn`` takes, whether it takes ``**kwargs``, and its defaults."""
    if isinstance(fn, Primitive):  # a primitive's keywords are its rule parameters, not NumPy's
        return frozenset(), False, {}
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return frozenset(), True, {}
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    defaults = {n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty}
    return frozenset(params), var_kw, defaults


def _is_default(value: Any, default: Any) -> bool:
    if value is default:
        return True
    try:
        return bool(type(value) is type(default) and value == default)
    except (TypeError, ValueError):
        return False


def _numpy_kwargs(what: str, fn: Any, kwargs: dict[str, Any], numpy_defaults: dict[str, Any]) -> tuple[Any, Any]:
    """Split NumPy's keyword arguments: those ``fn`` takes are kept; ``out=None``, ``dtype=None``
    and others at NumPy's defaults are dropped; ``dtype=`` is returned, to be checked against the
    result; anything else is refused by name."""
    names, var_kw, _ = _parameters(fn)
    kept: dict[str, Any] = {}
    dtype = None
    for key, value in kwargs.items():
        if var_kw or key in names:
            kept[key] = value
        elif key == "out":
            if value is not None:
                raise TypeError(f"{what}: out= is not supported on tensors (tensors are not written in place)")
        elif key == "dtype":
            dtype = value
        elif key in numpy_defaults and _is_default(value, numpy_defaults[key]):
            continue
        else:
            raise TypeError(
                f"{what}: keyword argument {key}={value!r} is not supported on tensors "
                f"(chainrule's version takes {sorted(n for n in names if not n.startswith('_')) or 'none'})"
            )
    return kept, dtype


def _check_dtype(what: str, result: Any, dtype: Any) -> Any:
    """Honour NumPy's ``dtype=`` when the result already has it; refuse by name otherwise."""
    if dtype is None:
        return result
    have = getattr(result, "dtype", None)
    if have is None and isinstance(result, list | tuple) and result:
        have = getattr(result[0], "dtype", None)
    if have is not None and np.dtype(have) == np.dtype(dtype):
        return result
    raise TypeError(
        f"{what}: dtype={np.dtype(dtype).name} is not supported here (the result is {have}); "
        f"cast the operands or the result with .astype({np.dtype(dtype).name!r}) instead"
    )


def array_ufunc(self: Tensor, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
    """``np.<ufunc>(..., tensor, ...)`` runs chainrule's operation of the same name."""
    what = f"np.{ufunc.__name__}"
    if method != "__call__":
        raise _unsupported(f"{what}.{method}")
    fn = _lookup(ufunc.__name__, "numpy")
    if fn is None:
        raise _unsupported(what)
    kept, dtype = _numpy_kwargs(what, fn, kwargs, _UFUNC_DEFAULTS)
    return _check_dtype(what, fn(*inputs, **kept), dtype)


def array_function(self: Tensor, func: Any, types: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``np.<function>(..., tensor, ...)`` runs chainrule's function of the same name and signature.

    NumPy's keyword arguments at their defaults (``out=None``, ``dtype=None``, ...) are accepted;
    ``dtype=`` naming the result's own dtype too; anything else is refused by name.
    """
    what = f"{func.__module__}.{func.__name__}"
    if func.__name__ in _ON_DATA:
        return func(*_data(args), **_data(kwargs))
    fn = _lookup(func.__name__, func.__module__ or "numpy")
    if fn is None:
        raise _unsupported(what)
    kept, dtype = _numpy_kwargs(what, fn, kwargs, _parameters(func)[2])
    return _check_dtype(what, fn(*args, **kept), dtype)


def install() -> None:
    """Attach the protocols to :class:`Tensor` (done once, when ``chainrule.ops`` is imported)."""
    Tensor.__array_ufunc__ = array_ufunc  # type: ignore[attr-defined]
    Tensor.__array_function__ = array_function  # type: ignore[attr-defined]


__all__: list[str] = []
