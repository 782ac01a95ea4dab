"""The recorded graph written out as equations: forward propagation and the chain rule.

Nothing here is a template: every equation is built from the nodes the engine recorded,
each primitive contributing its forward notation and its VJP (see
:mod:`chainrule.viz.notation`). Named variables (``t.named("z")``) keep their names;
unnamed intermediates are written inline (or, when long, as v₁, v₂ …). For every gradient
the book's ``prod`` step is made explicit: which downstream gradients it collects, then
the simplified product with transposes and broadcast sums written out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from chainrule.core.tensor import Tensor
from chainrule.viz import expr as E
from chainrule.viz.expr import Lin
from chainrule.viz.model import Graph, Var, build
from chainrule.viz.notation import apply_forward, apply_vjp, grad_tex, var_tex
from chainrule.viz.recording import context

INLINE_LIMIT = 28  # an unnamed intermediate longer than this (as text) gets its own symbol


@dataclass
class Equation:
    var: str
    tex: str
    txt: str
    step_tex: str = ""  # the chain-rule step (prod form), if it says more than the result
    step_txt: str = ""


@dataclass
class Explanation:
    graph: Graph
    root: str
    forward: list[Equation] = field(default_factory=list)
    backward: list[Equation] = field(default_factory=list)
    node_forward: dict[str, Equation] = field(default_factory=dict)  # every variable that an op made
    node_backward: dict[str, Equation] = field(default_factory=dict)  # every variable with a gradient
    notes: list[str] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)  # each variable as written (text): "W1", "oᵀ"

    def markdown(self, backward: bool = True) -> str:
        out = ["### Forward propagation", ""]
        out += [f"$$ {eq.tex} $$" for eq in self.forward]
        out += [f"_{n}_" for n in self.notes]
        if backward:
            out += [
                "",
                f"### Backpropagation (chain rule, in the order the engine runs it, from $\\partial {self.root}$)",
                "",
            ]
            for eq in self.backward:
                line = f"$$ {eq.tex} $$"
                if eq.step_tex:
                    line += f"  \nchain rule: $ {eq.step_tex} $"
                out.append(line)
        return "\n".join(out) + "\n"

    def text(self, backward: bool = True) -> str:
        out = ["Forward propagation"]
        out += [f"  {eq.txt}" for eq in self.forward]
        out += [f"  ({n})" for n in self.notes]
        if backward:
            out += ["", "Backpropagation (chain rule, in the order the engine runs it)"]
            for eq in self.backward:
                out.append(f"  {eq.txt}" + (f"      [{eq.step_txt}]" if eq.step_txt else ""))
        return "\n".join(out) + "\n"


def _const_expr(v: Var, symbols: dict[str, float]) -> Lin:
    value = v.value
    if isinstance(value, bool | int) or value is None:
        return E.number(value or 0)
    for name, ref in symbols.items():
        if ref:
            ratio = E.nice(float(value) / float(ref))
            if isinstance(ratio, Fraction) and ratio.denominator <= 12 and abs(ratio.numerator) <= 12:
                sym = E.symbol(var_tex(name, True), name, ())
                return E.scale(ratio, sym)
    return E.number(float(value))


def _released_notes(g: Graph) -> list[str]:
    """Say so when backward released a Python-number constant (its value cannot be written)."""
    if any(v.kind == "input" and v.shape == () and v.dtype is None and not v.name for v in g.vars.values()):
        return [
            "a Python-number constant was released by backward (its value is gone): run the forward under "
            "`with cr.viz.trace():` to write it (λ/2)"
        ]
    return []


def explain(
    *outputs: Tensor,
    names: Any = None,
    symbols: dict[str, float] | None = None,
    batch_axis: int | None = None,
    trace: Any = None,
) -> Explanation:
    """Forward and backward equations of the graph that produced ``outputs[0]`` (the objective).

    ``names``: ``{"x": x}``, a Module or ``locals()`` (see :mod:`chainrule.viz.names`).
    ``trace``: a :class:`~chainrule.viz.trace.Trace` that saw the forward (found by itself when the
    forward ran under ``with cr.viz.trace():``), needed to name
    constants (x, λ/2) once a backward has released the saved arrays.
    """
    resolved, trace = context(outputs, names, trace)
    g = build(list(outputs), resolved, trace=trace)
    writer = _Writer(g, {**resolved.numbers, **(symbols or {})}, batch_axis)
    writer.forward()
    writer.backward()
    return writer.ex


class _Writer:
    """Writes one graph's equations: a value for every variable, then the gradients in the engine's order."""

    def __init__(self, g: Graph, symbols: dict[str, float], batch_axis: int | None) -> None:
        self.g, self.symbols, self.batch_axis = g, symbols, batch_axis
        self.root = g.outputs[0]
        self.root_var = g.vars[self.root]
        self.root_name = self.root_var.name or "J"
        self.root_tex = var_tex(self.root_name, self.root_var.shape == ())
        self.ex = Explanation(g, self.root_tex)
        self.val: dict[str, Lin] = {}
        self.stop: dict[str, Lin] = {}  # variables with their own symbol: name -> its gradient symbol
        self.counters = {"theta": 0, "c": 0, "v": 0}
        self.gvalue: dict[str, Lin] = {self.root: E.number(1, self.root_var.shape)}
        self.memo: dict[str, list[tuple[str, Lin]]] = {}

    # --- symbols ----------------------------------------------------------------------------
    def sym_of(self, v: Var) -> Lin:
        scalar = v.shape == ()
        if v.name:
            return E.symbol(var_tex(v.name, scalar), v.name, v.shape)
        kind = {"param": "theta", "leaf": "theta", "input": "c", "value": "v"}.get(v.kind, "c")
        self.counters[kind] += 1
        k = self.counters[kind]
        letter_tex = {"theta": "\\boldsymbol{\\theta}", "c": "\\mathbf{c}", "v": "\\mathbf{v}"}[kind]
        letter_txt = {"theta": "θ", "c": "c", "v": "v"}[kind]
        if scalar:
            letter_tex = {"theta": "\\theta", "c": "c", "v": "v"}[kind]
        return E.symbol(f"{letter_tex}_{{{k}}}", f"{letter_txt}{k}", v.shape)

    def gsym(self, vid: str) -> Lin:
        v = self.g.vars[vid]
        s = self.sym_of(v) if v.name else self.val[vid] if vid in self.val else self.sym_of(v)
        tex, txt = s.tex(), s.txt()
        if " " in txt:  # an inline expression: ∂J/∂(W ⊙ W)
            tex, txt = f"\\left({tex}\\right)", f"({txt})"
        return E.symbol(grad_tex(self.root_tex, tex), f"∂{self.root_name}/∂{txt}", v.shape)

    # --- forward ----------------------------------------------------------------------------
    def forward(self) -> None:
        """A value for every variable, an equation for every named (or long) one."""
        g, ex, val = self.g, self.ex, self.val
        used_relu = False
        for vid, v in g.vars.items():
            if v.kind == "const":
                val[vid] = _const_expr(v, self.symbols)
            elif v.kind != "value":
                val[vid] = self.sym_of(v)
        for op in g.ops:
            node = op.node
            v = g.vars[op.output]
            rhs = apply_forward(op.name, [val[a] for a in op.inputs], node.params, node.out_shape)
            used_relu |= op.name == "relu"
            if v.name or len(rhs.txt()) > INLINE_LIMIT or op.output == self.root:
                named = v.name or op.output != self.root
                s = self.sym_of(v) if named else E.symbol(self.root_tex, self.root_name, v.shape)
                val[op.output] = s
                self.stop[op.output] = s
                eq = Equation(op.output, f"{s.tex()} = {rhs.tex()}", f"{s.txt()} = {rhs.txt()}")
                ex.forward.append(eq)
                ex.node_forward[op.output] = eq
            else:
                val[op.output] = rhs
                ex.node_forward[op.output] = Equation(op.output, f"= {rhs.tex()}", f"= {rhs.txt()}")
        ex.values = {vid: e.txt() for vid, e in val.items()}
        if used_relu:
            ex.notes.append("φ = ReLU, φ′(z) = 𝟙[z > 0]")
        ex.notes += _released_notes(g)

    # --- backward ---------------------------------------------------------------------------
    def G(self, u: str) -> Lin:
        total = self.gvalue[u]
        return total if total.number() is not None else self.gsym(u)

    def contrib(self, vid: str) -> list[tuple[str, Lin]]:
        """The terms of ``vid``'s gradient: one per (consumer, upstream gradient) pair."""
        if vid in self.memo:
            return self.memo[vid]
        g, val = self.g, self.val
        parts: list[tuple[str, Lin]] = []
        for op, i in g.consumers.get(vid, []):
            if op.node.parents[i] is None:
                continue
            w = op.output
            upstream = [(w, self.G(w))] if w in self.stop else self.contrib(w)
            args = [val[a] for a in op.inputs]
            in_shape = g.vars[vid].shape
            for u, e in upstream:
                r = apply_vjp(op.name, i, e, val[w], args, op.node.params, in_shape)
                if r.shape is not None and tuple(r.shape) != tuple(in_shape):
                    axes = E.sum_to_axes(tuple(r.shape), tuple(in_shape))
                    r = E.sum_over(r, axes, in_shape, self.batch_axis) if axes else r.with_shape(in_shape)
                parts.append((u, r))
        self.memo[vid] = parts
        return parts

    def equation(self, vid: str) -> Equation:
        parts = self.contrib(vid)
        total = E.add(*[e for _, e in parts]) if parts else E.number(0, self.g.vars[vid].shape)
        self.gvalue[vid] = total
        lhs = self.gsym(vid)
        eq = Equation(vid, f"{lhs.tex()} = {total.tex()}", f"{lhs.txt()} = {total.txt()}")
        via: list[str] = []
        for u, _ in parts:
            if u not in via:
                via.append(u)
        if via and via != [self.root]:
            self._chain_step(eq, lhs, vid, via)
        return eq

    def _chain_step(self, eq: Equation, lhs: Lin, vid: str, via: list[str]) -> None:
        """The chain rule as the section writes it: prod(∂J/∂u, ∂u/∂v) summed over the values u fed."""
        vs = self.sym_of(self.g.vars[vid]) if self.g.vars[vid].name else self.val[vid]
        tex_terms, txt_terms = [], []
        for u in via:
            us = self.val[u]
            gu = self.gsym(u)
            tex_terms.append(
                f"\\operatorname{{prod}}\\left({gu.tex()}, "
                f"\\frac{{\\partial {us.tex()}}}{{\\partial {vs.tex()}}}\\right)"
            )
            txt_terms.append(f"prod({gu.txt()}, ∂{us.txt()}/∂{vs.txt()})")
        eq.step_tex = f"{lhs.tex()} = " + " + ".join(tex_terms)
        eq.step_txt = f"{lhs.txt()} = " + " + ".join(txt_terms)

    def backward(self) -> None:
        """Gradients in the engine's order (latest-created node first), leaves after the last
        gradient they collect from."""
        g, ex, root = self.g, self.ex, self.root
        leaves = [vid for vid, v in g.vars.items() if v.kind in ("param", "leaf") and g.consumers.get(vid)]
        after: dict[str, list[str]] = {}
        pending_leaves = set(leaves)
        for op in sorted(g.ops, key=lambda op: -op.seq):
            vid = op.output
            if vid == root:
                continue
            if vid in self.stop:
                ex.backward.append(self.equation(vid))
                ex.node_backward[vid] = ex.backward[-1]
            else:
                ex.node_backward[vid] = self.equation(vid)
            # A leaf's gradient is complete once the earliest-created gradient it collects from is known.
            for leaf in [v for v in leaves if v in pending_leaves]:  # in the graph's order, not the set's
                if all(u.seq >= op.seq for u, _ in g.consumers.get(leaf, [])):
                    pending_leaves.discard(leaf)
                    after.setdefault(vid, []).append(leaf)
            for leaf in after.get(vid, []):
                eq = self.equation(leaf)
                ex.backward.append(eq)
                ex.node_backward[leaf] = eq
        grad_root = grad_tex(self.root_tex, self.root_tex)
        ex.node_backward[root] = Equation(root, f"{grad_root} = 1", f"∂{self.root_name}/∂{self.root_name} = 1")


