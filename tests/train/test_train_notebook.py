"""Training's notebook displays (train/progress.py) with a stand-in for IPython's display; the real
kernel runs them in tests/viz/test_viz_notebook.py."""

from __future__ import annotations

import re
from typing import Any

import pytest

from chainrule.train import notebook as progress


class _Handle:
    def __init__(self, log: list[str], first: Any) -> None:
        self.log = log
        self.log.append(first.data)

    def update(self, obj: Any) -> None:
        self.log.append(obj.data)


class _HTML:
    def __init__(self, data: str) -> None:
        self.data = data


def _fake(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    handles: list[list[str]] = []

    class Display:
        HTML = _HTML

        @staticmethod
        def display(obj: Any, display_id: bool = False) -> _Handle:
            assert display_id  # every display is updated in place
            handles.append([])
            return _Handle(handles[-1], obj)

    monkeypatch.setattr(progress, "_ipython_display", lambda: Display)
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(progress.importlib.util, "find_spec", lambda name: None)  # no ipywidgets
    return handles


def test_outside_a_notebook_nothing_changes() -> None:
    bar = object()
    assert progress.notebook_bar(bar, 10, "epoch 1/1", 0, quiet=False) is bar
    progress.epoch_done("run", [{"epoch": 1}])  # no kernel: no display, no error
    assert not progress.in_notebook()


def test_html_bar_replaces_the_terminal_bar_and_ends_full(monkeypatch: pytest.MonkeyPatch) -> None:
    handles = _fake(monkeypatch)

    class Terminal:
        closed = False

        def close(self) -> None:
            self.closed = True

    term = Terminal()
    bar = progress.notebook_bar(term, 40, "epoch 1/2", 0, quiet=False)
    assert term.closed and isinstance(bar, progress.HtmlBar)
    for _ in range(40):
        bar.update(1)
    bar.close()
    shown = handles[0]
    assert 2 <= len(shown) <= 43  # throttled
    assert '<progress value="0" max="40"' in shown[0] and '<progress value="40" max="40"' in shown[-1]
    assert "epoch 1/2: 40/40 batch (100%)" in shown[-1]
    assert progress.notebook_bar(None, 40, "x", 0, quiet=True) is None  # quiet: nothing at all


def test_board_is_one_display_redrawn_per_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    handles = _fake(monkeypatch)
    epoch = {"train_loss": 1.0, "test_loss": 0.9, "train_accuracy": 0.5, "test_accuracy": 0.6}
    history = [{"epoch": 1, **epoch}]
    progress.epoch_done("/tmp/run-a", history, "title <b>")
    history.append({"epoch": 2, **epoch, "train_loss": 0.5})
    progress.epoch_done("/tmp/run-a", history, "title <b>")
    assert len(handles) == 1 and len(handles[0]) == 3  # placeholder, epoch 1, epoch 2
    svg = handles[0][-1]
    assert "<svg" in svg and "train J = L + s" in svg and "test L" in svg
    one = progress.board_svg(history[:1])
    ticks = re.findall(r"<!-- (\d+(?:\.\d+)?) -->", one)
    assert ticks[:3] == ["0", "1", "2"]  # one epoch: the x axis has integer ticks around it, not 0.96-1.04
