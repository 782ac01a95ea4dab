"""Edges found by trying the command line as a user would: each is one clear line or the correct result."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.cli.main import main
from chainrule.data.fashion_mnist import DEBIAN_DIR

needs_dataset = pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="dataset-fashion-mnist is installed by .ci/run")
TINY = ["--model", "mlp", "--hidden", "16", "--limit-train", "256", "--limit-test", "100", "--epochs", "1", "--quiet"]


def test_a_budget_of_400_nines_is_one_line_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--memory-budget", "9" * 400, "--out", str(tmp_path / "r")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "chainrule train: error: argument --memory-budget: '" + "9" * 40 + "'...: a memory budget must be at most "
        "2^63 bytes (see --help)\n"
    )
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("text,bytes_", [("1." + "0" * 200 + "kb", 1000), ("9223372036854775808", 2**63)])
def test_long_sizes_are_exact(text, bytes_):
    from chainrule.plan.planner import parse_size

    assert parse_size(text) == bytes_


@needs_dataset
@pytest.mark.usefixtures("fashion_mnist_read_once")
@pytest.mark.parametrize("made_first", [False, True], ids=["new-folder", "existing-empty-folder"])
def test_a_failed_budget_run_leaves_nothing_that_blocks_its_out(tmp_path, capsys, made_first):
    run = tmp_path / "r"
    if made_first:
        run.mkdir()
    assert main(["train", *TINY, "--memory-budget", "1000", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chainrule: error: --memory-budget 1000: plan.fit_budget: no plan fits 1,000 bytes")
    assert err.count("\n") == 1
    assert run.is_dir() == made_first and (not made_first or list(run.iterdir()) == [])
    assert main(["train", *TINY, "--out", str(run)]) == 0, capsys.readouterr().err  # the same --out, at once
    assert (run / "checkpoint.npz").is_file()


def test_graph_into_a_missing_folder_is_refused_and_creates_nothing(tmp_path, capsys):
    out = tmp_path / "nonexistent" / "dir" / "g.svg"
    assert main(["graph", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"chainrule: error: --out {out}: the folder {out.parent} does not exist (create it first)\n"
    )
    assert not (tmp_path / "nonexistent").exists()
    (tmp_path / "file").write_text("x")
    assert main(["graph", "--out", str(tmp_path / "file" / "g.svg")]) == 2
    assert capsys.readouterr().err.endswith(f"the folder {tmp_path / 'file'} is not a folder\n")


def test_hvp_rev_takes_dicts_like_fwd():
    def f(p):
        return cr.sum(p["a"] ** 2 * p["b"]) + cr.sum(p["b"] ** 3)

    x = {"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0])}
    v = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0])}
    # H = [[2b, 0, 2a, 0], [0, 2b, 0, 2a], [2a, 0, 6b, 0], [0, 2a, 0, 6b]] at a = (1, 2), b = (3, 4)
    want = {"a": [6.0, 4.0], "b": [2.0, 24.0]}
    for mode in ("fwd", "rev"):
        got = cr.hvp(f, x, v, mode=mode)
        assert set(got) == {"a", "b"}
        for k in want:
            np.testing.assert_allclose(got[k].numpy(), want[k])
    with pytest.raises(ValueError, match=r"hvp: v must have the structure of x \(\{'a': \*, 'b': \*\}\), got"):
        cr.hvp(f, x, {"a": v["a"]}, mode="rev")
    with pytest.raises(ValueError, match=r"hvp: leaf 1 of v has shape \(3,\), x's has \(2,\)"):
        cr.hvp(f, x, {"a": v["a"], "b": np.zeros(3)}, mode="rev")
