"""A new user's first commands at a terminal: `chainrule graph` and `chainrule explain` after the
README's install (`pip install -e ".[train]"`), with and without Graphviz, run as subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *sys.path])}

# runs `chainrule` with the Python package graphviz made unimportable
WITHOUT_GRAPHVIZ = "import sys; sys.modules['graphviz'] = None; from chainrule.cli.main import main; sys.exit(main())"


def chainrule(*args: str, path: str | None = None, code: str | None = None, cwd: Path | None = None):
    env = dict(ENV) if path is None else {**ENV, "PATH": path}
    argv = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "chainrule", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, check=False, timeout=120)


def test_the_main_install_brings_the_python_graphviz_package() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(req.startswith("graphviz") for req in extras["train"])
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert [req.split(">")[0] for req in core] == ["numpy"]  # the engine itself needs only NumPy


def test_graph_without_the_dot_program_says_so_in_one_line(tmp_path: Path) -> None:
    pytest.importorskip("graphviz")
    empty = tmp_path / "bin"
    empty.mkdir()
    for fmt in ("svg", "png"):
        run = chainrule("graph", "--out", str(tmp_path / f"g.{fmt}"), path=str(empty))
        assert run.returncode == 2
        assert "Traceback" not in run.stderr
        lines = run.stderr.splitlines()
        assert len(lines) == 1, run.stderr
        assert "`dot` program is not on PATH" in lines[0] and "sudo apt-get install graphviz" in lines[0]
        assert not (tmp_path / f"g.{fmt}").exists()
        assert (tmp_path / "g.dot").read_text().startswith("digraph")  # the source is kept, and named
        assert str(tmp_path / "g.dot") in lines[0]
        (tmp_path / "g.dot").unlink()


def test_graph_without_the_python_graphviz_package_says_so_in_one_line(tmp_path: Path) -> None:
    run = chainrule("graph", "--out", str(tmp_path / "g.svg"), code=WITHOUT_GRAPHVIZ)
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        "chainrule: error: drawing needs the Python package graphviz, which is not installed: "
        '`pip install graphviz` (it comes with `pip install -e ".[train]"`)'
    ]
    assert list(tmp_path.iterdir()) == []


def test_explain_needs_no_graphviz_at_all(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    run = chainrule("explain", "--text", code=WITHOUT_GRAPHVIZ, path=str(empty))
    assert run.returncode == 0, run.stderr
    assert "∂J/∂W2" in run.stdout


def _explain(capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    from chainrule.cli.main import main

    assert main(["explain", *flags]) == 0
    return capsys.readouterr().out


def test_explain_prints_readable_unicode_by_default_and_latex_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    default = chainrule("explain")
    assert default.returncode == 0, default.stderr
    assert default.stdout == _explain(capsys, "--text")  # --text still works, and is the default
    assert "∂J/∂W2 = ∂J/∂o hᵀ + λW2" in default.stdout and "s = λ/2 ‖W1‖² + λ/2 ‖W2‖²" in default.stdout
    for raw in ("\\frac", "\\partial", "$$", "\\mathbf"):
        assert raw not in default.stdout
    markdown = _explain(capsys, "--markdown")
    assert markdown.startswith("### Forward propagation")
    assert "$$ \\frac{\\partial J}{\\partial \\mathbf{W}^{(2)}} = " in markdown
    latex = _explain(capsys, "--latex")
    lines = [line for line in latex.splitlines() if line]
    assert all(line.startswith(("\\[", "%")) for line in lines), lines
    assert "\\[ \\frac{\\partial J}{\\partial \\mathbf{W}^{(2)}} = " in latex
    assert sum(line.startswith("\\[") for line in lines) == markdown.count("$$") // 2 + markdown.count("chain rule: $")
    from chainrule.cli.main import main

    with pytest.raises(SystemExit) as info:
        main(["explain", "--text", "--latex"])
    assert info.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_explain_on_an_encoding_without_the_symbols_says_so_in_one_line() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "chainrule", "explain"],
        capture_output=True,
        env={**ENV, "PYTHONIOENCODING": "ascii"},
        check=False,
        timeout=60,
    )
    assert run.returncode == 1
    err = run.stderr.decode()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and "PYTHONIOENCODING=utf-8" in err


def test_the_docs_show_what_chainrule_explain_prints(capsys: pytest.CaptureFixture[str]) -> None:
    page = (ROOT / "docs" / "graph.md").read_text()
    shown = page.split("```text\n$ chainrule explain\n", 1)[1].split("```", 1)[0]
    assert _explain(capsys) == shown


def test_the_readme_first_screen_leads_to_graph_and_explain() -> None:
    readme = (ROOT / "README.md").read_text()
    first = readme.split("```bash", 1)[1].split("```", 1)[0]
    assert 'pip install -e ".[train]"' in first
    assert "`chainrule graph`" in first and "`chainrule explain`" in first and "apt-get install graphviz" in first
