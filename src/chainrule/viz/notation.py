"""How each primitive is written: its symbol in drawings, its forward equation and its VJP.

Each primitive's notation is one of its facts (``prim.facts.notation``), registered here, on the
primitive object, by :func:`register_notation` (the ops below this floor do not know how they are
drawn); :data:`GENERIC` lists the engine's primitives that are written generically on purpose,
so every primitive has a notation decision (``tests/`` checks it). ``forward(args, params, shape)``
and ``vjp(i, g, out, args, params)`` build :mod:`chainrule.viz.expr` expressions from the
expressions of the inputs (``args``), the gradient flowing into the output (``g``) and the output
(``out``). Either may also be a pair of format strings ``(tex, text)`` with ``{0}``, ``{1}`` …
for the inputs in a forward, and ``{g}``, ``{out}``, ``{a0}``, ``{a1}`` … in a VJP. A primitive
written generically (or a user's primitive without notation) is ``name(a, b)`` forward and
``(∂name/∂a)ᵀ g`` backward, never skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import chainrule.nn.functional  # noqa: F401  (its primitives get their notation here)
import chainrule.ops.linalg  # noqa: F401  (the decompositions, written generically below)
import chainrule.transforms.functional  # noqa: F401  (watch)
import chainrule.transforms.remat  # noqa: F401
from chainrule.core.primitive import REGISTRY, Primitive
from chainrule.viz import expr as E
from chainrule.viz.expr import Lin

Forward = Callable[[list[Lin], dict[str, Any], Any], Lin]
VJP = Callable[[int, Lin, Lin, list[Lin], dict[str, Any]], Lin]


@dataclass
class Notation:
    symbol: str
    forward: Forward | tuple[str, str] | None = None
    vjp: VJP | tuple[str, str] | None = None


def _primitive(prim: Primitive | str) -> Primitive | None:
    return prim if isinstance(prim, Primitive) else REGISTRY.get(prim)


def notation_of(prim: Primitive | str) -> Notation | None:
    """The notation registered on a primitive (given as the object or by name), or ``None``."""
    p = _primitive(prim)
    return p.facts.notation if p is not None else None


def register_notation(
    prim: Primitive | str,
    forward: Forward | tuple[str, str] | None = None,
    vjp: VJP | tuple[str, str] | None = None,
    symbol: str | None = None,
) -> None:
    """Declare how primitive ``prim`` (the object, or the name of a registered one) is written, for
    ``equations``, ``draw`` and ``html``: ``prim.deffacts(notation=...)``."""
    p = _primitive(prim)
    if p is None:
        raise KeyError(f"register_notation: no primitive named {prim!r}; pass the Primitive object")
    p.deffacts(notation=Notation(symbol or p.name, forward, vjp))


def symbol(name: Primitive | str) -> str:
    """The label of a primitive's circle in drawings (its name if it has no symbol)."""
    n = notation_of(name)
    return n.symbol if n else (name if isinstance(name, str) else name.name)


# --- variable names -----------------------------------------------------------------------

_GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "eta": "η", "theta": "θ",
    "lambda": "λ", "lam": "λ", "mu": "μ", "sigma": "σ", "tau": "τ", "phi": "φ", "omega": "ω",
}  # fmt: skip
_TEX_GREEK = {v: f"\\{k}" for k, v in _GREEK.items() if k != "lam"}


_TEX_SPECIAL = {
    "\\": "\\backslash ", "{": "\\{", "}": "\\}", "_": "\\_", "$": "\\$", "&": "\\&", "#": "\\#",
    "%": "\\%", "^": "\\hat{}", "~": "\\sim ", "<": "\\lt ", ">": "\\gt ", '"': "''", "'": "'",
}  # fmt: skip


def tex_text(name: str) -> str:
    """A user's name as TeX text: every special character escaped, no ``<``/``>`` left (safe in HTML)."""
    return "".join(_TEX_SPECIAL.get(c, c) for c in name if c.isprintable())


def greek_symbol(name: str) -> str | None:
    """``lam``/``lambda``/``λ`` -> ``λ`` (a trailing ``_`` ignored); None for a name that is no Greek letter."""
    key = name.rstrip("_")
    if key in _GREEK:
        return _GREEK[key]
    return key if key in _TEX_GREEK else None


def var_text(name: str | None) -> str:
    return name or "·"


