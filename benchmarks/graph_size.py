"""Per-op cost against the size of the live graph: a chain of n ``tanh`` on 16 floats.

    python benchmarks/graph_size.py [FRAMEWORK] [--n 1000,100000,1000000] [--no-gc]

FRAMEWORK: chainrule (default) or torch. For each n: the forward recording per op and the
backward per op (µs), medians of a few repeats (fewer for large n); ``--no-gc`` disables
Python's cyclic garbage collector for the timed part, to show how much of the cost is
collections walking the live graph. Prints one JSON line per n.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time

import numpy as np


def chain(framework: str, n: int) -> tuple[float, float]:
    """Seconds to record a chain of n tanh, and to backpropagate through it."""
    x_np = np.random.default_rng(0).standard_normal(16).astype(np.float32)
    g_np = np.ones(16, np.float32)
    if framework == "torch":
        import torch

        x, g = torch.tensor(x_np, requires_grad=True), torch.tensor(g_np)
        tanh = torch.tanh
    else:
        import chainrule as cr

        x, g, tanh = cr.tensor(x_np, requires_grad=True), g_np, cr.tanh
    t0 = time.perf_counter()
    y = x
    for _ in range(n):
        y = tanh(y)
    t1 = time.perf_counter()
    y.backward(g)
    t2 = time.perf_counter()
    del y
    return t1 - t0, t2 - t1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("framework", nargs="?", default="chainrule", choices=["chainrule", "torch"])
    p.add_argument("--n", default="1000,100000,1000000")
    p.add_argument("--no-gc", action="store_true")
    args = p.parse_args()
    for n in (int(s) for s in args.n.split(",")):
        repeats = 3 if n >= 1_000_000 else (5 if n >= 100_000 else 50)
        chain(args.framework, min(n, 1000))  # warm-up
        rec, back = [], []
        for _ in range(repeats):
            gc.collect()
            if args.no_gc:
                gc.disable()
            r, b = chain(args.framework, n)
            gc.enable()
            rec.append(r / n * 1e6)
            back.append(b / n * 1e6)
        record, backward = statistics.median(rec), statistics.median(back)
        print(
            json.dumps(
                {
                    "framework": args.framework,
                    "n": n,
                    "gc": not args.no_gc,
                    "record_us": record,
                    "backward_us": backward,
                    "total_us": record + backward,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
