"""The explorer and the drawings run no one's script: hostile names in headless Chromium (issue 17, point 4)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("graphviz")
pytest.importorskip("selenium.webdriver")
from tests.viz_helpers import chromium, have_chromium  # noqa: E402

if shutil.which("dot") is None or not have_chromium():  # pragma: no cover
    pytest.skip("needs Graphviz's dot, chromium and chromium-driver", allow_module_level=True)

import chainrule as cr  # noqa: E402
import chainrule.nn.functional as F  # noqa: E402
from chainrule.core.primitive import REGISTRY  # noqa: E402
from chainrule.nn.modules import Linear, Sequential  # noqa: E402

PAYLOADS = [
    "<script>alert(1)</script>",
    "<!--<script>",
    '"><img src=x onerror=alert(1)>',
    '<A HREF="javascript:alert(1)">x</A>',
    "</script><script>alert(1)</script>",
    "javascript:alert(1)",
]

# Any script the page runs would call one of these; they count instead of showing a dialog.
TRAP = """
window.__ran = 0;
for (const f of ['alert', 'confirm', 'prompt']) window[f] = () => { window.__ran++; };
"""


@pytest.fixture(autouse=True)
def _no_test_primitives_left() -> Any:
    """The hostile primitives register themselves: remove them after each test (no op-table case)."""
    before = set(REGISTRY)
    yield
    for name in set(REGISTRY) - before:
        del REGISTRY[name]


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    with chromium("1200,900") as driver:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": TRAP})
        yield driver


def _hostile(p: str) -> tuple[Any, dict[str, Any], Any]:
    """A graph whose primitive, leaf, intermediate, module, names-dict key all carry the payload."""
    prim = cr.Primitive(p, lambda a: a * 2, save=())
    prim.defvjp(lambda g, out, a: g * 2)
    rng = np.random.default_rng(0)
    model = Sequential(Linear(3, 2, rng=rng))
    x = rng.standard_normal((4, 3)).astype(np.float32)
    w = cr.tensor(np.ones((4, 2), np.float32), requires_grad=True)
    w.name = p
    with cr.viz.track_modules(model, p):
        o = model(x)
    u = prim(o * w).named(p + "u")
    J = F.sum(u * u)
    return J, {p: x}, model


@pytest.mark.parametrize("payload", PAYLOADS)
def test_hostile_names_run_no_script_and_the_explorer_still_works(browser: Any, tmp_path: Path, payload: str) -> None:
    J, names, _ = _hostile(payload)
    page = cr.viz.html(J, path=tmp_path / "e.html", names=names, title=payload)
    text = page.read_text(encoding="utf-8")
    assert "<img" not in text and "<A HREF" not in text and "<!--<script>" not in text
    browser.get(page.as_uri())
    assert browser.execute_script("return window.__ran") == 0
    assert browser.execute_script("return document.querySelectorAll('img, a[href], a[*|href]').length") == 0
    assert browser.execute_script("return document.scripts.length") == 2  # the data block and the explorer's own
    assert browser.title == payload
    # The explorer's buttons still work: a step forward, a node's details, fit and 1:1.
    browser.find_element("id", "next").click()
    assert browser.find_element("id", "status").get_attribute("data-step") == "1"
    statuses = [browser.find_element("id", "status").text]
    for _ in range(6):
        browser.find_element("id", "next").click()
        statuses.append(browser.find_element("id", "status").text)
    assert any(f"rules of {payload} (node" in t for t in statuses), statuses  # the hostile name, as text
    browser.find_element("id", "actual").click()
    assert browser.execute_script("return document.querySelector('#canvas svg').dataset.fit") == "0"
    browser.find_element("id", "fit").click()
    assert browser.execute_script("return document.querySelector('#canvas svg').dataset.fit") == "1"
    leaf = browser.execute_script(
        "return [...document.querySelectorAll('g.node')].find(g => [...g.querySelectorAll('text')]"
        ".some(t => t.textContent === arguments[0])).id",
        payload,
    )
    browser.execute_script(
        "document.getElementById(arguments[0]).dispatchEvent(new MouseEvent('click', {bubbles: true}))", leaf
    )
    info = browser.find_element("id", "info").text
    assert f"name {payload}\n" in info and "shape (4, " in info  # the names-dict key (x) or the leaf (w)
    for a in browser.find_elements("css selector", "a"):  # Graphviz's own tooltip anchors: clicking runs nothing
        browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", a)
    assert browser.execute_script("return window.__ran") == 0
    # The page's CSP runs its own script only: a script element added now is refused.
    added = "const s = document.createElement('script'); s.textContent = 'alert(2)'; document.body.append(s);"
    browser.execute_script(added)
    assert browser.execute_script("return window.__ran") == 0


def test_hostile_names_in_a_notebook_style_page(browser: Any, tmp_path: Path) -> None:
    """The inline displays (a module-grouped drawing, equations, the sandboxed explorer) side by side."""
    parts = []
    for p in PAYLOADS:
        J, names, _ = _hostile(p)
        parts.append(cr.viz.draw(J, names=names, group="module", title=p)._repr_image_svg_xml())
        parts.append(cr.viz.equations(J, names=names)._repr_html_())
        parts.append(cr.viz.html(J, names=names, title=p)._repr_html_())
    page = tmp_path / "nb.html"
    page.write_text("<!DOCTYPE html><html><body>" + "\n".join(parts) + "</body></html>", encoding="utf-8")
    browser.get(page.as_uri())
    browser.switch_to.default_content()
    frames = browser.find_elements("css selector", "iframe")
    assert len(frames) == len(PAYLOADS)
    assert all(f.get_attribute("sandbox") == "allow-scripts" for f in frames)
    for f in frames:
        browser.switch_to.frame(f)
        # (a sandboxed srcdoc frame gets no trap, and could not open a dialog anyway): nothing injected
        assert browser.execute_script("return document.scripts.length") == 2
        assert (
            browser.execute_script("return document.querySelectorAll('img, a[href], a[*|href], [onerror]').length") == 0
        )
        browser.find_element("id", "next").click()
        assert browser.find_element("id", "status").get_attribute("data-step") == "1"
        browser.switch_to.default_content()
    assert browser.execute_script("return window.__ran") == 0
    assert browser.execute_script("return document.querySelectorAll('img, a[href], a[*|href], script').length") == 0
    clusters = browser.execute_script("return [...document.querySelectorAll('g.cluster text')].map(t => t.textContent)")
    assert any(PAYLOADS[0] in c for c in clusters)  # the module name drawn as text


def test_after_these_tests_no_hostile_primitive_is_registered() -> None:
    assert not any(p in REGISTRY for p in PAYLOADS)
