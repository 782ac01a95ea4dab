"""What a run is built from: the data, the model, the optimizer, and how a model is scored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import chainrule.nn.functional as F
from chainrule.core.constructors import as_tensor
from chainrule.core.state import no_grad
from chainrule.data import as_float_inputs, load_fashion_mnist
from chainrule.models import SectionMLP
from chainrule.nn import Dropout, Linear, Module, ReLU, Sequential, Sigmoid, Tanh
from chainrule.optim import SGD, Adam, AdamW, Optimizer
from chainrule.train.config import Config


def prepare_data(cfg: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST as float32 inputs in [0, 1] (or standardized) and int64 labels."""
    return load_data(cfg)[0]


def load_data(cfg: Config, progress: Any = None) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], Path]:
    """:func:`prepare_data`'s arrays and the folder they were read from; ``progress`` makes a
    bar for each file downloaded (see :func:`chainrule.data.fashion_mnist.download`)."""
    data = load_fashion_mnist(cfg.data_dir, progress=progress)
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
    return float(lam / 2 * sum(float(np.sum(np.square(p._data, dtype=np.float64))) for p in params))


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
