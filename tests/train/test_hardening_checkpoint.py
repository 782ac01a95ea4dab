"""Fault injection on checkpoints: every corruption is a CheckpointError (a DataError) and none loads."""

import io
import json
import os
import shutil
import struct
import tempfile
import time
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from chainrule import DataError
from chainrule.cli.main import main
from chainrule.data.fashion_mnist import DEBIAN_DIR
from chainrule.train.config import Config, RunState
from chainrule.train.contents import parameter_shapes
from chainrule.train.snapshot import CheckpointError, encode_checkpoint, load_checkpoint, save_checkpoint
from chainrule.train.trainer import Trainer

ARRAYS = {
    "param/0.weight": np.arange(24, dtype=np.float32).reshape(4, 6),
    "param/0.bias": np.ones(4, np.float32),
    "optim/lr": np.asarray(0.1),
    "optim/steps": np.asarray(7),
    "optim/0.momentum": np.full((4, 6), 0.5, np.float32),
}
META = {"config": {"hidden": 4}, "state": {"epoch": 1}}


@pytest.fixture
def small(tmp_path):
    """A small checkpoint, in memory-backed /dev/shm where there is one (the sweeps write it
    thousands of times; on the shared disk each write costs ~1 ms, there ~0.2 ms)."""
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path
    path = folder / "checkpoint.npz"
    save_checkpoint(path, ARRAYS, META)
    yield path
    if folder != tmp_path:
        shutil.rmtree(folder, ignore_errors=True)


def _expect_rejected(path):
    try:
        load_checkpoint(path)
    except CheckpointError:
        return
    except Exception as exc:  # any other class is a failure of the mapping
        pytest.fail(f"{type(exc).__name__} escaped: {exc}")
    pytest.fail("a corrupted checkpoint loaded")


def test_round_trip_is_canonical_and_numpy_readable(small):
    arrays, meta = load_checkpoint(small)
    assert meta == META and arrays.keys() == ARRAYS.keys()
    for k, v in ARRAYS.items():
        assert arrays[k].dtype == v.dtype and arrays[k].shape == v.shape
        np.testing.assert_array_equal(arrays[k], v)
    assert small.read_bytes() == encode_checkpoint(ARRAYS, META)  # same content, same bytes
    with np.load(small) as f:
        np.testing.assert_array_equal(f["param/0.weight"], ARRAYS["param/0.weight"])


def test_every_single_byte_flip_is_rejected(small):
    raw = small.read_bytes()
    start = time.perf_counter()
    for i in range(len(raw)):
        for mask in (0x01, 0xFF):
            b = bytearray(raw)
            b[i] ^= mask
            small.write_bytes(bytes(b))
            _expect_rejected(small)
    assert time.perf_counter() - start < 20


def test_every_truncation_and_extension_is_rejected(small):
    raw = small.read_bytes()
    for n in range(len(raw)):
        small.write_bytes(raw[:n])
        _expect_rejected(small)
    for tail in (b"\x00", b"PK\x05\x06" + bytes(18), raw[:100]):
        small.write_bytes(raw + tail)
        _expect_rejected(small)


def test_byte_flips_in_a_real_training_checkpoint(tmp_path):
    """A sample of flips over a trainer's checkpoint, through the command line: exit 2, one line."""
    path = tmp_path / "checkpoint.npz"
    rng = np.random.default_rng(0)
    arrays = {
        "param/0.weight": rng.standard_normal((8, 784)).astype(np.float32),
        "param/0.bias": np.zeros(8, np.float32),
    }
    save_checkpoint(path, arrays, {"config": asdict(Config(model="mlp", hidden=8)), "state": asdict(RunState())})
    raw = path.read_bytes()
    for i in rng.choice(len(raw), 300, replace=False):
        b = bytearray(raw)
        b[i] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(b))
        _expect_rejected(path)


def _zip(members, compress=zipfile.ZIP_STORED, flag_bits=0):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compress) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = compress
            zf.writestr(info, data)
    raw = bytearray(buf.getvalue())
    if flag_bits:  # set the flag in every local and central header
        for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            pos = raw.find(sig)
            while pos >= 0:
                raw[pos + off] |= flag_bits
                pos = raw.find(sig, pos + 1)
    return bytes(raw)


