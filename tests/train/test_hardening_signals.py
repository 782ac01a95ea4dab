"""SIGTERM and double SIGINT at forced points: a checkpoint, a clean exit code, and a resumed
run that equals the uninterrupted one bit for bit."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import chainrule.train.trainer as training
from chainrule.cli.main import main
from chainrule.data.fashion_mnist import DEBIAN_DIR
from chainrule.optim.optimizers import Optimizer
from chainrule.train.snapshot import load_checkpoint

pytestmark = [
    pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="dataset-fashion-mnist is installed by .ci/run"),
    pytest.mark.usefixtures("fashion_mnist_read_once"),
]

SMALL = [
    *("--model", "mlp", "--hidden", "16", "--optimizer", "momentum", "--lr", "0.05", "--dropout", "0.2"),
    *("--init", "he", "--limit-train", "600", "--limit-test", "200", "--batch-size", "50", "--quiet"),
]
STEPS_PER_EPOCH = 12


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    run = tmp_path_factory.mktemp("full") / "run"
    assert main(["train", *SMALL, "--epochs", "2", "--out", str(run)]) == 0
    return run


def _arrays(run):
    arrays, meta = load_checkpoint(run / "checkpoint.npz")
    return arrays, meta


def _kill(*signals):
    for s in signals:
        os.kill(os.getpid(), s)


# (where, signals, expected exit code, step at which they are sent)
POINTS = [
    ("after_step", (signal.SIGINT, signal.SIGINT), 130, 17),
    ("after_step", (signal.SIGTERM,), 143, 17),
    ("after_step", (signal.SIGTERM, signal.SIGINT), 143, 5),
    ("before_step", (signal.SIGINT, signal.SIGINT), 130, 17),
    ("during_save", (signal.SIGTERM, signal.SIGINT), 143, 1),
]


IDS = [f"{p[0]}-{'+'.join(s.name for s in p[1])}" for p in POINTS]


@pytest.mark.parametrize("where,signals,code,at", POINTS, ids=IDS)
def test_interrupt_at_forced_point_then_resume_equals_uninterrupted(
    tmp_path, monkeypatch, capsys, full, where, signals, code, at
):
    cut = tmp_path / "cut"
    calls = {"n": 0}
    step, zero_grad, save = Optimizer.step, Optimizer.zero_grad, training.save_checkpoint

    def step_then_signal(self):
        step(self)
        calls["n"] += 1
        if where == "after_step" and calls["n"] == at:
            _kill(*signals)  # handlers run right here, between the update and its bookkeeping

    def signal_then_zero_grad(self):
        if where == "before_step" and calls["n"] == at - 1:
            calls["n"] += 0.5
            _kill(*signals)
        zero_grad(self)

    def signal_during_save(*args, **kwargs):
        calls["saves"] = calls.get("saves", 0) + 1
        if where == "during_save" and calls["saves"] == at:
            _kill(*signals)
        save(*args, **kwargs)

    monkeypatch.setattr(Optimizer, "step", step_then_signal)
    monkeypatch.setattr(Optimizer, "zero_grad", signal_then_zero_grad)
    monkeypatch.setattr(training, "save_checkpoint", signal_during_save)
    assert main(["train", *SMALL, "--epochs", "2", "--out", str(cut)]) == code
    err = capsys.readouterr().err
    assert "checkpoint saved" in err and f"--resume {cut}" in err
    assert ("terminated" if code == 143 else "interrupted") in err
    monkeypatch.undo()

    arrays, meta = _arrays(cut)
    st = meta["state"]
    applied = int(arrays["optim/steps"])
    assert applied == st["epoch"] * STEPS_PER_EPOCH + st["batch"]  # every applied step is counted
    if where == "after_step":
        assert applied == at
    elif where == "before_step":
        assert applied == at - 1

    assert main(["train", "--resume", str(cut), "--quiet"]) == 0
    a_full, m_full = _arrays(full)
    a_cut, m_cut = _arrays(cut)
    assert a_full.keys() == a_cut.keys()
    for k in a_full:
        np.testing.assert_array_equal(a_full[k], a_cut[k], err_msg=k)
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
    assert strip(m_full["state"]["history"]) == strip(m_cut["state"]["history"])


def test_sigterm_in_a_real_process_saves_and_exits_143(tmp_path):
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "chainrule", "train", *SMALL[:-1], "--epochs", "500", "--out", str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines = [proc.stdout.readline() for _ in range(2)]
    assert "run folder" in lines[0] and lines[1].startswith("epoch   1"), lines
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated at epoch" in err and "checkpoint saved" in err and "Traceback" not in err
    _, meta = load_checkpoint(run / "checkpoint.npz")
    assert meta["state"]["epoch"] >= 1
    log = (run / "run.log").read_text()
    assert "stopped by SIGTERM" in log
    (said,) = [line for line in err.splitlines() if line.startswith("terminated at epoch")]
    assert said in log  # the line printed to stderr is in the run log too
