"""The offline HTML explorer, driven in headless Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("graphviz")
webdriver = pytest.importorskip("selenium.webdriver")
CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or "/usr/bin/chromium", "/usr/bin/chromedriver"
if shutil.which("dot") is None or not Path(CHROMIUM).exists() or not Path(CHROMEDRIVER).exists():  # pragma: no cover
    pytest.skip("needs Graphviz's dot, chromium and chromium-driver", allow_module_level=True)

from tests.viz_helpers import Recorder, chromium  # noqa: E402

import chainrule as cr  # noqa: E402
from chainrule.viz import examples  # noqa: E402
from chainrule.viz.explorer import html  # noqa: E402
from chainrule.viz.trace import trace  # noqa: E402


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    with chromium() as driver:
        yield driver


def _click(driver, element_id: str) -> None:  # type: ignore[no-untyped-def]
    driver.execute_script(
        "document.getElementById(arguments[0]).dispatchEvent(new MouseEvent('click', {bubbles: true}))", element_id
    )


def test_html_explorer_shows_nodes_and_replays_backward_in_the_engines_order(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rec = Recorder()
    with trace() as tr:
        ex = examples.section()
        with cr.hook(rec):
            ex.J.backward()  # a real backward, without retain_graph
    page = html(ex.J, path=tmp_path / "graph.html", trace=tr, names=ex.names, symbols=ex.symbols, batch_axis=1)
    text = page.read_text()
    assert "<script src" not in text and "https://" not in text  # self-contained, offline
    browser.get(page.as_uri())

    # Clicking W1 shows its shape and its backward equation.
    w1 = browser.execute_script(
        "return [...document.querySelectorAll('g.node')].find(g => g.querySelector('text')"
        " && g.querySelector('text').textContent === 'W1').id"
    )
    _click(browser, w1)
    info = browser.find_element("id", "info").text
    assert "(256, 784)" in info
    assert "∂J/∂W1 = ∂J/∂z xᵀ + λW1" in info
    assert "parameter" in info or "leaf" in info

    # Stepping visits the nodes in the order a hook saw the engine run them; the bytes reach zero.
    start = int(browser.find_element("id", "bytes").get_attribute("data-bytes"))
    assert start > 0
    seen, held = [], []
    for _ in rec.walk:
        browser.find_element("id", "next").click()
        status = browser.find_element("id", "status")
        seen.append(int(status.get_attribute("data-seq")))
        held.append(int(browser.find_element("id", "bytes").get_attribute("data-bytes")))
    assert seen == rec.walk
    assert held == sorted(held, reverse=True) and held[-1] == 0
    highlighted = browser.execute_script("return [...document.querySelectorAll('g.node.current')].map(g => g.id)")
    assert f"b{rec.walk[-1]}" in highlighted
    released = browser.execute_script("return document.querySelectorAll('g.edge.saved.released').length")
    assert released == browser.execute_script("return document.querySelectorAll('g.edge.saved').length") > 0
    browser.save_screenshot(str(tmp_path / "explorer.png"))
    assert (tmp_path / "explorer.png").stat().st_size > 10_000


def test_html_refuses_to_overwrite(tmp_path: Path) -> None:
    ex = examples.section()
    target = tmp_path / "g.html"
    target.write_text("mine")
    with pytest.raises(FileExistsError):
        html(ex.J, path=target)
    assert target.read_text() == "mine"
    html(ex.J, path=target, force=True)
    assert ex.tensors["W1"].grad is None  # the dry-run backward left the graph and the .grad alone


def _page_data(page: Path) -> dict:  # type: ignore[type-arg]
    import json

    text = page.read_text()
    start = text.index('<script id="data" type="application/json">') + len('<script id="data" type="application/json">')
    return json.loads(text[start : text.index("</script>", start)].replace("<\\/", "</"))  # type: ignore[no-any-return]


def test_html_node_details_include_the_source_line_under_detect_anomaly(tmp_path: Path) -> None:
    import numpy as np

    w = cr.tensor(np.ones((2, 3), np.float32), requires_grad=True).named("w")
    with cr.detect_anomaly():
        u = cr.tanh(w).named("u")  # this line
    J = cr.sum(u * u).named("J")
    data = _page_data(html(J, path=tmp_path / "g.html"))
    tanh_op = next(k for k, v in data["info"].items() if k.startswith("op") and v["op"] == "tanh")
    assert data["info"][tanh_op]["source"].endswith(f"test_viz_html.py:{_line_of('# this line')}")
    assert data["info"][tanh_op]["forward"] == "u = tanh(w)"
    assert "∂J/∂u = 2u" in data["info"][tanh_op]["backward"]
    assert [s["released"] for s in data["steps"]] == [True] * len(data["steps"])  # replayed as a plain backward


def _line_of(marker: str) -> int:
    lines = Path(__file__).read_text().splitlines()
    return next(i + 1 for i, line in enumerate(lines) if line.rstrip().endswith(marker) and "cr.tanh" in line)


def test_operator_labels_follow_the_replay(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with trace() as tr:
        ex = examples.section()
        ex.J.backward()
    page = html(ex.J, path=tmp_path / "g.html", trace=tr, names=ex.names)
    browser.get(page.as_uri())
    matmul = f"op{ex.tensors['z'].node.seq}"  # W1 @ x: the last node backward reaches
    label = "return [...document.getElementById(arguments[0]).querySelectorAll('text')].pop().textContent"
    assert browser.execute_script(label, matmul) == "alive"  # before the replay, though the graph is released now
    steps = len(tr.steps)
    for _ in range(steps):
        browser.find_element("id", "next").click()
    assert browser.execute_script(label, matmul) == "released"
    browser.find_element("id", "reset").click()
    assert browser.execute_script(label, matmul) == "alive"
    assert int(browser.find_element("id", "bytes").get_attribute("data-bytes")) > 0


def test_replay_of_a_retained_graph_releases_nothing(tmp_path: Path) -> None:
    rec = Recorder()
    with trace() as tr:
        ex = examples.section()
        with cr.hook(rec):
            ex.J.backward(retain_graph=True)
    data = _page_data(html(ex.J, path=tmp_path / "g.html", trace=tr, names=ex.names))
    assert [s["seq"] for s in data["steps"]] == rec.walk
    assert not any(s["released"] for s in data["steps"])  # the counter never drops


def test_the_explorer_fits_the_graph_to_the_window(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ex = examples.section()
    page = html(ex.J, path=tmp_path / "g.html", names=ex.names)
    browser.get(page.as_uri())
    inside = (
        "const c = document.getElementById('canvas').getBoundingClientRect();"
        "return [...document.querySelectorAll('#canvas g.node')].every(g => { const r = g.getBoundingClientRect();"
        " return r.left >= c.left - 1 && r.right <= c.right + 1 && r.top >= c.top - 1 && r.bottom <= c.bottom + 1; })"
    )
    overflow = "const c = document.getElementById('canvas'); return c.scrollHeight > c.clientHeight + 2"
    assert browser.execute_script(inside)  # x and W1 included: nothing below the fold
    assert not browser.execute_script(overflow)
    browser.find_element("id", "actual").click()
    assert browser.execute_script(overflow)  # at 1:1 the section's backward graph is taller than the window
    browser.find_element("id", "fit").click()
    assert browser.execute_script(inside)
