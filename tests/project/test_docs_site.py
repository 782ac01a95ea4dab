"""The built docs site in headless Chromium: every page's math is typeset by KaTeX (no raw LaTeX
such as ``\\frac`` left in the text) and nothing is loaded from another host."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.viz_helpers import chromium

from conftest import LocalServer

webdriver = pytest.importorskip("selenium.webdriver")
pytest.importorskip("mkdocs")
CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or "/usr/bin/chromium", "/usr/bin/chromedriver"
if not Path(CHROMIUM).exists() or not Path(CHROMEDRIVER).exists():  # pragma: no cover
    pytest.skip("needs chromium and chromium-driver (installed by .ci/run)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
RAW_LATEX = ("\\frac", "\\partial", "\\mathbf", "\\lambda", "\\[", "\\(", "$$")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # type: ignore[no-untyped-def]
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *sys.path])}
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    with chromium() as driver:  # the shared headless Chromium (tests/viz_helpers.py)
        yield driver


VISIBLE_TEXT = """
const root = document.querySelector('article') || document.body;
const copy = root.cloneNode(true);
copy.querySelectorAll('pre, code, .katex-mathml, annotation').forEach(e => e.remove());
return copy.innerText;
"""


def test_every_page_has_its_math_typeset_and_loads_nothing_from_elsewhere(site: Path, browser) -> None:  # type: ignore[no-untyped-def]
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("index.html"))
    assert len(pages) >= 15 and "graph/index.html" in pages
    typeset = 0
    with LocalServer(functools.partial(_Quiet, directory=str(site))) as server:
        for page in pages:
            browser.get(server.url + page)
            text = browser.execute_script(VISIBLE_TEXT)
            raw = [r for r in RAW_LATEX if r in text]
            assert not raw, f"{page}: raw LaTeX {raw} in the page's text"
            maths = browser.execute_script("return document.querySelectorAll('.arithmatex').length")
            rendered = browser.execute_script("return document.querySelectorAll('.arithmatex .katex').length")
            errors = browser.execute_script("return document.querySelectorAll('.katex-error').length")
            assert rendered == maths and errors == 0, f"{page}: {rendered} of {maths} formulas typeset, {errors} errors"
            typeset += rendered
            hosts = browser.execute_script(
                "return performance.getEntriesByType('resource').map(r => r.name)"
                ".filter(n => !n.startsWith(arguments[0]) && !n.startsWith('data:'))",
                server.url,
            )
            assert hosts == [], f"{page} loaded {hosts}"
    assert typeset >= 1  # the graph page's ∂J/∂W⁽²⁾ at least


def test_the_graph_page_shows_the_gradient_as_a_formula(site: Path, browser) -> None:  # type: ignore[no-untyped-def]
    with LocalServer(functools.partial(_Quiet, directory=str(site))) as server:
        browser.get(server.url + "graph/")
        display = browser.find_elements("css selector", "div.arithmatex .katex-display")
        assert display, "no display formula typeset on the graph page"
        tex = browser.execute_script("return arguments[0].querySelector('annotation').textContent", display[0])
        assert "\\frac{\\partial J}{\\partial \\mathbf{W}^{(2)}}" in tex  # the source KaTeX typeset
        fonts = browser.execute_script(
            "return [...document.fonts].filter(f => f.family.startsWith('KaTeX') && f.status === 'loaded').length"
        )
        assert fonts >= 1  # KaTeX's own fonts, served from the site


def _hook():  # type: ignore[no-untyped-def]
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_katex_hook", ROOT / "docs_hooks" / "katex.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_katex_package_that_is_not_the_pinned_one_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = _hook()
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    npm = fake_bin / "npm"  # an npm whose registry hands out another tarball
    npm.write_text(
        '#!/bin/sh\nwhile [ "$1" != --pack-destination ]; do shift; done\n'
        f'printf tampered > "$2/katex-{hook.VERSION}.tgz"\n'
    )
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake_bin))
    with pytest.raises(hook.KatexError, match="is not the pinned sha512-"):
        hook.fetch(tmp_path / "cache" / "katex")
    assert not (tmp_path / "cache" / "katex").exists()
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(hook.KatexError, match="npm is not on PATH"):
        hook.fetch(tmp_path / "cache" / "katex")
