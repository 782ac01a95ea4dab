"""A small symbolic algebra for writing the chain rule out: sums of scaled terms.

An expression is a :class:`Lin`: a sum of terms ``coef · scalars · body`` where ``coef`` is
a number, ``scalars`` are scalar-valued factors (λ, ∂J/∂s) and ``body`` is an array-valued
atom (a symbol, a matrix product, a Hadamard product, a transpose, a function) or None.
That is just enough to simplify what backpropagation produces into the book's notation:
``(λ/2)W ⊙ 1 + (λ/2)W ⊙ 1`` is ``λW``, ``1 · ∂L/∂o`` is ``∂L/∂o``, ``(Xᵀ)ᵀ`` is ``X``.
Every expression renders both as LaTeX (``tex``) and as Unicode text (``txt``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

Shape = tuple[int, ...] | None
Number = Fraction | float


def nice(value: float) -> Number:
    """A float as a small fraction when it is one (0.5 -> 1/2), else the float."""
    if isinstance(value, Fraction):
        return value
    try:
        f = Fraction(value).limit_denominator(1000)
    except (ValueError, OverflowError, TypeError):
        return float(value)
    if f != 0 and abs(float(f) - value) <= 1e-9 * max(1.0, abs(value)) and abs(f.numerator) < 10**6:
        return f
    if f == 0 and value == 0:
        return Fraction(0)
    return float(value)


def num_tex(c: Number) -> str:
    if isinstance(c, Fraction):
        if c.denominator == 1:
            return str(c.numerator)
        sign = "-" if c < 0 else ""
        return f"{sign}\\frac{{{abs(c.numerator)}}}{{{c.denominator}}}"
    return f"{c:.4g}"


def num_txt(c: Number) -> str:
    if isinstance(c, Fraction):
        return str(c.numerator) if c.denominator == 1 else f"{c.numerator}/{c.denominator}"
    return f"{c:.4g}"


class Atom:
    """An array-valued building block; ``prec``: 3 atom, 2 product, 1 sum (for parentheses)."""

    prec = 3
    shape: Shape = None

    def key(self) -> str:
        raise NotImplementedError

    def tex(self) -> str:
        raise NotImplementedError

    def txt(self) -> str:
        raise NotImplementedError

    def transposed(self) -> Atom:
        return T(self)


@dataclass(eq=False)
class Sym(Atom):
    tex_: str
    txt_: str
    shape: Shape = None

    def key(self) -> str:
        return f"S[{self.txt_}]"

    def tex(self) -> str:
        return self.tex_

    def txt(self) -> str:
        return self.txt_


@dataclass(eq=False)
class Fn(Atom):
    """A function written by format strings, ``{0}``, ``{1}`` … standing for the arguments."""

    tex_fmt: str
    txt_fmt: str
    args: tuple[Lin, ...]
    shape: Shape = None
    prec: int = 3
    wrap: int = 0  # arguments with lower precedence than this get parentheses

    def key(self) -> str:
        return f"F[{self.txt_fmt}|{'|'.join(a.key() for a in self.args)}]"

    def tex(self) -> str:
        return self.tex_fmt.format(*[a.tex_p(self.wrap) for a in self.args])

    def txt(self) -> str:
        return self.txt_fmt.format(*[a.txt_p(self.wrap) for a in self.args])


@dataclass(eq=False)
class T(Atom):
    arg: Lin | Atom

    def __post_init__(self) -> None:
        s = self.arg.shape
        self.shape = None if s is None else tuple(reversed(s))

    def _arg(self) -> Lin:
        return self.arg if isinstance(self.arg, Lin) else lin(self.arg)

    def key(self) -> str:
        return f"T[{self._arg().key()}]"

    def tex(self) -> str:
        inner = self._arg().tex_p(3)
        if "^" in inner and not inner.startswith("\\left("):
            inner = "{" + inner + "}"
        return inner + "^\\top"

    def txt(self) -> str:
        return self._arg().txt_p(3) + "ᵀ"

    def transposed(self) -> Atom:
        a = self._arg()
        return a.single_atom() or Group(a)


@dataclass(eq=False)
class Group(Atom):
    """A whole sum used as one factor (rendered in parentheses where needed)."""

    arg: Lin

    def __post_init__(self) -> None:
        self.shape = self.arg.shape
        self.prec = self.arg.prec()

    def key(self) -> str:
        return f"G[{self.arg.key()}]"

    def tex(self) -> str:
        return self.arg.tex()

    def txt(self) -> str:
        return self.arg.txt()


@dataclass(eq=False)
class Prod(Atom):
    """Matrix product (juxtaposition, ``op=""``) or Hadamard product (``op="⊙"``) of factors."""

    op: str
    factors: tuple[Lin, ...]
    shape: Shape = None
    prec: int = 2

    def key(self) -> str:
        return f"P{self.op}[{'|'.join(f.key() for f in self.factors)}]"

    def tex(self) -> str:
        sep = " " if not self.op else " \\odot "
        return sep.join(f.tex_p(3 if not self.op else 2) for f in self.factors)

    def txt(self) -> str:
        sep = " " if not self.op else " ⊙ "
        return sep.join(f.txt_p(3 if not self.op else 2) for f in self.factors)


@dataclass(eq=False)
class Term:
    coef: Number
    scalars: tuple[Lin, ...]
    body: Atom | None

    def key(self) -> str:
        return "*".join(sorted(s.key() for s in self.scalars)) + "#" + (self.body.key() if self.body else "")


class Lin:
    """A sum of terms with a shape (None when unknown)."""

    __slots__ = ("terms", "shape")

    def __init__(self, terms: list[Term], shape: Shape) -> None:
        merged: dict[str, Term] = {}
        for t in terms:
            if t.coef == 0:
                continue
            k = t.key()
            if k in merged:
                m = merged[k]
                merged[k] = Term(_add_num(m.coef, t.coef), m.scalars, m.body)
            else:
                merged[k] = t
        self.terms = [t for t in merged.values() if t.coef != 0]
        self.shape = shape

    # --- inspection ---------------------------------------------------------------
    def key(self) -> str:
        return "+".join(f"{num_txt(t.coef)}:{t.key()}" for t in self.terms) or "0"

    def is_scalar_valued(self) -> bool:
        return all(t.body is None for t in self.terms)

    def number(self) -> Number | None:
        if not self.terms:
            return Fraction(0)
        if len(self.terms) == 1 and not self.terms[0].scalars and self.terms[0].body is None:
            return self.terms[0].coef
        return None

    def single_atom(self) -> Atom | None:
        if len(self.terms) == 1:
            t = self.terms[0]
            if t.coef == 1 and not t.scalars and t.body is not None:
                return t.body
        return None

    def as_atom(self) -> Atom:
        return self.single_atom() or Group(self)

    def prec(self) -> int:
        if len(self.terms) > 1:
            return 1
        if not self.terms:
            return 3
        t = self.terms[0]
        if t.coef != 1 and (t.scalars or t.body is not None):
            return 2 if t.coef > 0 else 1
        if t.coef < 0:
            return 1
        parts = len(t.scalars) + (t.body is not None)
        if parts > 1:
            return 2
        if t.body is not None:
            return t.body.prec
        if t.scalars:
            return t.scalars[0].prec()
        return 3

    def with_shape(self, shape: Shape) -> Lin:
        return Lin(list(self.terms), shape)

    # --- rendering ----------------------------------------------------------------
    def tex(self) -> str:
        return _render(self, tex=True)

    def txt(self) -> str:
        return _render(self, tex=False)

    def tex_p(self, need: int) -> str:
        s = self.tex()
        return f"\\left({s}\\right)" if self.prec() < need else s

    def txt_p(self, need: int) -> str:
        s = self.txt()
        return f"({s})" if self.prec() < need else s

    def __repr__(self) -> str:
        return f"Lin({self.txt()!r}, shape={self.shape})"


def _add_num(a: Number, b: Number) -> Number:
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        return a + b
    return nice(float(a) + float(b))


def _mul_num(a: Number, b: Number) -> Number:
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        return a * b
    return nice(float(a) * float(b))


def _term(t: Term, tex: bool) -> tuple[str, str]:
    """(sign, magnitude) of one term."""
    coef = t.coef
    sign = "-" if coef < 0 else "+"
    mag = -coef if coef < 0 else coef
    pieces = [s.tex_p(2) if tex else s.txt_p(2) for s in t.scalars]
    body = ""
    if t.body is not None:
        need = 2 if (t.scalars or mag != 1) else 0
        if t.body.prec < need:
            body = f"\\left({t.body.tex()}\\right)" if tex else f"({t.body.txt()})"
        else:
            body = t.body.tex() if tex else t.body.txt()
    if not pieces and not body:
        return sign, num_tex(mag) if tex else num_txt(mag)
    simple = bool(pieces) and all(ch not in pieces[0] for ch in " /()∂") and "frac" not in pieces[0]
    if mag != 1 and isinstance(mag, Fraction) and mag.denominator != 1 and simple:
        num = "" if mag.numerator == 1 else str(mag.numerator)
        first = f"\\frac{{{num}{pieces[0]}}}{{{mag.denominator}}}" if tex else f"{num}{pieces[0]}/{mag.denominator}"
        pieces = [first] + pieces[1:]
        mag = Fraction(1)
    scal = " ".join(pieces) if tex else ("" if all(len(p) <= 2 for p in pieces) else " ").join(pieces)
    if mag != 1:
        lead = num_tex(mag) if tex else num_txt(mag)
        tight = not tex and len(lead) <= 2 and (not scal or len(pieces[0]) <= 2)
        scal = lead + ("" if tight or not scal else " ") + scal
    if scal and body:
        tight = not tex and len(scal) <= 2 and " " not in body and not body.startswith(("∂", "("))
        return sign, f"{scal}{'' if tight else ' '}{body}"
    return sign, scal or body


def _render(e: Lin, tex: bool) -> str:
    if not e.terms:
        return "0"
    out = ""
    for i, t in enumerate(e.terms):
        sign, mag = _term(t, tex)
        if i == 0:
            out = mag if sign == "+" else f"-{mag}" if tex else f"−{mag}"
        else:
            out += f" {sign if tex or sign == '+' else '−'} {mag}"
    return out


# --- constructors and algebra -----------------------------------------------------------


def lin(a: Atom | Lin) -> Lin:
    if isinstance(a, Lin):
        return a
    if a.shape == ():
        return Lin([Term(Fraction(1), (Lin([Term(Fraction(1), (), a)], ()),), None)], ())
    return Lin([Term(Fraction(1), (), a)], a.shape)


def number(c: float | Fraction, shape: Shape = ()) -> Lin:
    return Lin([Term(nice(c) if not isinstance(c, Fraction) else c, (), None)], shape)


def symbol(tex: str, txt: str, shape: Shape) -> Lin:
    return lin(Sym(tex, txt, shape))


def fn(tex_fmt: str, txt_fmt: str, *args: Lin, shape: Shape = None, wrap: int = 0, prec: int = 3) -> Lin:
    return lin(Fn(tex_fmt, txt_fmt, tuple(args), shape, prec=prec, wrap=wrap))


def add(*es: Lin) -> Lin:
    terms: list[Term] = []
    shape: Shape = None
    for e in es:
        terms.extend(e.terms)
        shape = _broadcast(shape, e.shape) if shape is not None else e.shape
    return Lin(terms, shape)


def scale(c: Number, e: Lin) -> Lin:
    return Lin([Term(_mul_num(c, t.coef), t.scalars, t.body) for t in e.terms], e.shape)


def neg(e: Lin) -> Lin:
    return scale(Fraction(-1), e)


def _smul(s: Lin, e: Lin, shape: Shape) -> Lin:
    """``s · e`` for a scalar-valued ``s``."""
    if len(s.terms) == 1:
        st = s.terms[0]
        return Lin([Term(_mul_num(st.coef, t.coef), st.scalars + t.scalars, t.body) for t in e.terms], shape)
    if len(e.terms) == 1 and e.is_scalar_valued():
        return _smul(e, s, shape)
    group = Lin(list(s.terms), ())
    return Lin([Term(t.coef, t.scalars + (group,), t.body) for t in e.terms], shape)


def had(a: Lin, b: Lin) -> Lin:
    """Elementwise product; a scalar-valued factor becomes a scalar multiple."""
    shape = _broadcast(a.shape, b.shape)
    if a.is_scalar_valued():
        return _smul(a, b, shape)
    if b.is_scalar_valued():
        return _smul(b, a, shape)
    ca, cb = _split_coef(a), _split_coef(b)
    return _smul(_coef_lin(ca[0], cb[0]), lin(Prod("⊙", (ca[1], cb[1]), shape)), shape)


def mm(a: Lin, b: Lin) -> Lin:
    """Matrix product; scalar coefficients are pulled out front."""
    shape = _matmul_shape(a.shape, b.shape)
    if a.is_scalar_valued() and a.shape == ():
        return _smul(a, b, shape)
    if b.is_scalar_valued() and b.shape == ():
        return _smul(b, a, shape)
    ca, cb = _split_coef(a), _split_coef(b)
    factors: list[Lin] = []
    for f in (ca[1], cb[1]):
        atom = f.single_atom()
        if isinstance(atom, Prod) and atom.op == "":
            factors.extend(atom.factors)
        else:
            factors.append(f)
    return _smul(_coef_lin(ca[0], cb[0]), lin(Prod("", tuple(factors), shape)), shape)


def tr(e: Lin, shape: Shape = None) -> Lin:
    """Transpose, distributed over the terms."""
    new_shape = shape if shape is not None else (None if e.shape is None else tuple(reversed(e.shape)))
    terms = []
    for t in e.terms:
        body = t.body
        if isinstance(body, Prod) and body.op == "" and len(body.factors) <= 3:
            factors = tuple(tr(f) for f in reversed(body.factors))
            terms.append(Term(t.coef, t.scalars, Prod("", factors, new_shape)))
        else:
            terms.append(Term(t.coef, t.scalars, None if body is None else body.transposed()))
    return Lin(terms, new_shape)


def _split_coef(e: Lin) -> tuple[Term | None, Lin]:
    """A single term's coefficient and scalars pulled out of it: (that part, the rest)."""
    if len(e.terms) == 1 and e.terms[0].body is not None:
        t = e.terms[0]
        if (t.coef != 1 or t.scalars) and t.body is not None:
            return Term(t.coef, t.scalars, None), lin(t.body).with_shape(e.shape)
    return None, e


