"""``chainrule graph``: files written atomically, never overwritten without --force."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

pytest.importorskip("graphviz")
if shutil.which("dot") is None:  # pragma: no cover
    pytest.skip("Graphviz's dot is not installed", allow_module_level=True)

from tests.viz_helpers import parse_svg  # noqa: E402

from chainrule.cli import graph as cli  # noqa: E402


@pytest.mark.parametrize("model", ["section", "section-bias", "mlp"])
def test_graph_writes_each_model(tmp_path: Path, model: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / f"{model}.svg"
    assert cli.main(["graph", "--model", model, "--backward", "--saved", "--out", str(out)]) == 0
    svg = parse_svg(out.read_bytes())
    names = {n.texts[0] for n in svg.nodes.values() if "var" in n.classes and n.texts}
    assert {"x", "y", "L"} <= names
    assert f"wrote {out}" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temp file left behind


def test_graph_refuses_to_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine.png"
    out.write_bytes(b"precious")
    assert cli.main(["graph", "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    assert cli.main(["graph", "--out", str(out), "--force"]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("fmt", ["svg", "png", "pdf", "dot", "html"])
def test_graph_formats(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"g.{fmt}"
    assert cli.main(["graph", "--second-order", "--format", fmt, "--out", str(out)]) == 0
    head = out.read_bytes()[:64]
    expected = {"svg": b"<?xml", "png": b"\x89PNG", "pdf": b"%PDF", "dot": b"digraph", "html": b"<!DOCTYPE html>"}
    assert head.lstrip().startswith(expected[fmt])


def test_second_order_caption(tmp_path: Path) -> None:
    out = tmp_path / "so.svg"
    assert cli.main(["graph", "--second-order", "--out", str(out)]) == 0
    caption = " ".join(parse_svg(out.read_bytes()).title)
    assert "first order: 12 nodes" in caption and "second order (recorded backward)" in caption


def test_missing_dot_is_reported_and_the_source_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    out = tmp_path / "g.svg"
    assert cli.main(["graph", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Graphviz" in err and "apt-get install graphviz" in err
    assert (tmp_path / "g.dot").read_text().startswith("digraph")
    assert not out.exists()


def _wired() -> bool:
    from chainrule.cli import main as main_cli

    return "graph" in main_cli._parser().format_help()


@pytest.mark.skipif(not _wired(), reason="chainrule graph/explain not wired into chainrule.cli.main yet")
def test_python_m_chainrule_graph_and_explain(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = tmp_path / "g.svg"
    run = subprocess.run(
        [sys.executable, "-m", "chainrule", "graph", "--backward", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert out.read_bytes().lstrip().startswith(b"<?xml")
    again = subprocess.run(
        [sys.executable, "-m", "chainrule", "graph", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert again.returncode == 2 and "--force" in again.stderr
    explain = subprocess.run(
        [sys.executable, "-m", "chainrule", "explain", "--text"], capture_output=True, text=True, env=env, check=False
    )
    assert explain.returncode == 0 and "∂J/∂W1 = ∂J/∂z xᵀ + λW1" in explain.stdout


def test_draw_displays_in_jupyter() -> None:
    import numpy as np

    import chainrule as cr

    t = cr.tensor(np.ones(3, np.float32), requires_grad=True)
    assert "image/svg+xml" in cr.viz.draw((t * 2).sum())._repr_mimebundle_()
    assert cr.viz.graph is not None


def test_graph_draws_the_section_model_as_figure_5_3_1_by_default(tmp_path: Path) -> None:
    """The section model's forward graph uses the book's layout unless --layout dot is asked for."""
    default, book, dot = (tmp_path / f"{n}.dot" for n in ("default", "book", "dot"))
    assert cli.main(["graph", "--out", str(default)]) == 0
    assert cli.main(["graph", "--layout", "book", "--out", str(book)]) == 0
    assert cli.main(["graph", "--layout", "dot", "--out", str(dot)]) == 0

    def placed(path: Path) -> list[str]:  # each box's label and pinned position (the book layout pins them)
        return sorted(re.findall(r"label=(\S+) [^\n]*pos=\"([^\"]+)\"", path.read_text()))

    assert placed(default) == placed(book)
    assert len(placed(default)) >= 10  # x, W1, z, h, W2, o, y, L, s, J at fixed places
    assert not placed(dot)  # dot chooses its own places


def test_graph_book_layout_with_the_backward_pass_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["graph", "--layout", "book", "--backward", "--out", str(tmp_path / "g.svg")]) == 2
    assert "--layout book draws the forward graph" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
