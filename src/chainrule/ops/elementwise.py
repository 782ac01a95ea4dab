"""Elementwise primitives, each followed by its derivative rules.

Rules receive ``(g, out, *inputs)``; unbroadcasting is done once, by the engine.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.core.tensor import Primitive


def _float_mask(mask: Any, like: Any) -> Any:
    return mask.astype(like.dtype)


add: Primitive = Primitive("add", np.add)
add.defvjp(lambda g, out, x, y: g, lambda g, out, x, y: g)

subtract: Primitive = Primitive("subtract", np.subtract)
subtract.defvjp(lambda g, out, x, y: g, lambda g, out, x, y: negative(g))

multiply: Primitive = Primitive("multiply", np.multiply, save=(0, 1))
multiply.defvjp(lambda g, out, x, y: g * y, lambda g, out, x, y: g * x)

divide: Primitive = Primitive("divide", np.true_divide, save=(0, 1))
divide.defvjp(
    lambda g, out, x, y: g / y,
    lambda g, out, x, y: negative(g) * x / (y * y),
)

power: Primitive = Primitive("power", np.power, save=(0, 1), save_output=True)
power.defvjp(
    lambda g, out, x, y: g * y * x ** (y - 1),
    lambda g, out, x, y: g * out * log(where(x > 0, x, 1)),  # d/dy x**y, defined where x > 0
)

negative: Primitive = Primitive("negative", np.negative)
negative.defvjp(lambda g, out, x: negative(g))

exp: Primitive = Primitive("exp", np.exp, save_output=True)
exp.defvjp(lambda g, out, x: g * out)

log: Primitive = Primitive("log", np.log, save=(0,))
log.defvjp(lambda g, out, x: g / x)

sqrt: Primitive = Primitive("sqrt", np.sqrt, save_output=True)
sqrt.defvjp(lambda g, out, x: g / (out * 2))

abs: Primitive = Primitive("abs", np.abs, save=(0,))  # noqa: A001  (NumPy's name)
abs.defvjp(lambda g, out, x: g * sign(x))

tanh: Primitive = Primitive("tanh", np.tanh, save_output=True)
tanh.defvjp(lambda g, out, x: g - g * out * out)  # g(1 - out²), without a Python-scalar operation

sin: Primitive = Primitive("sin", np.sin, save=(0,))
sin.defvjp(lambda g, out, x: g * cos(x))

cos: Primitive = Primitive("cos", np.cos, save=(0,))
cos.defvjp(lambda g, out, x: negative(g) * sin(x))

# Ties split the gradient evenly between both operands, as PyTorch does.
maximum: Primitive = Primitive("maximum", np.maximum, save=(0, 1))
maximum.defvjp(
    lambda g, out, x, y: g * _float_mask((x > y) + (x == y) * 0.5, g),
    lambda g, out, x, y: g * _float_mask((y > x) + (x == y) * 0.5, g),
)

minimum: Primitive = Primitive("minimum", np.minimum, save=(0, 1))
minimum.defvjp(
    lambda g, out, x, y: g * _float_mask((x < y) + (x == y) * 0.5, g),
    lambda g, out, x, y: g * _float_mask((y < x) + (x == y) * 0.5, g),
)


def _where(condition: Any, x: Any, y: Any) -> Any:
    return np.where(condition, x, y)


where: Primitive = Primitive("where", _where, save=(0,))
where.defvjp(
    None,
    lambda g, out, c, x, y: where(c, g, g * 0),
    lambda g, out, c, x, y: where(c, g * 0, g),
)


def _clip(x: Any, a_min: Any = None, a_max: Any = None) -> Any:
    return np.clip(x, a_min, a_max)


def _inside(x: Any, a_min: Any, a_max: Any) -> Any:
    inside = x == x
    if a_min is not None:
        inside = inside * (x >= a_min)
    if a_max is not None:
        inside = inside * (x <= a_max)
    return inside


_clip_p: Primitive = Primitive("clip", _clip, save=(0,))
_clip_p.defvjp(lambda g, out, x, a_min=None, a_max=None: g * _float_mask(_inside(x, a_min, a_max), g))


def clip(x: Any, a_min: Any = None, a_max: Any = None) -> Any:
    """Limit values to [a_min, a_max]; the gradient passes where the input lies inside (inclusive)."""
    if a_min is None and a_max is None:
        raise ValueError("clip: expected at least one of a_min or a_max, got neither")
    return _clip_p(x, a_min=a_min, a_max=a_max)


def _nondiff(name: str, fn: Any) -> Primitive:
    return Primitive(name, fn, differentiable=False)


sign: Primitive = _nondiff("sign", np.sign)
equal = _nondiff("equal", np.equal)
not_equal = _nondiff("not_equal", np.not_equal)
less = _nondiff("less", np.less)
less_equal = _nondiff("less_equal", np.less_equal)
greater = _nondiff("greater", np.greater)
greater_equal = _nondiff("greater_equal", np.greater_equal)

__all__ = [
    "abs",
    "add",
    "clip",
    "cos",
    "divide",
    "equal",
    "exp",
    "greater",
    "greater_equal",
    "less",
    "less_equal",
    "log",
    "maximum",
    "minimum",
    "multiply",
    "negative",
    "not_equal",
    "power",
    "sign",
    "sin",
    "sqrt",
    "subtract",
    "tanh",
    "where",
]
