"""Claiming a run folder before any work starts.

A run folder is held by one process at a time: it is created with an exclusive ``mkdir``
(the default name gets a ``-2``, ``-3``... suffix when another run made it first, so runs
started in the same second never share a folder) and then locked with ``flock`` for the
whole run (the kernel drops the lock when the process ends, even on ``kill -9``). A second
process aiming at the same folder gets a clear error instead of sharing it. A folder that
already holds a run is never reused without ``--overwrite`` (or ``--resume``); a run file
that is a symbolic link is refused; the folder must take a test write and have room for
two checkpoints. Every problem here is a :class:`~chainrule.train.config.UsageError`.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from chainrule.data.io import OutputError, atomic_write, remove_stale_temps
from chainrule.train.config import (
    Config,
    UsageError,
    checked_config,
    checkpoint_bytes,
    state_from_meta,
    validate_config,
)
from chainrule.train.trainer import CHECKPOINT, LOG, RUN_FILES

_PROBE = ".chainrule-write-test"


class RunDir:
    """A claimed run folder; the lock is released on ``close`` (or leaving a ``with``)."""

    def __init__(self, path: Path, fd: int, created: bool = False) -> None:
        self.path = path
        self.fd = fd
        self.pid = os.getpid()
        self.created = created  # this process made the folder

    def discard(self) -> None:
        """A new run that failed before training: remove what it wrote (its run.log; the folder if it made it).

        The same ``--out`` then starts afresh instead of "already holds a run". Never called
        once a checkpoint exists; files this run did not write are left alone (the folder stays).
        """
        if (self.path / CHECKPOINT).exists():
            return
        (self.path / LOG).unlink(missing_ok=True)
        remove_stale_temps(self.path)
        self.close()
        if self.created:
            try:
                self.path.rmdir()  # only if empty
            except OSError:
                pass

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # releases the flock
            self.fd = -1

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _lock(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise UsageError(f"{path}: cannot open the run folder ({exc.strerror})") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise UsageError(f"{path}: in use by another chainrule run (locked); choose another --out") from exc
    return fd


def _check_files(path: Path) -> None:
    for name in RUN_FILES:
        p = path / name
        if p.is_symlink():
            raise UsageError(f"{p}: is a symbolic link; refusing to write through it (remove it first)")
        if p.exists() and not p.is_file():
            raise UsageError(f"{p}: exists and is not a regular file")


def _check_writable(path: Path, need: int) -> None:
    try:
        atomic_write(path / _PROBE, b"ok\n")
        os.unlink(path / _PROBE)
    except (OutputError, OSError) as exc:
        raise UsageError(f"{path}: the run folder is not writable ({exc})") from exc
    try:
        st = os.statvfs(path)
    except OSError:
        return
    free = st.f_bavail * st.f_frsize
    if free < need:
        raise UsageError(
            f"{path}: only {free / 1e6:.1f} MB free on its disk; the run needs about {need / 1e6:.1f} MB "
            "(two checkpoints and the reports)"
        )


def _space_needed(cfg: Config) -> int:
    return 2 * checkpoint_bytes(cfg) + 2_000_000


def _make_unique(default: Path) -> Path:
    try:
        default.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{default.parent}: cannot create ({exc.strerror})") from exc
    for i in range(1, 1000):
        candidate = default if i == 1 else default.with_name(f"{default.name}-{i}")
        try:
            os.mkdir(candidate)
            return candidate
        except FileExistsError:
            continue
        except OSError as exc:
            raise UsageError(f"{candidate}: cannot create the run folder ({exc.strerror})") from exc
    raise UsageError(f"{default}: 999 runs already started with this name")


def claim_new_run(out: Path | None, default: Path, overwrite: bool, cfg: Config) -> RunDir:
    """Create (or take, if empty or with ``overwrite``) a folder for a fresh run, and lock it."""
    if out is None:
        if overwrite:
            raise UsageError("--overwrite: needs --out (the default run folder is always new)")
        path = _make_unique(default)
        created = True
    else:
        path = out
        created = False
        if path.exists() or path.is_symlink():
            if not path.is_dir():
                raise UsageError(f"--out {out}: exists and is not a folder")
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.mkdir(path)
                created = True
            except FileExistsError:
                pass  # another process made it just now: the lock below decides
            except OSError as exc:
                raise UsageError(f"--out {out}: cannot create the run folder ({exc.strerror})") from exc
    fd = _lock(path)
    try:
        _check_files(path)
        existing = [n for n in RUN_FILES if (path / n).exists()]
        if existing and not overwrite:
            raise UsageError(
                f"--out {path}: already holds a run ({existing[0]}); continue it with --resume {path} "
                "or replace it with --overwrite"
            )
        remove_stale_temps(path)
        if overwrite:
            for name in RUN_FILES:
                (path / name).unlink(missing_ok=True)
        _check_writable(path, _space_needed(cfg))
    except BaseException:
        os.close(fd)
        raise
    return RunDir(path, fd, created)


def claim_resume(path: Path, epochs: int | None, data_dir: str | None) -> RunDir:
    """Lock a run folder for ``--resume`` after checking its checkpoint and files."""
    from chainrule.train.snapshot import load_checkpoint

    if not path.is_dir():
        raise UsageError(f"--resume {path}: no such run folder")
    fd = _lock(path)
    try:
        _check_files(path)
        ckpt = path / CHECKPOINT
        if not ckpt.exists():
            raise UsageError(f"--resume {path}: holds no {CHECKPOINT} (nothing to resume)")
        arrays, meta = load_checkpoint(ckpt)  # a CheckpointError (exit 2) if anything is wrong
        cfg = checked_config(arrays, meta, ckpt)
        if epochs is not None:
            cfg.epochs = epochs
        if data_dir is not None:
            cfg.data_dir = data_dir
        validate_config(cfg)
        done = state_from_meta(meta, ckpt).epoch
        if cfg.epochs < done:
            raise UsageError(f"--epochs {cfg.epochs}: the run in {path} has already finished {done} epochs")
        remove_stale_temps(path)
        _check_writable(path, _space_needed(cfg))
    except BaseException:
        os.close(fd)
        raise
    return RunDir(path, fd)


__all__ = ["RunDir", "claim_new_run", "claim_resume"]
