"""The main job end to end on real Fashion-MNIST: accuracy, resume, Ctrl-C, evaluate, corruption."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from chainrule import DataError
from chainrule.cli.main import main
from chainrule.data.fashion_mnist import DEBIAN_DIR
from chainrule.train.snapshot import load_checkpoint

pytestmark = pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="dataset-fashion-mnist is installed by .ci/run")

SMALL = [
    "--model",
    "mlp",
    "--hidden",
    "64",
    "--optimizer",
    "momentum",
    "--lr",
    "0.05",
    "--dropout",
    "0.2",
    "--init",
    "he",
    "--limit-train",
    "3000",
    "--limit-test",
    "1000",
    "--batch-size",
    "100",
    "--quiet",
]


def _history(run):
    return json.loads((run / "metrics.json").read_text())["epochs"]


def _params(run):
    arrays, _ = load_checkpoint(run / "checkpoint.npz")
    return {k: v for k, v in arrays.items() if k.startswith("param/")}


def test_one_epoch_reaches_080_test_accuracy(tmp_path, capsys):
    run = tmp_path / "run"
    argv = [
        "train",
        "--model",
        "mlp",
        "--init",
        "he",
        "--optimizer",
        "adam",
        "--lr",
        "0.001",
        "--epochs",
        "1",
        "--out",
        str(run),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "epoch   1  train J" in out and "test acc" in out
    acc = _history(run)[0]["test_accuracy"]
    assert acc >= 0.80, acc
    for name in ["metrics.csv", "metrics.json", "curves.png", "checkpoint.npz"]:
        assert (run / name).stat().st_size > 0
    assert (run / "metrics.csv").read_text().splitlines()[0].startswith("epoch,train_loss,train_accuracy,test_accuracy")
    assert main(["evaluate", str(run)]) == 0
    assert f"test accuracy {acc:.4f}" in capsys.readouterr().out


def test_same_seed_same_numbers(tmp_path):
    for name in "ab":
        assert main(["train", *SMALL, "--epochs", "2", "--out", str(tmp_path / name)]) == 0
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
    assert strip(_history(tmp_path / "a")) == strip(_history(tmp_path / "b"))
    pa, pb = _params(tmp_path / "a"), _params(tmp_path / "b")
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)


def test_resume_equals_uninterrupted(tmp_path):
    full, split = tmp_path / "full", tmp_path / "split"
    assert main(["train", *SMALL, "--epochs", "3", "--out", str(full)]) == 0
    assert main(["train", *SMALL, "--epochs", "1", "--out", str(split)]) == 0
    assert main(["train", "--resume", str(split), "--epochs", "3", "--quiet"]) == 0
    pf, ps = _params(full), _params(split)
    assert pf.keys() == ps.keys()
    for k in pf:
        np.testing.assert_array_equal(pf[k], ps[k])
    assert [e["test_accuracy"] for e in _history(full)] == [e["test_accuracy"] for e in _history(split)]


def test_ctrl_c_saves_a_checkpoint_and_resume_matches(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    args = [*SMALL[:-1], "--limit-train", "0", "--epochs", "5"]
    assert main(["train", *args, "--quiet", "--out", str(full)]) == 0
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "chainrule", "train", *args, "--out", str(cut)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines = [proc.stdout.readline() for _ in range(2)]  # "run folder ...", then the first epoch
    assert "run folder" in lines[0] and lines[1].startswith("epoch   1"), lines
    time.sleep(0.2)  # somewhere inside epoch 2
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "checkpoint saved" in err
    _, meta = load_checkpoint(cut / "checkpoint.npz")
    assert (meta["state"]["epoch"], meta["state"]["batch"]) < (5, 0)
    assert main(["train", "--resume", str(cut), "--quiet"]) == 0
    pf, pc = _params(full), _params(cut)
    for k in pf:
        np.testing.assert_array_equal(pf[k], pc[k])


def test_corrupt_checkpoint_is_detected(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *SMALL, "--epochs", "1", "--out", str(run)]) == 0
    ckpt = run / "checkpoint.npz"
    data = bytearray(ckpt.read_bytes())
    ckpt.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_checkpoint(ckpt)
    assert main(["evaluate", str(run)]) == 2
    assert "checkpoint is truncated or corrupt" in capsys.readouterr().err
    # a flipped byte inside a stored array (zip still readable) is caught by the digest
    arrays, meta = {}, None
    assert main(["train", *SMALL, "--epochs", "1", "--out", str(run)]) == 2  # never overwritten silently
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", *SMALL, "--epochs", "1", "--out", str(run), "--overwrite"]) == 0
    raw = bytearray(ckpt.read_bytes())
    with np.load(ckpt) as f:
        w = f["param/0.weight"]
    needle = w.tobytes()[:64]
    pos = bytes(raw).find(needle)
    assert pos > 0
    raw[pos + 10] ^= 0x01
    ckpt.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="corrupt"):
        load_checkpoint(ckpt)
    del arrays, meta


@pytest.mark.parametrize(
    "recipe",
    [
        ["--limit-train", "2000", "--limit-test", "500", "--quiet"],  # the default recipe; a last batch of 208
        [*SMALL, "--microbatches", "3"],  # dropout, momentum, microbatches
    ],
    ids=["default", "mlp-dropout-microbatches"],
)
def test_the_compiled_step_is_bitwise_the_eager_run(tmp_path, recipe):
    """`chainrule train` replays its step through cr.compile by default: the run is exactly --no-compile's."""
    for name, extra in (("compiled", []), ("eager", ["--no-compile"])):
        assert main(["train", *recipe, *extra, "--epochs", "2", "--out", str(tmp_path / name)]) == 0
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
    assert strip(_history(tmp_path / "compiled")) == strip(_history(tmp_path / "eager"))
    pc, pe = _params(tmp_path / "compiled"), _params(tmp_path / "eager")
    assert pc.keys() == pe.keys()
    for k in pc:
        np.testing.assert_array_equal(pc[k], pe[k])
