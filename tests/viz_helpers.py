"""Shared helpers for the viz tests: read a Graphviz SVG back, count what the engine records."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SVG = "{http://www.w3.org/2000/svg}"


@dataclass
class SvgNode:
    id: str
    classes: set[str]
    texts: list[str]
    shapes: set[str]  # svg element kinds drawn: polygon, ellipse, path, ...


@dataclass
class SvgGraph:
    nodes: dict[str, SvgNode] = field(default_factory=dict)
    edges: dict[str, set[str]] = field(default_factory=dict)  # id -> classes
    title: list[str] = field(default_factory=list)
    clusters: list[str] = field(default_factory=list)


def parse_svg(data: bytes | str) -> SvgGraph:
    root = ET.fromstring(data)
    out = SvgGraph()
    for g in root.iter(f"{SVG}g"):
        cls = set((g.get("class") or "").split())
        gid = g.get("id") or ""
        texts = [t.text or "" for t in g.iter(f"{SVG}text")]
        if "node" in cls:
            shapes = {child.tag.replace(SVG, "") for child in g.iter() if child is not g}
            out.nodes[gid] = SvgNode(gid, cls, texts, shapes)
        elif "edge" in cls:
            out.edges[gid] = cls
        elif "cluster" in cls:
            out.clusters.append(" ".join(texts))
        elif "graph" in cls:
            out.title = [t.text or "" for t in g.findall(f"{SVG}text")]
    return out


class Recorder:
    """A plain hook: every node the engine records, and the order backward runs their rules."""

    def __init__(self) -> None:
        self.created: list[Any] = []
        self.walk: list[int] = []

    def forward(self, node: Any, prim: Any, out: Any) -> None:
        if node is not None:
            self.created.append(node)

    def backward(self, node: Any) -> None:
        self.walk.append(node.seq)


CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or "/usr/bin/chromium", "/usr/bin/chromedriver"


def have_chromium() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


@contextlib.contextmanager
def chromium(size: str = "1600,1400", offline: bool = False) -> Iterator[Any]:
    """A headless Chromium driven by selenium, with its own throw-away profile.

    ``offline``: every host name fails to resolve (a page's external resources fail at once).
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chainrule-chromium-")
    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        f"--window-size={size}",
    ):
        opts.add_argument(flag)
    if offline:
        opts.add_argument("--host-resolver-rules=MAP * ~NOTFOUND")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
