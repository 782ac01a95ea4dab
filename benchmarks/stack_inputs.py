"""Forward + backward time of ``stack`` over many small inputs, chainrule vs PyTorch.

Run: ``PYTHONPATH=src:. python benchmarks/stack_inputs.py [n ...]`` (default 16000 100000).
"""

from __future__ import annotations

import sys
import time

import numpy as np

import chainrule as cr


def chainrule_seconds(n: int) -> float:
    xs = [cr.tensor(np.ones(3), dtype="float64", requires_grad=True) for _ in range(n)]
    start = time.perf_counter()
    cr.sum(cr.stack(xs, axis=0)).backward()
    return time.perf_counter() - start


def torch_seconds(n: int) -> float:
    import torch

    xs = [torch.ones(3, dtype=torch.float64, requires_grad=True) for _ in range(n)]
    start = time.perf_counter()
    torch.stack(xs, dim=0).sum().backward()
    return time.perf_counter() - start


def main(sizes: list[int]) -> None:
    for n in sizes:
        ours = min(chainrule_seconds(n) for _ in range(3))
        try:
            theirs = f"{min(torch_seconds(n) for _ in range(3)):.3f} s"
        except ImportError:
            theirs = "n/a (torch not installed)"
        print(f"stack of {n} inputs, forward+backward: chainrule {ours:.3f} s, torch {theirs}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [16000, 100000])
