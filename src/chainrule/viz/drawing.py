"""Graphviz drawings of a recorded graph: forward, backward, saved memory, modules.

Variables are boxes (parameters, inputs and intermediates styled apart), operators are
circles; with ``rankdir=BT`` the inputs sit at the bottom and the objective at the top,
as in the book's figure. Every node and edge carries an ``id`` and a ``class`` that end up
in the SVG, so the drawing can be read back (tests, the HTML explorer).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import graphviz

from chainrule.core.tensor import Tensor
from chainrule.viz.model import Graph, Op, Var, build, classify_second_order
from chainrule.viz.notation import grad_text, symbol, var_text
from chainrule.viz.recording import context
from chainrule.viz.trace import Trace, dry_run, module_of, module_type

INSTALL_HINT = (
    "Graphviz's `dot` program was not found on PATH, so the drawing cannot be rendered. Install Graphviz "
    "(Debian/Ubuntu: `sudo apt-get install graphviz`; Fedora: `sudo dnf install graphviz`; macOS: "
    "`brew install graphviz`; conda: `conda install -c conda-forge graphviz`; Windows: "
    "`winget install graphviz`) and make sure `dot -V` works."
)


class DotNotFoundError(RuntimeError):
    """Graphviz's ``dot`` is missing; the ``.dot`` source was written so nothing is lost."""

    def __init__(self, source_path: str | None) -> None:
        msg = INSTALL_HINT
        if source_path:
            msg += f" The graph's source was written to {source_path}; render it later with `dot -Tsvg {source_path}`."
        super().__init__(msg)
        self.source_path = source_path


def atomic_write(path: str | os.PathLike[str], data: bytes, force: bool = True) -> Path:
    """Write ``data`` to a temp file in the same folder, then ``os.replace`` it into place.

    With ``force=False`` an existing file is never replaced (FileExistsError).
    """
    target = Path(path)
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists; pass --force (force=True) to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    umask = os.umask(0)
    os.umask(umask)
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


