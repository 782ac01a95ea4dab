"""The atomic writer and the run folder under faults: full disk, kill -9, symlinks, concurrent writers."""

import errno
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

import chainrule.data.io as cio
from chainrule.data.io import OutputError, atomic_write, remove_stale_temps
from chainrule.train.config import Config
from chainrule.train.rundir import claim_new_run
from chainrule.train.snapshot import CheckpointError, load_checkpoint, save_checkpoint

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), PYTHONUNBUFFERED="1")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _enospc_after(monkeypatch, nbytes: int):
    written = {"n": 0}
    real = cio._os_write

    def write(fd, data):
        if written["n"] + len(data) > nbytes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written["n"] += len(data)
        return real(fd, data)

    monkeypatch.setattr(cio, "_os_write", write)


def test_full_disk_mid_write_keeps_the_previous_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, {"w": np.ones(1000, np.float32)}, {"v": 1})
    _enospc_after(monkeypatch, 2000)
    with pytest.raises(OutputError, match="No space left on device.*previous content.*intact"):
        save_checkpoint(path, {"w": np.zeros(1000, np.float32)}, {"v": 2})
    monkeypatch.undo()
    arrays, meta = load_checkpoint(path)
    assert meta == {"v": 1} and arrays["w"].sum() == 1000
    assert _leftovers(tmp_path) == []


def test_failing_fsync_is_a_failed_write(tmp_path, monkeypatch):
    def fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(cio, "_os_fsync", fsync)
    with pytest.raises(OutputError, match="Input/output error"):
        atomic_write(tmp_path / "f", b"data")
    assert list(tmp_path.iterdir()) == []


def test_real_full_tmpfs(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        atomic_write(disk / "f", b"old")
        with pytest.raises(OutputError, match="No space left on device"):
            atomic_write(disk / "f", bytes(2 << 20))
        assert (disk / "f").read_bytes() == b"old"
        assert sorted(p.name for p in disk.iterdir()) == ["f"]
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_full_disk_during_training_is_exit_1_and_the_last_checkpoint_survives(tmp_path, monkeypatch, capsys):
    from chainrule.cli.main import main
    from chainrule.data.fashion_mnist import DEBIAN_DIR

    if not DEBIAN_DIR.is_dir():
        pytest.skip("dataset-fashion-mnist is installed by .ci/run")
    import chainrule.train.trainer as training

    run = tmp_path / "run"
    saves = {"n": 0}
    real_save = training.save_checkpoint

    def save(*args, **kwargs):
        saves["n"] += 1
        if saves["n"] == 2:
            _enospc_after(monkeypatch, 1000)
        return real_save(*args, **kwargs)

    monkeypatch.setattr(training, "save_checkpoint", save)
    argv = ["--model", "mlp", "--hidden", "8", "--limit-train", "300", "--limit-test", "100", "--batch-size", "100"]
    assert main(["train", *argv, "--epochs", "3", "--quiet", "--out", str(run)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err, err
    monkeypatch.undo()
    _, meta = load_checkpoint(run / "checkpoint.npz")
    assert meta["state"]["epoch"] == 1  # the first epoch's checkpoint, intact
    assert _leftovers(run) == []


def test_symlinks_are_never_followed(tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "out.json"
    link.symlink_to(victim)
    with pytest.raises(OutputError, match="symbolic link"):
        atomic_write(link, b"overwritten?")
    assert victim.read_text() == "precious" and link.is_symlink()
    # planted in a run folder before --resume: refused up front
    from chainrule.cli.main import main

    run = tmp_path / "run"
    run.mkdir()
    meta = {"config": asdict(Config(model="mlp", hidden=4)), "state": {}, "dropout_rng": []}
    save_checkpoint(run / "checkpoint.npz", {}, meta)
    (run / "curves.png").symlink_to(victim)
    assert main(["train", "--resume", str(run)]) == 2
    assert "curves.png: is a symbolic link; refusing" in capsys.readouterr().err
    assert victim.read_text() == "precious"


WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from chainrule.train.snapshot import save_checkpoint
    path = sys.argv[1]
    i = 0
    print("ready", flush=True)
    while True:
        i += 1
        save_checkpoint(path, {"w": np.full(1_000_000, i, np.float32)}, {"i": i})
    """
)


def test_kill_9_during_writes_never_leaves_a_partial_file(tmp_path):
    path = tmp_path / "checkpoint.npz"
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(5):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, env=ENV)
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(float(rng.uniform(0.05, 0.3)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        if path.exists():
            arrays, meta = load_checkpoint(path)  # never a CheckpointError: the file is whole
            assert (arrays["w"] == meta["i"]).all()
            seen.add(meta["i"])
    assert seen  # some writes completed
    stale = _leftovers(tmp_path)
    removed = remove_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == stale and _leftovers(tmp_path) == []


def test_concurrent_writers_to_one_name_never_collide(tmp_path):
    path = tmp_path / "checkpoint.npz"
    errors = []

    def writer(value):
        try:
            for _ in range(30):
                save_checkpoint(path, {"w": np.full(50_000, value, np.float32)}, {"v": value})
        except Exception as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(v,)) for v in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    arrays, meta = load_checkpoint(path)
    assert (arrays["w"] == meta["v"]).all()
    assert _leftovers(tmp_path) == []


def test_runs_started_in_the_same_second_get_separate_folders(tmp_path):
    cfg = Config(model="mlp", hidden=4)
    default = tmp_path / "runs" / "20260101-000000"
    claims = [claim_new_run(None, default, overwrite=False, cfg=cfg) for _ in range(3)]
    assert [c.path.name for c in claims] == ["20260101-000000", "20260101-000000-2", "20260101-000000-3"]
    for c in claims:
        c.close()


def test_a_locked_run_folder_is_refused(tmp_path):
    from chainrule.train.config import UsageError

    cfg = Config(model="mlp", hidden=4)
    first = claim_new_run(tmp_path / "run", tmp_path, overwrite=False, cfg=cfg)
    with pytest.raises(UsageError, match="in use by another chainrule run"):
        claim_new_run(tmp_path / "run", tmp_path, overwrite=False, cfg=cfg)
    first.close()
    claim_new_run(tmp_path / "run", tmp_path, overwrite=False, cfg=cfg).close()  # free again


def test_corrupt_checkpoint_is_still_a_data_error():
    from chainrule import DataError

    assert issubclass(CheckpointError, DataError)


def test_claiming_a_folder_removes_only_dead_writers_temps(tmp_path):
    from chainrule.train.config import RunState
    from chainrule.train.contents import parameter_shapes
    from chainrule.train.rundir import claim_resume

    run = tmp_path / "run"
    run.mkdir()
    meta = {"config": asdict(Config(model="mlp", hidden=4)), "state": asdict(RunState()), "dropout_rng": []}
    params = {f"param/{k}": np.zeros(s, np.float32) for k, s in parameter_shapes("mlp", 4, 0.0, 784, 10).items()}
    save_checkpoint(run / "checkpoint.npz", params, meta)  # a checkpoint whose arrays fit its configuration
    dead = run / ".checkpoint.npz.999999999.0badc0de.tmp"  # no such pid
    alive = run / f".checkpoint.npz.{os.getpid()}.0badc0de.tmp"  # a writer still at work
    dead.write_bytes(b"partial")
    alive.write_bytes(b"partial")
    claim_resume(run, None, None).close()
    assert not dead.exists() and alive.exists()
