"""Before training, every MPI rank checks that it was started with rank 0's settings.

Ranks started with different settings (``mpiexec -n 1 chainrule train ... : -n 1 chainrule train
... --seed 1``) would otherwise train a silent mixture, or fail later in a collective whose
sizes disagree. Each rank hashes its settings (JSON, keys sorted) and the digests are gathered
(one deadline-bound ``Iallgather`` of 32 bytes per rank); only when they differ are the settings
themselves gathered, so that every rank raises the same :class:`RanksDisagree` naming each
differing setting and every rank's value that differs from rank 0's.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from chainrule.parallel.comm import Comm
from chainrule.parallel.failure import RanksDisagree


def _canonical(settings: dict[str, Any]) -> bytes:
    return json.dumps(settings, sort_keys=True, default=repr).encode()


def agree(comm: Comm, settings: dict[str, Any], derived: dict[str, Any] | None = None) -> None:
    """Raise :class:`RanksDisagree` on every rank unless every rank's ``settings`` equal rank 0's.

    ``settings`` maps a name as the user knows it (``"--seed"``) to a JSON-able value;
    ``derived``: values that follow from the settings and the environment (a digest of the data
    read), named only when no setting differs. A collective: every rank of ``comm`` must call
    it, at the same point.
    """
    blob = _canonical({"settings": settings, "derived": derived or {}})
    digests = comm.allgather_bytes(hashlib.sha256(blob).digest(), "comparing the ranks' settings")
    if all(d == digests[0] for d in digests):
        return
    every = [json.loads(b) for b in comm.allgather_bytes(blob, "gathering the ranks' settings")]
    message = disagreement([e["settings"] for e in every]) or disagreement([e["derived"] for e in every])
    raise RanksDisagree(message or "MPI ranks disagree on their settings (their digests differ)")


def disagreement(every: list[dict[str, Any]]) -> str:
    """``MPI ranks disagree on --seed: rank 0 has 0, rank 1 has 1 ...`` for ``every`` rank's settings ("" if equal)."""
    names = list(every[0]) + sorted({k for s in every[1:] for k in s} - set(every[0]))
    parts = []
    missing = "(not set)"
    for name in names:
        values = [s.get(name, missing) for s in every]
        if all(v == values[0] for v in values):
            continue
        odd = [f"rank {r} has {_show(v)}" for r, v in enumerate(values) if r > 0 and v != values[0]]
        parts.append(f"{name}: rank 0 has {_show(values[0])}, " + ", ".join(odd))
    if not parts:
        return ""
    return "MPI ranks disagree on " + "; ".join(parts) + " (start every rank with the same options)"


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def data_fingerprint(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> str:
    """A short digest of the data a rank loaded: sizes, every label and a sample of the inputs."""
    h = hashlib.sha256()
    for a in (x_train, x_test):
        h.update(str((a.shape, a.dtype.str)).encode())
        if len(a):
            h.update(np.ascontiguousarray(a[:: max(len(a) // 64, 1)]).tobytes())
    h.update(np.ascontiguousarray(y_train).tobytes())
    return f"{len(x_train)} training and {len(x_test)} test examples, sha256 {h.hexdigest()[:12]}"


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """A short SHA-256 of named arrays (names and bytes), e.g. of the checkpoint a rank resumed."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        h.update(name.encode())
        h.update(np.ascontiguousarray(arrays[name]).tobytes())
    return h.hexdigest()[:16]
