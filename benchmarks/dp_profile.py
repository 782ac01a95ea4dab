"""Where a data-parallel step's time goes, per rank, on the README recipe (one BLAS thread per process).

    OPENBLAS_NUM_THREADS=1 python benchmarks/dp_profile.py                        # one process
    OPENBLAS_NUM_THREADS=1 mpiexec -bind-to core -n 2 python benchmarks/dp_profile.py   # 2 ranks

Runs ``--steps`` training steps of the recipe through the Trainer's own pieces (its batch, its
compiled step, :class:`chainrule.parallel.ShardedDataParallel`) and prints, per rank, the mean
milliseconds of each phase: ``load`` (this rank's examples), ``fwdbwd`` (forward and backward),
``reduce`` (gradient into shared memory, wait for the other ranks, sum of this rank's shard),
``opt`` (the optimizer on this rank's shard, or on everything in one process) and ``publish``
(the barrier after the update), and the 10/50/90th percentiles of the whole step.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from chainrule.parallel import accumulate  # noqa: E402
from chainrule.train.config import Config  # noqa: E402
from chainrule.train.trainer import Trainer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=256, help="global batch (256: the recipe)")
    args = ap.parse_args()
    parallel = "data" if int(os.environ.get("PMI_SIZE", "1")) > 1 else "none"
    cfg = Config(
        model="mlp", hidden=1024, optimizer="adam", lr=1e-3, dropout=0.3, init="he_uniform", standardize=True,
        batch_size=args.batch, epochs=1, limit_test=2000, parallel=parallel,
    )  # fmt: skip
    tr = Trainer(cfg, os.devnull, quiet=True)
    phases: dict[str, float] = {}
    steps: list[float] = []
    order = [s for e in range(1 + args.steps // len(tr.loader) + 1) for s in tr.loader.index_batches(e)]
    warm = 10
    for k, sel in enumerate(order[: args.steps + warm]):
        if k == warm:
            phases.clear()
        t = start = time.perf_counter()

        def tick(name: str) -> None:
            nonlocal t
            now = time.perf_counter()
            phases[name] = phases.get(name, 0.0) + now - t
            t = now

        xb, yb = tr._batch(sel)
        tick("load")
        tr.optimizer.zero_grad()
        loss, _ = accumulate(tr.step_fn, tr.optimizer.params, xb, yb, 1)
        tick("fwdbwd")
        if tr.dp is not None:
            tr.dp.reduce_gradients(len(xb) / len(sel), [loss])
            tick("reduce")
            tr.dp.optimizer.step()
            tick("opt")
            tr.dp._barrier("parameter shards updated")
            tick("publish")
        else:
            tr.optimizer.step()
            tick("opt")
        if k >= warm:
            steps.append(t - start)
    ms = {name: round(1e3 * v / args.steps, 3) for name, v in phases.items()}
    pct = [round(1e3 * float(np.percentile(steps, q)), 2) for q in (10, 50, 90)]
    print(f"rank {tr.rank} of {tr.comm.size if tr.comm else 1}: mean ms {ms}; step ms p10/p50/p90 {pct}", flush=True)


if __name__ == "__main__":
    main()