def var_tex(name: str, scalar: bool) -> str:
    """``W1`` -> ``\\mathbf{W}^{(1)}``, ``x`` -> ``\\mathbf{x}``, ``J`` -> ``J``, ``λ`` -> ``\\lambda``."""
    if name in _TEX_GREEK:
        return _TEX_GREEK[name]
    if name in _GREEK:
        return _TEX_GREEK[_GREEK[name]]
    m = re.fullmatch(r"([A-Za-z])_?(\d+)", name)
    if m:
        letter = m.group(1) if scalar else f"\\mathbf{{{m.group(1)}}}"
        return f"{letter}^{{({m.group(2)})}}"
    if re.fullmatch(r"[A-Za-z]", name):
        return name if scalar else f"\\mathbf{{{name}}}"
    return "\\mathrm{" + tex_text(name) + "}"


def grad_text(root: str, name: str | None) -> str:
    return f"∂{root}/∂{name or '·'}"


def grad_tex(root_tex: str, name_tex: str) -> str:
    return f"\\frac{{\\partial {root_tex}}}{{\\partial {name_tex}}}"


# --- helpers for the rules ---------------------------------------------------------------------


def f1(tex: str, txt: str, shape: Any = None, wrap: int = 0, prec: int = 3) -> Callable[..., Lin]:
    """A one-or-more-argument function written by format strings."""

    def make(*args: Lin) -> Lin:
        return E.fn(tex, txt, *args, shape=shape if shape is not None else args[0].shape, wrap=wrap, prec=prec)

    return make


def _elementwise(tex: str, txt: str) -> Callable[[list[Lin], dict[str, Any], Any], Lin]:
    return lambda a, p, s: E.fn(tex, txt, *a, shape=s)


def _ident_vjp(i: int, g: Lin, out: Lin, a: list[Lin], p: dict[str, Any]) -> Lin:
    return g


def _const_number(e: Lin) -> Any:
    return e.number()


def _div_vjp(i: int, g: Lin, out: Lin, a: list[Lin], p: dict[str, Any]) -> Lin:
    b = a[1]
    c = b.number()
    if i == 0:
        if c is not None and c != 0:
            return E.scale(E._mul_num(Fraction(1), E.nice(1 / float(c))), g)
        return E.fn("{0} \\oslash {1}", "{0} ⊘ {1}", g, b, shape=g.shape, wrap=3, prec=2)
    return E.neg(
        E.fn("{0} \\odot {1} \\oslash {2}^{{2}}", "{0} ⊙ {1} ⊘ {2}²", g, a[0], b, shape=g.shape, wrap=3, prec=2)
    )


_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def _power_of(base: Lin, n: Any, shape: Any) -> Lin:
    """``base`` to a constant power, written base², base^0.5, …; ``base¹`` is base, ``base⁰`` is 1."""
    if n == 1:
        return base.with_shape(shape)
    if n == 0:
        return E.number(1, shape)
    text = E.num_txt(E.nice(float(n)))
    sup = text.translate(_SUPERSCRIPT) if text.lstrip("-").isdigit() else f"^{text}"
    exponent = E.num_tex(E.nice(float(n))).replace("{", "{{").replace("}", "}}")
    return E.fn(
        "{0}^{{" + exponent + "}}", "{0}" + sup.replace("{", "{{").replace("}", "}}"), base, shape=shape, wrap=3
    )


def _pow_forward(a: list[Lin], p: dict[str, Any], s: Any) -> Lin:
    c = a[1].number()
    if c is not None:
        return _power_of(a[0], c, s)
    return E.fn("{0}^{{{1}}}", "{0}^{1}", a[0], a[1], shape=s, wrap=3)


def _pow_vjp(i: int, g: Lin, out: Lin, a: list[Lin], p: dict[str, Any]) -> Lin:
    base, n = a
    c = n.number()
    if i == 0:
        if c is not None:
            lower = E.number(E._add_num(E.nice(float(c)), Fraction(-1)))
            powered = (
                base if lower.number() == 1 else E.fn("{0}^{{{1}}}", "{0}^{1}", base, lower, shape=base.shape, wrap=3)
            )
            return E.had(g, E.scale(E.nice(float(c)), powered))
        return E.had(g, E.had(n, E.fn("{0}^{{{1} - 1}}", "{0}^({1}−1)", base, n, shape=base.shape, wrap=3)))
    return E.had(g, E.had(E.fn("\\log {0}", "log {0}", base, shape=base.shape, wrap=3), out))


