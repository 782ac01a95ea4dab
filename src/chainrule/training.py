"""Training the section's network (or a general MLP) on Fashion-MNIST: the main job."""

from __future__ import annotations

import csv
import json
import math
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import chainrule.nn.functional as F
from chainrule.checkpoint import load_checkpoint, save_checkpoint
from chainrule.core.constructors import as_tensor
from chainrule.core.node import no_grad
from chainrule.core.tensor import Tensor
from chainrule.data import DataLoader, as_float_inputs, load_fashion_mnist
from chainrule.models import SectionMLP
from chainrule.nn import Dropout, Linear, Module, ReLU, Sequential, Sigmoid, Tanh
from chainrule.optim import SGD, Adam, AdamW, CosineAnnealingLR, Optimizer, StepLR
from chainrule.transforms.compile import compile as compile_step

CHECKPOINT = "checkpoint.npz"


@dataclass
class Config:
    model: str = "section"  # section | section-bias | mlp
    hidden: int = 256
    activation: str = "relu"
    epochs: int = 10
    lr: float = 0.1
    batch_size: int = 256
    weight_decay: float = 0.0
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


@dataclass
class EpochMetrics:
    epoch: int
    train_loss: float
    train_accuracy: float
    test_accuracy: float
    seconds: float
    lr: float


@dataclass
class RunState:
    epoch: int = 0  # epoch in progress (0-based)
    batch: int = 0  # next batch within that epoch
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


