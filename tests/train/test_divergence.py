"""A diverged run is a clear failure: exit 1 at the step, the cause named, metrics so far, the last good checkpoint."""

import json

import numpy as np
import pytest

from chainrule.cli.main import main
from chainrule.data.fashion_mnist import DEBIAN_DIR
from chainrule.train.snapshot import load_checkpoint
from chainrule.train.trainer import Trainer

pytestmark = [
    pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="dataset-fashion-mnist is installed by .ci/run"),
    pytest.mark.usefixtures("fashion_mnist_read_once"),
]

TINY = ["--hidden", "16", "--limit-train", "512", "--limit-test", "100", "--quiet"]
FIRST = "no checkpoint was saved (the run diverged in its first epoch; start again with --overwrite)"


def _strict_json(path):
    """metrics.json parsed without accepting NaN or Infinity (they are not JSON)."""

    def refuse(token):
        raise AssertionError(f"{path} holds {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_lr_1e6_is_divergence_exit_1_with_the_step_and_json_safe_metrics(tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["train", *TINY, "--lr", "1e6", "--epochs", "2", "--out", str(run)]) == 1
    err = capsys.readouterr().err
    want = (
        "chainrule: error: train: diverged at step 2 (epoch 1, batch 2 of 2): the objective grew from 2.303 at "
        "step 1 to 1.223e+09 (over 1000 times); the learning rate (--lr 1e+06) is likely too high, lower it; "
        f"{FIRST}\n"
    )
    assert err == want
    assert want.strip() in (run / "run.log").read_text()  # run.log holds the line as printed
    report = _strict_json(run / "metrics.json")
    assert report["status"] == "diverged" and report["epochs"] == [] and "step 2" in report["error"]
    assert not (run / "checkpoint.npz").exists()


def test_lr_100_one_epoch_is_not_success(tmp_path, capsys):
    """Loss 7e8 used to exit 0: an objective 1000 times its first is divergence."""
    argv = ["--model", "mlp", "--lr", "100", "--epochs", "1", "--batch-size", "64", "--out", str(tmp_path / "r")]
    code = main(["train", *TINY, *argv])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith("chainrule: error: train: diverged at step 3 (epoch 1, batch 3 of 8): the objective grew")
    assert "(--lr 100) is likely too high" in err and err.count("\n") == 1


def test_a_nan_loss_keeps_the_last_good_checkpoint_and_its_metrics(tmp_path, capsys, monkeypatch):
    run = tmp_path / "r"
    real = Trainer._step
    calls = {"n": 0}

    def nan_at_step_3(self, xb, yb, n):
        loss, correct = real(self, xb, yb, n)
        calls["n"] += 1
        return (float("nan") if calls["n"] == 3 else loss), correct

    monkeypatch.setattr(Trainer, "_step", nan_at_step_3)
    assert main(["train", *TINY, "--epochs", "3", "--out", str(run)]) == 1
    err = capsys.readouterr().err
    assert err == (
        "chainrule: error: train: diverged at step 3 (epoch 2, batch 1 of 2): the objective became nan; the "
        "learning rate (--lr 0.1) is likely too high, lower it; the last good checkpoint, after epoch 1, is kept\n"
    )
    arrays, meta = load_checkpoint(run / "checkpoint.npz")
    assert meta["state"]["epoch"] == 1 and all(np.isfinite(a).all() for a in arrays.values())
    report = _strict_json(run / "metrics.json")
    assert [e["epoch"] for e in report["epochs"]] == [1] and report["status"] == "diverged"
    assert "epoch   1" in (run / "run.log").read_text()
    # the run continues from the last good checkpoint
    assert main(["train", "--resume", str(run), "--epochs", "1"]) == 0, capsys.readouterr().err


def test_a_test_loss_overflow_at_the_end_of_an_epoch_is_divergence(tmp_path, capsys, monkeypatch):
    import chainrule.train.trainer as tr

    monkeypatch.setattr(tr, "loss_and_accuracy", lambda *a, **k: (float("inf"), 0.1))
    run = tmp_path / "r"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(run)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "chainrule: error: train: diverged at the end of epoch 1 (step 2): the test loss became inf"
    ), err
    assert not (run / "checkpoint.npz").exists()  # nothing diverged is saved
    assert _strict_json(run / "metrics.json")["epochs"] == []