def _sum_forward(a: list[Lin], p: dict[str, Any], s: Any) -> Lin:
    x = a[0]
    axis = p.get("axis")
    atom = x.single_atom()
    if axis is None and isinstance(atom, E.Prod) and atom.op == "⊙" and len(atom.factors) == 2:
        f0, f1_ = atom.factors
        if f0.key() == f1_.key():
            return E.fn("\\|{0}\\|_F^2", "‖{0}‖²", f0, shape=s)
    if axis is None:
        return E.fn("\\textstyle\\sum {0}", "Σ {0}", x, shape=s, wrap=3, prec=2)
    axes = axis if isinstance(axis, tuple) else (axis,)
    sub = ",".join(str(ax) for ax in axes)
    return E.fn("\\sum_{{\\text{{axis }}" + sub + "}} {0}", f"Σ_axis{sub} {{0}}", x, shape=s, wrap=3, prec=2)


def _broadcast_back(g: Lin, shape: Any) -> Lin:
    """A reduction's gradient spread back over the reduced axes."""
    if g.is_scalar_valued():
        return g.with_shape(shape)  # a scalar times a matrix of ones is that scalar, elementwise
    return E.fn("\\operatorname{{expand}}({0})", "expand({0})", g, shape=shape)


def _sum_vjp(i: int, g: Lin, out: Lin, a: list[Lin], p: dict[str, Any]) -> Lin:
    return _broadcast_back(g, a[0].shape)


def _extremum_vjp(which: str) -> VJP:
    def rule(i: int, g: Lin, out: Lin, a: list[Lin], p: dict[str, Any]) -> Lin:
        mask = E.fn("\\mathbb{{1}}[{0} = \\" + which + " {0}]", f"𝟙[{{0}} = {which} {{0}}]", a[0], shape=a[0].shape)
        return E.had(_broadcast_back(g, a[0].shape), mask)

    return rule


def _transpose_vjp(i: int, g: Lin, out: Lin, a: list[Lin], p: dict[str, Any]) -> Lin:
    axes = p.get("axes")
    if axes is None or list(axes) == list(reversed(range(len(axes)))):
        return E.tr(g, a[0].shape)
    inverse = tuple(sorted(range(len(axes)), key=lambda k: axes[k]))
    return E.fn(
        "\\operatorname{{permute}}_{{" + str(inverse) + "}}({0})", f"permute{inverse}({{0}})", g, shape=a[0].shape
    )


def _transpose_forward(a: list[Lin], p: dict[str, Any], s: Any) -> Lin:
    axes = p.get("axes")
    if axes is None or list(axes) == list(reversed(range(len(axes)))):
        return E.tr(a[0], s)
    return E.fn(
        "\\operatorname{{permute}}_{{" + str(tuple(axes)) + "}}({0})", f"permute{tuple(axes)}({{0}})", a[0], shape=s
    )


def _xent_forward(a: list[Lin], p: dict[str, Any], s: Any) -> Lin:
    return E.fn("l\\left({0}, {1}\\right)", "l({0}, {1})", a[0], a[1], shape=s)


def _xent_vjp(i: int, g: Lin, out: Lin, a: list[Lin], p: dict[str, Any]) -> Lin:
    logits, labels = a
    diff = E.fn(
        "\\operatorname{{softmax}}({0}) - \\operatorname{{onehot}}({1})",
        "softmax({0}) − onehot({1})",
        logits,
        labels,
        shape=logits.shape,
        prec=1,
    )
    n = logits.shape[0] if logits.shape else None
    if p.get("reduction", "mean") == "mean" and n:
        diff = E.scale(Fraction(1, n), diff) if n < 10**6 else diff
    if p.get("reduction") == "none":
        return E.had(E.fn("{0}", "{0}", g, shape=logits.shape), diff)
    return E.had(g, diff)


def _concat_vjp(i: int, g: Lin, out: Lin, a: list[Lin], p: dict[str, Any]) -> Lin:
    axis = p.get("axis", 0)
    return E.fn(
        "\\left[{0}\\right]_{{\\text{{part }}" + str(i + 1) + ",\\ \\text{{axis }}" + str(axis) + "}}",
        f"[{{0}}]_(part {i + 1}, axis {axis})",
        g,
        shape=a[i].shape,
    )


