"""Does cr.plan.fit_budget choose the fastest plan that fits? Every fitting candidate measured.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=src python benchmarks/planner_sweep.py --out benchmarks/PLANNER.md

For each MLP (depth x width, 64 inputs, 10 classes, SGD, float32) and each budget (fractions
of the range between the smallest candidate's ``needs`` and the plain step's), the planner
chooses a plan (one process); then EVERY fitting candidate is run for real: its step time
(the median of ``--steps`` steps after a warm-up, the candidates' steps interleaved one by one
so that a slow spell of the machine lands on every candidate alike) and its peak (``cr.memory.profile``, one step).
Reported per configuration: the chosen plan, its measured time, the fastest measured fitting
candidate, their ratio, and the chosen plan's measured peak against the budget.
"""

from __future__ import annotations

import argparse
import fcntl
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.cli.measure import build_mlp
from chainrule.measure import memory
from chainrule.models.objective import objective
from chainrule.nn import Sequential
from chainrule.optim import SGD
from chainrule.parallel import accumulate
from chainrule.plan import Candidate, fit_budget
from chainrule.plan.timing import calibrate

D, CLASSES = 64, 10


def mlp(depth: int, width: int) -> Sequential:
    model: Sequential = build_mlp(depth, width, np.float32, inputs=D, outputs=CLASSES)
    return model


def stepper(model: Sequential, c: Candidate) -> Any:
    """One training step of the candidate (its checkpointing set on the model at each call)."""
    opt = SGD(model.parameters(), 1e-3)

    def grads(xt: Any, yt: Any) -> Any:
        J, logits = objective(model, xt, yt)
        J.backward()
        return J, logits

    def step(x: Any, y: Any) -> None:
        model.checkpoint_every = c.checkpoint_every
        opt.zero_grad()
        accumulate(grads, opt.params, x, y, c.microbatches)
        opt.step()

    step.optimizer = opt  # type: ignore[attr-defined]
    return step


def measure_all(
    model: Sequential, candidates: dict[tuple[int, int], Candidate], x: np.ndarray, y: np.ndarray, steps: int
) -> dict[tuple[int, int], tuple[float, int]]:
    """(median step seconds, measured peak bytes) of every candidate.

    The steps are interleaved, one step of each candidate in turn, ``steps`` times: a slow spell
    of the (shared) machine then lands on every candidate alike instead of on one.
    """
    steps_of = {key: stepper(model, c) for key, c in candidates.items()}
    times: dict[tuple[int, int], list[float]] = {key: [] for key in candidates}
    for step in steps_of.values():
        step(x, y)  # warm-up
    for _ in range(steps):
        for key, step in steps_of.items():
            t0 = time.perf_counter()
            step(x, y)
            times[key].append(time.perf_counter() - t0)
    out = {}
    for key, step in steps_of.items():
        model.checkpoint_every = candidates[key].checkpoint_every
        peak = memory.profile(step, x, y, model=model, optimizer=step.optimizer).peak
        out[key] = (float(np.median(times[key])), peak)
    return out


