"""The benchmark harness runs end to end (a few steps of each workload) and prints its table."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_smoke_run_prints_table():
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--smoke",
            "--only",
            "section,section-busy,d2l,tiny,perop,hvp,matmul",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    assert "| d2l 784-256-10 b256: training step (ms) |" in out
    assert "PyTorch eager" in out and "NumPy (hand)" in out
    assert "HVP / gradient <= 3" in out
    assert "| section objective as users write it, no tuning: step (ms) |" in out
    assert "section objective beside one busy process: eager / PyTorch <= 1.0" in out
    assert "cr.jvp / torch.func.jvp <= 1.0" in out
