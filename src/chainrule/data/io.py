"""The one way chainrule writes a file: atomically, durably, never through a symlink.

:func:`atomic_write` creates a temporary file with a unique name in the destination's own
folder (``O_CREAT | O_EXCL | O_NOFOLLOW``, so it can neither clobber nor follow anything),
writes the content, ``fsync``s it, renames it over the final name (``rename`` replaces a
directory entry and never follows a link) and ``fsync``s the folder. A destination that is a
symlink is refused. On any failure, including an interrupt, the temporary file is removed
and the final name still holds its previous content (or nothing). Only ``kill -9`` or a
power cut can leave a temporary ``.NAME.PID.RANDOM.tmp`` behind, never a partial file under
the final name; :func:`remove_stale_temps` clears those of dead processes.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, cast

from chainrule.core.errors import ChainruleError


class OutputError(ChainruleError, OSError):
    """A file or run folder could not be written (no space, no permission, unsafe path)."""


# Indirections so tests can simulate a full disk without filling one.
def _os_write(fd: int, data: Any) -> int:
    return os.write(fd, data)


def _os_fsync(fd: int) -> None:
    os.fsync(fd)


class _FdFile:
    """A minimal binary file over a raw descriptor; every byte goes through ``_os_write``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            n = _os_write(self.fd, view[done:])
            if n <= 0:  # pragma: no cover - os.write raises instead
                raise OSError(errno.EIO, "short write")
            done += n
        return done

    def tell(self) -> int:
        return os.lseek(self.fd, 0, os.SEEK_CUR)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return os.lseek(self.fd, offset, whence)

    def seekable(self) -> bool:
        return True

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self.fd


_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def _temp_name(final: str) -> str:
    return f".{final}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def atomic_write(path: str | os.PathLike[str], content: bytes | Callable[[BinaryIO], None]) -> Path:
    """Write ``content`` (bytes, or a function that writes into a binary file) to ``path``."""
    path = Path(path)
    folder = path.parent
    if path.is_symlink():
        raise OutputError(f"{path}: is a symbolic link; refusing to write through it")
    if path.exists() and not path.is_file():
        raise OutputError(f"{path}: exists and is not a regular file")
    tmp = folder / _temp_name(path.name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o644)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        try:
            f = _FdFile(fd)
            if callable(content):
                content(cast(BinaryIO, f))
            else:
                f.write(content)
            _os_fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, ChainruleError):
            raise OutputError(
                f"cannot write {path}: {exc.strerror or exc}; its previous content (if any) is intact"
            ) from exc
        raise
    fsync_dir(folder)
    return path


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename or a new entry in ``folder`` durable (best effort where unsupported)."""
    try:
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        _os_fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary files that :func:`atomic_write` left behind in processes that died."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m and entry.is_file(follow_symlinks=False) and not _pid_alive(int(m["pid"])):
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass
    return removed


__all__ = ["OutputError", "atomic_write", "fsync_dir", "remove_stale_temps"]
