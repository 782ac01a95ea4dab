"""One test per rough edge a newcomer hit (each failed on the code before its fix)."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]


def test_subpackages_are_attributes_loaded_lazily() -> None:
    code = (
        "import sys, chainrule as cr\n"
        "lazy = ('chainrule.optim', 'chainrule.data', 'chainrule.nn', 'chainrule.viz', 'chainrule.models')\n"
        "assert not [m for m in lazy if m in sys.modules], [m for m in lazy if m in sys.modules]\n"
        "assert cr.optim.SGD and cr.data.DataLoader and cr.nn.Linear and cr.viz.equations and cr.linalg.solve\n"
        "assert cr.models.SectionMLP\n"
        "assert 'optim' in dir(cr)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    training = (  # what a training script imports loads neither the transforms nor the instruments
        "import sys, chainrule as cr, chainrule.nn.functional, chainrule.optim\n"
        # transforms.lower is loaded: nn registers its layers' lowering rules for cr.compile with it
        "unused = ('chainrule.transforms.compile', 'chainrule.transforms.functional', 'chainrule.transforms.remat',\n"
        "          'chainrule.transforms.check', 'chainrule.transforms.plan_memory', 'chainrule.measure',\n"
        "          'chainrule.train', 'chainrule.ops.decompositions',\n"
        "          'chainrule.data.fashion_mnist', 'chainrule.data.loader', 'urllib.request', 'http.client')\n"
        "assert not [m for m in unused if m in sys.modules], [m for m in unused if m in sys.modules]\n"
        "assert cr.grad and cr.compile and cr.checkpoint and cr.eval_shape and cr.ShapeDtype and cr.cost\n"
        "from chainrule import check_grad, tree_map\n"
        "from chainrule.data import DataLoader\n"
        "assert 'compile' in dir(cr) and 'DataLoader' in dir(cr.data) and cr.linalg.det\n"
    )
    subprocess.run([sys.executable, "-c", training], check=True, cwd=ROOT)
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        cr.nonexistent  # noqa: B018


def test_version_matches_the_package_metadata() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert cr.__version__ == project["version"]


def test_grad_of_intermediates_leaves_the_graph_usable() -> None:
    w = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = w * w
    out = (h * 2).sum()
    dh, dw = cr.grad(out, [h, w])
    assert w.grad is None  # like torch.autograd.grad: .grad untouched
    np.testing.assert_allclose(dh.numpy(), [2, 2, 2])
    np.testing.assert_allclose(dw.numpy(), [4, 8, 12])
    out.backward()  # the graph is still whole
    np.testing.assert_allclose(w.grad.numpy(), [4, 8, 12])
    with pytest.raises(cr.GraphReleasedError):
        out.backward()


def test_main_job_trains_J_with_a_nonzero_default_lambda() -> None:
    from chainrule.models import SectionMLP
    from chainrule.train.build import build_model
    from chainrule.train.config import Config

    cfg = Config()
    assert cfg.weight_decay == 1e-4
    model = build_model(cfg)
    assert isinstance(model, SectionMLP) and model.lam == 1e-4
    x = cr.tensor(np.random.default_rng(0).random((3, 784)))
    nodes = model.objective(x, np.array([1, 2, 3]))
    assert float(nodes["s"].item()) > 0
    assert float(nodes["J"].item()) == pytest.approx(float(nodes["L"].item()) + float(nodes["s"].item()), rel=1e-6)
    assert "LAMBDA.md" in {p.name for p in (ROOT / "benchmarks").iterdir()}


def test_curves_plot_L_s_losses_and_accuracies_under_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.pyplot as plt

    from chainrule.train.config import Config, EpochMetrics
    from chainrule.train.report import plot_curves, recipe

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    history = [
        {"epoch": e, "train_loss": 1 / e, "train_accuracy": 0.5, "test_accuracy": 0.4, "seconds": 1.0, "lr": 0.1}
        | {"test_loss": 1.1 / e, "penalty": 0.001 * e}
        for e in (1, 2)
    ]
    assert set(history[0]) == set(EpochMetrics.__dataclass_fields__)
    title = recipe(Config())
    assert "λ 0.0001" in title and "sgd lr 0.1" in title and "batch 256" in title
    png = io.BytesIO()
    plot_curves(history, png, title=title)
    assert png.getvalue().startswith(b"\x89PNG")
    (fig,) = figures
    assert fig._suptitle.get_text() == title
    labels = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
    assert any("test L" in s for s in labels) and any("s = λ/2" in s for s in labels)
    assert any("J = L + s" in s for s in labels) and "test accuracy" in labels and "train accuracy" in labels


def test_lists_and_arrays_are_accepted_wherever_a_tensor_is() -> None:
    logits = [[1, 2], [3, 1]]  # integers: read as float32
    expected = F.cross_entropy(np.array(logits, np.float32), np.array([0, 1]))
    assert float(F.cross_entropy(logits, [0, 1])) == pytest.approx(float(expected))
    assert float(F.cross_entropy([[1.0, 2.0], [3.0, 1.0]], [0, 1])) == pytest.approx(float(expected), rel=1e-6)
    assert float(F.mse_loss([1.0, 2.0], [1.0, 4.0])) == 2.0
    # NumPy in, NumPy out (as cr.exp); tensors in, tensors out
    for f in (F.relu, F.sigmoid, F.tanh, F.softmax, F.log_softmax):
        assert type(f([1.0, -2.0])) is type(cr.exp([1.0, -2.0])) is np.ndarray, f.__name__
        assert isinstance(f(cr.tensor([1.0, -2.0])), cr.Tensor), f.__name__
    # layers take lists and arrays too
    from chainrule import nn

    layer = nn.Linear(2, 3, rng=np.random.default_rng(0))
    assert layer([[1.0, 2.0]]).shape == (1, 3) == layer(np.ones((1, 2), np.float32)).shape
    assert nn.Flatten()([[[1, 2], [3, 4]]]).shape == (1, 4)
    # a list holding tensors is stacked differentiably
    t = cr.tensor([1.0, -2.0], requires_grad=True)
    F.mse_loss([t, t], [[0.0, 0.0], [0.0, 0.0]]).backward()
    np.testing.assert_allclose(t.grad.numpy(), [1.0, -2.0])


def test_optimizer_given_arrays_names_itself_and_what_it_expects() -> None:
    from chainrule import nn, optim

    with pytest.raises(TypeError, match=r"optim\.SGD: expected Parameters or tensors that require grad"):
        optim.SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(TypeError, match=r"optim\.Adam: expected an iterable of Parameters"):
        optim.Adam(np.zeros(3), lr=0.1)
    optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)  # the normal case still works


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_cli_help_shows_every_default() -> None:
    from chainrule.cli.main import _parser

    for name, sub in _subparsers(_parser()).items():
        assert sub.format_help()
        for action in sub._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            assert "default" in sub._get_formatter()._expand_help(action), (name, action.option_strings)


def test_cli_version_and_no_command(capsys: pytest.CaptureFixture[str]) -> None:
    from chainrule.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"chainrule {cr.__version__}"
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ("train", "evaluate", "graph", "explain"):
        assert command in out


def test_license_and_py_typed_ship() -> None:
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert (ROOT / "src" / "chainrule" / "py.typed").exists()
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "py.typed" in setuptools["package-data"]["chainrule"]


def test_readme_first_screen_gives_the_two_commands_in_a_virtual_environment() -> None:
    readme = (ROOT / "README.md").read_text()
    first = readme.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in first.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2, commands
    for line in commands:
        assert "python3 -m venv .venv" in line and ". .venv/bin/activate" in line
    assert commands[0].endswith("chainrule train") and "python -m pytest" in commands[1]
    assert readme.index("```bash") < 1200  # on the first screen