def _chosen_vjp(first: str, second: str) -> VJP:
    """VJP of ``maximum``/``minimum``: ``g ⊙ 𝟙[a0 first a1]`` for input 0, ``g ⊙ 𝟙[a0 second a1]`` for input 1."""

    def vjp(i: int, g: Lin, out: Lin, a: list[Lin], p: dict[str, Any]) -> Lin:
        op = first if i == 0 else second
        tex, txt = "\\mathbb{{1}}[{0} " + op + " {1}]", "𝟙[{0} " + op + " {1}]"
        return E.had(g, E.fn(tex, txt, a[0], a[1], shape=out.shape))

    return vjp


def _relu_vjp(i: int, g: Lin, out: Lin, a: list[Lin], p: dict[str, Any]) -> Lin:
    return E.had(g, E.fn("\\phi'\\left({0}\\right)", "φ′({0})", a[0], shape=a[0].shape))


def _install() -> None:
    _install_arithmetic()
    _install_functions()
    _install_reductions_and_shapes()
    _install_products_and_nn()


def _install_arithmetic() -> None:
    """Notation of add, subtract, multiply, divide, power, negative."""
    R = register_notation
    R("add", lambda a, p, s: E.add(a[0], a[1]).with_shape(s), _ident_vjp, "+")
    R(
        "subtract",
        lambda a, p, s: E.add(a[0], E.neg(a[1])).with_shape(s),
        lambda i, g, o, a, p: g if i == 0 else E.neg(g),
        "−",
    )
    R("multiply", lambda a, p, s: E.had(a[0], a[1]), lambda i, g, o, a, p: E.had(g, a[1 - i]), "×")
    R(
        "divide",
        lambda a, p, s: E.fn("\\frac{{{0}}}{{{1}}}", "{0} ⊘ {1}", a[0], a[1], shape=s, wrap=3, prec=2),
        _div_vjp,
        "÷",
    )
    R("power", _pow_forward, _pow_vjp, "^")
    R("negative", lambda a, p, s: E.neg(a[0]), lambda i, g, o, a, p: E.neg(g), "−x")


def _install_functions() -> None:
    """Notation of exp, log, sqrt, abs, the trigonometric and selection functions."""
    R = register_notation
    R("exp", _elementwise("\\exp\\left({0}\\right)", "exp({0})"), lambda i, g, o, a, p: E.had(g, o), "exp")
    R(
        "log",
        _elementwise("\\log\\left({0}\\right)", "log({0})"),
        lambda i, g, o, a, p: E.fn("{0} \\oslash {1}", "{0} ⊘ {1}", g, a[0], shape=g.shape, wrap=3, prec=2),
        "log",
    )
    R(
        "sqrt",
        _elementwise("\\sqrt{{{0}}}", "√{0}"),
        lambda i, g, o, a, p: E.fn(
            "{0} \\oslash \\left(2 {1}\\right)", "{0} ⊘ (2{1})", g, o, shape=g.shape, wrap=3, prec=2
        ),
        "√",
    )
    R(
        "abs",
        _elementwise("\\left|{0}\\right|", "|{0}|"),
        lambda i, g, o, a, p: E.had(g, E.fn("\\operatorname{{sign}}({0})", "sign({0})", a[0], shape=a[0].shape)),
        "|x|",
    )
    R(
        "tanh",
        _elementwise("\\tanh\\left({0}\\right)", "tanh({0})"),
        lambda i, g, o, a, p: E.had(g, E.fn("\\left(1 - {0}^{{2}}\\right)", "(1 − {0}²)", o, shape=o.shape, wrap=3)),
        "tanh",
    )
    R(
        "sin",
        _elementwise("\\sin\\left({0}\\right)", "sin({0})"),
        lambda i, g, o, a, p: E.had(g, E.fn("\\cos\\left({0}\\right)", "cos({0})", a[0], shape=a[0].shape)),
        "sin",
    )
    R(
        "cos",
        _elementwise("\\cos\\left({0}\\right)", "cos({0})"),
        lambda i, g, o, a, p: E.neg(E.had(g, E.fn("\\sin\\left({0}\\right)", "sin({0})", a[0], shape=a[0].shape))),
        "cos",
    )
    R("maximum", _elementwise("\\max\\left({0}, {1}\\right)", "max({0}, {1})"), _chosen_vjp(">", "<"), "max")
    R("minimum", _elementwise("\\min\\left({0}, {1}\\right)", "min({0}, {1})"), _chosen_vjp("<", ">"), "min")
    R(
        "where",
        _elementwise("\\operatorname{{where}}\\left({0}, {1}, {2}\\right)", "where({0}, {1}, {2})"),
        lambda i, g, o, a, p: E.had(g, a[0] if i == 1 else E.fn("\\neg {0}", "¬{0}", a[0], shape=a[0].shape, wrap=3)),
        "where",
    )
    R(
        "clip",
        lambda a, p, s: E.fn(
            "\\operatorname{{clip}}\\left({0}, "
            + str(p.get("a_min", p.get("lo")))
            + ", "
            + str(p.get("a_max", p.get("hi")))
            + "\\right)",
            f"clip({{0}}, {p.get('a_min', p.get('lo'))}, {p.get('a_max', p.get('hi'))})",
            a[0],
            shape=s,
        ),
        lambda i, g, o, a, p: E.had(
            g,
            E.fn("\\mathbb{{1}}[{0} \\text{{ inside the bounds}}]", "𝟙[{0} inside the bounds]", a[0], shape=a[0].shape),
        ),
        "clip",
    )


