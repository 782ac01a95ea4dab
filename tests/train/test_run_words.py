"""Item 6 of issue 19: one vocabulary (J = L + s) in the console, the run log and the plot; the
run log holds every line the run printed; a one-epoch plot has whole-epoch ticks and says "1 epoch"."""

import io
import re

import pytest

from chainrule.cli.main import main
from chainrule.data.fashion_mnist import DEBIAN_DIR
from chainrule.train.config import Config, EpochMetrics
from chainrule.train.report import epoch_line, plot_curves, recipe

TINY = ["--model", "mlp", "--hidden", "8", "--limit-train", "300", "--limit-test", "100", "--batch-size", "100"]
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d ")


def _figures(monkeypatch):
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    return figures


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="dataset-fashion-mnist is installed by .ci/run")
@pytest.mark.usefixtures("fashion_mnist_read_once")
def test_console_log_and_plot_say_the_same_and_the_log_has_every_printed_line(tmp_path, capsys, monkeypatch):
    figures = _figures(monkeypatch)
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(run)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"run folder {run};") and printed[-1].startswith(f"wrote {run}/metrics.csv")
    logged = [STAMP.sub("", line) for line in (run / "run.log").read_text().splitlines()]
    assert all(STAMP.match(line) for line in (run / "run.log").read_text().splitlines())
    missing = [line for line in printed if line not in logged]
    assert missing == [], f"printed but not in run.log: {missing}"
    (epoch,) = [line for line in printed if line.startswith("epoch ")]
    assert re.fullmatch(
        r"epoch   1  train J \d\.\d{4}  test L \d\.\d{4}  s \d\.\d{4}  "
        r"train acc \d\.\d{4}  test acc \d\.\d{4}  \d+\.\ds",
        epoch,
    ), epoch
    assert "loss" not in epoch
    (fig,) = figures
    labels = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
    assert labels[:3] == ["train J = L + s (epoch mean)", "test L", "s = λ/2(‖W1‖² + ‖W2‖²)"]
    assert [ax.get_ylabel() for ax in fig.axes] == ["J, L", "penalty s", "accuracy"]
    assert "loss" not in " ".join(labels + [ax.get_ylabel() for ax in fig.axes])
    assert ", 1 epoch" in fig._suptitle.get_text() and "epochs" not in fig._suptitle.get_text()
    for ax in fig.axes:  # one epoch: one tick, at 1, with room either side (not 0.96 ... 1.04)
        assert list(ax.get_xticks()) == [1]
        assert ax.get_xlim() == (0.5, 1.5)
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1"]


def test_the_epoch_line_uses_the_sections_letters() -> None:
    m = EpochMetrics(1, 0.61234, 0.75, 0.7, 2.34, 0.1, test_loss=0.65, penalty=0.0123)
    assert epoch_line(m) == (
        "epoch   1  train J 0.6123  test L 0.6500  s 0.0123  train acc 0.7500  test acc 0.7000  2.3s"
    )


def test_plot_titles_and_ticks_for_one_and_for_many_epochs(monkeypatch) -> None:
    figures = _figures(monkeypatch)
    row = {"train_accuracy": 0.5, "test_accuracy": 0.4, "seconds": 1.0, "lr": 0.1, "penalty": 0.01}
    assert recipe(Config(epochs=1)).endswith("λ 0.0001, 1 epoch")
    assert recipe(Config(epochs=3)).endswith("λ 0.0001, 3 epochs")
    for n in (1, 3, 40):
        history = [{"epoch": e, "train_loss": 1 / e, "test_loss": 1.1 / e} | row for e in range(1, n + 1)]
        plot_curves(history, io.BytesIO(), title=recipe(Config(epochs=n)))
    one, three, forty = figures
    assert list(three.axes[0].get_xticks()) == [1, 2, 3]
    ticks = forty.axes[0].get_xticks()
    assert all(float(t).is_integer() for t in ticks) and len(ticks) <= 12  # whole epochs, not one per epoch
    assert forty.axes[0].get_xlim() == (0.5, 40.5)
