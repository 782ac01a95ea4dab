import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


_FASHION_MNIST: dict = {}


@pytest.fixture
def fashion_mnist_read_once(monkeypatch):
    """In-process training runs share one read of Fashion-MNIST (each read costs ~1 s of checksums)."""
    import chainrule.training as training

    real = training.load_fashion_mnist

    def cached(data_dir=None):
        if data_dir not in _FASHION_MNIST:
            _FASHION_MNIST[data_dir] = real(data_dir)
        return _FASHION_MNIST[data_dir]

    monkeypatch.setattr(training, "load_fashion_mnist", cached)
