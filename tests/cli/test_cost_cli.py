"""``chainrule memory`` and ``chainrule cost`` (through the module's own entry point)."""

from __future__ import annotations

from chainrule.cli import measure


def test_cost_second_order_table(tmp_path, capsys) -> None:
    args = ["cost", "--second-order", "--inputs", "4", "--hidden", "3", "--outputs", "2", "--batch", "4"]
    assert measure.main([*args, "--repeat", "1", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    for row in ("gradient (reverse)", "HVP reverse-over-reverse", "HVP forward-over-reverse", "full Hessian (18×18)"):
        assert row in text
    assert (tmp_path / "cost_second_order.md").exists()


def test_memory_command_predict_only(tmp_path, capsys) -> None:
    argv = ["memory", "--batch-sizes", "1,8", "--depths", "1,2", "--hidden", "16", "--predict-only"]
    assert measure.main([*argv, "--out", str(tmp_path)]) == 0
    assert "train/predict" in capsys.readouterr().out
    assert (tmp_path / "memory_vs_batch.png").exists() and (tmp_path / "memory_vs_depth.png").exists()


def test_memory_command_measured(tmp_path, capsys) -> None:
    argv = ["memory", "--batch-sizes", "4", "--depths", "2", "--hidden", "16", "--out", str(tmp_path)]
    assert measure.main(argv) == 0
    out = capsys.readouterr().out
    assert "measured" in out
    assert (tmp_path / "memory_timeline.png").exists()
