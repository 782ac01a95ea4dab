"""The terminal progress bar of ``chainrule train`` (tqdm, optional) and the console's one-line messages.

tqdm works out the terminal's size itself, and how it does so changed between releases: 4.70
takes ``os.get_terminal_size`` minus one, so a terminal that reports its size as 0 x 0 (a
pseudo-terminal nobody sized: ``docker exec -t``, ``script``, many CI and editor consoles)
gives -1 rows, and tqdm then draws nothing at all (``display`` sees row 0 past the last row).
So the size is measured here, with a fallback of 80 x 24 when the terminal does not know, and
given to tqdm as ``ncols``/``nrows``, which every release since 4.60 honours as it is.
"""

from __future__ import annotations

import os
import sys
from typing import Any

FALLBACK_SIZE = (80, 24)


def emit(line: str, stream: Any = None) -> None:
    """Print a line; if the reader has gone away (``| head -1``), stop printing and go on.

    A closed pipe must not lose the run: stdout is pointed at /dev/null so that neither this
    nor the interpreter's final flush raises again, and the run log still gets every line.
    """
    stream = stream or sys.stdout
    try:
        print(line, file=stream, flush=True)
    except BrokenPipeError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def terminal_size(stream: Any) -> tuple[int, int]:
    """(columns, lines) of the terminal ``stream`` writes to; $COLUMNS/$LINES, then 80 x 24,
    stand in for a size the terminal does not report (0) or a stream that has no terminal."""
    columns = lines = 0
    try:
        size = os.get_terminal_size(stream.fileno())
        columns, lines = size.columns, size.lines
    except (AttributeError, ValueError, OSError):
        pass
    for name, value, fallback in (("COLUMNS", columns, FALLBACK_SIZE[0]), ("LINES", lines, FALLBACK_SIZE[1])):
        if value <= 0:
            env = os.environ.get(name, "")
            value = int(env) if env.isdigit() and int(env) > 0 else fallback
        if name == "COLUMNS":
            columns = value
        else:
            lines = value
    return columns, lines


def progress_bar(total: int | None, desc: str, initial: int = 0, unit: str = "batch", stream: Any = None) -> Any:
    """A tqdm bar on ``stream`` (stderr) if it is a terminal and tqdm is installed, else ``None``.

    The bar has ``update(n)`` and ``close()``; it is cleared when closed (``leave=False``), so the
    per-epoch line printed after it stands alone. ``unit="B"`` counts bytes (with k/M prefixes).
    """
    stream = stream or sys.stderr
    if not _isatty(stream):
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # the progress bar is optional; the per-epoch line is always printed
        return None
    columns, lines = terminal_size(stream)
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        leave=False,
        unit=unit,
        unit_scale=unit == "B",
        unit_divisor=1024 if unit == "B" else 1000,
        file=stream,
        ncols=max(columns - 1, 10),  # not the last column: a full line would wrap on some terminals
        nrows=max(lines, 2),
        disable=False,
        mininterval=0.1,
        miniters=1,  # redraw whenever 0.1 s passed (tqdm's own guess can skip a whole short epoch)
    )


def bytes_bar(desc: str, total: int | None) -> Any:
    """A bar counting bytes, for :func:`chainrule.data.fashion_mnist.download`'s ``progress``."""
    return progress_bar(total, desc, unit="B")


__all__ = ["bytes_bar", "emit", "progress_bar", "terminal_size"]
