"""Elementwise primitives, each followed by its derivative rules.

VJP rules receive ``(g, out, *inputs)`` and JVP rules ``(t, out, *inputs)``; unbroadcasting
(and broadcasting tangents to the output) is done once, by the engine. Most unary functions
are built by :func:`_unary` from one derivative ``f'(x)``, used by both rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from chainrule.core.primitive import Primitive
from chainrule.core.tensor import Tensor
from chainrule.ops import facts as fx
from chainrule.ops import vjp_memory as vm

_LN2 = math.log(2.0)
_LN10 = math.log(10.0)


def _float_mask(mask: Any, like: Any) -> Any:
    return mask.astype(like.dtype)


class _Over:
    """A derivative of the form 1 / ``denominator(x, out)``: the rules divide by it (one operation
    fewer than multiplying by a reciprocal, and one rounding fewer)."""

    def __init__(self, denominator: Callable[[Any, Any], Any]) -> None:
        self.denominator = denominator


def _unary(
    name: str,
    fn: Callable[..., Any],
    deriv: Callable[[Any, Any], Any] | _Over,
    doc: str,
    save_input: bool = True,
    save_output: bool = False,
) -> Primitive:
    """A unary primitive whose derivative is ``deriv(x, out)``: VJP ``g * f'``, JVP ``t * f'``."""
    prim = Primitive(name, fn, save=(0,) if save_input else (), save_output=save_output, doc=doc)
    if isinstance(deriv, _Over):
        den = deriv.denominator
        prim.defvjp(lambda g, out, x: g / den(x, out))
        prim.defjvp(lambda t, out, x: t / den(x, out))
    else:
        d = deriv
        prim.defvjp(lambda g, out, x: g * d(x, out))
        prim.defjvp(lambda t, out, x: t * d(x, out))
    return prim


# --- arithmetic -------------------------------------------------------------------------

add: Primitive = Primitive("add", np.add, doc="x + y, elementwise with broadcasting.")
add.defvjp(lambda g, out, x, y: g, lambda g, out, x, y: g)
add.defjvp(lambda t, out, x, y: t, lambda t, out, x, y: t)

subtract: Primitive = Primitive("subtract", np.subtract, doc="x - y, elementwise with broadcasting.")
subtract.defvjp(lambda g, out, x, y: g, lambda g, out, x, y: negative(g))
subtract.defjvp(lambda t, out, x, y: t, lambda t, out, x, y: negative(t))

multiply: Primitive = Primitive("multiply", np.multiply, save=(0, 1), doc="x * y, elementwise with broadcasting.")
multiply.defvjp(lambda g, out, x, y: g * y, lambda g, out, x, y: g * x)
multiply.defjvp(lambda t, out, x, y: t * y, lambda t, out, x, y: t * x)

divide: Primitive = Primitive("divide", np.true_divide, save=(0, 1), doc="x / y (true division), elementwise.")
divide.defvjp(
    lambda g, out, x, y: g / y,
    lambda g, out, x, y: negative(g) * x / (y * y),
)
divide.defjvp(
    lambda t, out, x, y: t / y,
    lambda t, out, x, y: negative(t) * x / (y * y),
)
true_divide = divide


def _power_dx(x: Any, y: Any) -> Any:
    """d/dx x**y = y * x**(y-1), taken as 0 where y == 0 (as PyTorch does; at x == 0 the formula
    is 0 * inf). The exponent is kept finite there so higher derivatives stay finite too."""
    if not isinstance(y, np.ndarray | Tensor):  # a Python or NumPy scalar exponent, as in x ** 2
        return 0 if y == 0 else y * x ** (y - 1)
    return y * x ** where(y == 0, 1, y - 1)


def _power_dy(x: Any, out: Any) -> Any:
    """d/dy x**y = x**y log x: 0 at x == 0 (for y >= 0), NaN for x < 0, where x**y has no real
    derivative in y (as PyTorch, JAX and autograd)."""
    return out * log(where(x == 0, 1, x))


power: Primitive = Primitive(
    "power",
    np.power,
    save=(0, 1),
    save_output=True,
    doc="x ** y, elementwise with broadcasting. The derivative in x is 0 where y == 0 (x == 0 too); the one in "
    "y is x**y log x: 0 at x == 0, NaN for x < 0 (as in PyTorch).",
)
power.defvjp(
    lambda g, out, x, y: g * _power_dx(x, y),
    lambda g, out, x, y: g * _power_dy(x, out),
)
power.defjvp(
    lambda t, out, x, y: t * _power_dx(x, y),
    lambda t, out, x, y: t * _power_dy(x, out),
)

negative: Primitive = Primitive("negative", np.negative, doc="-x, elementwise.")
negative.defvjp(lambda g, out, x: negative(g))
negative.defjvp(lambda t, out, x: negative(t))


def _mod_dy(x: Any, y: Any) -> Any:
    return negative(floor(x / y))


mod: Primitive = Primitive(
    "mod",
    np.mod,
    save=(0, 1),
    doc="x mod y with the sign of y (NumPy's ``mod``); gradients g for x and -g * floor(x / y) for y.",
)
mod.defvjp(lambda g, out, x, y: g, lambda g, out, x, y: g * _mod_dy(x, y))
mod.defjvp(lambda t, out, x, y: t, lambda t, out, x, y: t * _mod_dy(x, y))
remainder = mod


def _fmod_dy(x: Any, y: Any) -> Any:
    return negative(trunc(x / y))


fmod: Primitive = Primitive(
    "fmod",
    np.fmod,
    save=(0, 1),
    doc="C-style remainder of x / y, with the sign of x; gradients g for x and -g * trunc(x / y) for y.",
)
fmod.defvjp(lambda g, out, x, y: g, lambda g, out, x, y: g * _fmod_dy(x, y))
fmod.defjvp(lambda t, out, x, y: t, lambda t, out, x, y: t * _fmod_dy(x, y))

# --- exponentials and logarithms -----------------------------------------------------

exp: Primitive = _unary("exp", np.exp, lambda x, out: out, "e ** x, elementwise.", False, True)
exp2: Primitive = _unary("exp2", np.exp2, lambda x, out: out * _LN2, "2 ** x, elementwise.", False, True)
expm1: Primitive = _unary("expm1", np.expm1, lambda x, out: out + 1, "exp(x) - 1, accurate for small x.", False, True)
log: Primitive = _unary("log", np.log, _Over(lambda x, out: x), "Natural logarithm, elementwise.")
log2: Primitive = _unary("log2", np.log2, _Over(lambda x, out: x * _LN2), "Base-2 logarithm, elementwise.")
log10: Primitive = _unary("log10", np.log10, _Over(lambda x, out: x * _LN10), "Base-10 logarithm, elementwise.")
log1p: Primitive = _unary("log1p", np.log1p, _Over(lambda x, out: x + 1), "log(1 + x), accurate for small x.")
sqrt: Primitive = _unary(
    "sqrt", np.sqrt, _Over(lambda x, out: out * 2), "Non-negative square root, elementwise.", False, True
)
cbrt: Primitive = _unary(
    "cbrt", np.cbrt, _Over(lambda x, out: out * out * 3), "Real cube root, elementwise.", False, True
)
square: Primitive = _unary("square", np.square, lambda x, out: x * 2, "x * x, elementwise.")
reciprocal: Primitive = _unary(
    "reciprocal", np.reciprocal, lambda x, out: negative(out * out), "1 / x, elementwise.", False, True
)


def _logaddexp_rule(base_exp: Callable[[Any], Any], i: int) -> Callable[..., Any]:
    # d/dx log(e^x + e^y) = e^(x - out): never overflows, since x <= out
    return lambda t, out, x, y: t * base_exp((x, y)[i] - out)


logaddexp: Primitive = Primitive(
    "logaddexp", np.logaddexp, save=(0, 1), save_output=True, doc="log(exp(x) + exp(y)), computed stably."
)
logaddexp.defvjp(_logaddexp_rule(exp, 0), _logaddexp_rule(exp, 1))
logaddexp.defjvp(_logaddexp_rule(exp, 0), _logaddexp_rule(exp, 1))

logaddexp2: Primitive = Primitive(
    "logaddexp2", np.logaddexp2, save=(0, 1), save_output=True, doc="log2(2**x + 2**y), computed stably."
)
logaddexp2.defvjp(_logaddexp_rule(exp2, 0), _logaddexp_rule(exp2, 1))
logaddexp2.defjvp(_logaddexp_rule(exp2, 0), _logaddexp_rule(exp2, 1))

# --- trigonometric and hyperbolic ----------------------------------------------------

sin: Primitive = _unary("sin", np.sin, lambda x, out: cos(x), "Sine (radians), elementwise.")
cos: Primitive = _unary("cos", np.cos, lambda x, out: negative(sin(x)), "Cosine (radians), elementwise.")
tan: Primitive = _unary("tan", np.tan, lambda x, out: out * out + 1, "Tangent (radians), elementwise.", False, True)
arcsin: Primitive = _unary(
    "arcsin", np.arcsin, _Over(lambda x, out: sqrt(1 - x * x)), "Inverse sine, elementwise; derivative on (-1, 1)."
)
arccos: Primitive = _unary(
    "arccos",
    np.arccos,
    _Over(lambda x, out: negative(sqrt(1 - x * x))),
    "Inverse cosine, elementwise; derivative on (-1, 1).",
)
arctan: Primitive = _unary("arctan", np.arctan, _Over(lambda x, out: x * x + 1), "Inverse tangent, elementwise.")
sinh: Primitive = _unary("sinh", np.sinh, lambda x, out: cosh(x), "Hyperbolic sine, elementwise.")
cosh: Primitive = _unary("cosh", np.cosh, lambda x, out: sinh(x), "Hyperbolic cosine, elementwise.")
tanh: Primitive = Primitive("tanh", np.tanh, save_output=True, doc="Hyperbolic tangent, elementwise.")
# g(1 - out²) written without a Python-scalar operation: tanh is the per-op benchmark's op.
tanh.defvjp(lambda g, out, x: g - g * out * out)
tanh.defjvp(lambda t, out, x: t - t * out * out)
arcsinh: Primitive = _unary(
    "arcsinh", np.arcsinh, _Over(lambda x, out: sqrt(x * x + 1)), "Inverse hyperbolic sine, elementwise."
)
arccosh: Primitive = _unary(
    "arccosh",
    np.arccosh,
    _Over(lambda x, out: sqrt(x * x - 1)),
    "Inverse hyperbolic cosine, elementwise; derivative for x > 1.",
)
arctanh: Primitive = _unary(
    "arctanh",
    np.arctanh,
    _Over(lambda x, out: 1 - x * x),
    "Inverse hyperbolic tangent, elementwise; derivative on (-1, 1).",
)


# d/dy atan2(y, x) = x / (x² + y²), d/dx = -y / (x² + y²)
def _arctan2_dy(t: Any, out: Any, y: Any, x: Any) -> Any:
    return t * x / (x * x + y * y)


def _arctan2_dx(t: Any, out: Any, y: Any, x: Any) -> Any:
    return negative(t) * y / (x * x + y * y)


arctan2: Primitive = Primitive(
    "arctan2", np.arctan2, save=(0, 1), doc="Angle of the point (x2, x1), i.e. arctan(x1 / x2) in the right quadrant."
)
arctan2.defvjp(_arctan2_dy, _arctan2_dx)
arctan2.defjvp(_arctan2_dy, _arctan2_dx)


def _hypot_rule(i: int) -> Callable[..., Any]:
    return lambda t, out, x, y: t * ((x, y)[i] / out)


hypot: Primitive = Primitive(
    "hypot", np.hypot, save=(0, 1), save_output=True, doc="sqrt(x**2 + y**2) without overflow, elementwise."
)
hypot.defvjp(_hypot_rule(0), _hypot_rule(1))
hypot.defjvp(_hypot_rule(0), _hypot_rule(1))

# sinc'(x) = (cos(πx) - sinc(x)) / x cancels near 0, so there it is a Taylor polynomial: it
# reaches float64 precision for |x| < 0.1 and keeps the derivatives at 0 exact up to 11th order.
_SINC_SMALL = 0.1
_SINC_SERIES = [(-1) ** n * 2 * n / math.factorial(2 * n + 1) for n in range(1, 7)]


def _sinc_deriv(x: Any, out: Any) -> Any:
    pix = x * math.pi
    u = pix * pix
    poly: Any = _SINC_SERIES[-1]
    for c in reversed(_SINC_SERIES[:-1]):
        poly = poly * u + c
    small = abs(x) < _SINC_SMALL
    far = (cos(pix) - out) / where(small, 1, x)
    return where(small, pix * math.pi * poly, far)


sinc: Primitive = _unary("sinc", np.sinc, _sinc_deriv, "Normalized sinc, sin(πx) / (πx), with sinc(0) = 1.", True, True)


def deg2rad(x: Any) -> Any:
    """Degrees to radians, x * π / 180."""
    return x * (math.pi / 180.0)


def rad2deg(x: Any) -> Any:
    """Radians to degrees, x * 180 / π."""
    return x * (180.0 / math.pi)


radians = deg2rad
degrees = rad2deg

# --- absolute value, extremes, selection ------------------------------------------------

abs: Primitive = _unary(  # noqa: A001  (NumPy's name)
    "abs", np.abs, lambda x, out: sign(x), "Absolute value; derivative sign(x), 0 at x = 0 (as PyTorch)."
)
absolute = abs
fabs: Primitive = _unary(
    "fabs", np.fabs, lambda x, out: sign(x), "Absolute value as a float; derivative sign(x), 0 at x = 0."
)


def _pick(first: Any, x: Any, y: Any, like: Any, nan_aware: bool, is_x: bool) -> Any:
    """Mask of where operand ``x`` is chosen: where ``first`` holds, half on ties (as PyTorch
    splits ties). With ``nan_aware`` (fmax/fmin ignore NaNs) also where the other operand is NaN;
    when both are, the result is the first operand's NaN, and so is the gradient (as PyTorch)."""
    mask = first + (x == y) * 0.5
    if nan_aware:
        mask = mask + ((y != y) if is_x else (y != y) * (x == x))
    return _float_mask(mask, like)


