"""Tensor constructors with NumPy names; float32 unless a dtype is given."""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.core.random import GENERATOR
from chainrule.core.tensor import Tensor


def _dtype(dtype: Any) -> np.dtype[Any]:
    return np.dtype(np.float32 if dtype is None else dtype)


def _as_shape(shape: Any) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], tuple | list):
        return tuple(shape[0])
    return tuple(shape)


def as_tensor(data: Any, dtype: Any = None) -> Tensor:
    """A tensor of ``data`` without copying when no conversion is needed (it shares the memory).

    Same dtype rule as :func:`tensor`: ``dtype`` if given, else float data become float32
    (a float64 array is then copied), other dtypes are kept.
    """
    if isinstance(data, Tensor):
        return data if dtype is None or data.dtype == np.dtype(dtype) else data.astype(dtype)
    array = np.asarray(data, dtype=dtype)
    if dtype is None and array.dtype.kind == "f" and array.dtype != np.float32:
        array = array.astype(np.float32)
    return Tensor._make(array, None)


def zeros(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros of the given shape (``cr.zeros(2, 3)`` or ``cr.zeros((2, 3))``); float32 unless ``dtype``.

    Examples:
        >>> import chainrule as cr
        >>> cr.zeros(2, 3).shape, cr.zeros(2, 3).dtype.name
        ((2, 3), 'float32')
    """
    return Tensor(np.zeros(_as_shape(shape), _dtype(dtype)), requires_grad, dtype=_dtype(dtype))


def ones(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones of the given shape; float32 unless ``dtype``.

    Examples:
        >>> import chainrule as cr
        >>> cr.ones(2, dtype="float64").numpy().tolist()
        [1.0, 1.0]
    """
    return Tensor(np.ones(_as_shape(shape), _dtype(dtype)), requires_grad, dtype=_dtype(dtype))


def empty(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of the given shape whose values are whatever the memory held; float32 unless ``dtype``.

    Examples:
        >>> import chainrule as cr
        >>> cr.empty(3, 4).shape
        (3, 4)
    """
    return Tensor(np.empty(_as_shape(shape), _dtype(dtype)), requires_grad, dtype=_dtype(dtype))


def full(shape: Any, fill_value: float, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ``shape`` filled with ``fill_value``; float32 unless ``dtype``.

    Examples:
        >>> import chainrule as cr
        >>> cr.full((2,), 0.5).numpy().tolist()
        [0.5, 0.5]
    """
    shp = (shape,) if isinstance(shape, int) else tuple(shape)
    return Tensor(np.full(shp, fill_value, _dtype(dtype)), requires_grad, dtype=_dtype(dtype))


def zeros_like(x: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Zeros with the shape (and, unless ``dtype`` is given, the dtype) of ``x``.

    Examples:
        >>> import numpy as np, chainrule as cr
        >>> cr.zeros_like(np.ones((2, 2), np.float64)).dtype.name
        'float64'
    """
    arr = x._data if isinstance(x, Tensor) else np.asarray(x)
    return Tensor(np.zeros(arr.shape, dtype or arr.dtype), requires_grad, dtype=dtype or arr.dtype)


def ones_like(x: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Ones with the shape (and, unless ``dtype`` is given, the dtype) of ``x``.

    Examples:
        >>> import chainrule as cr
        >>> cr.ones_like(cr.zeros(3)).numpy().tolist()
        [1.0, 1.0, 1.0]
    """
    arr = x._data if isinstance(x, Tensor) else np.asarray(x)
    return Tensor(np.ones(arr.shape, dtype or arr.dtype), requires_grad, dtype=dtype or arr.dtype)


def randn(*shape: Any, dtype: Any = None, requires_grad: bool = False, seed: int | None = None) -> Tensor:
    """Standard normal samples of the given shape (NumPy's ``default_rng(seed)``; without a seed the
    default generator, which ``cr.manual_seed`` seeds); float32 unless ``dtype``.

    Examples:
        >>> import chainrule as cr
        >>> cr.randn(2, 3, seed=0).shape
        (2, 3)
    """
    rng = np.random.default_rng(seed) if seed is not None else GENERATOR
    data = rng.standard_normal(_as_shape(shape)).astype(_dtype(dtype))
    return Tensor(data, requires_grad, dtype=_dtype(dtype))


def arange(*args: Any, dtype: Any = None) -> Tensor:
    """Evenly spaced values like ``np.arange``; floats become float32, integers keep their dtype.

    Examples:
        >>> import chainrule as cr
        >>> cr.arange(4).numpy().tolist(), cr.arange(0.0, 1.0, 0.5).dtype.name
        ([0, 1, 2, 3], 'float32')
    """
    data = np.arange(*args)
    return Tensor(data, dtype=dtype if dtype is not None else (np.float32 if data.dtype.kind == "f" else data.dtype))
