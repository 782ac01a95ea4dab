"""BLAS threads policy: applied by the CLI and the Trainer or by cr.set_threads, never by importing chainrule."""

import os
import subprocess
import sys

import pytest

threadpoolctl = pytest.importorskip("threadpoolctl")

import chainrule as cr  # noqa: E402
from chainrule.cli.main import main  # noqa: E402
from chainrule.data.fashion_mnist import DEBIAN_DIR  # noqa: E402
from chainrule.train import threads  # noqa: E402


def test_importing_chainrule_leaves_the_blas_threads_alone():
    code = (
        "import numpy, threadpoolctl\n"
        "before = [i['num_threads'] for i in threadpoolctl.threadpool_info()]\n"
        "import chainrule, chainrule.nn, chainrule.optim, chainrule.train.trainer\n"
        "after = [i['num_threads'] for i in threadpoolctl.threadpool_info()]\n"
        "print(before, after)\n"
        "assert before == after, (before, after)\n"
    )
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2")
    env.pop("CHAINRULE_THREADS", None)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr


def test_set_threads_limits_and_restores():
    before = threads.blas_threads()
    limit = cr.set_threads(1)
    assert threads.blas_threads() == 1
    assert limit.threads == 1
    limit.restore()
    assert threads.blas_threads() == before
    with cr.set_threads("auto") as auto:
        assert threads.blas_threads() == auto.threads == threads.auto_threads()
    assert threads.blas_threads() == before
    assert cr.set_threads(None).threads is None and threads.blas_threads() == before


@pytest.mark.parametrize("bad", ["two", "-1", "1.5", -3])
def test_bad_thread_counts_are_refused_by_name(bad):
    with pytest.raises(ValueError, match="set_threads: expected 'auto', 'none' or a thread count"):
        cr.set_threads(bad)


def test_parse_threads_accepts_auto_none_and_counts():
    assert threads.parse_threads("auto") == "auto"
    assert threads.parse_threads(" NONE ") is None and threads.parse_threads("0") is None
    assert threads.parse_threads("3") == 3 and threads.parse_threads(2) == 2


def test_environment_variable_and_explicit_value(monkeypatch):
    monkeypatch.delenv(threads.ENV, raising=False)
    assert threads.requested_threads() == "auto"
    monkeypatch.setenv(threads.ENV, "none")
    assert threads.requested_threads() is None
    assert threads.requested_threads(1) == 1  # an explicit value wins over the variable
    monkeypatch.setenv(threads.ENV, "lots")
    with pytest.raises(ValueError, match=r"\$CHAINRULE_THREADS: expected"):
        threads.requested_threads()


def test_without_threadpoolctl_set_threads_says_what_is_missing(monkeypatch):
    monkeypatch.setattr(threads, "_threadpoolctl", lambda: None)
    with pytest.raises(ImportError, match="needs threadpoolctl"):
        cr.set_threads(1)
    with threads.threads_for_run(1) as limit:  # the CLI and Trainer go on with the BLAS as it is
        assert limit is None


def test_cli_refuses_a_bad_threads_value(capsys, monkeypatch):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--threads", "many"])
    assert exc.value.code == 2
    assert "--threads" in capsys.readouterr().err
    monkeypatch.setenv(threads.ENV, "many")
    assert main(["train", "--epochs", "0"]) == 2
    assert "$CHAINRULE_THREADS: expected" in capsys.readouterr().err


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="dataset-fashion-mnist is installed by .ci/run")
def test_trainer_runs_under_its_thread_limit_and_restores_it(tmp_path, monkeypatch):
    from chainrule.train.trainer import Config, Trainer

    monkeypatch.delenv(threads.ENV, raising=False)
    before = threads.blas_threads()
    seen = []
    cfg = Config(epochs=1, limit_train=256, limit_test=100)
    trainer = Trainer(cfg, tmp_path / "run", quiet=True, threads=1)

    def epoch():  # instead of training: note the limit in force, and finish
        seen.append(threads.blas_threads())
        trainer.state.epoch = 1

    monkeypatch.setattr(trainer, "_epoch", epoch)
    trainer.run()
    assert seen == [1]
    assert threads.blas_threads() == before
