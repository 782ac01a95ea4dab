"""Fashion-MNIST reading, validation and download (against a local HTTP server only)."""

import gzip
import hashlib
import http.server
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from chainrule import DataError
from chainrule.data import DataLoader, load_csv, load_fashion_mnist, load_npz, read_idx
from chainrule.data.fashion_mnist import DEBIAN_DIR, FILES
from conftest import LocalServer

needs_dataset = pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="dataset-fashion-mnist is installed by .ci/run")


@needs_dataset
def test_reads_real_fashion_mnist():
    data = load_fashion_mnist(download_missing=False)
    assert data.train_images.shape == (60000, 28, 28) and data.train_images.dtype == np.uint8
    assert data.test_images.shape == (10000, 28, 28)
    assert np.bincount(data.train_labels).tolist() == [6000] * 10
    assert np.bincount(data.test_labels).tolist() == [1000] * 10


@pytest.fixture
def fmnist_copy(tmp_path):
    if not DEBIAN_DIR.is_dir():
        pytest.skip("dataset-fashion-mnist is installed by .ci/run")
    d = tmp_path / "fm"
    shutil.copytree(DEBIAN_DIR, d)
    return d


@needs_dataset
def test_search_order_prefers_data_dir_then_env(fmnist_copy, monkeypatch, tmp_path):
    assert load_fashion_mnist(fmnist_copy).source == fmnist_copy
    monkeypatch.setenv("CHAINRULE_DATA", str(fmnist_copy))
    assert load_fashion_mnist().source == fmnist_copy
    monkeypatch.delenv("CHAINRULE_DATA")
    assert load_fashion_mnist().source == DEBIAN_DIR


def test_raw_uncompressed_files_are_read(fmnist_copy):
    src = fmnist_copy / "t10k-labels-idx1-ubyte.gz"
    raw = fmnist_copy / "t10k-labels-idx1-ubyte"
    raw.write_bytes(gzip.decompress(src.read_bytes()))
    labels = read_idx(raw, FILES["test_labels"])
    assert labels.shape == (10000,)