def _npy(header: str, data: bytes = b"") -> bytes:
    text = header.encode()
    text += b" " * (-(10 + len(text) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data


def test_header_declaring_terabytes_is_rejected_before_any_allocation(tmp_path):
    path = tmp_path / "checkpoint.npz"
    huge = _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }", b"\x00" * 64)
    path.write_bytes(_zip({"param/w.npy": huge}))
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"shape \(1000000000000,\).*holds 64 bytes"):
        load_checkpoint(path)
    assert time.perf_counter() - start < 1.0
    # the same in the canonical layout
    path.write_bytes(encode_checkpoint({"w": np.zeros(16, np.float32)}, {}).replace(b"(16,)", b"(9999999999999,)"))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "raw,reason",
    [
        (
            _zip({"a.npy": _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", bytes(4))}, flag_bits=1),
            "encrypted",
        ),
        (_zip({"a.npy": b"x" * 100}, compress=zipfile.ZIP_DEFLATED), "compression method"),
        (_zip({"a.npy": _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), ", bytes(4))}), "malformed"),
        (_zip({"a.npy": _npy("{'descr': 'O', 'fortran_order': False, 'shape': (1,), }", bytes(8))}), "dtype 'O'"),
        (
            _zip({"a.npy": _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': __import__('os')}")}),
            "malformed",
        ),
        (_zip({"a.npy": _npy("(" * 200 + "1" + ")" * 200)}), "malformed"),
        (b"PK\x03\x04" + bytes(40), "truncated or corrupt"),
        (b"", "truncated or corrupt"),
    ],
    ids=["encrypted", "deflated", "tokenize", "object-dtype", "code-in-header", "deep-nesting", "junk", "empty"],
)
def test_hostile_archives_are_one_error_class(tmp_path, raw, reason):
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(raw)
    with pytest.raises(CheckpointError, match=reason) as info:
        load_checkpoint(path)
    assert isinstance(info.value, DataError) and str(path) in str(info.value)


def test_older_np_savez_checkpoints_still_load(tmp_path):
    from chainrule.train.snapshot import _digest

    payload = dict(ARRAYS)
    payload["__meta__"] = np.frombuffer(json.dumps(META).encode(), np.uint8)
    payload["__sha256__"] = np.frombuffer(_digest(payload).encode(), np.uint8)
    np.savez(tmp_path / "old.npz", **payload)
    arrays, meta = load_checkpoint(tmp_path / "old.npz")
    assert meta == META and arrays.keys() == ARRAYS.keys()


def _run_with(tmp_path, arrays, meta):
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "checkpoint.npz", arrays, meta)  # digest-valid: only the content is wrong
    return run


@pytest.mark.parametrize(
    "change,reason",
    [
        (lambda a, m: m["config"].update(colour="blue"), "unknown key"),
        (lambda a, m: m["config"].update(hidden="many"), "wrong type"),
        (lambda a, m: m["config"].update(lr=-1.0), "invalid"),
        (lambda a, m: m["state"].update(epoch=-1), "run state"),
        (lambda a, m: m.pop("state"), "run state"),
    ],
    ids=["unknown-config-key", "config-type", "config-value", "state-value", "no-state"],
)
def test_digest_valid_but_wrong_metadata_is_exit_2(tmp_path, capsys, change, reason):
    cfg = Config(model="mlp", hidden=4, limit_train=100, limit_test=100)
    meta = {"config": asdict(cfg), "state": asdict(RunState()), "dropout_rng": []}
    change(ARRAYS, meta)
    params = {f"param/{k}": np.zeros(s, np.float32) for k, s in parameter_shapes("mlp", 4, 0.0, 784, 10).items()}
    run = _run_with(tmp_path, params, meta)  # arrays that fit: only the metadata is wrong
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert reason in err and err.count("\n") == 1, err
    if "config" in meta and "state" in meta and reason != "run state":  # evaluate reads only the config
        assert main(["evaluate", str(run)]) == 2
        assert reason in capsys.readouterr().err


needs_dataset = pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="dataset-fashion-mnist is installed by .ci/run")


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """One small trainer and its checkpoint, shared (building a trainer reads the data set)."""
    cfg = Config(model="mlp", hidden=4, limit_train=100, limit_test=100, optimizer="momentum", lr=0.01)
    trainer = Trainer(cfg, tmp_path_factory.mktemp("good"), quiet=True)
    trainer.save()
    return trainer, trainer.out / "checkpoint.npz"


@needs_dataset
def test_optimizer_slot_past_the_end_through_resume(tmp_path, good):
    arrays, meta = load_checkpoint(good[1])
    arrays["optim/99.momentum"] = np.zeros((4, 784), np.float32)
    run = _run_with(tmp_path, arrays, meta)
    with pytest.raises(CheckpointError, match="optimizer entry '99.momentum' does not fit this model"):
        Trainer.resume(run, quiet=True)


@needs_dataset
@pytest.mark.parametrize(
    "key,value,reason",
    [
        ("optim/99.momentum", np.zeros((4, 784), np.float32), "does not fit this model"),
        ("optim/0.momentum", np.zeros((3, 3), np.float32), "has shape"),
        ("optim/0.bogus", np.zeros((4, 784), np.float32), "does not fit this model"),
        ("optim/lr", np.asarray(float("nan")), "invalid"),
        ("param/0.weight", np.zeros((5, 784), np.float32), "does not fit the model"),
        ("param/extra", np.zeros(3, np.float32), "does not fit the model"),
    ],
    ids=["slot-index-past-end", "slot-shape", "slot-name", "lr-nan", "param-shape", "param-extra"],
)
def test_digest_valid_but_wrong_arrays_is_a_checkpoint_error(good, key, value, reason):
    from chainrule.train.config import state_from_meta

    trainer, path = good
    arrays, meta = load_checkpoint(path)
    arrays[key] = value
    with pytest.raises(CheckpointError, match=reason):
        trainer._restore(arrays, meta, state_from_meta(meta, path), path)
