"""Training progress in a Jupyter notebook: a bar per epoch and a live plot (the terminal bar: train.progress).

In a terminal the trainer keeps its own ``tqdm`` bar and per-epoch lines. In an IPython kernel
(Jupyter, VS Code, nbclient) it also shows:

- a progress bar for the batches of each epoch: ``tqdm.auto``'s notebook widget when
  ``ipywidgets`` is installed, else a plain HTML ``<progress>`` bar updated in place (no
  widget extension needed, and it stays visible in an exported notebook);
- a board like the book's ``ProgressBoard``: J (= L + s) on the training set, L on the test
  set, and the accuracies, redrawn in place after every epoch (matplotlib, as inline SVG).

Both update one display each (IPython display handles), so a cell's output does not grow.
"""

from __future__ import annotations

import html
import importlib.util
import io
import sys
import time
from typing import Any

_BOARDS: dict[str, Board] = {}


def in_notebook() -> bool:
    """Whether this runs in an IPython kernel (a notebook), not a terminal."""
    mod = sys.modules.get("IPython")
    get = getattr(mod, "get_ipython", None)
    shell = get() if get is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _ipython_display() -> Any:
    return importlib.import_module("IPython.display")


class HtmlBar:
    """A tqdm-like bar (``update``, ``close``) drawn as HTML in one updated display."""

    def __init__(self, total: int, desc: str, initial: int = 0, unit: str = "batch", every: float = 0.25) -> None:
        ipd = _ipython_display()
        self._html, display = ipd.HTML, ipd.display
        self.total, self.desc, self.n, self.unit, self.every = total, desc, initial, unit, every
        self._start = time.perf_counter()
        self._first = initial
        self._shown = 0.0
        self._handle = display(self._html(self._render()), display_id=True)

    def _render(self) -> str:
        elapsed = time.perf_counter() - self._start
        rate = (self.n - self._first) / elapsed if elapsed > 0 else 0.0
        pct = 100 * self.n / self.total if self.total else 100.0
        text = f"{self.desc}: {self.n}/{self.total} {self.unit} ({pct:.0f}%), {rate:.1f} {self.unit}/s"
        return (
            f'<div class="chainrule-progress"><progress value="{self.n}" max="{max(self.total, 1)}" '
            f'style="width:60%"></progress> <span>{html.escape(text)}</span></div>'
        )

    def update(self, n: int = 1) -> None:
        """Advance by ``n``; redrawn at most every ``every`` seconds (and at the end)."""
        self.n += n
        now = time.perf_counter()
        if now - self._shown >= self.every or self.n >= self.total:
            self._shown = now
            if self._handle is not None:
                self._handle.update(self._html(self._render()))

    def close(self) -> None:
        """Draw the final state."""
        if self._handle is not None:
            self._handle.update(self._html(self._render()))


def notebook_bar(bar: Any, total: int, desc: str, initial: int, quiet: bool) -> Any:
    """In a notebook, the bar to use instead of the terminal one (``bar``, closed); elsewhere ``bar``."""
    if quiet or not in_notebook():
        return bar
    if bar is not None:
        bar.close()
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc=desc, leave=True, unit="batch")
    return HtmlBar(total, desc, initial)


class Board:
    """The curves so far (J and L; accuracies), redrawn in one display after each epoch."""

    def __init__(self, title: str = "") -> None:
        ipd = _ipython_display()
        self._html = ipd.HTML
        self.title = title
        self._handle = ipd.display(ipd.HTML("<div>(the curves appear after the first epoch)</div>"), display_id=True)

    def draw(self, history: list[dict[str, Any]]) -> str:
        """The board for ``history`` (a list of epoch metrics) as SVG; shown in place."""
        svg = board_svg(history, self.title)
        if self._handle is not None:
            self._handle.update(self._html(f'<div class="chainrule-board">{svg}</div>'))
        return svg


def board_svg(history: list[dict[str, Any]], title: str = "") -> str:
    """Loss and accuracy per epoch, side by side (matplotlib ``Figure``, no pyplot, as SVG)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(8, 3))
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train J = L + s")
    if all("test_loss" in h for h in history):
        ax_loss.plot(epochs, [h["test_loss"] for h in history], "s--", label="test L")
    ax_acc.plot(epochs, [h["train_accuracy"] for h in history], "o-", label="train accuracy")
    ax_acc.plot(epochs, [h["test_accuracy"] for h in history], "s--", label="test accuracy")
    for ax, name in ((ax_loss, "objective"), (ax_acc, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(epochs) == 1:
            ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    text = buf.getvalue()
    return text[text.index("<svg") :]


def epoch_done(out: Any, history: list[dict[str, Any]], title: str = "", quiet: bool = False) -> None:
    """In a notebook, redraw the board of the run writing to ``out`` (one board per run folder)."""
    if quiet or not in_notebook() or not history:
        return
    key = str(out)
    board = _BOARDS.get(key)
    if board is None or len(history) == 1:
        board = _BOARDS[key] = Board(title)
    board.draw(history)