def label(c: Candidate) -> str:
    return f"k={c.microbatches}, e={c.checkpoint_every or '-'}"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="benchmarks/PLANNER.md")
    p.add_argument("--models", default="16x128,32x64,16x256", help="depth x width, comma separated")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--budgets", default="0.0,0.25,0.5,0.75,1.0", help="fractions from smallest needs to plain")
    p.add_argument("--max-microbatches", type=int, default=8)
    p.add_argument("--steps", type=int, default=15, help="timed steps per candidate, interleaved across candidates")
    p.add_argument("--lock", default="/tmp/chainrule-bench.lock", help="held (flock) while one model is measured")
    args = p.parse_args()
    warnings.simplefilter("ignore")
    t_cal = time.perf_counter()
    cal = calibrate()
    t_cal = time.perf_counter() - t_cal
    rng = np.random.default_rng(1)
    x = rng.random((args.batch, D), dtype=np.float32)
    y = rng.integers(0, CLASSES, args.batch)
    rows, worst, over = [], 0.0, 0
    started = time.perf_counter()
    for spec in args.models.split(","):
        depth, width = (int(v) for v in spec.split("x"))
        lock = open(args.lock, "a")  # noqa: SIM115 - held across this model's measurements
        fcntl.flock(lock, fcntl.LOCK_EX)
        model = mlp(depth, width)
        opt = SGD(model.parameters(), 1e-3)
        full = fit_budget(model, (D,), args.batch, 10**12, optimizer=opt, max_microbatches=args.max_microbatches)
        plain = next(c for c in full.candidates if c.microbatches == 1 and c.checkpoint_every == 0)
        lo = min(c.needs for c in full.candidates)
        reports = []
        for frac in (float(v) for v in args.budgets.split(",")):
            budget = int(lo + frac * (plain.needs - lo))
            report = fit_budget(model, (D,), args.batch, budget, optimizer=opt, max_microbatches=args.max_microbatches)
            assert report.chosen is not None
            reports.append((budget, report))
        needed = {(c.microbatches, c.checkpoint_every): c for _, r in reports for c in r.candidates if c.fits}
        measured = measure_all(model, needed, x, y, args.steps)
        for budget, report in reports:
            assert report.chosen is not None
            fitting = [c for c in report.candidates if c.fits]
            best = min(fitting, key=lambda c: measured[c.microbatches, c.checkpoint_every][0])
            ch = report.chosen
            t_ch, peak_ch = measured[ch.microbatches, ch.checkpoint_every]
            t_best = measured[best.microbatches, best.checkpoint_every][0]
            ratio = t_ch / t_best
            worst = max(worst, ratio)
            over += peak_ch > budget
            rows.append(
                f"| {depth}x{width} | {budget:,} | {len(fitting)} | {label(ch)} | {ch.seconds * 1e3:.2f} "
                f"| {t_ch * 1e3:.2f} | {label(best)} | {t_best * 1e3:.2f} | {ratio:.3f} | {peak_ch:,} "
                f"| {peak_ch / budget:.3f} |"
            )
            print(rows[-1], flush=True)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
    cmd = "OPENBLAS_NUM_THREADS=1 PYTHONPATH=src python benchmarks/planner_sweep.py " + " ".join(sys.argv[1:])
    text = [
        "# Planner sweep: the chosen plan against every fitting candidate, measured",
        "",
        f"Produced by `{cmd}` ({time.perf_counter() - started:.0f} s; calibration {t_cal * 1e3:.0f} ms).",
        "",
        f"MLPs on {D} inputs, batch {args.batch}, SGD, float32, one process; microbatches up to "
        f"{args.max_microbatches}; budgets at fractions {args.budgets} of the way from the smallest candidate's "
        "`needs` to the plain step's. k = microbatches, e = checkpoint_every. Time: median of "
        f"{args.steps} steps after a warm-up, the candidates' steps interleaved (one step of each in turn); "
        "peak: `cr.memory.profile` of one step.",
        "",
        "| MLP | budget (bytes) | fitting candidates | chosen | predicted (ms) | measured (ms) | fastest measured "
        "| its time (ms) | chosen / fastest | chosen's measured peak | peak / budget |",
        "|---|---:|---:|---|---:|---:|---|---:|---:|---:|---:|",
        *rows,
        "",
        f"Worst chosen / fastest: {worst:.3f} (target <= 1.15). Chosen plans whose measured peak exceeded the "
        f"budget: {over} of {len(rows)}.",
        "",
        "Calibration of this run (chainrule.plan.timing.calibrate): "
        f"forward node {cal.forward_node * 1e6:.2f} us, backward node {cal.backward_node * 1e6:.2f} us, "
        f"microbatch pass fixed {cal.step_fixed * 1e6:.1f} us, accumulation {cal.accumulate_param * 1e6:.2f} us "
        f"per parameter, checkpoint segment {cal.checkpoint_segment * 1e6:.1f} us, recomputed node "
        f"{cal.recompute_node * 1e6:.2f} us.",
    ]
    Path(args.out).write_text("\n".join(text) + "\n")
    print(f"worst ratio {worst:.3f}; over budget {over}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
