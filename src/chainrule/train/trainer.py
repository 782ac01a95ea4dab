"""Training the section's network (or a general MLP) on Fashion-MNIST: the main job."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

import chainrule.nn.functional as F
from chainrule.core.constructors import as_tensor
from chainrule.core.errors import ChainruleError
from chainrule.core.state import no_grad
from chainrule.core.tensor import Tensor
from chainrule.data import DataLoader, as_float_inputs, load_fashion_mnist
from chainrule.data.io import atomic_write
from chainrule.models import SectionMLP
from chainrule.models.objective import objective
from chainrule.nn import Dropout, Linear, Module, ReLU, Sequential, Sigmoid, Tanh
from chainrule.optim import SGD, Adam, AdamW, CosineAnnealingLR, Optimizer, StepLR, Stepper
from chainrule.train.snapshot import CheckpointError, load_checkpoint, save_checkpoint
from chainrule.train.threads import threads_for_run
from chainrule.transforms.compile import compile as compile_step

CHECKPOINT = "checkpoint.npz"
LOG = "run.log"
RUN_FILES = (CHECKPOINT, "metrics.csv", "metrics.json", "curves.png", LOG)  # every file a run writes
N_TRAIN, N_TEST, N_PIXELS = 60000, 10000, 784


class UsageError(ChainruleError, ValueError):
    """A bad argument or output folder, found before any work starts (exit code 2)."""


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (SIGINT or SIGTERM) after a checkpoint was saved."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


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
    "parallel": ("none", "data", "pipeline"),
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
    return RunState(**raw)


def prepare_data(cfg: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST as float32 inputs in [0, 1] (or standardized) and int64 labels."""
    return load_data(cfg)[0]


def load_data(cfg: Config) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], Path]:
    """:func:`prepare_data`'s arrays and the folder they were read from."""
    data = load_fashion_mnist(cfg.data_dir)
    x_train, y_train = as_float_inputs(data.train_images), data.train_labels.astype(np.int64)
    x_test, y_test = as_float_inputs(data.test_images), data.test_labels.astype(np.int64)
    if cfg.limit_train:
        x_train, y_train = x_train[: cfg.limit_train], y_train[: cfg.limit_train]
    if cfg.limit_test:
        x_test, y_test = x_test[: cfg.limit_test], y_test[: cfg.limit_test]
    if cfg.standardize:  # with the training set's statistics
        mean, std = x_train.mean(), x_train.std()
        x_train = (x_train - mean) / std
        x_test = (x_test - mean) / std
    return (x_train, y_train, x_test, y_test), data.source


def build_model(cfg: Config) -> Module:
    if cfg.model in ("section", "section-bias"):
        return SectionMLP(
            784,
            cfg.hidden,
            10,
            weight_decay=cfg.weight_decay,
            activation=cfg.activation,
            hidden_bias=cfg.model == "section-bias",
            init=cfg.init,
            seed=cfg.seed,
        )
    if cfg.model == "mlp":
        rng = np.random.default_rng(cfg.seed)
        act = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}[cfg.activation]()
        layers: list[Module] = [Linear(784, cfg.hidden, init=cfg.init, rng=rng), act]
        if cfg.dropout:
            layers.append(Dropout(cfg.dropout, seed=cfg.seed))
        layers.append(Linear(cfg.hidden, 10, init=cfg.init, rng=rng))
        return Sequential(*layers)
    raise ValueError(f"train: --model must be section, section-bias or mlp, got {cfg.model!r}")


def build_optimizer(cfg: Config, model: Module) -> Optimizer:
    params = model.parameters()
    # the section model puts λ/2‖W‖² into J itself; the general MLP takes it as L2 weight decay
    wd = 0.0 if isinstance(model, SectionMLP) else cfg.weight_decay
    if cfg.optimizer == "sgd":
        return SGD(params, cfg.lr, weight_decay=wd)
    if cfg.optimizer == "momentum":
        return SGD(params, cfg.lr, momentum=0.9, weight_decay=wd)
    if cfg.optimizer == "adam":
        return Adam(params, cfg.lr, weight_decay=wd)
    if cfg.optimizer == "adamw":
        return AdamW(params, cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"train: --optimizer must be sgd, momentum, adam or adamw, got {cfg.optimizer!r}")


