"""Every ```python block of the tour and the guides runs, in page order, in one namespace per page.

A ```python block followed directly by a ```text block must print exactly that text, so a page
cannot show an output that the code no longer gives.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = sorted([*DOCS.glob("tour/*.md"), *DOCS.glob("guides/*.md"), DOCS / "translation.md", DOCS / "architecture.md"])
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)


def blocks(text: str) -> list[tuple[str, str, str | None, int]]:
    """(language, code, expected output or None, line) for each executable block."""
    found = [(m.group(1), m.group(2), m.start(), m.end()) for m in FENCE.finditer(text)]
    out = []
    for i, (lang, code, start, end) in enumerate(found):
        if lang != "python":
            continue
        expected = None
        if i + 1 < len(found) and found[i + 1][0] == "text" and not text[end : found[i + 1][2]].strip():
            expected = found[i + 1][1]
        out.append((lang, code, expected, text.count("\n", 0, start) + 1))
    return out


def _norm(s: str) -> str:
    return "\n".join(line.rstrip() for line in s.strip("\n").splitlines())


def test_pages_exist() -> None:
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert {"tour/forward.md", "tour/graph.md", "tour/backward.md", "tour/memory.md", "tour/exercises.md"} <= names
    assert all(blocks(p.read_text()) for p in PAGES if p.parent.name == "tour")


def _missing_requirement(text: str) -> str | None:
    """Pages that draw need Graphviz's dot; pages that read Fashion-MNIST need the Debian package
    (as tests/train/test_training.py): on a machine without them the page is skipped, not failed."""
    if ("cr.viz.draw" in text or '"graph"' in text) and (shutil.which("dot") is None or not _has("graphviz")):
        return "needs Graphviz's dot and the graphviz package"
    if "load_fashion_mnist" in text or '"train"' in text:
        from chainrule.data.fashion_mnist import DEBIAN_DIR

        if not DEBIAN_DIR.is_dir():
            return "needs dataset-fashion-mnist (installed by .ci/run)"
    return None


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_page_runs_and_outputs_match(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reason = _missing_requirement(page.read_text())
    if reason:
        pytest.skip(reason)
    monkeypatch.chdir(tmp_path)  # files a page writes land in a scratch folder
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for _, code, expected, line in blocks(page.read_text()):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            try:
                exec(compile(code, f"{page.name}:{line}", "exec"), namespace)
            except Exception as exc:  # pragma: no cover - the message is the point
                raise AssertionError(f"{page.name}, block at line {line} raised {exc!r}") from exc
        if expected is not None:
            got = _norm(buf.getvalue())
            assert got == _norm(expected), f"{page.name}, block at line {line}: output differs, got:\n{got}"
    assert os.getcwd() == str(tmp_path)