def test_truncated_gzip_is_an_error_naming_the_file(fmnist_copy):
    f = fmnist_copy / "train-labels-idx1-ubyte.gz"
    f.write_bytes(f.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz.*(truncated|corrupt)"):
        load_fashion_mnist(fmnist_copy, download_missing=False)


def test_truncated_raw_file_is_detected(fmnist_copy):
    raw = fmnist_copy / "t10k-images-idx3-ubyte"
    raw.write_bytes(gzip.decompress((fmnist_copy / "t10k-images-idx3-ubyte.gz").read_bytes())[:-100])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: .*truncated"):
        read_idx(raw, FILES["test_images"])


def test_corrupted_bytes_are_detected(fmnist_copy):
    raw = fmnist_copy / "t10k-images-idx3-ubyte"
    data = bytearray(gzip.decompress((fmnist_copy / "t10k-images-idx3-ubyte.gz").read_bytes()))
    data[5000] ^= 0xFF
    raw.write_bytes(bytes(data))
    with pytest.raises(DataError, match="checksum.*corrupt"):
        read_idx(raw, FILES["test_images"])


def test_mismatched_file_is_detected(fmnist_copy):
    shutil.copy(fmnist_copy / "t10k-images-idx3-ubyte.gz", fmnist_copy / "train-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match=r"train-images.*shape \(10000, 28, 28\), expected \(60000, 28, 28\)"):
        load_fashion_mnist(fmnist_copy, download_missing=False)


def test_bad_magic_and_label_range(tmp_path):
    bad = tmp_path / "x-idx1-ubyte"
    bad.write_bytes(b"\x00\x00\x09\x01" + (3).to_bytes(4, "big") + b"\x00\x01\x02")
    with pytest.raises(DataError, match="magic"):
        read_idx(bad)
    labels = tmp_path / "y-idx1-ubyte"
    labels.write_bytes(b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + b"\x00\x01\x0c")
    with pytest.raises(DataError, match="label 12 out of range"):
        read_idx(labels)


def test_missing_data_dir_is_an_error_not_a_silent_fallback(tmp_path):
    with pytest.raises(DataError, match="no such directory"):
        load_fashion_mnist(tmp_path / "typo", download_missing=False)


def test_incomplete_data_dir_is_an_error(fmnist_copy):
    (fmnist_copy / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        load_fashion_mnist(fmnist_copy, download_missing=False)


def _Server(root: Path) -> LocalServer:
    return LocalServer(partial(_QuietHandler, directory=str(root)))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _md5s(root: Path) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in root.glob("*.gz")}


def test_download_fallback_from_local_server(fmnist_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CHAINRULE_DATA", raising=False)
    with _Server(fmnist_copy) as server:
        # this mirror recompressed the files, so the published MD5s do not match: rejected
        with pytest.raises(DataError, match="does not match the published"):
            load_fashion_mnist(base_url=server.url, search_system=False)
        assert not list((tmp_path / "cache").rglob("*.gz"))  # nothing half-written is kept
        data = load_fashion_mnist(base_url=server.url, md5s=_md5s(fmnist_copy), search_system=False)
    assert data.source == tmp_path / "cache" / "chainrule" / "fashion-mnist"
    assert data.train_images.shape == (60000, 28, 28)
    # second load finds the cache without any server
    assert load_fashion_mnist(search_system=False, download_missing=False).source == data.source


def test_download_of_truncated_file_is_rejected(fmnist_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    md5s = _md5s(fmnist_copy)
    f = fmnist_copy / "train-labels-idx1-ubyte.gz"
    f.write_bytes(f.read_bytes()[:1000])
    with _Server(fmnist_copy) as server:
        with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: MD5"):
            load_fashion_mnist(base_url=server.url, md5s=md5s, search_system=False)


def test_download_server_error_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with _Server(empty) as server:
        with pytest.raises(DataError, match="download of .*train-images-idx3-ubyte.gz failed"):
            load_fashion_mnist(base_url=server.url, search_system=False)


def test_dataloader_batches_shuffle_and_drop_last():
    x = np.arange(10)
    y = np.arange(10) * 2
    loader = DataLoader(x, y, batch_size=4, shuffle=True, seed=3)
    batches = list(loader.batches(0))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate([b[0] for b in batches]).tolist()) == list(range(10))
    assert all((b[1] == 2 * b[0]).all() for b in batches)
    assert [b[0].tolist() for b in loader.batches(0)] == [b[0].tolist() for b in batches]
    assert [b[0].tolist() for b in loader.batches(1)] != [b[0].tolist() for b in batches]
    assert len(DataLoader(x, batch_size=4, drop_last=True)) == 2
    with pytest.raises(ValueError, match="same length"):
        DataLoader(x, y[:5])


def test_npz_and_csv_loaders(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((3, 2)), y=np.array([0, 1, 0]))
    x, y = load_npz(tmp_path / "d.npz")
    assert x.shape == (3, 2) and y.tolist() == [0, 1, 0]
    with pytest.raises(DataError, match="missing"):
        load_npz(tmp_path / "d.npz", x_key="features")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable"):
        load_npz(tmp_path / "bad.npz")
    (tmp_path / "d.csv").write_text("a,b,label\n0.5,1.5,1\n2,3,0\n")
    x, y = load_csv(tmp_path / "d.csv")
    assert x.dtype == np.float32 and x.tolist() == [[0.5, 1.5], [2.0, 3.0]] and y.tolist() == [1, 0]
    (tmp_path / "ragged.csv").write_text("1,2,0\n3,1\n")
    with pytest.raises(DataError, match="ragged.csv:2: 2 columns, expected 3"):
        load_csv(tmp_path / "ragged.csv")
