"""Drawings of the section's model read back from the SVG Graphviz makes of them."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

graphviz = pytest.importorskip("graphviz")
if shutil.which("dot") is None:  # pragma: no cover - CI installs graphviz
    pytest.skip("Graphviz's dot is not installed", allow_module_level=True)

from tests.viz_helpers import Recorder, parse_svg  # noqa: E402

import chainrule as cr  # noqa: E402
from chainrule.core.backward import toposort  # noqa: E402
from chainrule.viz import drawing as D  # noqa: E402
from chainrule.viz import examples  # noqa: E402
from chainrule.viz.trace import trace  # noqa: E402

SECTION = ["x", "W1", "W2", "z", "h", "o", "y", "L", "s", "J"]


def _svg(drawing: D.Drawing) -> object:
    return parse_svg(drawing.pipe(format="svg"))


def _name(node: object) -> str:
    return node.texts[0] if node.texts else ""  # type: ignore[attr-defined]


def test_forward_drawing_has_one_box_per_variable_and_one_circle_per_operator() -> None:
    rec = Recorder()
    with cr.hook(rec):
        ex = examples.section()
    svg = _svg(D.draw(ex.J, names=ex.names))
    boxes = [n for n in svg.nodes.values() if "var" in n.classes]
    circles = [n for n in svg.nodes.values() if "op" in n.classes]
    for name in SECTION:
        hits = [n for n in boxes if _name(n) == name]
        assert len(hits) == 1, (name, [_name(n) for n in boxes])
        assert "ellipse" not in hits[0].shapes  # a box, not a circle
    assert all("ellipse" in n.shapes for n in circles)
    assert len(circles) == len(rec.created) == len(toposort([ex.J.node]))
    # Parameters, inputs and intermediates are told apart.
    by_name = {_name(n): n for n in boxes}
    assert {"W1", "W2"} <= {k for k, n in by_name.items() if "leaf" in n.classes or "param" in n.classes}
    assert {"x", "y"} <= {k for k, n in by_name.items() if "input" in n.classes}
    assert {"z", "h", "o", "L", "s", "J"} <= {k for k, n in by_name.items() if "value" in n.classes}
    assert "output" in by_name["J"].classes
    # Shape and dtype are written under the name.
    assert by_name["W1"].texts[1] == "(256, 784) float32"


def test_forward_edges_match_the_recorded_graph() -> None:
    ex = examples.section()
    svg = _svg(D.draw(ex.J, names=ex.names))
    ids = {_name(n): n.id for n in svg.nodes.values() if "var" in n.classes}
    expected: set[str] = set()
    for node in toposort([ex.J.node]):
        op = f"op{node.seq}"
        expected.add(f"{op}->v{node.seq}")
        for parent, kept in zip(node.parents, node.kept, strict=True):
            if isinstance(parent, cr.Node):
                expected.add(f"v{parent.seq}->{op}")
            elif parent is not None:
                expected.add(f"{ids[parent.name]}->{op}")
            elif kept is ex.tensors["x"].numpy():
                expected.add(f"{ids['x']}->{op}")
            elif kept is ex.tensors["y"]:
                expected.add(f"{ids['y']}->{op}")
    drawn = {e for e, cls in svg.edges.items() if "fwd" in cls}
    assert expected <= drawn
    constants = {e for e in drawn - expected}
    # Only the scalar constant λ/2 is left: drawn as a number feeding its multiply.
    assert all(svg.nodes[e.split("->")[0]].classes >= {"const"} for e in constants), constants


def test_backward_drawing_numbers_the_walk_as_a_hook_sees_the_engine_run_it() -> None:
    rec = Recorder()
    with trace() as tr:
        ex = examples.section()
        with cr.hook(rec):
            ex.J.backward()
    svg = _svg(D.draw(ex.J, backward=True, names=ex.names, trace=tr))
    bops = [n for n in svg.nodes.values() if "bop" in n.classes]
    numbers = {int(n.id[1:]): int(n.texts[0]) for n in bops}
    assert [seq for seq, _ in sorted(numbers.items(), key=lambda kv: kv[1])] == rec.walk
    # One gradient variable per forward variable that needs one (every value and W1, W2; not x, y).
    grads = {n.texts[0] for n in svg.nodes.values() if "grad" in n.classes}
    values = len(toposort([ex.J.node]))
    assert len([n for n in svg.nodes.values() if "grad" in n.classes]) == values + 2
    for name in ["W1", "W2", "z", "h", "o", "L", "s"]:
        assert f"∂J/∂{name}" in grads
    assert "∂J/∂J = 1" in grads
    assert not any(g in grads for g in ("∂J/∂x", "∂J/∂y"))
    # Dashed edges go from each saved array to the backward operator that reads it.
    saved = {e for e, cls in svg.edges.items() if "saved" in cls}
    z_node = ex.tensors["h"].node  # relu keeps its output h
    assert f"v{z_node.seq}=>b{z_node.seq}" in saved
    assert all("released" in svg.edges[e] for e in saved)  # the graph was run without retain_graph


def test_backward_order_without_a_trace_comes_from_a_dry_run_that_changes_nothing() -> None:
    ex = examples.section()
    svg = _svg(D.draw(ex.J, backward=True, names=ex.names))
    numbers = {int(n.id[1:]): int(n.texts[0]) for n in svg.nodes.values() if "bop" in n.classes}
    assert ex.tensors["W1"].grad is None  # the dry run touched no .grad
    rec = Recorder()
    with cr.hook(rec):
        ex.J.backward()  # and the graph is still whole
    assert [seq for seq, _ in sorted(numbers.items(), key=lambda kv: kv[1])] == rec.walk


def test_saved_labels_bytes_alive_then_released_with_the_total_in_the_caption() -> None:
    ex = examples.section()
    matmul = ex.tensors["z"].node
    before = _svg(D.draw(ex.J, saved=True, names=ex.names))
    label = before.nodes[f"op{matmul.seq}"].texts
    assert label[0] == "@" and label[2] == "alive"
    assert label[1] == D.human_bytes(matmul.saved_nbytes)
    total = D.human_bytes(
        len({id(a): a.nbytes for n in toposort([ex.J.node]) for a in n.saved_arrays()})
        and sum({id(a): a.nbytes for n in toposort([ex.J.node]) for a in n.saved_arrays()}.values())
    )
    assert any(f"saved for backward: {total} alive" in line for line in before.title)
    ex.J.backward()
    after = _svg(D.draw(ex.J, saved=True, names=ex.names))
    label = after.nodes[f"op{matmul.seq}"].texts
    assert label[1] == before.nodes[f"op{matmul.seq}"].texts[1] and label[2] == "released"
    assert any("already released" in line for line in after.title)


def test_second_order_drawing_counts_every_node_the_engine_recorded() -> None:
    rec = Recorder()
    with cr.hook(rec), trace() as tr:
        ex = examples.section()
        first = len(rec.created)
        ex.J.backward(create_graph=True)
    W1, W2 = ex.tensors["W1"], ex.tensors["W2"]
    svg = _svg(D.draw(ex.J, W1.grad, W2.grad, names=ex.names, trace=tr))
    ops = [n for n in svg.nodes.values() if "op" in n.classes]
    assert len(ops) == len(rec.created)
    second = [n for n in ops if "second-order" in n.classes]
    assert len(second) == len(rec.created) - first
    caption = " ".join(svg.title)
    assert f"first order: {first} nodes" in caption
    assert f"second order (recorded backward): {len(rec.created) - first} nodes" in caption


def test_module_grouping_clusters_and_collapses_repeated_blocks() -> None:
    ex = examples.mlp()
    svg = _svg(D.draw(ex.J, group="module", collapse=False, names=ex.names))
    assert sorted(svg.clusters) == ["mlp.0 (Linear)", "mlp.1 (ReLU)", "mlp.2 (Linear)"]
    deep = examples.mlp(sizes=(32,) + (16,) * 30 + (4,))
    svg = _svg(D.draw(deep.J, group="module", collapse=True))
    modules = [n for n in svg.nodes.values() if "module" in n.classes]
    assert len(modules) <= 4
    assert any(any("× 29 identical blocks" in t for t in n.texts) for n in modules), [n.texts for n in modules]


def test_missing_dot_raises_a_clear_error_and_writes_the_source(tmp_path: object, monkeypatch: object) -> None:
    ex = examples.section()
    drawing = D.draw(ex.J, names=ex.names)
    monkeypatch.setenv("PATH", str(tmp_path))  # type: ignore[attr-defined]
    target = tmp_path / "g.svg"  # type: ignore[operator]
    with pytest.raises(D.DotNotFoundError, match="apt-get install graphviz") as info:
        D.write(drawing, target)
    assert not target.exists()
    assert (tmp_path / "g.dot").read_text().startswith("digraph")  # type: ignore[operator]
    assert info.value.source_path == str(tmp_path / "g.dot")  # type: ignore[operator]
    with pytest.raises(D.DotNotFoundError, match="brew install graphviz"):
        drawing.render(str(tmp_path / "r"), format="png")  # type: ignore[operator]
    assert os.path.exists(tmp_path / "r")  # type: ignore[operator]


def test_write_is_atomic_and_never_overwrites_silently(tmp_path: object) -> None:
    ex = examples.section()
    target = tmp_path / "g.svg"  # type: ignore[operator]
    target.write_text("mine")
    with pytest.raises(FileExistsError, match="--force"):
        D.write(D.draw(ex.J), target)
    assert target.read_text() == "mine"
    D.write(D.draw(ex.J), target, force=True)
    assert target.read_text().lstrip().startswith("<?xml")
    assert [p.name for p in tmp_path.iterdir()] == ["g.svg"]  # type: ignore[attr-defined]


def test_graph_of_a_tensor_displays_in_jupyter() -> None:
    t = cr.tensor(np.ones(3, np.float32), requires_grad=True)
    d = cr_viz_graph((t * 2).sum())
    bundle = d._repr_mimebundle_()
    assert "image/svg+xml" in bundle


def cr_viz_graph(t: cr.Tensor) -> D.Drawing:
    import chainrule.viz as viz

    return viz.graph(t)
