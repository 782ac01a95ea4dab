"""Checkpoints as ``.npz`` without pickle, in one canonical byte encoding, with a SHA-256 digest.

Writing: every array becomes a ``.npy`` member (format 1.0, little-endian numeric dtypes only)
of an uncompressed zip whose every field is fixed (no timestamps, no extra fields), so the
same content always gives the same bytes; the file goes through :func:`chainrule.data.io.atomic_write`.
``np.load`` reads it like any ``.npz``.

Loading never trusts a declared size: the file is read once (its real length bounds
everything), each member's ``.npy`` header is parsed by a strict pattern (no ``eval``, no
tokenizer) and its dtype, shape and byte count are checked against the bytes actually
present before any array is made. The archive is then re-encoded from what was read and must
equal the file byte for byte, and the SHA-256 digest over names, dtypes, shapes and data
must match. Every failure, whatever its cause, is a :class:`CheckpointError` (a
:class:`~chainrule.core.errors.DataError`) naming the file and the reason. Checkpoints of
the earlier ``np.savez`` format are still read, with the same header and size checks.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import re
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.core.errors import DataError
from chainrule.data.io import atomic_write

_META = "__meta__"
_DIGEST = "__sha256__"
FORMAT = 2
_COMMENT = b"chainrule checkpoint v2"
_LOCAL = struct.Struct("<IHHHHHIIIHH")  # 30 bytes
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # 46 bytes
_END = struct.Struct("<IHHHHIIH")  # 22 bytes
_LOCAL_SIG, _CENTRAL_SIG, _END_SIG = 0x04034B50, 0x02014B50, 0x06054B50
_DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01, the zip epoch: no timestamp in the file
_DTYPES = {"<f2", "<f4", "<f8", "<i1", "<i2", "<i4", "<i8", "<u2", "<u4", "<u8", "|u1", "|i1", "|b1"}
_HEADER = re.compile(
    rb"\{'descr': '(?P<descr>[<>|][a-z][0-9]{1,2})', 'fortran_order': False, "
    rb"'shape': \((?P<shape>(?:[0-9]{1,19}, )*(?:[0-9]{1,19},?)?)\), \} *\n"
)
_MAX_MEMBERS = 100_000


class CheckpointError(DataError):
    """A checkpoint is missing, truncated, corrupt or not a chainrule checkpoint."""


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(key.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


# --- encoding --------------------------------------------------------------------------------
def _npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}".encode("ascii")
    total = 10 + len(text) + 1
    text += b" " * (-total % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


def _npy(a: np.ndarray) -> bytes:
    a = np.asarray(a)
    if not a.flags.c_contiguous:
        a = a.copy(order="C")
    if a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and np.little_endian is False):
        a = a.astype(a.dtype.newbyteorder("<"))
    descr = a.dtype.str
    if descr not in _DTYPES:
        raise TypeError(f"save_checkpoint: dtype {a.dtype} cannot be stored (numeric dtypes only)")
    return _npy_header(descr, a.shape) + a.tobytes()


def _zip(members: list[tuple[bytes, bytes]]) -> bytes:
    """An uncompressed zip with every variable field fixed: the canonical encoding."""
    out = bytearray()
    central = bytearray()
    for name, data in members:
        if len(data) >= 0xFFFFFFFF or len(out) >= 0xFFFFFFFF:
            raise ValueError("save_checkpoint: a checkpoint over 4 GiB is not supported")
        crc = zlib.crc32(data)
        offset = len(out)
        out += _LOCAL.pack(_LOCAL_SIG, 20, 0, 0, 0, _DOS_DATE, crc, len(data), len(data), len(name), 0)
        out += name + data
        central += _CENTRAL.pack(
            _CENTRAL_SIG, 20, 20, 0, 0, 0, _DOS_DATE, crc, len(data), len(data), len(name), 0, 0, 0, 0, 0, offset
        )
        central += name
    cd_offset = len(out)
    out += central
    out += _END.pack(_END_SIG, 0, 0, len(members), len(members), len(central), cd_offset, len(_COMMENT))
    out += _COMMENT
    return bytes(out)


def encode_checkpoint(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> bytes:
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    for k in payload:
        if k in (_META, _DIGEST) or not k or "/" == k[0] or not k.isascii():
            raise ValueError(f"save_checkpoint: invalid array name {k!r}")
    meta = dict(meta, format=FORMAT)
    payload[_META] = np.frombuffer(json.dumps(meta, sort_keys=True, allow_nan=False).encode(), dtype=np.uint8)
    payload[_DIGEST] = np.frombuffer(_digest(payload).encode(), dtype=np.uint8)
    return _zip([(f"{k}.npy".encode("ascii"), _npy(payload[k])) for k in sorted(payload)])


def save_checkpoint(path: str | os.PathLike[str], arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint intact."""
    atomic_write(path, encode_checkpoint(arrays, meta))


# --- decoding --------------------------------------------------------------------------------
class _Corrupt(Exception):
    pass


def _members_canonical(data: bytes) -> list[tuple[bytes, bytes]] | None:
    """The (name, data) pairs of a canonical archive, or None if ``data`` is not one."""
    members: list[tuple[bytes, bytes]] = []
    pos = 0
    while data[pos : pos + 4] == b"PK\x03\x04":
        if pos + _LOCAL.size > len(data) or len(members) > _MAX_MEMBERS:
            return None
        fields = _LOCAL.unpack_from(data, pos)
        size, name_len, extra_len = fields[8], fields[9], fields[10]
        start = pos + _LOCAL.size + name_len + extra_len
        end = start + size
        if end > len(data):
            return None
        members.append((data[pos + _LOCAL.size : pos + _LOCAL.size + name_len], data[start:end]))
        pos = end
    if not members or _zip(members) != data:
        return None
    return members


