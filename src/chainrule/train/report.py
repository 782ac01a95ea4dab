"""What a training run tells its reader, in the section's words: J = L + s is the objective
(L the loss, s = λ/2(‖W1‖² + ‖W2‖²) the penalty). The console's epoch line, the run log (the same
lines) and the plot use these three letters and nothing else for them."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

PENALTY = "s = λ/2(‖W1‖² + ‖W2‖²)"


def epoch_line(m: Any) -> str:
    """The line printed (and logged) after each epoch, from its ``EpochMetrics``: train J is the
    mean of J = L + s over the epoch's minibatches, test L and s are measured at the epoch's end."""
    return (
        f"epoch {m.epoch:3d}  train J {m.train_loss:.4f}  test L {m.test_loss:.4f}  s {m.penalty:.4f}  "
        f"train acc {m.train_accuracy:.4f}  test acc {m.test_accuracy:.4f}  {m.seconds:.1f}s"
    )


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def recipe(cfg: Any) -> str:
    """A one-line name of the training recipe (from a ``Config``), e.g. for a plot's title."""
    model = {"section": "section MLP", "section-bias": "section MLP + bias", "mlp": "MLP"}.get(cfg.model, cfg.model)
    parts = [
        f"{model} 784-{cfg.hidden}-10 {cfg.activation}",
        f"{cfg.optimizer} lr {cfg.lr:g}",
        f"batch {cfg.batch_size}",
        f"λ {cfg.weight_decay:g}",
        _count(cfg.epochs, "epoch"),
    ]
    if cfg.schedule != "none":
        parts.append(f"{cfg.schedule} schedule")
    if cfg.dropout:
        parts.append(f"dropout {cfg.dropout:g}")
    return ", ".join(parts)


def _epoch_axis(ax: Any, epochs: list[int]) -> None:
    """Whole epochs only: one tick per epoch while they fit, and room either side of a lone point
    (matplotlib's default for one point is ticks at 0.96 … 1.04)."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("epoch")
    if epochs:
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    if len(epochs) <= 12:
        ax.set_xticks(epochs)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_curves(history: list[dict[str, Any]], path: Path | io.BytesIO, title: str | None = None) -> None:
    """Three panels per epoch: train J = L + s (averaged over the epoch's minibatches) and test L
    (at the epoch's end), the penalty s, and train/test accuracy; ``title`` names the recipe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [int(h["epoch"]) for h in history]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.8))
    ax1.plot(epochs, [h["train_loss"] for h in history], "o-", label="train J = L + s (epoch mean)")
    ax1.plot(epochs, [h.get("test_loss", math.nan) for h in history], "s-", label="test L")
    ax1.set_ylabel("J, L")
    ax1.legend()
    ax2.plot(epochs, [h.get("penalty", 0.0) for h in history], "o-", color="tab:green", label=PENALTY)
    ax2.set_ylabel("penalty s")
    ax2.legend()
    ax3.plot(epochs, [h["train_accuracy"] for h in history], "o-", label="train accuracy")
    ax3.plot(epochs, [h["test_accuracy"] for h in history], "s-", label="test accuracy")
    ax3.set_ylabel("accuracy")
    ax3.legend()
    for ax in (ax1, ax2, ax3):
        _epoch_axis(ax, epochs)
        ax.margins(y=0.2)  # room for the legend: no point on the frame
    if len(epochs) == 1 and history[0].get("penalty", 0.0) > 0:  # one value: its scale, from 0
        ax2.set_ylim(0, 1.5 * history[0]["penalty"])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


__all__ = ["epoch_line", "plot_curves", "recipe"]
