"""A new user's first commands at a terminal: `chainrule graph` and `chainrule explain` after the
README's install (`pip install -e ".[train]"`), with and without Graphviz, run as subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
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