_SVG_SIZE = re.compile(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"')


def fit_svg(svg: str, max_width: float = 940.0, max_height: float = 900.0) -> str:
    """Graphviz's SVG with its width and height (points) scaled to fit the box; never enlarged."""
    m = _SVG_SIZE.search(svg)
    if m is None:
        return svg
    w, h = float(m.group(1)), float(m.group(2))
    k = min(1.0, max_width / w if w else 1.0, max_height / h if h else 1.0)
    return svg[: m.start()] + f'<svg width="{w * k:.0f}pt" height="{h * k:.0f}pt"' + svg[m.end() :]


def _plain(value: Any) -> Any:
    """User text as a plain Graphviz string: never HTML-like (``<...>``), backslashes literal."""
    if not isinstance(value, str):
        return value
    return graphviz.nohtml(value.replace("\\", "\\\\"))


def _plain_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    out = {k: _plain(v) for k, v in attrs.items()}
    if isinstance(attrs.get("class"), str):  # class tokens: word characters only
        out["class"] = re.sub(r"[^\w\s-]", "_", attrs["class"])
    return out


class Drawing(graphviz.Digraph):  # type: ignore[misc]
    """A ``graphviz.Digraph`` whose rendering explains how to install ``dot`` when it is missing.

    In Jupyter it displays itself (graphviz's rich display); ``.render(...)``, ``.pipe(...)``
    and ``.save(...)`` behave as in graphviz.
    """

    # Every attribute goes through these: user text (tensor, module, primitive names, titles)
    # is never read as a Graphviz HTML-like label (which can carry links) nor as an escape.
    def node(self, name: str, label: str | None = None, _attributes: Any = None, **attrs: Any) -> None:
        super().node(
            name, _plain(label), _attributes=_plain_attrs(_attributes) if _attributes else None, **_plain_attrs(attrs)
        )

    def edge(
        self, tail_name: str, head_name: str, label: str | None = None, _attributes: Any = None, **attrs: Any
    ) -> None:
        super().edge(
            tail_name,
            head_name,
            _plain(label),
            _attributes=_plain_attrs(_attributes) if _attributes else None,
            **_plain_attrs(attrs),
        )

    def attr(self, kw: str | None = None, _attributes: Any = None, **attrs: Any) -> None:
        super().attr(kw, _attributes=_plain_attrs(_attributes) if _attributes else None, **_plain_attrs(attrs))

    def _repr_image_svg_xml(self) -> str:
        """Jupyter's SVG: the drawing scaled down to fit a notebook's width (the viewBox is kept)."""
        return fit_svg(self.pipe(format="svg").decode("utf-8"), 940.0)

    def pipe(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().pipe(*args, **kwargs)
        except graphviz.ExecutableNotFound as exc:
            fd, tmp = tempfile.mkstemp(prefix="chainrule-graph-", suffix=".dot")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self.source)
            raise DotNotFoundError(tmp) from exc

    def render(self, filename: Any = None, directory: Any = None, **kwargs: Any) -> str:
        try:
            return str(super().render(filename, directory=directory, **kwargs))
        except graphviz.ExecutableNotFound as exc:
            # graphviz saved the source before running dot: point at it.
            src = Path(directory or self.directory or "") / (filename or self.filename)
            if not src.exists():
                src.write_text(self.source, encoding="utf-8")
            raise DotNotFoundError(str(src)) from exc


def write(
    drawing: graphviz.Digraph, path: str | os.PathLike[str], format: str | None = None, force: bool = False
) -> Path:
    """Render ``drawing`` to ``path`` (format from the suffix: svg, png, pdf, dot), atomically.

    If ``dot`` is missing, the ``.dot`` source is written next to ``path`` and
    :class:`DotNotFoundError` says how to install Graphviz.
    """
    target = Path(path)
    fmt = (format or target.suffix.lstrip(".") or "svg").lower()
    if fmt in ("dot", "gv"):
        return atomic_write(target, drawing.source.encode("utf-8"), force=force)
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists; pass --force (force=True) to overwrite it")
    try:
        data = graphviz.Digraph.pipe(drawing, format=fmt)
    except graphviz.ExecutableNotFound as exc:
        src = target.with_suffix(".dot")
        if src.exists() and not force:
            raise DotNotFoundError(None) from exc
        atomic_write(src, drawing.source.encode("utf-8"), force=True)
        raise DotNotFoundError(str(src)) from exc
    return atomic_write(target, data, force=force)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _shape_text(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


_STYLE = {
    "param": {"shape": "box", "style": "filled,bold", "fillcolor": "#fde7c8", "color": "#b36b00"},
    "leaf": {"shape": "box", "style": "filled,bold", "fillcolor": "#fde7c8", "color": "#b36b00"},
    "input": {"shape": "box", "style": "filled", "fillcolor": "#dbe9f7", "color": "#2f5f8a"},
    "value": {"shape": "box", "style": "rounded", "color": "#333333"},
    "named": {"shape": "box", "style": "rounded,filled", "fillcolor": "#f2f2f2", "color": "#333333"},
    "const": {"shape": "plaintext", "fontsize": "10", "fontcolor": "#555555"},
    "op": {"shape": "circle", "style": "filled", "fillcolor": "#e8e8e8", "fontsize": "11", "margin": "0.02"},
    "bop": {"shape": "circle", "style": "filled", "fillcolor": "#f7dede", "color": "#aa3333", "fontsize": "10"},
    "grad": {"shape": "box", "style": "rounded,filled", "fillcolor": "#fbeeee", "color": "#aa3333"},
    "second": {"fillcolor": "#e4f2e4"},
}


def _var_label(v: Var) -> str:
    if v.kind == "const":
        return f"{v.value:.6g}" if isinstance(v.value, float) else str(v.value)
    head = var_text(v.name) if v.name else ""
    shape = v.describe()
    return f"{head}\n{shape}" if head else shape


def _classes(v: Var, outputs: list[str]) -> str:
    cls = ["var", v.kind]
    if v.name:
        cls.append("named")
    if v.id in outputs:
        cls.append("output")
    return " ".join(cls)


def draw(
    *outputs: Tensor,
    backward: bool = False,
    saved: bool = False,
    group: str | None = None,
    collapse: bool | str = "auto",
    names: Any = None,
    trace: Trace | None = None,
    title: str | None = None,
    rankdir: str = "BT",
    layout: str = "dot",
) -> Drawing:
    """Draw everything that produced ``outputs`` as a ``graphviz.Digraph``.

    backward: add the backward pass: a gradient box per variable that needs one, the
        operator computing it (numbered in the engine's walk order), dashed edges to the
        saved arrays it reads. The order comes from ``trace`` (``with cr.viz.trace() as tr``
        around ``backward``), else from a dry-run backward (the graph is left untouched), else,
        for an already-released graph, from the engine's rule (latest-created node first).
    saved: label each operator with the bytes it keeps for backward (alive or released).
    group: ``"module"`` clusters nodes by the ``nn.Module`` that made them (record with
        ``cr.viz.track_modules(model)``); ``collapse`` (True/False/"auto": over 200 operators)
        draws each module as one box and runs of identical blocks as one box "× k".
    layout: ``"dot"`` (inputs at the bottom, ``rankdir``) or ``"book"``: the book's Figure 5.3.1
        (:mod:`chainrule.viz.layout`: input lower-left, objective upper-right, the penalty one
        operator; the forward graph only).
    names: ``{"x": x, "y": y}``, a Module or ``locals()`` names constants, leaves and intermediates
        (:mod:`chainrule.viz.names`); a forward run under ``with cr.viz.trace():`` is named by itself.
    """
    if not outputs:
        raise ValueError("draw: give at least one output tensor")
    outs = list(outputs)
    names, trace = context(outs, names, trace)
    second = classify_second_order(outs, trace)
    g = build(outs, names, second, trace)
    if layout not in ("dot", "book"):
        raise ValueError(f"draw: layout must be 'dot' or 'book', got {layout!r}")
    if layout == "book" and (backward or group is not None):
        raise ValueError(
            "draw: layout='book' draws the forward graph as the book's Figure 5.3.1; "
            "use the default layout='dot' with backward=True or group="
        )
    if layout == "book":
        return _draw_book(g, saved, title)
    drawing = Drawing(name="chainrule", graph_attr={"rankdir": rankdir, "fontname": "Helvetica", "labelloc": "t"})
    drawing.attr("node", fontname="Helvetica", fontsize="11")
    drawing.attr("edge", fontname="Helvetica", fontsize="9", color="#555555", arrowsize="0.7")

    walk: dict[int, int] = {}
    walk_source = ""
    if backward:
        walk, walk_source = _walk_numbers(g, outs, trace)

    use_collapse = group == "module" and (collapse is True or (collapse == "auto" and len(g.ops) > 200))
    if use_collapse:
        _draw_collapsed(drawing, g, saved)
    else:
        _draw_full(drawing, g, saved, group)
        if backward:
            _draw_backward(drawing, g, walk, _written(g, outs, names, trace))
    drawing.attr(label=title or _caption(g, saved, backward, walk_source))
    return drawing


def _draw_book(g: Graph, saved: bool, title: str | None) -> Drawing:
    from chainrule.viz.layout import book_graph, pinned

    bg = book_graph(g)
    drawing = Drawing(
        name="chainrule",
        engine="neato",
        graph_attr={"inputscale": "72", "splines": "true", "fontname": "Helvetica", "labelloc": "t"},
    )
    drawing.attr("node", fontname="Helvetica", fontsize="11")
    drawing.attr("edge", fontname="Helvetica", fontsize="9", color="#555555", arrowsize="0.7")
    for vid in bg.vars:
        v = g.vars[vid]
        attrs = dict(_STYLE["named" if v.kind == "value" and v.name else v.kind])
        label = var_text(v.name) if v.name else _var_label(v)
        tip = f"{v.name}: {v.describe()}" if v.name else v.describe()
        attrs.update(label=label, tooltip=tip, id=vid, **{"class": _classes(v, g.outputs)}, **pinned(bg.pos[vid]))
        if vid in g.outputs:
            attrs["peripheries"] = "2"
        drawing.node(vid, **attrs)
    by_id = {op.id: op for op in g.ops}
    for node_id in bg.ops:
        attrs = dict(_STYLE["op"])
        if node_id in bg.collapsed:
            members = bg.collapsed[node_id]
            names = sorted({op.name for op in members})
            square = set(names) <= {"multiply", "sum", "add", "square", "power"}
            label = "‖·‖²" if square else "⋯"
            attrs.update(label=label, tooltip=" ".join(names), **{"class": "op collapsed " + " ".join(names)})
        else:
            op = by_id[node_id]
            attrs.update(label=_op_label(g, op, saved), tooltip=op.name, **{"class": f"op {op.name}"})
        attrs.update(id=node_id, **pinned(bg.pos[node_id]))
        drawing.node(node_id, **attrs)
    for a, b in bg.edges:
        drawing.edge(a, b, id=f"{a}->{b}", **{"class": "fwd"})
    drawing.attr(label=title or f"{len(g.ops)} operators, {len(g.vars)} variables (the book's layout)")
    return drawing


def graph(t: Tensor, **kwargs: Any) -> Drawing:
    """``t``'s graph: ``draw(t, **kwargs)``; displays itself in Jupyter."""
    return draw(t, **kwargs)


def _walk_numbers(g: Graph, outs: list[Tensor], trace: Trace | None) -> tuple[dict[int, int], str]:
    seqs = {op.seq for op in g.ops}
    source = "walk order recorded by a hook during backward"
    if trace is None or not any(s.seq in seqs for s in trace.steps):
        trace = dry_run([t for t in outs[:1] if t.node is not None])
        source = "walk order recorded by a hook during a dry-run backward"
    if trace is not None:
        order = [s.seq for s in trace.steps if s.seq in seqs]
    else:
        order = sorted(seqs, reverse=True)
        source = "graph already released: walk order predicted (latest-created node first)"
    numbers: dict[int, int] = {}
    for i, seq in enumerate(order):
        numbers[seq] = i + 1
    return numbers, source


def _op_label(g: Graph, op: Op, saved: bool) -> str:
    label = symbol(op.name)
    if saved:
        nbytes = sum(n for _, n in g.saved_items(op))
        if nbytes or op.node.prim.save or op.node.prim.save_output:
            state = "released" if op.node.released else "alive"
            label += f"\n{human_bytes(nbytes)}\n{state}"
    return label


def _draw_full(drawing: graphviz.Digraph, g: Graph, saved: bool, group: str | None) -> None:
    clusters: dict[str, list[tuple[str, dict[str, str]]]] = {}
    top: list[tuple[str, dict[str, str]]] = []

    def place(node_id: str, attrs: dict[str, str], module: str | None) -> None:
        (clusters.setdefault(module, []) if module else top).append((node_id, attrs))

    first_module: dict[str, str | None] = {}
    for op in g.ops:
        mod = module_of(op.node) if group == "module" else None
        for input_id in op.inputs:
            first_module.setdefault(input_id, mod)
        first_module[op.output] = mod
    for v in g.vars.values():
        style = "named" if v.kind == "value" and v.name else v.kind
        attrs = dict(_STYLE[style])
        attrs.update(label=_var_label(v), id=v.id, **{"class": _classes(v, g.outputs)})
        if v.id in g.outputs:
            attrs["peripheries"] = "2"
        producer = g.op_of(v.id)
        if producer is not None and producer.second_order:
            attrs.update(_STYLE["second"], style="rounded,filled")
        mod = first_module.get(v.id) if v.kind in ("value", "param", "leaf") else None
        place(v.id, attrs, mod)
    for op in g.ops:
        attrs = dict(_STYLE["op"])
        cls = f"op {op.name}" + (" second-order" if op.second_order else "")
        attrs.update(label=_op_label(g, op, saved), id=op.id, tooltip=op.name, **{"class": cls})
        if op.second_order:
            attrs.update(_STYLE["second"])
        place(op.id, attrs, module_of(op.node) if group == "module" else None)
    for node_id, attrs in top:
        drawing.node(node_id, **attrs)
    for i, (module, members) in enumerate(sorted(clusters.items())):
        with drawing.subgraph(name=f"cluster_{i}") as sub:
            sub.attr(label=f"{module} ({module_type(module)})", style="rounded,dashed", color="#888888")
            for node_id, attrs in members:
                sub.node(node_id, **attrs)
    for op in g.ops:
        seen: set[str] = set()
        for input_id in op.inputs:
            if input_id in seen:  # ``w * w``: one edge, labelled ×2
                continue
            seen.add(input_id)
            count = op.inputs.count(input_id)
            extra = {"label": f"×{count}"} if count > 1 else {}
            drawing.edge(input_id, op.id, id=f"{input_id}->{op.id}", **{"class": "fwd"}, **extra)
        drawing.edge(op.id, op.output, id=f"{op.id}->{op.output}", **{"class": "fwd"})


def _written(g: Graph, outs: list[Tensor], names: Any, trace: Trace | None) -> dict[str, str]:
    """Unnamed intermediates as the equations write them (``oᵀ``, ``W1 ⊙ W1``), for small graphs."""
    if len(g.ops) > 300:
        return {}
    try:
        from chainrule.viz.equations import explain

        values = explain(outs[0], names=names, trace=trace).values
    except Exception:  # a label is never worth failing a drawing for
        return {}
    return {k: v for k, v in values.items() if len(v) <= 24}


def _draw_backward(drawing: graphviz.Digraph, g: Graph, walk: dict[int, int], written: dict[str, str]) -> None:
    root = g.vars[g.outputs[0]]
    root_name = root.name or "out"
    needs = {op.output for op in g.ops}
    for op in g.ops:
        for input_id, parent in zip(op.inputs, op.node.parents, strict=True):
            if parent is not None:
                needs.add(input_id)
    for vid in sorted(needs):
        var = g.vars[vid]
        attrs = dict(_STYLE["grad"])
        if var.name:
            label = grad_text(root_name, var.name)
        elif vid in written:
            text = written[vid]
            label = grad_text(root_name, f"({text})" if " " in text else text)
        else:
            label = grad_text(root_name, None)
        if vid == g.outputs[0]:
            label += " = 1"
        attrs.update(label=f"{label}\n{var.describe()}", id=f"g_{vid}", **{"class": "grad var"})
        drawing.node(f"g_{vid}", **attrs)
    for op in g.ops:
        n = walk.get(op.seq)
        attrs = dict(_STYLE["bop"])
        attrs.update(
            label=(f"{n}\n" if n else "") + "∇" + symbol(op.name),
            id=f"b{op.seq}",
            tooltip=f"backward of {op.name}" + (f", step {n}" if n else ""),
            **{"class": "bop"},
        )
        if n:
            attrs["walk"] = str(n)
        drawing.node(f"b{op.seq}", **attrs)
        # Layout: written input-first with dir=back, so the gradient column runs beside the forward one.
        gid = f"g_{op.output}"
        drawing.edge(f"b{op.seq}", gid, dir="back", color="#aa3333", id=f"{gid}->b{op.seq}", **{"class": "grad"})
        done: set[str] = set()
        for v, parent in zip(op.inputs, op.node.parents, strict=True):
            if parent is None or v in done:
                continue
            done.add(v)
            drawing.edge(
                f"g_{v}", f"b{op.seq}", dir="back", color="#aa3333", id=f"b{op.seq}->g_{v}", **{"class": "grad"}
            )
        prim = op.node.prim
        reads = {op.inputs[i] for i in prim.save if i < len(op.inputs) and g.vars[op.inputs[i]].kind != "const"}
        if prim.save_output:
            reads.add(op.output)
        for v in sorted(reads):
            drawing.edge(
                v,
                f"b{op.seq}",
                style="dashed",
                color="#888888" if op.node.released else "#2f5f8a",
                constraint="false",
                arrowhead="none",
                id=f"{v}=>b{op.seq}",
                **{"class": "saved released" if op.node.released else "saved"},
            )


def _caption(g: Graph, saved: bool, backward: bool, walk_source: str) -> str:
    ops = g.ops
    lines = [f"{len(ops)} operators, {len(g.vars)} variables"]
    if any(op.second_order for op in ops):
        first = [op for op in ops if not op.second_order]
        second = [op for op in ops if op.second_order]
        lines.append(
            f"first order: {len(first)} nodes, {human_bytes(g.saved_bytes(first))} saved; "
            f"second order (recorded backward): {len(second)} nodes, {human_bytes(g.saved_bytes(second))} saved"
        )
    if saved or backward:
        alive = [op for op in ops if not op.node.released]
        released = [op for op in ops if op.node.released]
        lines.append(
            f"saved for backward: {human_bytes(g.saved_bytes(alive))} alive"
            + (f", {human_bytes(g.saved_bytes(released))} already released" if released else "")
        )
    if backward and walk_source:
        lines.append(walk_source)
    return "\n".join(lines)


# --- collapsed module view --------------------------------------------------------------------


def _signature(g: Graph, ops: list[Op]) -> tuple[Any, ...]:
    return tuple((op.name, op.node.out_shape, tuple(g.vars[v].shape for v in op.inputs)) for op in ops)


def _runs(sigs: list[Any], max_period: int = 8) -> list[tuple[int, int, int]]:
    """Split a sequence into (start, period, repeats): the longest run of a repeated block at each point."""
    out: list[tuple[int, int, int]] = []
    i, n = 0, len(sigs)
    while i < n:
        best = (1, 1)
        for p in range(1, max_period + 1):
            if i + 2 * p > n:
                break
            k = 1
            while i + (k + 1) * p <= n and sigs[i + k * p : i + (k + 1) * p] == sigs[i : i + p]:
                k += 1
            if k >= 2 and p * k > best[0] * best[1]:
                best = (p, k)
        p, k = best
        if k >= 3:
            out.append((i, p, k))
            i += p * k
        else:
            out.append((i, 1, 1))
            i += 1
    return out


def _draw_collapsed(drawing: graphviz.Digraph, g: Graph, saved: bool = False) -> None:
    """One box per module (outermost modules below the root), one per run of identical blocks."""
    order: list[str | None] = []
    members: dict[str | None, list[Op]] = {}
    for op in g.ops:
        mod = module_of(op.node)
        if mod is not None and mod.count(".") > 1:
            mod = ".".join(mod.split(".")[:2])  # a child of the root module
        if mod is not None and mod.count(".") == 0:
            mod = None  # ops run by the root module itself
        if mod not in members:
            members[mod] = []
            order.append(mod)
        members[mod].append(op)
    modules = [m for m in order if m is not None]
    sigs = [(module_type(m), _signature(g, members[m])) for m in modules]
    unit_of_op: dict[int, str] = {}
    for k, (start, period, reps) in enumerate(_runs(sigs)):
        block = modules[start : start + period * reps]
        uid = f"u{k}"
        ops = [op for m in block for op in members[m]]
        for op in ops:
            unit_of_op[op.seq] = uid
        types = " → ".join(module_type(m) for m in block[:period])
        counts = Counter(op.name for op in ops[: len(ops) // reps])
        params = sum(
            int(g.vars[v].tensor.size) for op in ops for v in set(op.inputs) if g.vars[v].kind in ("param", "leaf")
        )
        head = f"{block[0]}" if len(block) == 1 else f"{block[0]} … {block[-1]}"
        body = ", ".join(f"{c}×{name}" if c > 1 else name for name, c in counts.items())
        rep = f"\n× {reps} identical blocks" if reps > 1 else ""
        label = f"{head}\n{types}{rep}\nops per block: {body}\nparameters: {params:,}"
        if saved:
            label += f"\nsaved for backward: {human_bytes(g.saved_bytes(ops))}"
        drawing.node(
            uid, label=label, shape="box3d", style="filled", fillcolor="#fff6d5", id=uid, **{"class": "module"}
        )
    # Variables and operators outside any module are drawn as usual.
    hidden: set[str] = set()
    for vid, v in g.vars.items():
        producer = g.op_of(vid)
        users = g.consumers.get(vid, [])
        producer_unit = unit_of_op.get(producer.seq) if producer is not None else None
        if producer_unit is not None and all(unit_of_op.get(u.seq) == producer_unit for u, _ in users):
            if vid not in g.outputs:
                hidden.add(vid)
        if v.kind in ("param", "leaf", "const") and users and all(unit_of_op.get(u.seq) for u, _ in users):
            hidden.add(vid)
    for vid, v in g.vars.items():
        if vid in hidden:
            continue
        producer = g.op_of(vid)
        if producer is not None and producer.seq in unit_of_op:
            continue  # the output of a unit: drawn as an edge label between units
        style = "named" if v.kind == "value" and v.name else v.kind
        attrs = dict(_STYLE[style])
        attrs.update(label=_var_label(v), id=vid, **{"class": _classes(v, g.outputs)})
        drawing.node(vid, **attrs)
    for op in g.ops:
        if op.seq in unit_of_op:
            continue
        attrs = dict(_STYLE["op"])
        attrs.update(label=symbol(op.name), id=op.id, **{"class": f"op {op.name}"})
        drawing.node(op.id, **attrs)
    edges: set[tuple[str, str]] = set()

    def endpoint_out(vid: str) -> tuple[str, str]:
        producer = g.op_of(vid)
        if producer is not None and producer.seq in unit_of_op:
            return unit_of_op[producer.seq], _shape_text(g.vars[vid].shape)
        return vid, ""

    for op in g.ops:
        target = unit_of_op.get(op.seq, op.id)
        for input_id in op.inputs:
            if input_id in hidden:
                continue
            src, label = endpoint_out(input_id)
            if src == target or (src, target) in edges:
                continue
            edges.add((src, target))
            drawing.edge(src, target, label=label, **{"class": "fwd"})
        if op.seq not in unit_of_op:
            drawing.edge(op.id, op.output, **{"class": "fwd"})
    for vid in g.outputs:
        producer = g.op_of(vid)
        if producer is not None and producer.seq in unit_of_op:
            attrs = dict(_STYLE["named"])
            attrs.update(label=_var_label(g.vars[vid]), id=vid, peripheries="2")
            drawing.node(vid, **attrs)
            drawing.edge(unit_of_op[producer.seq], vid, **{"class": "fwd"})
