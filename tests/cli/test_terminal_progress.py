"""The progress bar as a person at a terminal sees it: `chainrule train` run in a real pseudo-terminal
(the installed tqdm, not a mock), for a terminal that reports its size and one that reports 0 x 0
(tqdm 4.70 drew nothing there), and the download's byte bar."""

import fcntl
import hashlib
import http.server
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from functools import partial

import numpy as np
import pytest

from chainrule.data.fashion_mnist import DEBIAN_DIR, FILES, download
from chainrule.train.progress import terminal_size
from conftest import LocalServer

pytest.importorskip("tqdm")

BAR = re.compile(rb"epoch 1/1:\s+(\d+)%\|[^|]*\|\s*(\d+)/(\d+) ")


def run_in_pty(argv: list[str], rows: int, cols: int, timeout: float = 120.0) -> list[tuple[float, bytes]]:
    """Run ``argv`` with a pseudo-terminal (sized ``rows`` x ``cols``; 0 x 0 = unknown) as its
    stdin/stdout/stderr; the chunks it wrote, each with the time it arrived. The child is spawned
    (fork + exec at once, by subprocess), not forked from this multithreaded test process."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    chunks: list[tuple[float, bytes]] = []
    start = time.monotonic()
    try:
        while time.monotonic() - start < timeout:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append((time.monotonic() - start, data))
    finally:
        if proc.poll() is None and time.monotonic() - start >= timeout:
            proc.kill()
        code = proc.wait(timeout=30)
        os.close(master)
    assert code == 0, b"".join(c for _, c in chunks).decode(errors="replace")
    return chunks


def bar_counts(chunks: list[tuple[float, bytes]]) -> list[tuple[float, int, int]]:
    """(time, batches done, total) of every bar drawn (each redraw starts with a carriage return)."""
    out = []
    for t, data in chunks:
        for draw in data.split(b"\r"):
            m = BAR.search(draw)
            if m:
                out.append((t, int(m.group(2)), int(m.group(3))))
    return out


needs_data = pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="dataset-fashion-mnist is installed by .ci/run")


@needs_data
@pytest.mark.parametrize("rows, cols", [(24, 80), (0, 0)], ids=["sized-terminal", "terminal-of-unknown-size"])
def test_train_bar_advances_in_a_pseudo_terminal(tmp_path, rows, cols):
    argv = [sys.executable, "-m", "chainrule.cli.main", "train", "--epochs", "1", "--limit-train", "12000"]
    # 6000 steps: an epoch of over a second even on a fast machine, so a 0.1 s redraw shows it advance
    argv += ["--limit-test", "500", "--batch-size", "2", "--hidden", "32", "--out", str(tmp_path / "run")]
    chunks = run_in_pty(argv, rows, cols)
    text = b"".join(c for _, c in chunks)
    counts = bar_counts(chunks)
    assert counts, f"no progress bar drawn; the terminal got {text[-600:]!r}"
    assert {total for _, _, total in counts} == {6000}
    done = [n for _, n, _ in counts]
    assert done == sorted(done) and len(set(done)) >= 3, done  # it advances, more than once, never back
    assert 0 < max(done) <= 6000
    first_draw = next(t for t, _, _ in counts)
    epoch_line = next(t for t, c in chunks if b"epoch   1  train" in c)
    assert first_draw < epoch_line  # drawn while the epoch runs, not after
    width = max(len(d.decode(errors="replace")) for _, c in chunks for d in c.split(b"\r") if BAR.search(d))
    assert width <= (cols or 80)  # fits the line: no wrapping into a scroll of bars


def test_terminal_size_falls_back_when_the_terminal_does_not_know(monkeypatch):
    pid, fd = pty.openpty()
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
        stream = os.fdopen(os.dup(fd), "w")
        monkeypatch.delenv("COLUMNS", raising=False)
        monkeypatch.delenv("LINES", raising=False)
        assert terminal_size(stream) == (80, 24)
        monkeypatch.setenv("COLUMNS", "132")
        assert terminal_size(stream) == (132, 24)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 100, 0, 0))
        assert terminal_size(stream) == (100, 50)  # a size the terminal reports wins
        stream.close()
    finally:
        os.close(pid)
        os.close(fd)


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


_DOWNLOAD = """
import sys
from chainrule.data.fashion_mnist import download
from chainrule.train.progress import bytes_bar
download(__import__("pathlib").Path(sys.argv[1]), sys.argv[2], md5s=eval(sys.argv[3]), progress=bytes_bar)
print("downloaded")
"""


def test_download_shows_a_byte_bar_in_a_pseudo_terminal(tmp_path):
    root = tmp_path / "mirror"
    root.mkdir()
    md5s = {}
    rng = np.random.default_rng(0)
    for spec in FILES.values():
        data = rng.integers(0, 256, 400_000, dtype=np.uint8).tobytes()
        (root / (spec.name + ".gz")).write_bytes(data)
        md5s[spec.name + ".gz"] = hashlib.md5(data).hexdigest()
    with LocalServer(partial(_Files, directory=str(root))) as server:
        chunks = run_in_pty([sys.executable, "-c", _DOWNLOAD, str(tmp_path / "cache"), server.url, repr(md5s)], 24, 80)
    text = b"".join(c for _, c in chunks).decode(errors="replace")
    assert "downloaded" in text
    for spec in FILES.values():  # 400,000 bytes = 391 KiB each (too fast here for the bar to redraw)
        assert re.search(rf"downloading {spec.name}.gz: +0%\|[^|]*\| 0.00/391k", text), text[-400:]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(md5s)


def test_download_progress_is_fed_every_byte(tmp_path):
    root = tmp_path / "mirror"
    root.mkdir()
    md5s = {}
    for i, spec in enumerate(FILES.values()):
        data = bytes([i]) * (100_000 + i)
        (root / (spec.name + ".gz")).write_bytes(data)
        md5s[spec.name + ".gz"] = hashlib.md5(data).hexdigest()
    seen: dict[str, list] = {}

    class Bar:
        def __init__(self, desc, total):
            self.record = seen.setdefault(desc, [total, 0, False])

        def update(self, n):
            self.record[1] += n

        def close(self):
            self.record[2] = True

    with LocalServer(partial(_Files, directory=str(root))) as server:
        download(tmp_path / "cache", server.url, md5s=md5s, progress=Bar)
    assert seen == {f"downloading {s.name}.gz": [100_000 + i] * 2 + [True] for i, s in enumerate(FILES.values())}


def test_no_bar_when_stderr_is_not_a_terminal(tmp_path):
    from chainrule.train.progress import progress_bar

    with open(tmp_path / "log", "w") as f:
        assert progress_bar(10, "x", stream=f) is None
    proc = subprocess.run(
        [sys.executable, "-c", "from chainrule.train.progress import progress_bar; print(progress_bar(5, 'x'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.strip() == "None" and proc.stderr == ""