def _extreme(name: str, fn: Any, pick_x: Callable[[Any, Any], Any], nan_aware: bool, doc: str) -> Primitive:
    prim = Primitive(name, fn, save=(0, 1), doc=doc)
    rules = (
        lambda t, out, x, y: t * _pick(pick_x(x, y), x, y, t, nan_aware, True),
        lambda t, out, x, y: t * _pick(pick_x(y, x), y, x, t, nan_aware, False),
    )
    prim.defvjp(*rules)
    prim.defjvp(*rules)
    return prim


maximum = _extreme(
    "maximum", np.maximum, lambda a, b: a > b, False, "Elementwise maximum (NaN-propagating); ties split the gradient."
)
minimum = _extreme(
    "minimum", np.minimum, lambda a, b: a < b, False, "Elementwise minimum (NaN-propagating); ties split the gradient."
)
fmax = _extreme(
    "fmax", np.fmax, lambda a, b: a > b, True, "Elementwise maximum ignoring NaNs; ties split the gradient."
)
fmin = _extreme(
    "fmin", np.fmin, lambda a, b: a < b, True, "Elementwise minimum ignoring NaNs; ties split the gradient."
)


def _where(condition: Any, x: Any, y: Any) -> Any:
    return np.where(condition, x, y)


where: Primitive = Primitive(
    "where", _where, save=(0,), doc="x where condition holds, else y; the condition gets no gradient."
)
where.defvjp(
    None,
    lambda g, out, c, x, y: where(c, g, g * 0),
    lambda g, out, c, x, y: where(c, g * 0, g),
)
where.defjvp(
    None,
    lambda t, out, c, x, y: where(c, t, t * 0),
    lambda t, out, c, x, y: where(c, t * 0, t),
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
_clip_p.defjvp(lambda t, out, x, a_min=None, a_max=None: t * _float_mask(_inside(x, a_min, a_max), t))


def clip(x: Any, a_min: Any = None, a_max: Any = None) -> Any:
    """Limit values to [a_min, a_max]; the gradient passes where the input lies inside (inclusive).

    Tensor bounds (PyTorch's ``clamp(x, min_tensor, max_tensor)``) are operands, not constants:
    ``minimum(maximum(x, a_min), a_max)``, differentiable in the bounds too.
    """
    if a_min is None and a_max is None:
        raise ValueError("clip: expected at least one of a_min or a_max, got neither")
    if isinstance(a_min, Tensor) or isinstance(a_max, Tensor):
        out = x if a_min is None else maximum(x, a_min)
        return out if a_max is None else minimum(out, a_max)
    return _clip_p(x, a_min=a_min, a_max=a_max)


def _nan_to_num(x: Any, nan: float, posinf: Any, neginf: Any) -> Any:
    return np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)


