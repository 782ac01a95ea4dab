"""A digest-valid checkpoint is still checked: metadata against arrays, finite values, before any allocation."""

import json

import pytest

from chainrule.cli.main import main
from chainrule.data.fashion_mnist import DEBIAN_DIR
from chainrule.train.build import build_model
from chainrule.train.config import Config
from chainrule.train.contents import parameter_shapes
from chainrule.train.snapshot import load_checkpoint, save_checkpoint

pytestmark = [
    pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="dataset-fashion-mnist is installed by .ci/run"),
    pytest.mark.usefixtures("fashion_mnist_read_once"),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny finished run (momentum: the checkpoint holds optimizer slots too)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    argv = ["--model", "mlp", "--hidden", "16", "--epochs", "1", "--limit-train", "256", "--limit-test", "100"]
    assert main(["train", *argv, "--optimizer", "momentum", "--quiet", "--out", str(run)]) == 0
    return run / "checkpoint.npz"


def _edited(tmp_path, source, change):
    """A copy of the run's checkpoint with ``change(arrays, meta)`` applied and the digest recomputed."""
    arrays, meta = load_checkpoint(source)
    change(arrays, meta)
    run = tmp_path / "edited"
    run.mkdir(parents=True)
    save_checkpoint(run / "checkpoint.npz", arrays, meta)
    return run


@pytest.mark.parametrize(
    "model,dropout", [("section", 0.0), ("section-bias", 0.0), ("mlp", 0.0), ("mlp", 0.5)], ids=str
)
def test_the_computed_shapes_are_the_built_models(model, dropout):
    cfg = Config(model=model, hidden=7, dropout=dropout)
    built = {k: v.shape for k, v in build_model(cfg).state_dict().items()}
    assert parameter_shapes(model, 7, dropout, 784, 10) == built


def test_a_huge_hidden_in_the_metadata_never_reaches_an_allocation(tmp_path, trained, capsys):
    run = _edited(tmp_path, trained, lambda a, m: m["config"].update(hidden=100_000_000))
    path = run / "checkpoint.npz"
    want = (
        f"chainrule: error: {path}: checkpoint parameter '0.weight' has shape (16, 784); its configuration "
        "implies (100000000, 784): corrupt\n"
    )
    assert main(["evaluate", str(run)]) == 2
    assert capsys.readouterr().err == want
    assert main(["train", "--resume", str(run)]) == 2
    assert capsys.readouterr().err == want


def test_nan_parameters_are_refused_not_evaluated(tmp_path, trained, capsys):
    def poison(arrays, meta):
        arrays["param/2.weight"][3, 4] = float("nan")

    run = _edited(tmp_path, trained, poison)
    want = (
        f"chainrule: error: {run / 'checkpoint.npz'}: checkpoint array 'param/2.weight' holds 1 non-finite "
        "value(s) (NaN or Inf): corrupt or diverged\n"
    )
    assert main(["evaluate", str(run)]) == 2
    assert capsys.readouterr().err == want
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 2
    assert capsys.readouterr().err == want


def test_inf_optimizer_state_and_nan_history_are_refused(tmp_path, trained, capsys, monkeypatch):
    def poison(arrays, meta):
        arrays["optim/0.momentum"][0, 0] = float("inf")

    run = _edited(tmp_path, trained, poison)
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 2
    assert "checkpoint array 'optim/0.momentum' holds 1 non-finite value(s)" in capsys.readouterr().err

    real = json.dumps
    with monkeypatch.context() as m:  # a hand-edited file can hold NaN (json.loads reads it); ours never do
        m.setattr(json, "dumps", lambda obj, **kw: real(obj, **{**kw, "allow_nan": True}))
        run2 = _edited(tmp_path / "b", trained, lambda a, m: m["state"]["history"][0].update(test_loss=float("nan")))
    assert main(["train", "--resume", str(run2), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    path = run2 / "checkpoint.npz"
    assert err == f"chainrule: error: {path}: checkpoint run state history[0].test_loss = nan is not finite: corrupt\n"


def test_a_wrong_dtype_or_missing_parameter_is_refused(tmp_path, trained, capsys):
    run = _edited(tmp_path, trained, lambda a, m: a.update({"param/0.bias": a["param/0.bias"].astype("int32")}))
    assert main(["evaluate", str(run)]) == 2
    assert "checkpoint parameter '0.bias' has dtype int32, not a float: corrupt" in capsys.readouterr().err
    run2 = _edited(tmp_path / "b", trained, lambda a, m: a.pop("param/2.bias"))
    assert main(["evaluate", str(run2)]) == 2
    assert (
        "checkpoint parameters do not fit its configuration (missing ['2.bias'], unexpected []): corrupt"
        in capsys.readouterr().err
    )