def _members_zipfile(data: bytes) -> list[tuple[bytes, bytes]]:
    """The members of any other zip (the earlier np.savez checkpoints), sizes checked first."""
    members = []
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        if len(infos) > _MAX_MEMBERS:
            raise _Corrupt(f"{len(infos)} members")
        for info in infos:
            if info.flag_bits & 0x1:
                raise _Corrupt(f"member {info.filename!r} is flagged as encrypted")
            if info.compress_type != zipfile.ZIP_STORED:
                raise _Corrupt(f"member {info.filename!r} uses compression method {info.compress_type}")
            if info.file_size != info.compress_size or info.file_size > len(data):
                raise _Corrupt(
                    f"member {info.filename!r} declares {info.file_size} bytes; the whole file has {len(data)}"
                )
            with zf.open(info) as f:
                content = f.read(info.file_size + 1)
            if len(content) != info.file_size:
                raise _Corrupt(f"member {info.filename!r} holds {len(content)} bytes, declares {info.file_size}")
            members.append((info.filename.encode("utf-8"), content))
    return members


def _parse_header(name: str, content: bytes, strict: bool) -> tuple[np.dtype[Any], tuple[int, ...], int]:
    if len(content) < 10 or content[:6] != b"\x93NUMPY":
        raise _Corrupt(f"{name}: not a .npy array (bad magic)")
    major = content[6]
    if major == 1:
        hlen, start = struct.unpack_from("<H", content, 8)[0], 10
    elif major in (2, 3) and not strict and len(content) >= 12:
        hlen, start = struct.unpack_from("<I", content, 8)[0], 12
    else:
        raise _Corrupt(f"{name}: unsupported .npy version {major}")
    if start + hlen > len(content):
        raise _Corrupt(f"{name}: .npy header of {hlen} bytes runs past the member's {len(content)} bytes")
    text = content[start : start + hlen]
    if strict:
        m = _HEADER.fullmatch(text)
        if m is None:
            raise _Corrupt(f"{name}: malformed .npy header")
        descr = m["descr"].decode()
        shape = tuple(int(d) for d in m["shape"].decode().replace(",", " ").split())
    else:
        if len(text) > 4096:
            raise _Corrupt(f"{name}: .npy header of {len(text)} bytes")
        try:
            d = ast.literal_eval(text.decode("latin1"))
        except Exception as exc:
            raise _Corrupt(f"{name}: malformed .npy header ({type(exc).__name__})") from exc
        if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
            raise _Corrupt(f"{name}: malformed .npy header")
        descr, shape = d["descr"], d["shape"]
        if d["fortran_order"] is not False or not isinstance(shape, tuple) or not isinstance(descr, str):
            raise _Corrupt(f"{name}: unsupported .npy header {d!r}")
        if not all(type(s) is int and s >= 0 for s in shape):
            raise _Corrupt(f"{name}: invalid shape {shape!r}")
    if descr not in _DTYPES:
        raise _Corrupt(f"{name}: dtype {descr!r} is not a numeric checkpoint dtype")
    dtype = np.dtype(descr)
    count = 1
    for s in shape:
        count *= s
    expected = count * dtype.itemsize
    have = len(content) - start - hlen
    if expected != have:
        raise _Corrupt(f"{name}: header declares shape {shape} ({expected} bytes) but the member holds {have} bytes")
    return dtype, shape, start + hlen


def _decode(data: bytes) -> tuple[dict[str, np.ndarray], bool]:
    canonical = _members_canonical(data)
    strict = canonical is not None
    members = canonical if canonical is not None else _members_zipfile(data)
    arrays: dict[str, np.ndarray] = {}
    for raw_name, content in members:
        name = raw_name.decode("ascii")
        if not name.endswith(".npy") or name[:-4] in arrays:
            raise _Corrupt(f"unexpected member {name!r}")
        dtype, shape, offset = _parse_header(name, content, strict)
        arrays[name[:-4]] = np.frombuffer(content, dtype=dtype, offset=offset).reshape(shape).copy()
    return arrays, strict


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read and verify a checkpoint; any problem is a :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint ({exc.strerror or exc})") from exc
    try:
        payload, canonical = _decode(data)
    except MemoryError:
        raise CheckpointError(f"{path}: checkpoint is truncated or corrupt (out of memory while reading)") from None
    except Exception as exc:
        reason = str(exc) if isinstance(exc, _Corrupt) else f"{type(exc).__name__}: {exc}"
        raise CheckpointError(f"{path}: checkpoint is truncated or corrupt ({reason})") from exc
    if _DIGEST not in payload or _META not in payload:
        raise CheckpointError(f"{path}: not a chainrule checkpoint (no digest/metadata)")
    try:
        stored = payload.pop(_DIGEST).tobytes().decode("ascii")
    except UnicodeDecodeError:
        stored = "?"
    actual = _digest(payload)
    if stored != actual:
        raise CheckpointError(
            f"{path}: checkpoint digest mismatch (stored {stored[:12]}..., actual {actual[:12]}...): corrupt"
        )
    try:
        meta = json.loads(payload.pop(_META).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path}: checkpoint metadata is not valid JSON ({exc}): corrupt") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: checkpoint metadata is not an object: corrupt")
    if meta.get("format", 1) == FORMAT and not canonical:
        raise CheckpointError(f"{path}: checkpoint is truncated or corrupt (not in its canonical encoding)")
    meta.pop("format", None)
    return payload, meta


__all__ = ["CheckpointError", "encode_checkpoint", "load_checkpoint", "save_checkpoint"]
