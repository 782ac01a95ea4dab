import http.server
import threading

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


_FASHION_MNIST: dict = {}


@pytest.fixture
def fashion_mnist_read_once(monkeypatch):
    """In-process training runs share one read of Fashion-MNIST (each read costs ~1 s of checksums)."""
    import chainrule.train.build as training  # where the trainer reads the data set

    real = training.load_fashion_mnist

    def cached(data_dir=None, **kwargs):
        if data_dir not in _FASHION_MNIST:
            _FASHION_MNIST[data_dir] = real(data_dir)
        return _FASHION_MNIST[data_dir]

    monkeypatch.setattr(training, "load_fashion_mnist", cached)


class LocalServer:
    """An HTTP server on 127.0.0.1 (a free port) in a thread, for the download tests.

    ``with LocalServer(handler_class) as server: ... server.url ...``; the only network tests reach.
    """

    def __init__(self, handler):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