def equations(
    output: Tensor,
    backward: bool = True,
    names: Any = None,
    symbols: dict[str, float] | None = None,
    batch_axis: int | None = None,
    style: str = "markdown",
    trace: Any = None,
) -> Equations:
    """Markdown (LaTeX) or plain Unicode text (``style="text"``) for the graph that produced ``output``.

    names: ``{"x": x, "y": y}`` or ``locals()`` names constants, leaves and intermediates; a
        Greek-named number in it (``lam``) is a symbol too.
    symbols: ``{"λ": 1e-3}`` writes a constant that is a simple multiple of 1e-3 as λ, λ/2, 2λ.
    batch_axis: the axis examples run along, so a broadcast sum over it reads "Σ_batch".
    """
    ex = explain(output, names=names, symbols=symbols, batch_axis=batch_axis, trace=trace)
    return Equations(ex.text(backward) if style == "text" else ex.markdown(backward), ex, backward)


class Equations(str):
    """The equations as a ``str`` (Markdown or text, as asked) that also displays itself in Jupyter.

    In a notebook it shows as readable Unicode (``text/html``, no math renderer needed); the
    LaTeX is in the ``text/latex`` part of the display for LaTeX/PDF export.
    """

    explanation: Explanation
    backward: bool

    def __new__(cls, text: str, explanation: Explanation, backward: bool = True) -> Equations:
        obj = super().__new__(cls, text)
        obj.explanation = explanation
        obj.backward = backward
        return obj

    def _repr_html_(self) -> str:
        from chainrule.viz.notebook import equations_html

        return equations_html(self.explanation, self.backward)

    def _repr_latex_(self) -> str:
        from chainrule.viz.notebook import equations_latex

        return equations_latex(self.explanation, self.backward)