_nan_to_num_p: Primitive = Primitive("nan_to_num", _nan_to_num, save=(0,))
_nan_to_num_p.defvjp(lambda g, out, x, **_: g * _float_mask(isfinite(x), g))
_nan_to_num_p.defjvp(lambda t, out, x, **_: t * _float_mask(isfinite(x), t))


def nan_to_num(x: Any, copy: bool = True, nan: float = 0.0, posinf: Any = None, neginf: Any = None) -> Any:
    """Replace NaN by ``nan`` and ±inf by ``posinf``/``neginf`` (default: the dtype's largest
    finite values). The gradient passes at finite entries and is 0 at replaced ones. ``copy`` is
    NumPy's; the result is always a new array."""
    return _nan_to_num_p(x, nan=nan, posinf=posinf, neginf=neginf)


# --- not differentiable ---------------------------------------------------------------
# Comparisons, sign and rounding have no node in the graph: their results are constants to the
# engine. For sign and rounding that is their true derivative (0) wherever one exists; at the
# jumps none exists. ``cr.grad`` of an output that depends on x only through them raises.


def _nondiff(name: str, fn: Any, doc: str) -> Primitive:
    return Primitive(name, fn, differentiable=False, doc=doc + " Not differentiable (a constant to the engine).")


def _round(x: Any, decimals: int = 0) -> Any:
    return np.round(x, decimals)


