"""Jupyter displays without a kernel: what each object hands the front end, escaped and offline."""

from __future__ import annotations

import html
import re
import shutil
from typing import Any

import numpy as np
import pytest

import chainrule as cr
from chainrule.viz import examples
from chainrule.viz.tensor_display import register_tensor_display, tensor_html

HOSTILE = "<img src=x onerror=alert(1)>"


def test_equations_are_a_str_that_displays_as_text_and_latex() -> None:
    ex = examples.section()
    eq = cr.viz.equations(ex.J, names=ex.names, symbols=ex.symbols)
    assert isinstance(eq, str) and eq.startswith("### Forward propagation")  # unchanged for print and files
    page = eq._repr_html_()
    assert "z = W1 x<br>" in page and "\\frac" not in page and "$" not in page
    latex = eq._repr_latex_()
    assert latex.startswith("$$\\begin{aligned}") and "\\frac{\\partial J}{\\partial \\mathbf{W}^{(1)}}" in latex
    text = cr.viz.equations(ex.J, names=ex.names, style="text")
    assert "z = W1 x" in text._repr_html_()


def test_hostile_names_are_escaped_in_equations_html_and_tex() -> None:
    w = cr.tensor(np.ones((2, 2), np.float32), requires_grad=True)
    w.name = HOSTILE
    J = cr.sum(cr.tanh(w) * 3.0)
    eq = cr.viz.equations(J)
    assert "<img" not in eq._repr_html_() and html.escape(HOSTILE) in eq._repr_html_()
    assert "<" not in eq._repr_latex_() and "<" not in str(eq)  # TeX: \lt, never a raw tag


def test_cost_and_memory_reports_display_as_tables() -> None:
    from chainrule.models import SectionMLP
    from chainrule.optim import SGD

    model = SectionMLP(20, 8, 3, weight_decay=1e-3)
    cost = cr.cost(lambda x: model.objective(x, np.arange(4) % 3)["J"], cr.ShapeDtype((4, 20)))
    page = cost._repr_html_()
    assert page.startswith('<table class="chainrule-table"') and f"{cost.forward_flops:,}" in page
    assert ">matmul<" in page and cost._repr_markdown_() == cost.table()
    opt = SGD(model.parameters(), lr=0.1)
    step = cr.memory.training_step(model, opt)
    prof = cr.memory.profile(step, cr.as_tensor(np.ones((4, 20), np.float32)), np.arange(4) % 3, optimizer=opt)
    page = prof._repr_html_()
    assert f"{prof.peak:,}" in page and "<svg" in page and "http" not in page.split("<svg", 1)[0]
    assert prof._repr_markdown_() == prof.table()


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
def test_explorer_inline_is_a_sandboxed_srcdoc_that_round_trips() -> None:
    pytest.importorskip("graphviz")
    ex = examples.section()
    explorer = cr.viz.html(ex.J, names=ex.names, title=HOSTILE)
    frame = explorer._repr_html_()
    m = re.fullmatch(r'<iframe class="chainrule-explorer" title="([^"]*)" sandbox="allow-scripts" '
                     r'referrerpolicy="no-referrer" style="[^"]*" srcdoc="([^"]*)"></iframe>', frame)  # fmt: skip
    assert m is not None
    assert html.unescape(m.group(2)) == explorer.page  # the attribute holds the whole page, escaped
    assert "<img" not in explorer.page and "https://" not in explorer.page and "<script src" not in explorer.page


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
def test_a_recorded_tensor_displays_with_its_graph_in_a_kernel() -> None:
    pytest.importorskip("graphviz")

    class Formatter:
        def __init__(self) -> None:
            self.types: dict[type, Any] = {}

        def for_type(self, typ: type, func: Any) -> None:
            self.types[typ] = func

    class Shell:
        def __init__(self) -> None:
            self.display_formatter = type("D", (), {"formatters": {"text/html": Formatter()}})()

    shell = Shell()
    assert register_tensor_display(shell)
    show = shell.display_formatter.formatters["text/html"].types[cr.Tensor]
    ex = examples.section()
    page = show(ex.J)
    assert page.startswith("<pre>tensor(") and "<svg" in page and ">W1<" in page
    assert tensor_html(cr.tensor([1.0, 2.0])) == f"<pre>{html.escape(repr(cr.tensor([1.0, 2.0])))}</pre>"
    assert not register_tensor_display()  # outside a kernel: nothing registered


def test_only_fragment_and_http_links_survive_in_the_explorers_svg() -> None:
    from chainrule.viz.explorer import safe_svg

    svg = (
        '<a xlink:href="#node1">a</a><a href="https://example.org/x">b</a>'
        '<a xlink:href="javascript:alert(1)">c</a><a href=" JaVaScRiPt:alert(1)">d</a>'
        "<a xlink:href='java&#x09;script:alert(1)'>e</a><a href=\"data:text/html,<script>\">f</a>"
        '<a href="vbscript:x">g</a>'
    )
    out = safe_svg(svg)
    assert 'xlink:href="#node1"' in out and 'href="https://example.org/x"' in out
    assert "script:" not in out.lower().replace("<script>", "") and "data:" not in out
    assert out.count("<a") == 7  # the anchors stay (their text is harmless), only the targets go
