"""A training run's configuration: what ``chainrule train`` accepts, checked before any work starts,
and read back from a checkpoint's metadata field by field."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.core.errors import ChainruleError
from chainrule.parallel.plan import MODES
from chainrule.train.contents import check_arrays, check_history, parameter_shapes
from chainrule.train.snapshot import CheckpointError

N_TRAIN, N_TEST, N_PIXELS, N_CLASSES = 60000, 10000, 784, 10


class UsageError(ChainruleError, ValueError):
    """A bad argument or output folder, found before any work starts (exit code 2)."""


@dataclass
class Config:
    model: str = "section"  # section | section-bias | mlp
    hidden: int = 256
    activation: str = "relu"
    epochs: int = 10
    lr: float = 0.1
    batch_size: int = 256
    weight_decay: float = 1e-4  # λ of J = L + s; chosen by benchmarks/LAMBDA.md
    optimizer: str = "sgd"  # sgd | momentum | adam | adamw
    schedule: str = "none"  # none | cosine | step
    dropout: float = 0.0
    init: str = "normal"
    standardize: bool = False
    seed: int = 0
    limit_train: int = 0  # use only the first N training examples (0 = all)
    limit_test: int = 0
    compile: bool = True  # capture the step once and replay it (identical results, less overhead)
    data_dir: str | None = None
    microbatches: int = 1  # accumulate gradients over this many microbatches per step
    parallel: str = "none"  # none | data | pipeline (under mpiexec -n N)
    pipeline_schedule: str = "1f1b"  # 1f1b | gpipe
    data_reduce: str = "shared"  # data parallel: shared (sharded optimizer, shared memory) | allreduce
    memory_budget: int = 0  # bytes a training step may use (0 = no budget); cr.plan.fit_budget picks the plan


@dataclass
class EpochMetrics:
    epoch: int
    train_loss: float
    train_accuracy: float
    test_accuracy: float
    seconds: float
    lr: float
    test_loss: float = math.nan  # L on the test set at the end of the epoch
    penalty: float = 0.0  # s = λ/2 (‖W1‖F² + ‖W2‖F²) at the end of the epoch


@dataclass
class RunState:
    epoch: int = 0  # epoch in progress (0-based)
    batch: int = 0  # next batch within that epoch
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


_SLOTS = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}
_CHOICES = {
    "model": ("section", "section-bias", "mlp"),
    "activation": ("relu", "tanh", "sigmoid"),
    "optimizer": tuple(_SLOTS),
    "schedule": ("none", "cosine", "step"),
    "init": ("normal", "xavier", "he", "he_uniform"),
    "parallel": MODES,
    "pipeline_schedule": ("1f1b", "gpipe"),
    "data_reduce": ("shared", "allreduce"),
}


def num_parameters(cfg: Config) -> int:
    h = cfg.hidden
    biases = (h + 10) if cfg.model == "mlp" else (h if cfg.model == "section-bias" else 0)
    return N_PIXELS * h + h * 10 + biases


def estimate_bytes(cfg: Config) -> int:
    """A generous estimate of the memory a run needs: parameters, gradients, optimizer slots,
    a checkpoint being encoded, one batch's activations, evaluation batches and the data."""
    params = num_parameters(cfg)
    slots = _SLOTS.get(cfg.optimizer, 2)
    n_train = min(cfg.limit_train or N_TRAIN, N_TRAIN)
    n_test = min(cfg.limit_test or N_TEST, N_TEST)
    batch = min(cfg.batch_size, n_train)
    weights = 4 * params * (2 + slots)  # weights, gradients, optimizer state
    checkpoint = 2 * 4 * params * (1 + slots)  # arrays copied, then encoded
    activations = 4 * batch * (6 * cfg.hidden + N_PIXELS + 40) + 4 * 1000 * (3 * cfg.hidden + 10)
    data = (N_TRAIN + N_TEST) * N_PIXELS + (n_train + n_test) * N_PIXELS * 4 * 2
    return weights + checkpoint + activations + data


def checkpoint_bytes(cfg: Config) -> int:
    return 4 * num_parameters(cfg) * (1 + _SLOTS.get(cfg.optimizer, 2)) + 64 * 1024