def _coef_lin(a: Term | None, b: Term | None) -> Lin:
    coef: Number = Fraction(1)
    scalars: tuple[Lin, ...] = ()
    for t in (a, b):
        if t is not None:
            coef = _mul_num(coef, t.coef)
            scalars += t.scalars
    return Lin([Term(coef, scalars, None)], ())


def _broadcast(a: Shape, b: Shape) -> Shape:
    if a is None or b is None:
        return a if b is None else b
    n = max(len(a), len(b))
    a2, b2 = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    return tuple(x if y == 1 else y for x, y in zip(a2, b2, strict=True))


def _matmul_shape(a: Shape, b: Shape) -> Shape:
    if a is None or b is None or len(a) < 2 or len(b) < 2:
        return None
    batch = _broadcast(tuple(a[:-2]), tuple(b[:-2])) or ()
    return tuple(batch) + (a[-2], b[-1])


def describe_axes(axes: tuple[int, ...], batch_axis: int | None) -> tuple[str, str]:
    """Subscript for a sum over ``axes``: ("batch", "batch") when it is the batch axis."""
    if batch_axis is not None and axes == (batch_axis,):
        return "\\text{batch}", "batch"
    names = ",".join(str(a) for a in axes)
    return f"\\text{{axis }}{names}", f"axis {names}"


def sum_over(e: Lin, axes: tuple[int, ...], shape: Shape, batch_axis: int | None = None) -> Lin:
    sub_tex, sub_txt = describe_axes(axes, batch_axis)
    return fn(
        "\\sum_{{" + sub_tex.replace("{", "{{").replace("}", "}}") + "}} {0}",
        f"Σ_{sub_txt} {{0}}",
        e,
        shape=shape,
        wrap=3,
        prec=2,
    )


def sum_to_axes(shape: tuple[int, ...], target: tuple[int, ...]) -> tuple[int, ...]:
    """The axes the engine sums a broadcast gradient over (leading axes, then size-1 axes)."""
    lead = len(shape) - len(target)
    return tuple(range(lead)) + tuple(i + lead for i, n in enumerate(target) if n == 1 and shape[i + lead] != 1)


def any_value(x: Any) -> Lin:
    """A Python number as an expression."""
    return number(x if isinstance(x, Fraction) else float(x))
