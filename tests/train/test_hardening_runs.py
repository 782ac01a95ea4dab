"""Whole runs under hostile conditions: simultaneous starts, a closed stdout, divergence, data sources."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from chainrule.cli.main import main
from chainrule.data.fashion_mnist import DEBIAN_DIR, FILES
from chainrule.optim.optimizers import Optimizer
from chainrule.train.snapshot import load_checkpoint

pytestmark = [
    pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="dataset-fashion-mnist is installed by .ci/run"),
    pytest.mark.usefixtures("fashion_mnist_read_once"),
]

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), PYTHONUNBUFFERED="1")
TINY = ["--model", "mlp", "--hidden", "8", "--limit-train", "300", "--limit-test", "100", "--batch-size", "100"]


def _train(cwd, *argv, stdout=subprocess.PIPE):
    return subprocess.Popen(
        [sys.executable, "-m", "chainrule", "train", *TINY, *argv],
        cwd=cwd,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def test_two_simultaneous_runs_with_the_default_folder_both_complete(tmp_path):
    procs = [_train(tmp_path, "--epochs", "2", "--quiet") for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2, runs
    for run in runs:
        assert len(json.loads((run / "metrics.json").read_text())["epochs"]) == 2
        assert "finished" in (run / "run.log").read_text()


def test_two_writers_to_one_out_one_wins_the_other_gets_a_clear_error(tmp_path):
    procs = [_train(tmp_path, "--epochs", "2", "--quiet", "--out", "shared") for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], results
    loser = results[[p.returncode for p in procs].index(2)][1]
    assert loser.count("\n") == 1 and ("in use by another chainrule run" in loser or "already holds a run" in loser)
    _, meta = load_checkpoint(tmp_path / "shared" / "checkpoint.npz")
    assert meta["state"]["epoch"] == 2


def test_a_shell_pipe_into_head(tmp_path):
    """`chainrule train ... | head -1`: the reader leaves after one line; the run goes on."""
    cmd = (
        f"{sys.executable} -m chainrule train {' '.join(TINY)} --epochs 2 --out run | head -1; exit ${{PIPESTATUS[0]}}"
    )
    proc = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1 and proc.stdout.startswith("run folder")
    assert "BrokenPipeError" not in proc.stderr and "Traceback" not in proc.stderr
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"]
    assert len(history) == 2
    assert (tmp_path / "run" / "run.log").read_text().count("epoch ") == 2  # the log has every line


def test_a_nan_made_by_the_last_step_is_caught(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    steps = {"n": 0}
    real = Optimizer.step

    def poisoned_last_step(self):
        real(self)
        steps["n"] += 1
        if steps["n"] == 6:  # the last step of epoch 2: its loss was computed before the update
            self.params[0].data[0, 0] = np.nan

    monkeypatch.setattr(Optimizer, "step", poisoned_last_step)
    assert main(["train", *TINY, "--epochs", "2", "--quiet", "--out", str(run)]) == 1
    err = capsys.readouterr().err
    assert "diverged at step 6 (epoch 2, batch 3 of 3): the parameters became non-finite" in err, err
    assert "the last good checkpoint, after epoch 1, is kept" in err and err.count("\n") == 1, err
    arrays, meta = load_checkpoint(run / "checkpoint.npz")
    assert meta["state"]["epoch"] == 1  # the last good checkpoint is kept
    assert all(np.isfinite(v).all() for v in arrays.values())
    logged = (run / "run.log").read_text()
    assert "train: diverged at step 6 (epoch 2, batch 3 of 3): the parameters became non-finite" in logged


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_is_exit_1_not_a_traceback(tmp_path, capsys):
    assert main(["train", *TINY, "--lr", "1e30", "--epochs", "1", "--quiet", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "(--lr 1e+30) is likely too high, lower it" in err and err.count("\n") == 1, err


def test_the_data_source_is_logged_and_a_resume_takes_a_new_data_dir(tmp_path, capsys):
    copy = tmp_path / "copy"
    copy.mkdir()
    for spec in FILES.values():
        (copy / (spec.name + ".gz")).symlink_to(DEBIAN_DIR / (spec.name + ".gz"))
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"data from {DEBIAN_DIR}" in out
    assert json.loads((run / "metrics.json").read_text())["data_source"] == str(DEBIAN_DIR)
    assert main(["train", "--resume", str(run), "--epochs", "2", "--data-dir", str(copy), "--quiet"]) == 0
    report = json.loads((run / "metrics.json").read_text())
    assert report["data_source"] == str(copy) and report["config"]["data_dir"] == str(copy)
    log = (run / "run.log").read_text()
    assert f"data: Fashion-MNIST from {DEBIAN_DIR}" in log and f"data: Fashion-MNIST from {copy}" in log
