"""Hostile data files and downloads (local HTTP server only): bounded time and memory, clear errors."""

import gzip
import hashlib
import http.server
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from chainrule import DataError
from chainrule.data import load_fashion_mnist, read_idx
from chainrule.data.fashion_mnist import DEBIAN_DIR, FILES, download
from conftest import LocalServer

CHUNK = 16 << 20


def _bomb(path: Path, header: bytes, total: int) -> None:
    """A multi-member gzip of ``header`` then zeros, inflating to ``total`` bytes, written fast."""
    zeros = gzip.compress(bytes(CHUNK), compresslevel=9)
    with open(path, "wb") as f:
        f.write(gzip.compress(header + bytes(CHUNK - len(header)), compresslevel=9))
        for _ in range(total // CHUNK - 1):
            f.write(zeros)


def _measure(fn):
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(DataError) as info:
            fn()
        return time.perf_counter() - start, tracemalloc.get_traced_memory()[1], str(info.value)
    finally:
        tracemalloc.stop()


IMAGES = b"\x00\x00\x08\x03" + (60000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2


@pytest.mark.parametrize(
    "header,spec,message,max_mb",
    [
        (IMAGES, FILES["train_images"], "trailing bytes", 60),  # right header, 2 GiB of data
        (b"\x00\x00\x08\x01" + (60000).to_bytes(4, "big"), FILES["train_labels"], "trailing bytes", 5),
        (IMAGES, FILES["test_images"], r"shape \(60000, 28, 28\), expected \(10000, 28, 28\)", 5),
        (b"\x00\x00\x08\x01" + (2**31).to_bytes(4, "big"), None, "over the 1073741824 limit", 5),
    ],
    ids=["images-header", "labels-header", "wrong-shape", "no-spec-2GiB-declared"],
)
def test_gzip_bomb_is_rejected_fast_with_bounded_memory(tmp_path, header, spec, message, max_mb):
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    _bomb(bomb, header, 2 << 30)
    assert bomb.stat().st_size < 3 << 20  # ~2.1 MB on disk
    took, peak, err = _measure(lambda: read_idx(bomb, spec))
    assert took < 1.0, took
    assert peak < max_mb << 20, peak
    assert __import__("re").search(message, err), err


def test_header_declaring_terabytes_is_rejected_at_once(tmp_path):
    raw = tmp_path / "x-idx3-ubyte"
    raw.write_bytes(b"\x00\x00\x08\x03" + (0xFFFFFFFF).to_bytes(4, "big") * 3 + bytes(100))
    took, peak, err = _measure(lambda: read_idx(raw))
    assert took < 0.1 and peak < 1 << 20 and "over the" in err
    raw.write_bytes(b"\x00\x00\x08\x01" + (1 << 20).to_bytes(4, "big") + bytes(100))  # under the cap, file short
    took, peak, err = _measure(lambda: read_idx(raw))
    assert took < 0.1 and peak < 1 << 20 and "truncated" in err


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="dataset-fashion-mnist is installed by .ci/run")
def test_bomb_in_a_data_dir_is_a_data_error(tmp_path):
    for spec in FILES.values():
        (tmp_path / (spec.name + ".gz")).symlink_to(DEBIAN_DIR / (spec.name + ".gz"))
    (tmp_path / "train-images-idx3-ubyte.gz").unlink()
    _bomb(tmp_path / "train-images-idx3-ubyte.gz", IMAGES, 2 << 30)
    start = time.perf_counter()
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: trailing bytes"):
        load_fashion_mnist(tmp_path, download_missing=False)
    assert time.perf_counter() - start < 5


class _Handler(http.server.BaseHTTPRequestHandler):
    mode = "file"
    root: Path

    def log_message(self, *args):
        pass

    def do_GET(self):
        name = self.path.strip("/")
        if self.mode == "endless":  # no Content-Length, bytes until the client gives up (bounded)
            self.send_response(200)
            self.end_headers()
            for _ in range(4096):
                try:
                    self.wfile.write(bytes(64 << 10))
                except OSError:
                    return
            return
        if self.mode == "trickle":  # one byte at a time, never finishing within the deadline
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(200):
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.05)
            return
        data = (self.root / name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _Server(root: Path, mode: str = "file") -> LocalServer:
    return LocalServer(type("H", (_Handler,), {"root": root, "mode": mode}))


@pytest.fixture
def fake_release(tmp_path):
    root = tmp_path / "mirror"
    root.mkdir()
    rng = np.random.default_rng(0)
    md5s = {}
    for spec in FILES.values():
        data = rng.integers(0, 256, 300_000, dtype=np.uint8).tobytes()
        (root / (spec.name + ".gz")).write_bytes(data)
        md5s[spec.name + ".gz"] = hashlib.md5(data).hexdigest()
    return root, md5s


def test_download_over_the_size_cap_is_stopped(fake_release, tmp_path):
    root, md5s = fake_release
    with _Server(root) as server:  # announced by Content-Length
        with pytest.raises(DataError, match="300000 bytes announced, over the 100000 limit"):
            download(tmp_path / "cache", server.url, md5s=md5s, max_bytes=100_000)
    with _Server(root, "endless") as server:  # not announced: counted while reading
        start = time.perf_counter()
        with pytest.raises(DataError, match="more than the 1000000 bytes allowed"):
            download(tmp_path / "cache", server.url, md5s=md5s, max_bytes=1_000_000)
        assert time.perf_counter() - start < 5
    assert list((tmp_path / "cache").iterdir()) == []


def test_download_has_an_overall_deadline(fake_release, tmp_path):
    root, md5s = fake_release
    with _Server(root, "trickle") as server:
        start = time.perf_counter()
        with pytest.raises(DataError, match="the 1 s deadline passed"):
            download(tmp_path / "cache", server.url, md5s=md5s, timeout=5, deadline=1.0)
        took = time.perf_counter() - start
    assert took < 2.5, took
    assert list((tmp_path / "cache").iterdir()) == []


def test_two_downloads_into_one_cache_both_succeed(fake_release, tmp_path):
    root, md5s = fake_release
    cache = tmp_path / "cache"
    errors = []

    def fetch():
        try:
            download(cache, server.url, md5s=md5s)
        except Exception as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    with _Server(root) as server:
        threads = [threading.Thread(target=fetch) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert sorted(p.name for p in cache.iterdir()) == sorted(md5s)
    for name, md5 in md5s.items():
        assert hashlib.md5((cache / name).read_bytes()).hexdigest() == md5