def prepare_data(cfg: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST as float32 inputs in [0, 1] (or standardized) and int64 labels."""
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
    return x_train, y_train, x_test, y_test


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


def objective(model: Module, x: Tensor, y: Any) -> tuple[Tensor, Tensor]:
    """Return (J, logits) for a minibatch."""
    if isinstance(model, SectionMLP):
        nodes = model.objective(x, y)
        return nodes["J"], nodes["o"]
    logits = model(x)
    return F.cross_entropy(logits, y), logits


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


class Trainer:
    def __init__(self, cfg: Config, out_dir: str | Path, quiet: bool = False) -> None:
        self.cfg = cfg
        self.out = Path(out_dir)
        self.quiet = quiet
        x_train, y_train, self.x_test, self.y_test = prepare_data(cfg)
        self.loader = DataLoader(x_train, y_train, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed)
        self.model = build_model(cfg)
        self.optimizer = build_optimizer(cfg, self.model)
        self.schedule: StepLR | CosineAnnealingLR | None = None
        if cfg.schedule == "cosine":
            self.schedule = CosineAnnealingLR(self.optimizer, cfg.epochs)
        elif cfg.schedule == "step":
            self.schedule = StepLR(self.optimizer, max(cfg.epochs // 3, 1), 0.1)
        self.state = RunState()
        model = self.model

        def loss_and_grads(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
            J, logits = objective(model, x, y)
            J.backward()
            return J, logits

        self.step_fn: Any = compile_step(loss_and_grads) if cfg.compile else loss_and_grads

    # --- checkpoints ------------------------------------------------------------------
    def _dropouts(self) -> list[Dropout]:
        return [m for m in self.model.modules() if isinstance(m, Dropout)]

    def save(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        arrays = {f"param/{k}": v for k, v in self.model.state_dict().items()}
        optim = self.optimizer.state_dict()
        arrays |= {f"optim/{k}": np.asarray(v) for k, v in optim.items()}
        meta = {
            "config": asdict(self.cfg),
            "state": asdict(self.state),
            "dropout_rng": [d.rng.bit_generator.state for d in self._dropouts()],
        }
        path = self.out / CHECKPOINT
        save_checkpoint(path, arrays, meta)
        return path

    @classmethod
    def resume(cls, run_dir: str | Path, epochs: int | None = None, quiet: bool = False) -> Trainer:
        arrays, meta = load_checkpoint(Path(run_dir) / CHECKPOINT)
        cfg = Config(**meta["config"])
        if epochs is not None:
            cfg.epochs = epochs
        trainer = cls(cfg, run_dir, quiet=quiet)
        trainer.model.load_state_dict(_section(arrays, "param/"))
        trainer.optimizer.load_state_dict(_section(arrays, "optim/"))
        trainer.state = RunState(**meta["state"])
        for d, st in zip(trainer._dropouts(), meta["dropout_rng"], strict=True):
            d.rng.bit_generator.state = st
        return trainer

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> list[EpochMetrics]:
        # Ctrl-C only sets a flag; the loop stops between two whole steps, so the checkpoint
        # never holds a half-applied update and resuming reproduces the uninterrupted run.
        self._interrupted = False
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            while self.state.epoch < self.cfg.epochs:
                self._epoch()
            self.save()
            self.write_reports()
        except KeyboardInterrupt:
            path = self.save()
            print(
                f"\ninterrupted: checkpoint saved to {path}; continue with `chainrule train --resume {self.out}`",
                file=sys.stderr,
            )
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        return [EpochMetrics(**h) for h in self.state.history]

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._interrupted:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self._interrupted = True

    def _epoch(self) -> None:
        st, cfg = self.state, self.cfg
        if self.schedule is not None:
            self.schedule.set_epoch(st.epoch)
        bar = _progress(len(self.loader), f"epoch {st.epoch + 1}/{cfg.epochs}", st.batch, self.quiet)
        start = time.perf_counter()
        try:
            for xb, yb in self.loader.batches(st.epoch, start=st.batch):
                self.optimizer.zero_grad()
                J, logits = self.step_fn(as_tensor(xb), as_tensor(yb))
                self.optimizer.step()
                loss = float(J.data)
                if not math.isfinite(loss):
                    raise FloatingPointError(
                        f"train: objective became {loss} at epoch {st.epoch + 1}, batch {st.batch}; lower --lr"
                    )
                st.loss_sum += loss * len(yb)
                st.correct += int((logits.data.argmax(axis=1) == yb).sum())
                st.seen += len(yb)
                st.batch += 1
                if bar is not None:
                    bar.update(1)
                if self._interrupted:
                    raise KeyboardInterrupt
        finally:
            st.seconds += time.perf_counter() - start
            if bar is not None:
                bar.close()
        m = EpochMetrics(
            epoch=st.epoch + 1,
            train_loss=st.loss_sum / max(st.seen, 1),
            train_accuracy=st.correct / max(st.seen, 1),
            test_accuracy=accuracy(self.model, self.x_test, self.y_test),
            seconds=st.seconds,
            lr=self.optimizer.lr,
        )
        st.history.append(asdict(m))
        if not self.quiet:
            print(
                f"epoch {m.epoch:3d}  train loss {m.train_loss:.4f}  train acc {m.train_accuracy:.4f}  "
                f"test acc {m.test_accuracy:.4f}  {m.seconds:.1f}s",
                flush=True,
            )
        self.state = RunState(epoch=st.epoch + 1, history=st.history)
        self.save()

    def write_reports(self) -> None:
        history = self.state.history
        self.out.mkdir(parents=True, exist_ok=True)
        fields = list(EpochMetrics.__dataclass_fields__)
        with open(self.out / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(history)
        (self.out / "metrics.json").write_text(json.dumps({"config": asdict(self.cfg), "epochs": history}, indent=2))
        plot_curves(history, self.out / "curves.png")


def _progress(total: int, desc: str, initial: int, quiet: bool) -> Any:
    if quiet:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # the progress bar is optional; the per-epoch line is always printed
        return None
    return tqdm(total=total, initial=initial, desc=desc, leave=False, unit="batch", disable=None)


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(epochs, [h["train_loss"] for h in history], "o-", label="train loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    ax2.plot(epochs, [h["train_accuracy"] for h in history], "o-", label="train accuracy")
    ax2.plot(epochs, [h["test_accuracy"] for h in history], "s-", label="test accuracy")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _section(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The checkpoint entries under ``prefix`` ("param/" or "optim/"), with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def evaluate(run_dir: str | Path, data_dir: str | None = None) -> float:
    arrays, meta = load_checkpoint(Path(run_dir) / CHECKPOINT)
    cfg = Config(**meta["config"])
    if data_dir is not None:
        cfg.data_dir = data_dir
    cfg.limit_test = 0  # always the whole test set
    model = build_model(cfg)
    model.load_state_dict(_section(arrays, "param/"))
    _, _, x_test, y_test = prepare_data(cfg)
    return accuracy(model, x_test, y_test)


__all__ = ["Config", "EpochMetrics", "Trainer", "evaluate"]
