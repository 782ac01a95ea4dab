"""Every bad flag or output folder is exit 2 with one line on stderr, before any work starts."""

import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from chainrule.cli.main import main
from chainrule.train.config import Config, RunState
from chainrule.train.snapshot import save_checkpoint


def _fake_run(folder: Path, **cfg_changes) -> Path:
    """A run folder with a valid checkpoint (no training needed: preflight reads only this)."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = Config(model="mlp", hidden=4, limit_train=100, limit_test=100, epochs=2, **cfg_changes)
    meta = {"config": asdict(cfg), "state": asdict(RunState()), "dropout_rng": []}
    save_checkpoint(folder / "checkpoint.npz", {"param/0.weight": np.zeros((4, 784), np.float32)}, meta)
    return folder


@pytest.fixture
def place(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file").write_text("not a folder")
    _fake_run(tmp_path / "old")
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "metrics.json").symlink_to(tmp_path / "victim.txt")
    return tmp_path


# (argv after "train", a fragment the one-line message must contain)
CASES = [
    (["--epochs", "0"], "--epochs 0: must be a positive integer"),
    (["--epochs", "-3"], "--epochs -3: must be a positive integer"),
    (["--epochs", "two"], "invalid int value"),
    (["--limit-train", "-100"], "--limit-train -100: must be a non-negative integer"),
    (["--limit-test", "-1"], "--limit-test -1"),
    (["--batch-size", "0"], "--batch-size 0"),
    (["--hidden", "0"], "--hidden 0"),
    (["--hidden", "100000000"], "of memory"),
    (["--dropout", "0.5"], "applies only to --model mlp"),
    (["--model", "section-bias", "--dropout", "0.1"], "applies only to --model mlp"),
    (["--model", "mlp", "--dropout", "1.5"], "must be in [0, 1)"),
    (["--weight-decay", "-1"], "--weight-decay -1.0: must be a finite number >= 0"),
    (["--weight-decay", "nan"], "--weight-decay nan"),
    (["--lr", "nan"], "--lr nan: must be a finite positive number"),
    (["--lr", "inf"], "--lr inf"),
    (["--lr", "0"], "--lr 0.0"),
    (["--lr", "-0.1"], "--lr -0.1"),
    (["--seed", "-1"], "--seed -1"),
    (["--optimizer", "lbfgs"], "invalid choice"),
    (["--data-dir", "empty"], "holds none of the Fashion-MNIST files"),
    (["--data-dir", "no-such-dir"], "no such directory"),
    (["--out", "a-file"], "exists and is not a folder"),
    (["--out", "old"], "already holds a run"),
    (["--out", "planted"], "is a symbolic link; refusing"),
    (["--out", "planted", "--overwrite"], "is a symbolic link; refusing"),
    (["--overwrite"], "--overwrite: needs --out"),
    (["--resume", "old", "--lr", "0.5"], "--lr: cannot be combined with --resume"),
    (["--resume", "old", "--overwrite"], "--overwrite: cannot be combined with --resume"),
    (["--resume", "old", "--epochs", "0"], "--epochs 0"),
    (["--resume", "old", "--data-dir", "empty"], "holds none of the Fashion-MNIST files"),
    (["--resume", "no-such-run"], "no such run folder"),
    (["--resume", "empty"], "holds no checkpoint.npz"),
]


@pytest.mark.parametrize("argv,message", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_flag_is_exit_2_with_one_line_before_any_work(place, capsys, argv, message):
    before = sorted(p.relative_to(place) for p in place.rglob("*"))
    start = time.perf_counter()
    rc = _main(["train", *argv])
    took = time.perf_counter() - start
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and err.endswith("\n"), repr(err)
    assert message in err, err
    assert took < 1.0, took
    assert sorted(p.relative_to(place) for p in place.rglob("*")) == before  # nothing created or changed
    assert not (place / "victim.txt").exists()


def _main(argv):
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own errors (bad int, bad choice)
        return exc.code


def test_bad_flags_fail_fast_in_a_fresh_process(tmp_path):
    """The whole command, interpreter start included, rejects a flag in under a second."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "chainrule", "train", "--hidden", "100000000"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    took = time.perf_counter() - start
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert took < 2.0, took  # shared 2-core machine: allow for interpreter start-up
    assert not (tmp_path / "runs").exists()


def test_resume_data_dir_and_epochs_are_taken(tmp_path, capsys):
    run = _fake_run(tmp_path / "r")
    rc = main(["train", "--resume", str(run), "--data-dir", str(tmp_path / "nowhere")])
    assert rc == 2 and "nowhere: no such directory" in capsys.readouterr().err


def test_read_only_run_folder_is_refused_up_front(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,ro", "tmpfs", str(ro)], capture_output=True).returncode:
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        rc = main(["train", "--model", "mlp", "--hidden", "4", "--out", str(ro / "run")])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and "Read-only file system" in err, err
        rc = main(["train", "--model", "mlp", "--hidden", "4", "--out", str(ro)])
        err = capsys.readouterr().err
        assert rc == 2 and "not writable" in err and "Read-only file system" in err, err
    finally:
        subprocess.run(["umount", str(ro)], check=False)


def test_full_disk_is_refused_up_front(tmp_path, capsys):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        # 784*4096 parameters: a checkpoint of ~12.8 MB cannot fit twice into 1 MB
        rc = main(["train", "--model", "mlp", "--hidden", "4096", "--out", str(small / "run")])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and "MB free on its disk" in err, err
        assert [p.name for p in (small / "run").iterdir()] == []  # no temp left by the write test
    finally:
        subprocess.run(["umount", str(small)], check=False)
