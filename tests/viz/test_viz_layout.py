"""The book's Figure 5.3.1 as a layout: x lower-left, J upper-right, arrows right/up, s one node."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

pytest.importorskip("graphviz")
if shutil.which("dot") is None:  # pragma: no cover
    pytest.skip("needs Graphviz", allow_module_level=True)

from tests.viz_helpers import SVG, parse_svg  # noqa: E402

import chainrule as cr  # noqa: E402
import chainrule.nn.functional as F  # noqa: E402
from chainrule.viz import examples  # noqa: E402

SECTION = {"x", "W1", "W2", "z", "h", "o", "y", "L", "s", "J"}


def _centres(svg: bytes) -> dict[str, tuple[float, float]]:
    """Each node's centre in the SVG (y grows downward there): the middle of its text lines."""
    import xml.etree.ElementTree as ET

    out = {}
    for g in ET.fromstring(svg).iter(f"{SVG}g"):
        if "node" not in (g.get("class") or "").split():
            continue
        texts = list(g.iter(f"{SVG}text"))
        out[g.get("id") or ""] = (float(texts[0].get("x")), sum(float(t.get("y")) for t in texts) / len(texts))
    return out


def _check_book(drawing) -> dict[str, str]:  # type: ignore[no-untyped-def]
    svg = drawing.pipe(format="svg")
    graph = parse_svg(svg)
    centre = _centres(svg)
    label = {nid: n.texts[0] for nid, n in graph.nodes.items() if "var" in n.classes}
    by_name = {v: k for k, v in label.items()}
    assert SECTION <= set(by_name), set(label.values())
    ops = [n for n in graph.nodes.values() if "op" in n.classes]
    assert ops and all("ellipse" in n.shapes for n in ops)  # operators are circles
    assert all(graph.nodes[by_name[v]].shapes & {"polygon", "path"} for v in SECTION)  # variables are boxes
    assert not any("ellipse" in graph.nodes[by_name[v]].shapes for v in SECTION)
    xs = [c[0] for c in centre.values()]
    ys = [c[1] for c in centre.values()]
    x, J = centre[by_name["x"]], centre[by_name["J"]]
    assert x[0] == min(xs) and J[0] == max(xs)  # input leftmost, objective rightmost
    assert J[1] == min(ys) and x[1] > J[1]  # objective on top (SVG y grows downward)
    for eid in graph.edges:
        tail, head = eid.split("->")
        (tx, ty), (hx, hy) = centre[tail], centre[head]
        assert hx >= tx - 0.5 and hy <= ty + 0.5, (label.get(tail, tail), label.get(head, head))  # right and/or up
    # s is one node fed by W1 and W2 (the penalty collapsed): its operator's inputs are exactly them.
    s_op = [e.split("->")[0] for e in graph.edges if e.endswith("->" + by_name["s"])]
    assert len(s_op) == 1
    assert {e.split("->")[0] for e in graph.edges if e.endswith("->" + s_op[0])} == {by_name["W1"], by_name["W2"]}
    assert "collapsed" in graph.nodes[s_op[0]].classes
    return by_name


def test_section_model_in_the_books_layout() -> None:
    ex = examples.section()
    assert ex.layout == "book"
    _check_book(cr.viz.draw(ex.J, names=ex.names, layout=ex.layout))


def test_readme_example_after_backward_in_the_books_layout_with_locals() -> None:
    rng = np.random.default_rng(0)
    W1 = cr.tensor(rng.standard_normal((16, 12)) * 0.01, requires_grad=True)
    W2 = cr.tensor(rng.standard_normal((10, 16)) * 0.01, requires_grad=True)
    x, y = cr.tensor(rng.random((12, 4))), rng.integers(0, 10, 4)
    lam = 1e-4
    z = W1 @ x
    h = F.relu(z)
    o = W2 @ h
    L = F.cross_entropy(o.T, y)
    s = lam / 2 * ((W1 * W1).sum() + (W2 * W2).sum())
    J = L + s
    J.backward()
    drawing = cr.viz.draw(J, names=locals(), layout="book")
    _check_book(drawing)
    assert not re.search(r'label="\(\)"', drawing.source)  # the released λ/2 is not an empty box


def test_book_layout_refuses_what_it_does_not_draw() -> None:
    ex = examples.section()
    with pytest.raises(ValueError, match="forward graph"):
        cr.viz.draw(ex.J, layout="book", backward=True)
    with pytest.raises(ValueError, match="'dot' or 'book'"):
        cr.viz.draw(ex.J, layout="sideways")