def penalty(model: Module, lam: float) -> float:
    """s = λ/2 Σ‖W‖F² over the penalized weights (W1 and W2 for the section's model, all parameters otherwise)."""
    params = [model.W1, model.W2] if isinstance(model, SectionMLP) else model.parameters()
    return float(lam / 2 * sum(float(np.sum(np.square(p.data, dtype=np.float64))) for p in params))


def loss_and_accuracy(model: Module, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy L (without the penalty) and accuracy of ``model`` on (x, y), in prediction mode."""
    was_training = model.training
    model.eval()
    total, correct = 0.0, 0
    with no_grad():
        for i in range(0, len(x), batch_size):
            logits = model(as_tensor(x[i : i + batch_size]))
            yb = y[i : i + batch_size]
            total += float(F.cross_entropy(logits, yb, reduction="sum").item())
            correct += int((logits.numpy().argmax(axis=1) == yb).sum())
    model.train(was_training)
    n = max(len(x), 1)
    return total / n, correct / n


def accuracy(model: Module, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> float:
    was_training = model.training
    model.eval()
    correct = 0
    with no_grad():
        for i in range(0, len(x), batch_size):
            logits = model(as_tensor(x[i : i + batch_size]))
            correct += int((logits.numpy().argmax(axis=1) == y[i : i + batch_size]).sum())
    model.train(was_training)
    return correct / max(len(x), 1)


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


class RunLog:
    """``run.log`` in the run folder, rewritten atomically with each new line."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOG
        self.lines: list[str] = []
        if self.path.is_file() and not self.path.is_symlink():
            try:
                self.lines = self.path.read_text(errors="replace").splitlines()[-10000:]
            except OSError:
                self.lines = []

    def add(self, line: str) -> None:
        self.lines.append(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}")
        atomic_write(self.path, ("\n".join(self.lines) + "\n").encode())


class Trainer:
    def __init__(self, cfg: Config, out_dir: str | Path, quiet: bool = False, threads: int | str | None = None) -> None:
        validate_config(cfg, check_memory=False)
        self.cfg = cfg
        # BLAS threads while run() trains (chainrule.train.threads): None = $CHAINRULE_THREADS, else "auto"
        self.threads = threads
        self.out = Path(out_dir)
        self.quiet = quiet
        self.log: RunLog | None = None  # set by the command line, which owns the run folder
        (x_train, y_train, self.x_test, self.y_test), self.data_source = load_data(cfg)
        self.loader = DataLoader(x_train, y_train, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed)
        self.model = build_model(cfg)
        self.optimizer: Stepper = build_optimizer(cfg, self.model)
        self.state = RunState()
        self.memory_note: str | None = None
        self._join()
        self.memory_plan = self._plan_memory(x_train) if cfg.memory_budget else None
        self._parallel_setup(x_train)  # under data parallelism the optimizer may become a sharded one
        self.schedule: StepLR | CosineAnnealingLR | None = None
        if cfg.schedule == "cosine":
            self.schedule = CosineAnnealingLR(self.optimizer, cfg.epochs)
        elif cfg.schedule == "step":
            self.schedule = StepLR(self.optimizer, max(cfg.epochs // 3, 1), 0.1)
        self._stop: int | None = None  # the signal that asked the run to stop
        self._stop_agreed = False  # data parallel: every rank knows of the stop
        self._critical = 0  # > 0 while a step is being applied and counted, or a file written
        model = self.model

        def loss_and_grads(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
            J, logits = objective(model, x, y)
            J.backward()
            return J, logits

        # cr.compile runs a checkpointed segment plainly (no saving): a checkpointing plan steps uncompiled
        checkpointing = self.memory_plan is not None and self.memory_plan.checkpoint_every > 0
        self.step_fn: Any = compile_step(loss_and_grads) if cfg.compile and not checkpointing else loss_and_grads

    def _plan_memory(self, x_train: np.ndarray) -> Any:
        """``--memory-budget``: the cheapest plan that fits (cr.plan.fit_budget), applied to the model and config."""
        from chainrule.plan.planner import MemoryBudgetError, fit_budget

        cfg = self.cfg
        ranks = self.comm.size if self.comm is not None else 1
        if cfg.parallel != "none" and ranks < 2:
            raise UsageError(f"--memory-budget with --parallel {cfg.parallel}: run under mpiexec -n N (N >= 2)")
        try:
            report = fit_budget(
                self.model, x_train.shape[1:], cfg.batch_size, cfg.memory_budget, ranks=ranks,
                optimizer=self.optimizer, dtype=x_train.dtype, parallel=(cfg.parallel,),
            )  # fmt: skip
        except MemoryBudgetError as exc:
            raise UsageError(f"--memory-budget {cfg.memory_budget}: {str(exc).splitlines()[0]}") from None
        except ValueError as exc:
            raise UsageError(f"--memory-budget {cfg.memory_budget} with --parallel {cfg.parallel}: {exc}") from None
        assert report.plan is not None
        if self.comm is not None:  # the time model is measured on each rank: rank 0's choice is everyone's
            report.plan = self.comm.comm.bcast(report.plan, root=0)
        cfg.microbatches = report.plan.microbatches
        if cfg.parallel == "pipeline":
            cfg.pipeline_schedule = report.plan.schedule
        report.plan.apply_to(self.model)
        self.memory_note = f"memory plan: {report.why()}"
        if not self.quiet:
            emit(self.memory_note)
        return report.plan

    # --- microbatches and MPI (chainrule.parallel) -------------------------------------
    def _join(self) -> None:
        """Under ``--parallel``: join the MPI job (before planning: the plan depends on the ranks)."""
        self.comm: Any = None
        self.rank = 0
        if self.cfg.parallel == "none":
            return
        from chainrule.parallel import Comm

        self.comm = Comm()
        self.rank = self.comm.rank
        self.quiet = self.quiet or self.rank != 0  # one rank speaks

    def _parallel_setup(self, x_train: np.ndarray) -> None:
        """Under ``--parallel``: make the parameters identical, cut the pipeline (the plan's stages, if any)."""
        self.dp: Any = None
        self.pipeline: Any = None
        if self.cfg.parallel == "none":
            return
        from chainrule.parallel import DataParallel, Pipeline, ShardedDataParallel

        assert self.comm is not None
        sync = DataParallel(self.model.parameters(), self.comm)
        sync.broadcast_parameters()  # same initial parameters on every rank
        if self.cfg.parallel == "data":
            self._probe_dropout(x_train)
        if self.cfg.parallel == "data" and self.cfg.data_reduce == "shared":
            assert isinstance(self.optimizer, Optimizer)
            self.dp = ShardedDataParallel(self.model.parameters(), self.optimizer, self.comm)
            self.optimizer = self.dp  # steps its shard, then publishes it
        elif self.cfg.parallel == "data":
            self.dp = sync
        else:
            if not isinstance(self.model, Sequential):
                raise UsageError("--parallel pipeline: needs a sequential model (--model mlp)")
            stages = self.memory_plan.stages if self.memory_plan is not None else None
            self.pipeline = Pipeline(
                self.model, self.comm, sample=x_train[:1], bounds=stages, schedule=self.cfg.pipeline_schedule
            )

    def _probe_dropout(self, x_train: np.ndarray) -> None:
        """Let each Dropout see one example (its generator restored): how many numbers it draws per example."""
        drops = self._dropouts()
        if not drops:
            return
        states = [d.rng.bit_generator.state for d in drops]
        with no_grad():
            objective(self.model, as_tensor(x_train[:1]), np.zeros(1, np.int64))
        for d, st in zip(drops, states, strict=True):
            d.rng.bit_generator.state = st

    def _batch(self, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The examples ``sel`` of one step; under data parallelism only this rank's shard of them."""
        if self.dp is not None:
            from chainrule.parallel import shard

            sel = sel[shard(len(sel), self.comm.rank, self.comm.size)]
        x, y = self.loader.arrays
        return x[sel], y[sel]

    def _step(self, xb: np.ndarray, yb: np.ndarray, n: int) -> tuple[float, int]:
        """Gradients of one batch of ``n`` examples into ``.grad``; returns (batch loss, correct predictions).

        Under data parallelism ``xb, yb`` are this rank's shard (see :meth:`_batch`) of the ``n``.
        """
        from chainrule.parallel import ShardedDataParallel, accumulate, shard

        cfg = self.cfg

        def grads(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
            J, logits = self.step_fn(x, y)
            return J, logits

        if self.pipeline is not None:
            loss, logits = self.pipeline.step(xb, yb, F.cross_entropy, cfg.microbatches)
            correct = int((logits.argmax(axis=1) == yb).sum()) if logits is not None else 0
            total = self.comm.allreduce_(np.array([correct, float(self._stop is not None)]), "accuracy allreduce")
            self._agree_on_stop(total[1])
            return loss, int(total[0])
        if self.dp is not None:
            # Dropout: this rank draws its shard's rows of the whole batch's mask (the rows before
            # and after them are skipped), so the masks are exactly one process's
            part = shard(n, self.comm.rank, self.comm.size)
            draws = [(d.rng, d.draws_per_example) for d in self._dropouts() if d.draws_per_example]
            for rng, per in draws:
                F.skip_draws(rng, part.start * per)
            loss, logits = accumulate(grads, self.optimizer.params, xb, yb, cfg.microbatches)
            for rng, per in draws:
                F.skip_draws(rng, (n - part.stop) * per)
            weight = len(xb) / n  # this shard's share of the batch mean
            # summed with the gradients: the loss, the correct predictions, and whether any rank was
            # asked to stop (so that every rank stops after the same step)
            stats = [weight * loss, float((logits.argmax(axis=1) == yb).sum()), float(self._stop is not None)]
            if isinstance(self.dp, ShardedDataParallel):
                total = self.dp.reduce_gradients(weight, stats)
            else:
                self.dp.allreduce_gradients(weight)
                total = self.comm.allreduce_(np.array(stats), "loss allreduce")
            self._agree_on_stop(total[2])
            return float(total[0]), int(total[1])
        loss, logits = accumulate(grads, self.optimizer.params, xb, yb, cfg.microbatches)
        return loss, int((logits.argmax(axis=1) == yb).sum())

    def _gather_stage_states(self, optim: dict[str, Any]) -> dict[str, Any]:
        """Pipeline: rank 0 gets every stage's optimizer entries (``"i.slot"``, disjoint by parameter)."""
        comm, tag = self.comm, 31500
        mine = {id(p) for p in self.pipeline.params}
        params = self.optimizer.params
        # only this stage's entries: after a resume a rank also holds (stale) state of the other stages
        own = {k: v for k, v in optim.items() if "." in k and id(params[int(k.split(".")[0])]) in mine}
        if comm.rank != 0:
            comm.send_object(own, 0, tag, what="optimizer state of this stage")
            return optim
        merged = {"lr": optim["lr"], "steps": optim["steps"], **own}
        for r in range(1, comm.size):
            merged |= comm.recv_object(r, tag, what="optimizer state")
        return merged

    def _sync_stages(self) -> None:
        """Pipeline: every rank gets every stage's parameters (for evaluation and the checkpoint)."""
        if self.pipeline is not None:
            self.pipeline.sync_parameters(self.model.parameters(), self.model)

    def say(self, line: str) -> None:
        """A line for the run log and, unless quiet, for stdout."""
        if self.log is not None:
            self.log.add(line)
        if not self.quiet:
            emit(line)

    # --- checkpoints ------------------------------------------------------------------
    def _dropouts(self) -> list[Dropout]:
        return [m for m in self.model.modules() if isinstance(m, Dropout)]

    def save(self) -> Path:
        optim = self.optimizer.state_dict()  # sharded data parallel: gathered from every rank
        if self.pipeline is not None:  # each stage's optimizer state lives on its rank: gather them
            optim = self._gather_stage_states(optim)
        if self.rank != 0:  # only rank 0 writes files
            return self.out / CHECKPOINT
        self._critical += 1  # a signal during the write is acted on after it
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            arrays = {f"param/{k}": v for k, v in self.model.state_dict().items()}
            arrays |= {f"optim/{k}": np.asarray(v) for k, v in optim.items()}
            meta = {
                "config": asdict(self.cfg),
                "state": asdict(self.state),
                "dropout_rng": [d.rng.bit_generator.state for d in self._dropouts()],
                "data_source": str(self.data_source),
            }
            path = self.out / CHECKPOINT
            save_checkpoint(path, arrays, meta)
            return path
        finally:
            self._critical -= 1

    @classmethod
    def resume(
        cls,
        run_dir: str | Path,
        epochs: int | None = None,
        quiet: bool = False,
        data_dir: str | None = None,
        threads: int | str | None = None,
    ) -> Trainer:
        path = Path(run_dir) / CHECKPOINT
        arrays, meta = load_checkpoint(path)
        cfg = config_from_meta(meta, path)
        state = state_from_meta(meta, path)
        if epochs is not None:
            cfg.epochs = epochs
        if data_dir is not None:
            cfg.data_dir = data_dir
        if cfg.epochs < state.epoch:
            raise UsageError(f"--epochs {cfg.epochs}: the run in {run_dir} has already finished {state.epoch} epochs")
        trainer = cls(cfg, run_dir, quiet=quiet, threads=threads)
        trainer._restore(arrays, meta, state, path)
        return trainer

    def _restore(self, arrays: dict[str, np.ndarray], meta: dict[str, Any], state: RunState, path: Path) -> None:
        """Load a checkpoint's arrays into this run; anything that does not fit is a CheckpointError."""
        params = self.optimizer.params
        optim = _section(arrays, "optim/")
        for key, value in optim.items():
            if key in ("lr", "steps"):
                if value.shape != () or not np.isfinite(value) or value < 0:
                    raise CheckpointError(f"{path}: optimizer {key} = {value!r} is invalid: corrupt")
                continue
            index, _, slot = key.partition(".")
            if not index.isdigit() or int(index) >= len(params) or slot not in ("momentum", "m", "v"):
                raise CheckpointError(
                    f"{path}: optimizer entry {key!r} does not fit this model ({len(params)} parameters): corrupt"
                )
            if value.shape != params[int(index)].shape:
                raise CheckpointError(
                    f"{path}: optimizer entry {key!r} has shape {value.shape}, "
                    f"parameter has {params[int(index)].shape}: corrupt"
                )
        if "lr" not in optim or "steps" not in optim:
            raise CheckpointError(f"{path}: optimizer state lacks lr/steps: corrupt")
        rngs = meta.get("dropout_rng")
        dropouts = self._dropouts()
        if not isinstance(rngs, list) or len(rngs) != len(dropouts):
            raise CheckpointError(f"{path}: checkpoint dropout state does not fit the model: corrupt")
        if state.batch > len(self.loader):
            raise CheckpointError(f"{path}: checkpoint is at batch {state.batch} of {len(self.loader)}: corrupt")
        try:
            self.model.load_state_dict(_section(arrays, "param/"))
            self.optimizer.load_state_dict(optim)
            for d, st in zip(dropouts, rngs, strict=True):
                d.rng.bit_generator.state = st
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{path}: checkpoint does not fit the model ({exc}): corrupt") from exc
        self.state = state

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> list[EpochMetrics]:
        # SIGINT and SIGTERM only set a flag; the loop stops between two whole steps, so the
        # checkpoint never holds a half-applied or uncounted update and resuming reproduces the
        # uninterrupted run. A second signal stops at once, except while a step is being applied
        # and counted or a file written: then it too waits for the end of that (a few ms).
        self._stop, self._stop_agreed = None, False
        if self.memory_note is not None and self.log is not None:
            self.log.add(self.memory_note)
            self.memory_note = None
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._on_signal)
        together: Any = contextlib.nullcontext()
        if self.comm is not None:
            from chainrule.parallel import failing_together

            together = failing_together(self.comm)  # an error on one rank stops every rank, clearly
        try:
            with together, threads_for_run(self.threads):
                while self.state.epoch < self.cfg.epochs:
                    self._epoch()
            self.save()
            self.write_reports()
        except KeyboardInterrupt as exc:
            signum = exc.signum if isinstance(exc, Interrupted) else (self._stop or signal.SIGINT)
            self._critical += 1
            try:
                self._check_finite()
                path = self.save()
                where = f"epoch {self.state.epoch + 1}, batch {self.state.batch}"
                if self.log is not None:
                    self.log.add(f"stopped by {signal.Signals(signum).name} at {where}; checkpoint saved")
            finally:
                self._critical -= 1
            print(
                f"\n{'interrupted' if signum == signal.SIGINT else 'terminated'} at {where}: checkpoint saved to "
                f"{path}; continue with `chainrule train --resume {self.out}`",
                file=sys.stderr,
            )
            raise Interrupted(signum) from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return [EpochMetrics(**h) for h in self.state.history]

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stop is not None and not self._critical:  # a second signal stops at once
            raise Interrupted(signum)
        if self._stop is None:
            self._stop = signum

    def _agree_on_stop(self, ranks_stopping: float) -> None:
        """Under MPI: ``ranks_stopping`` ranks were signalled (summed over the step); all stop after it."""
        if ranks_stopping and self._stop is None:
            self._stop = signal.SIGTERM
        self._stop_agreed = bool(ranks_stopping)

    def _check_stop(self) -> None:
        # under MPI a stop is acted on only once every rank knows of it (after the step that
        # shared it), so that every rank stops after the same step
        if self._stop is not None and (self.comm is None or self._stop_agreed):
            raise Interrupted(self._stop)

    def _check_finite(self) -> None:
        """Refuse to go on (or save) with NaN/Inf parameters.

        A step's loss is computed before its update, so a NaN made by an update shows up in
        the next step's loss; this check covers the update that no later loss sees, and runs
        before every checkpoint (at the end of an epoch's steps and before an interrupted run
        is saved). A sum is finite iff every element is, unless it overflows: then look closer.
        """
        for p in self.optimizer.params:
            if not math.isfinite(float(np.sum(p.data))) and not np.isfinite(p.data).all():
                raise self._diverged("parameters became non-finite", self.state.batch)

    def _diverged(self, what: str, batch: int) -> FloatingPointError:
        return FloatingPointError(
            f"train: {what} at epoch {self.state.epoch + 1}, batch {batch}; lower --lr "
            f"(the last checkpoint, after epoch {self.state.epoch}, is kept)"
        )

    def _epoch(self) -> None:
        st, cfg = self.state, self.cfg
        if self.schedule is not None:
            self.schedule.set_epoch(st.epoch)
        bar = _progress(len(self.loader), f"epoch {st.epoch + 1}/{cfg.epochs}", st.batch, self.quiet)
        start = time.perf_counter()
        try:
            for sel in self.loader.index_batches(st.epoch, start=st.batch):
                self._check_stop()
                xb, yb = self._batch(sel)
                self.optimizer.zero_grad()
                loss, correct = self._step(xb, yb, len(sel))
                # from here to the end of the bookkeeping a signal only sets the flag: the step is
                # applied and counted together, or (raised before this point) not at all
                self._critical += 1
                self.optimizer.step()
                if not math.isfinite(loss):
                    raise self._diverged(f"objective became {loss}", st.batch + 1)
                st.loss_sum += loss * len(sel)
                st.correct += correct
                st.seen += len(sel)
                st.batch += 1
                self._critical -= 1
                if bar is not None:
                    bar.update(1)
            self._check_stop()
        finally:
            self._critical = 0
            st.seconds += time.perf_counter() - start
            if bar is not None:
                bar.close()
        self._check_finite()  # each loss checks the update before it; this checks the epoch's last
        self._sync_stages()
        test_loss, test_accuracy = loss_and_accuracy(self.model, self.x_test, self.y_test)
        m = EpochMetrics(
            epoch=st.epoch + 1,
            train_loss=st.loss_sum / max(st.seen, 1),
            train_accuracy=st.correct / max(st.seen, 1),
            test_accuracy=test_accuracy,
            seconds=st.seconds,
            lr=self.optimizer.lr,
            test_loss=test_loss,
            penalty=penalty(self.model, self.cfg.weight_decay),
        )
        self._critical += 1
        try:
            st.history.append(asdict(m))
            self.state = RunState(epoch=st.epoch + 1, history=st.history)
            self.save()
        finally:
            self._critical -= 1
        self.say(
            f"epoch {m.epoch:3d}  train loss {m.train_loss:.4f}  train acc {m.train_accuracy:.4f}  "
            f"test acc {m.test_accuracy:.4f}  {m.seconds:.1f}s"
        )
        self._check_stop()

    def write_reports(self) -> None:
        if self.rank != 0:
            return
        history = self.state.history
        self.out.mkdir(parents=True, exist_ok=True)
        names = list(EpochMetrics.__dataclass_fields__)
        text = io.StringIO()
        w = csv.DictWriter(text, fieldnames=names, lineterminator="\n")
        w.writeheader()
        w.writerows(history)
        atomic_write(self.out / "metrics.csv", text.getvalue().encode())
        report = {"config": asdict(self.cfg), "data_source": str(self.data_source), "epochs": history}
        atomic_write(self.out / "metrics.json", json.dumps(report, indent=2).encode())
        png = io.BytesIO()
        plot_curves(history, png, title=recipe(self.cfg))
        atomic_write(self.out / "curves.png", png.getvalue())


def _progress(total: int, desc: str, initial: int, quiet: bool) -> Any:
    if quiet:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # the progress bar is optional; the per-epoch line is always printed
        return None
    return tqdm(total=total, initial=initial, desc=desc, leave=False, unit="batch", disable=None)


def recipe(cfg: Config) -> str:
    """A one-line name of the training recipe, e.g. for a plot's title."""
    model = {"section": "section MLP", "section-bias": "section MLP + bias", "mlp": "MLP"}.get(cfg.model, cfg.model)
    parts = [
        f"{model} 784-{cfg.hidden}-10 {cfg.activation}",
        f"{cfg.optimizer} lr {cfg.lr:g}",
        f"batch {cfg.batch_size}",
        f"λ {cfg.weight_decay:g}",
        f"{cfg.epochs} epochs",
    ]
    if cfg.schedule != "none":
        parts.append(f"{cfg.schedule} schedule")
    if cfg.dropout:
        parts.append(f"dropout {cfg.dropout:g}")
    return ", ".join(parts)


def plot_curves(history: list[dict[str, Any]], path: Path | io.BytesIO, title: str | None = None) -> None:
    """Three panels per epoch: the losses (train J = L + s averaged over the epoch's minibatches,
    test L at the epoch's end), the penalty s, and train/test accuracy; ``title`` names the recipe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.8))
    ax1.plot(epochs, [h["train_loss"] for h in history], "o-", label="train J = L + s (epoch mean)")
    ax1.plot(epochs, [h.get("test_loss", math.nan) for h in history], "s-", label="test L")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    ax2.plot(epochs, [h.get("penalty", 0.0) for h in history], "o-", color="tab:green", label="s = λ/2(‖W1‖² + ‖W2‖²)")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("penalty s")
    ax2.legend()
    ax3.plot(epochs, [h["train_accuracy"] for h in history], "o-", label="train accuracy")
    ax3.plot(epochs, [h["test_accuracy"] for h in history], "s-", label="test accuracy")
    ax3.set_xlabel("epoch")
    ax3.set_ylabel("accuracy")
    ax3.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def _section(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The checkpoint entries under ``prefix`` ("param/" or "optim/"), with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def evaluate(run_dir: str | Path, data_dir: str | None = None) -> float:
    path = Path(run_dir) / CHECKPOINT
    arrays, meta = load_checkpoint(path)
    cfg = config_from_meta(meta, path)
    if data_dir is not None:
        cfg.data_dir = data_dir
    cfg.limit_test = 0  # always the whole test set
    model = build_model(cfg)
    try:
        model.load_state_dict(_section(arrays, "param/"))
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: checkpoint does not fit the model ({exc}): corrupt") from exc
    _, _, x_test, y_test = prepare_data(cfg)
    return accuracy(model, x_test, y_test)


__all__ = ["Config", "EpochMetrics", "Interrupted", "Trainer", "UsageError", "evaluate", "validate_config"]