def _install_reductions_and_shapes() -> None:
    """Notation of sums, extremes, reshapes, transposes, indexing, concatenation, casts."""
    R = register_notation
    R("sum", _sum_forward, _sum_vjp, "Σ")
    R("max", _elementwise("\\max {0}", "max {0}"), _extremum_vjp("max"), "max")
    R("min", _elementwise("\\min {0}", "min {0}"), _extremum_vjp("min"), "min")
    R(
        "reshape",
        lambda a, p, s: E.fn("\\operatorname{{reshape}}_{{" + str(s) + "}}({0})", f"reshape{s}({{0}})", a[0], shape=s),
        lambda i, g, o, a, p: E.fn(
            "\\operatorname{{reshape}}_{{" + str(a[0].shape) + "}}({0})",
            f"reshape{a[0].shape}({{0}})",
            g,
            shape=a[0].shape,
        ),
        "reshape",
    )
    R("transpose", _transpose_forward, _transpose_vjp, "ᵀ")
    R(
        "broadcast_to",
        lambda a, p, s: E.fn(
            "\\operatorname{{broadcast}}_{{" + str(s) + "}}({0})", f"broadcast{s}({{0}})", a[0], shape=s
        ),
        lambda i, g, o, a, p: E.sum_over(g, E.sum_to_axes(g.shape or (), a[0].shape or ()), a[0].shape),
        "bcast",
    )
    R(
        "getitem",
        lambda a, p, s: E.fn("{0}[\\ldots]", "{0}[…]", a[0], shape=s, wrap=3),
        lambda i, g, o, a, p: E.fn(
            "\\operatorname{{scatter}}({0})", "scatter({0} into zeros at […])", g, shape=a[0].shape
        ),
        "[ ]",
    )
    R(
        "concatenate",
        lambda a, p, s: E.fn(
            "\\left[" + ", ".join(f"{{{k}}}" for k in range(len(a))) + "\\right]",
            "[" + ", ".join(f"{{{k}}}" for k in range(len(a))) + "]",
            *a,
            shape=s,
        ),
        _concat_vjp,
        "concat",
    )
    R("astype", lambda a, p, s: a[0].with_shape(s), _ident_vjp, "astype")


def _install_products_and_nn() -> None:
    """Notation of matmul and the neural-network primitives (relu, sigmoid, softmax, cross-entropy), watch."""
    R = register_notation
    R(
        "matmul",
        lambda a, p, s: E.mm(a[0], a[1]),
        lambda i, g, o, a, p: E.mm(g, E.tr(a[1])) if i == 0 else E.mm(E.tr(a[0]), g),
        "@",
    )
    R("relu", _elementwise("\\phi\\left({0}\\right)", "φ({0})"), _relu_vjp, "φ")
    R(
        "sigmoid",
        _elementwise("\\sigma\\left({0}\\right)", "σ({0})"),
        lambda i, g, o, a, p: E.had(
            g, E.fn("{0} \\odot \\left(1 - {0}\\right)", "{0} ⊙ (1 − {0})", o, shape=o.shape, wrap=3, prec=2)
        ),
        "σ",
    )
    R(
        "softmax",
        _elementwise("\\operatorname{{softmax}}\\left({0}\\right)", "softmax({0})"),
        lambda i, g, o, a, p: E.fn(
            "{1} \\odot \\left({0} - \\textstyle\\sum_{{\\text{{axis}}}} {0} \\odot {1}\\right)",
            "{1} ⊙ ({0} − Σ_axis {0} ⊙ {1})",
            g,
            o,
            shape=o.shape,
            wrap=3,
            prec=2,
        ),
        "softmax",
    )
    R("cross_entropy", _xent_forward, _xent_vjp, "l")
    R("watch", lambda a, p, s: a[0], _ident_vjp, "watch")


