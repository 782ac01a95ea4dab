"""Checkpoints as ``.npz`` without pickle, with a SHA-256 digest so corruption is detected."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.core.errors import DataError

_META = "__meta__"
_DIGEST = "__sha256__"


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(key.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike[str], arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint intact."""
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload[_META] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    payload[_DIGEST] = np.frombuffer(_digest(payload).encode(), dtype=np.uint8)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **payload)  # type: ignore[arg-type]
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        with np.load(path, allow_pickle=False) as f:
            payload = {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: checkpoint is truncated or corrupt ({exc})") from exc
    if _DIGEST not in payload or _META not in payload:
        raise DataError(f"{path}: not a chainrule checkpoint (no digest/metadata)")
    stored = payload.pop(_DIGEST).tobytes().decode()
    actual = _digest(payload)
    if stored != actual:
        raise DataError(
            f"{path}: checkpoint digest mismatch (stored {stored[:12]}..., actual {actual[:12]}...): corrupt"
        )
    meta = json.loads(payload.pop(_META).tobytes().decode())
    return payload, meta