def available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def validate_config(cfg: Config, check_memory: bool = True) -> None:
    """Reject a configuration that cannot train, before any data is read (:class:`UsageError`)."""

    def bad(flag: str, value: Any, why: str) -> UsageError:
        return UsageError(f"--{flag} {value}: {why}")

    for name, choices in _CHOICES.items():
        value = getattr(cfg, name)
        if value not in choices:
            raise bad(name, value, f"must be one of {', '.join(choices)}")
    for name in ("hidden", "epochs", "batch_size", "microbatches"):
        value = getattr(cfg, name)
        if type(value) is not int or value < 1:
            raise bad(name.replace("_", "-"), value, "must be a positive integer")
    for name in ("limit_train", "limit_test", "seed"):
        value = getattr(cfg, name)
        if type(value) is not int or value < 0:
            raise bad(
                name.replace("_", "-"),
                value,
                "must be a non-negative integer (0 = all)" if "limit" in name else "must be a non-negative integer",
            )
    if not isinstance(cfg.lr, (int, float)) or not math.isfinite(cfg.lr) or cfg.lr <= 0:
        raise bad("lr", cfg.lr, "must be a finite positive number")
    if not isinstance(cfg.weight_decay, (int, float)) or not math.isfinite(cfg.weight_decay) or cfg.weight_decay < 0:
        raise bad("weight-decay", cfg.weight_decay, "must be a finite number >= 0")
    if not isinstance(cfg.dropout, (int, float)) or not 0 <= cfg.dropout < 1:
        raise bad("dropout", cfg.dropout, "must be in [0, 1)")
    if cfg.dropout and cfg.model != "mlp":
        raise bad("dropout", cfg.dropout, f"applies only to --model mlp (the {cfg.model} model has no dropout)")
    if type(cfg.memory_budget) is not int or cfg.memory_budget < 0:
        raise bad("memory-budget", cfg.memory_budget, "must be a size in bytes (0 = no budget)")
    if cfg.microbatches > cfg.batch_size:
        raise bad("microbatches", cfg.microbatches, f"must be at most --batch-size ({cfg.batch_size})")
    if cfg.parallel == "pipeline" and cfg.model != "mlp":
        raise bad("parallel", cfg.parallel, "pipeline needs a sequential model: --model mlp")
    if not isinstance(cfg.standardize, bool) or not isinstance(cfg.compile, bool):
        raise UsageError("standardize and compile must be true or false")
    if cfg.data_dir is not None and not isinstance(cfg.data_dir, str):
        raise bad("data-dir", cfg.data_dir, "must be a path")
    if check_memory:
        need, have = estimate_bytes(cfg), available_memory()
        if have is not None and need > have:
            raise bad(
                "hidden",
                cfg.hidden,
                f"{num_parameters(cfg):,} parameters need about {_size(need)} of memory "
                f"(weights, gradients, optimizer state, checkpoint, data); {_size(have)} available",
            )


def config_from_meta(meta: dict[str, Any], path: Path) -> Config:
    """The run's configuration from a checkpoint's metadata, checked field by field."""
    raw = meta.get("config")
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: checkpoint has no configuration: corrupt")
    known = {f.name: f for f in fields(Config)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise CheckpointError(f"{path}: checkpoint configuration has unknown key(s) {unknown}: corrupt or newer")
    default = Config()
    for key, value in raw.items():
        want = type(getattr(default, key))
        ok = (
            (want is int and type(value) is int)
            or (want is float and type(value) in (int, float))
            or (want is bool and type(value) is bool)
            or (want is str and type(value) is str)
            or (key == "data_dir" and (value is None or type(value) is str))
        )
        if not ok:
            raise CheckpointError(f"{path}: checkpoint configuration {key}={value!r} has the wrong type: corrupt")
    cfg = Config(**raw)
    try:
        validate_config(cfg, check_memory=False)
    except UsageError as exc:
        raise CheckpointError(f"{path}: checkpoint configuration is invalid ({exc}): corrupt") from exc
    return cfg


def checked_config(arrays: dict[str, np.ndarray], meta: dict[str, Any], path: Path) -> Config:
    """:func:`config_from_meta`, then the arrays checked against it (shapes, finite values) before any allocation."""
    cfg = config_from_meta(meta, path)
    check_arrays(arrays, parameter_shapes(cfg.model, cfg.hidden, cfg.dropout, N_PIXELS, N_CLASSES), path)
    return cfg


def state_from_meta(meta: dict[str, Any], path: Path) -> RunState:
    raw = meta.get("state")
    if not isinstance(raw, dict) or set(raw) != {f.name for f in fields(RunState)}:
        raise CheckpointError(f"{path}: checkpoint run state is missing or malformed: corrupt")
    ints, floats = ("epoch", "batch", "correct", "seen"), ("loss_sum", "seconds")
    if not all(type(raw[k]) is int and raw[k] >= 0 for k in ints) or not all(
        type(raw[k]) in (int, float) for k in floats
    ):
        raise CheckpointError(f"{path}: checkpoint run state has invalid values: corrupt")
    history = raw["history"]
    names = set(EpochMetrics.__dataclass_fields__)
    if not isinstance(history, list) or not all(isinstance(h, dict) and set(h) == names for h in history):
        raise CheckpointError(f"{path}: checkpoint history is malformed: corrupt")
    if len(history) != raw["epoch"]:
        raise CheckpointError(f"{path}: checkpoint history has {len(history)} epochs, state says {raw['epoch']}")
    check_history(raw, path)
    return RunState(**raw)