_install()

# The engine's primitives written generically on purpose, ``name(a, b)`` and ``(∂name/∂a)ᵀ g``:
# the rest of NumPy's math, linear algebra, scans and sorting, and the internal helpers.
GENERIC: tuple[Primitive, ...] = tuple(
    REGISTRY[name]
    for name in (
        "mod fmod exp2 expm1 log2 log10 log1p cbrt square reciprocal logaddexp logaddexp2 tan arcsin arccos arctan "
        "sinh cosh arcsinh arccosh arctanh arctan2 hypot sinc fabs fmax fmin nan_to_num sign floor ceil trunc rint "
        "round isfinite isnan isinf equal not_equal less less_equal greater greater_equal scatter_add stack check "
        "prod cumsum reverse_cumsum cumprod argsort take_along_axis untake_along_axis solve inv det slogdet "
        "cholesky eigh svd pinv einsum checkpoint one_hot dropout_mask positive floor_divide argmax argmin all any "
        "count_nonzero isclose searchsorted logical_and logical_or logical_xor logical_not signbit isposinf isneginf "
        "isreal argwhere"
    ).split()
)
for _p in GENERIC:
    _p.deffacts(notation=Notation(_p.name))
del _p


def _tex_name(name: str) -> str:
    return tex_text(name)


def generic_forward(name: str, args: list[Lin], shape: Any) -> Lin:
    slots = ", ".join(f"{{{k}}}" for k in range(len(args)))
    return E.fn(
        "\\operatorname{{" + _tex_name(name) + "}}\\left(" + slots + "\\right)", f"{name}({slots})", *args, shape=shape
    )


def generic_vjp(name: str, i: int, g: Lin, args: list[Lin], shape: Any) -> Lin:
    """``(∂ name(a, b) / ∂a)ᵀ g``: the Jacobian-transpose product, written out as such."""
    slots = ", ".join(f"{{{k + 1}}}" for k in range(len(args)))
    wrt = f"{{{i + 1}}}"
    return E.fn(
        "\\left(\\frac{{\\partial \\operatorname{{"
        + _tex_name(name)
        + "}}("
        + slots
        + ")}}{{\\partial "
        + wrt
        + "}}\\right)^{{\\!\\top}} {0}",
        f"(∂{name}({slots})/∂{wrt})ᵀ {{0}}",
        g,
        *args,
        shape=shape,
        wrap=3,
        prec=2,
    )


def apply_forward(name: str, args: list[Lin], params: dict[str, Any], shape: Any) -> Lin:
    """The forward equation's right-hand side for primitive ``name`` on the inputs ``args``."""
    n = notation_of(name)
    if n is None or n.forward is None:
        return generic_forward(name, args, shape)
    if isinstance(n.forward, tuple):
        tex, txt = n.forward
        return E.fn(tex, txt, *args, shape=shape)
    return n.forward(args, params, shape)


def apply_vjp(name: str, i: int, g: Lin, out: Lin, args: list[Lin], params: dict[str, Any], shape: Any) -> Lin:
    """Input ``i``'s gradient for primitive ``name`` from the output's gradient ``g``."""
    n = notation_of(name)
    if n is None or n.vjp is None:
        return generic_vjp(name, i, g, args, shape)
    if isinstance(n.vjp, tuple):
        tex, txt = n.vjp  # placeholders {g}, {out}, {a0}, {a1}, ...
        slots = {"g": "{0}", "out": "{1}"} | {f"a{k}": f"{{{k + 2}}}" for k in range(len(args))}
        return E.fn(tex.format(**slots), txt.format(**slots), g, out, *args, shape=shape)
    return n.vjp(i, g, out, args, params)