sign: Primitive = _nondiff("sign", np.sign, "-1, 0 or 1 by the sign of x, elementwise.")
floor: Primitive = _nondiff("floor", np.floor, "Largest integer <= x, elementwise (derivative 0 off the integers).")
ceil: Primitive = _nondiff("ceil", np.ceil, "Smallest integer >= x, elementwise (derivative 0 off the integers).")
trunc: Primitive = _nondiff("trunc", np.trunc, "x rounded toward zero, elementwise (derivative 0 off the integers).")
rint: Primitive = _nondiff(
    "rint", np.rint, "x rounded to the nearest integer, halves to even (derivative 0 off the jumps)."
)
_round_p: Primitive = _nondiff("round", _round, "x rounded to ``decimals`` places, halves to even.")


def round(x: Any, decimals: int = 0) -> Any:  # noqa: A001  (NumPy's name)
    """Round to ``decimals`` places, halves to even (NumPy's ``round``). Not differentiable: a
    constant to the engine (its derivative is 0 wherever one exists)."""
    return _round_p(x, decimals=decimals)


around = round

isfinite: Primitive = _nondiff("isfinite", np.isfinite, "Whether each element is finite (bool).")
isnan: Primitive = _nondiff("isnan", np.isnan, "Whether each element is NaN (bool).")
isinf: Primitive = _nondiff("isinf", np.isinf, "Whether each element is ±inf (bool).")
equal = _nondiff("equal", np.equal, "x == y, elementwise (bool).")
not_equal = _nondiff("not_equal", np.not_equal, "x != y, elementwise (bool).")
less = _nondiff("less", np.less, "x < y, elementwise (bool).")
less_equal = _nondiff("less_equal", np.less_equal, "x <= y, elementwise (bool).")
greater = _nondiff("greater", np.greater, "x > y, elementwise (bool).")
greater_equal = _nondiff("greater_equal", np.greater_equal, "x >= y, elementwise (bool).")

