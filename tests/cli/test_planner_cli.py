"""chainrule train --memory-budget: parsed like the other flags, bad sizes rejected with exit code 2."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from chainrule.cli.main import main
from chainrule.cli.parallel import add_train_options
from chainrule.data.fashion_mnist import DEBIAN_DIR
from chainrule.train.config import Config, UsageError, validate_config
from chainrule.train.trainer import Trainer


def test_flag_parses_sizes() -> None:
    parser = argparse.ArgumentParser()
    add_train_options(parser)
    assert parser.parse_args(["--memory-budget", "200MB"]).memory_budget == 200_000_000
    assert parser.parse_args(["--memory-budget", "1.5GiB"]).memory_budget == int(1.5 * 2**30)
    assert parser.parse_args(["--memory-budget", "4096"]).memory_budget == 4096
    assert parser.parse_args([]).memory_budget is None


@pytest.mark.parametrize("bad", ["lots", "12XB", "-1MB", "0"])
def test_bad_sizes_exit_2(bad: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "--memory-budget", bad, "--out", str(tmp_path / "run")])
    assert info.value.code == 2
    assert "--memory-budget" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_config_field_is_validated() -> None:
    with pytest.raises(UsageError, match="memory-budget"):
        validate_config(Config(memory_budget=-1), check_memory=False)
    validate_config(Config(model="mlp", memory_budget=10**8, parallel="pipeline"), check_memory=False)  # per rank


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="dataset-fashion-mnist is installed by .ci/run")
def test_trainer_applies_the_plan(tmp_path: Path) -> None:
    # batch 2048: the activations (not only the batch itself) are worth microbatching
    base = dict(model="mlp", hidden=32, epochs=1, limit_train=2048, limit_test=100, batch_size=2048)
    roomy = Trainer(Config(**base, memory_budget=10**9), tmp_path / "a", quiet=True)
    assert roomy.memory_note and f"microbatches={roomy.cfg.microbatches}," in roomy.memory_note
    from chainrule.plan.planner import fit_budget

    every = fit_budget(roomy.model, (784,), 2048, 10**12, optimizer=roomy.optimizer).candidates
    smallest = min(c.needs for c in every)
    tight = Trainer(Config(**base, memory_budget=smallest), tmp_path / "b", quiet=True)
    assert tight.cfg.microbatches > 1 or tight.model.checkpoint_every > 0
    with pytest.raises(UsageError, match="smallest budget"):
        Trainer(Config(**base, memory_budget=1000), tmp_path / "c", quiet=True)