# --- facts (chainrule.ops.facts as fx, chainrule.ops.vjp_memory as vm) ------------------------
# Every primitive of the module: its shape rule (NumPy broadcasting), FLOPs (one per output element
# forward; per element of each input's rule, the elementwise operations it does) and what its VJP
# rule allocates (a hand model measured against the real rule, or RULE_ITSELF: the rule's own
# primitives, evaluated shape-only). fmax/fmin count as maximum/minimum.
R = fx.RULE_ITSELF
add.deffacts(shape=fx.broadcast(add), flops=fx.each(1), vjp_flops=fx.each_vjp(1), memory=vm.passes_g)
subtract.deffacts(shape=fx.broadcast(subtract), flops=fx.each(1), vjp_flops=fx.each_vjp(1), memory=vm.subtract)
multiply.deffacts(shape=fx.broadcast(multiply), flops=fx.each(1), vjp_flops=fx.each_vjp(1), memory=vm.multiply)
divide.deffacts(shape=fx.broadcast(divide), flops=fx.each(1), vjp_flops=fx.each_vjp(3), memory=vm.divide)
power.deffacts(shape=fx.broadcast(power), flops=fx.each(1), vjp_flops=fx.each_vjp(4), memory=vm.chain(3))
negative.deffacts(shape=fx.broadcast(negative), flops=fx.each(1), vjp_flops=fx.each_vjp(1), memory=vm.like_g)
mod.deffacts(shape=fx.broadcast(mod), flops=fx.each(1), vjp_flops=fx.each_vjp(1, 4), memory=R)
fmod.deffacts(shape=fx.broadcast(fmod), flops=fx.each(1), vjp_flops=fx.each_vjp(1, 4), memory=R)
exp.deffacts(shape=fx.broadcast(exp), flops=fx.each(1), vjp_flops=fx.each_vjp(1), memory=vm.like_g)
exp2.deffacts(shape=fx.broadcast(exp2), flops=fx.each(1), vjp_flops=fx.each_vjp(2), memory=R)
expm1.deffacts(shape=fx.broadcast(expm1), flops=fx.each(1), vjp_flops=fx.each_vjp(2), memory=R)
log.deffacts(shape=fx.broadcast(log), flops=fx.each(1), vjp_flops=fx.each_vjp(1), memory=vm.like_g)
log2.deffacts(shape=fx.broadcast(log2), flops=fx.each(1), vjp_flops=fx.each_vjp(2), memory=R)
log10.deffacts(shape=fx.broadcast(log10), flops=fx.each(1), vjp_flops=fx.each_vjp(2), memory=R)
log1p.deffacts(shape=fx.broadcast(log1p), flops=fx.each(1), vjp_flops=fx.each_vjp(2), memory=R)
sqrt.deffacts(shape=fx.broadcast(sqrt), flops=fx.each(1), vjp_flops=fx.each_vjp(2), memory=vm.chain(1))
cbrt.deffacts(shape=fx.broadcast(cbrt), flops=fx.each(1), vjp_flops=fx.each_vjp(4), memory=R)
square.deffacts(shape=fx.broadcast(square), flops=fx.each(1), vjp_flops=fx.each_vjp(2), memory=R)
reciprocal.deffacts(shape=fx.broadcast(reciprocal), flops=fx.each(1), vjp_flops=fx.each_vjp(3), memory=R)
logaddexp.deffacts(shape=fx.broadcast(logaddexp), flops=fx.each(1), vjp_flops=fx.each_vjp(3), memory=R)
logaddexp2.deffacts(shape=fx.broadcast(logaddexp2), flops=fx.each(1), vjp_flops=fx.each_vjp(3), memory=R)
sin.deffacts(shape=fx.broadcast(sin), flops=fx.each(1), vjp_flops=fx.each_vjp(2), memory=vm.times_temp(0))
cos.deffacts(shape=fx.broadcast(cos), flops=fx.each(1), vjp_flops=fx.each_vjp(2), memory=vm.times_temp(1))
tan.deffacts(shape=fx.broadcast(tan), flops=fx.each(1), vjp_flops=fx.each_vjp(3), memory=R)
arcsin.deffacts(shape=fx.broadcast(arcsin), flops=fx.each(1), vjp_flops=fx.each_vjp(5), memory=R)
arccos.deffacts(shape=fx.broadcast(arccos), flops=fx.each(1), vjp_flops=fx.each_vjp(6), memory=R)
arctan.deffacts(shape=fx.broadcast(arctan), flops=fx.each(1), vjp_flops=fx.each_vjp(3), memory=R)
sinh.deffacts(shape=fx.broadcast(sinh), flops=fx.each(1), vjp_flops=fx.each_vjp(2), memory=R)
cosh.deffacts(shape=fx.broadcast(cosh), flops=fx.each(1), vjp_flops=fx.each_vjp(2), memory=R)
tanh.deffacts(shape=fx.broadcast(tanh), flops=fx.each(1), vjp_flops=fx.each_vjp(3), memory=vm.tanh)
arcsinh.deffacts(shape=fx.broadcast(arcsinh), flops=fx.each(1), vjp_flops=fx.each_vjp(4), memory=R)
arccosh.deffacts(shape=fx.broadcast(arccosh), flops=fx.each(1), vjp_flops=fx.each_vjp(4), memory=R)
arctanh.deffacts(shape=fx.broadcast(arctanh), flops=fx.each(1), vjp_flops=fx.each_vjp(3), memory=R)
arctan2.deffacts(shape=fx.broadcast(arctan2), flops=fx.each(1), vjp_flops=fx.each_vjp(5, 6), memory=R)
hypot.deffacts(shape=fx.broadcast(hypot), flops=fx.each(1), vjp_flops=fx.each_vjp(2), memory=R)
sinc.deffacts(shape=fx.broadcast(sinc), flops=fx.each(1), vjp_flops=fx.each_vjp(22), memory=R)
abs.deffacts(shape=fx.broadcast(abs), flops=fx.each(1), vjp_flops=fx.each_vjp(1), memory=vm.times_temp(0))
fabs.deffacts(shape=fx.broadcast(fabs), flops=fx.each(1), vjp_flops=fx.each_vjp(2), memory=R)
maximum.deffacts(shape=fx.broadcast(maximum), flops=fx.each(1), vjp_flops=fx.each_vjp(1), memory=vm.compare_mask)
minimum.deffacts(shape=fx.broadcast(minimum), flops=fx.each(1), vjp_flops=fx.each_vjp(1), memory=vm.compare_mask)
fmax.deffacts(shape=fx.broadcast(fmax), flops=fx.each(1), vjp_flops=fx.each_vjp(1), memory=R)
fmin.deffacts(shape=fx.broadcast(fmin), flops=fx.each(1), vjp_flops=fx.each_vjp(1), memory=R)
where.deffacts(shape=fx.broadcast(where), flops=fx.each(1), vjp_flops=fx.each_vjp(1), memory=vm.where)
_clip_p.deffacts(shape=fx.broadcast(_clip_p), flops=fx.each(1), vjp_flops=fx.each_vjp(1), memory=vm.chain(3))
_nan_to_num_p.deffacts(shape=fx.broadcast(_nan_to_num_p), flops=fx.each(1), vjp_flops=fx.each_vjp(2), memory=R)
# not differentiable (no VJP rule, so no FLOPs or memory of one)
sign.deffacts(shape=fx.broadcast(sign), flops=fx.each(1))
floor.deffacts(shape=fx.broadcast(floor), flops=fx.each(1))
ceil.deffacts(shape=fx.broadcast(ceil), flops=fx.each(1))
trunc.deffacts(shape=fx.broadcast(trunc), flops=fx.each(1))
rint.deffacts(shape=fx.broadcast(rint), flops=fx.each(1))
_round_p.deffacts(shape=fx.broadcast(_round_p), flops=fx.each(1))
isfinite.deffacts(shape=fx.broadcast(isfinite), flops=fx.each(1))
isnan.deffacts(shape=fx.broadcast(isnan), flops=fx.each(1))
isinf.deffacts(shape=fx.broadcast(isinf), flops=fx.each(1))
equal.deffacts(shape=fx.broadcast(equal), flops=fx.each(1))
not_equal.deffacts(shape=fx.broadcast(not_equal), flops=fx.each(1))
less.deffacts(shape=fx.broadcast(less), flops=fx.each(1))
less_equal.deffacts(shape=fx.broadcast(less_equal), flops=fx.each(1))
greater.deffacts(shape=fx.broadcast(greater), flops=fx.each(1))
greater_equal.deffacts(shape=fx.broadcast(greater_equal), flops=fx.each(1))
del R

__all__ = [
    "abs",
    "absolute",
    "add",
    "arccos",
    "arccosh",
    "arcsin",
    "arcsinh",
    "arctan",
    "arctan2",
    "arctanh",
    "around",
    "cbrt",
    "ceil",
    "clip",
    "cos",
    "cosh",
    "deg2rad",
    "degrees",
    "divide",
    "equal",
    "exp",
    "exp2",
    "expm1",
    "fabs",
    "floor",
    "fmax",
    "fmin",
    "fmod",
    "greater",
    "greater_equal",
    "hypot",
    "isfinite",
    "isinf",
    "isnan",
    "less",
    "less_equal",
    "log",
    "log10",
    "log1p",
    "log2",
    "logaddexp",
    "logaddexp2",
    "maximum",
    "minimum",
    "mod",
    "multiply",
    "nan_to_num",
    "negative",
    "not_equal",
    "power",
    "rad2deg",
    "radians",
    "reciprocal",
    "remainder",
    "rint",
    "round",
    "sign",
    "sin",
    "sinc",
    "sinh",
    "sqrt",
    "square",
    "subtract",
    "tan",
    "tanh",
    "true_divide",
    "trunc",
    "where",
]
