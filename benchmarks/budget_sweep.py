"""Is ``chainrule train --memory-budget`` a promise? Every step's measured peak against the budget.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=src python benchmarks/budget_sweep.py --out benchmarks/BUDGET.md

For each model (input features x hidden layers x width), batch size and budget (fractions of the
way from the smallest budget the planner's error names to the plain step's predicted need), the
run goes through the command line, ``chainrule train --memory-budget B`` (in this process: the
model and the data are swapped for the sweep's, a synthetic data set of the model's input size,
two steps per run), and the peak of EVERY step from step 1 is measured independently of the
planner and of the engine: tracemalloc tracing only NumPy's domain (``np.lib.tracemalloc_domain``;
Python's own allocators are unhooked, :func:`numpy_only_tracing`), started as step 1 begins,
its peak from before each step's batch is gathered to after the update, plus the arrays alive
before tracing started (parameters, gradients, optimizer state) counted by their size.
A row fails if a run does not exit 0 or a step's peak exceeds the budget.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

import chainrule.train.trainer as tr
from chainrule.cli.main import main as cli
from chainrule.cli.measure import build_mlp
from chainrule.models import SectionMLP
from chainrule.plan.planner import MemoryBudgetError, fit_budget

FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)


def build(spec: tuple[int, int, int]) -> Any:
    """``(inputs, depth, width)``: an MLP of ``depth`` hidden ReLU layers; depth 0: the section's model."""
    inputs, depth, width = spec
    if depth == 0:
        return SectionMLP(inputs, width, 10, weight_decay=1e-4)
    return build_mlp(depth, width, np.float32, inputs=inputs)


def name(spec: tuple[int, int, int]) -> str:
    """How a model is written in the table."""
    inputs, depth, width = spec
    return f"section {inputs}-{width}-10" if depth == 0 else f"{inputs}-in {depth}x{width}"


def smallest_and_plain(spec: tuple[int, int, int], batch: int, optimizer: str = "sgd") -> tuple[int, int]:
    """(the smallest budget the planner's error names, the plain one-microbatch step's need)."""
    model = build(spec)
    opt = tr.build_optimizer(tr.Config(optimizer=optimizer), model)  # what the trainer plans with
    try:
        fit_budget(model, (spec[0],), batch, 1, optimizer=opt)
    except MemoryBudgetError as exc:
        plain = next(c.needs for c in exc.report.candidates if c.microbatches == 1 and not c.checkpoint_every)
        return exc.smallest, max(plain, exc.smallest)
    raise AssertionError("a budget of one byte fitted")


@contextlib.contextmanager
def swapped(spec: tuple[int, int, int], n: int) -> Any:
    """The trainer builds this model and reads a synthetic data set of ``n`` examples of its input size."""
    rng = np.random.default_rng(0)
    x = rng.random((n, spec[0]), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    saved = tr.build_model, tr.load_data
    tr.build_model = lambda cfg: build(spec)
    tr.load_data = lambda cfg, progress=None: ((x, y, x[:64], y[:64]), Path("synthetic"))
    try:
        yield
    finally:
        tr.build_model, tr.load_data = saved


class _Allocator(ctypes.Structure):
    _fields_ = [(name, ctypes.c_void_p) for name in ("ctx", "malloc", "calloc", "realloc", "free")]


_API = ctypes.pythonapi
for _f in (_API.PyMem_GetAllocator, _API.PyMem_SetAllocator):
    _f.argtypes, _f.restype = [ctypes.c_int, ctypes.POINTER(_Allocator)], None
_PY_DOMAINS = (0, 1, 2)  # PYMEM_DOMAIN_RAW, _MEM, _OBJ


@contextlib.contextmanager
def numpy_only_tracing() -> Any:
    """tracemalloc on, tracing only what NumPy reports (its data buffers, ``np.lib.tracemalloc_domain``).

    ``tracemalloc.start`` hooks Python's allocators; putting the original allocators back right
    after leaves tracing on for ``PyTraceMalloc_Track``, which NumPy calls for every buffer, and
    off for Python objects: ``get_traced_memory()`` is then NumPy's current and peak bytes, exactly,
    at no cost per engine event. ``tracemalloc.stop`` restores the same allocators.
    """
    saved = [_Allocator() for _ in _PY_DOMAINS]
    for d, a in zip(_PY_DOMAINS, saved, strict=True):
        _API.PyMem_GetAllocator(d, ctypes.byref(a))
    tracemalloc.start(1)
    for d, a in zip(_PY_DOMAINS, saved, strict=True):
        _API.PyMem_SetAllocator(d, ctypes.byref(a))
    try:
        yield
    finally:
        tracemalloc.stop()


def _untraced_state(trainer: Any) -> int:
    """Bytes of the arrays a step uses that exist before tracing starts: parameters, gradients, optimizer state."""
    arrays = [p.numpy() for p in trainer.optimizer.params]
    arrays += [p.grad.numpy() for p in trainer.optimizer.params if p.grad is not None]
    arrays += [v for st in trainer.optimizer.state for v in st.values() if isinstance(v, np.ndarray)]
    seen: dict[int, int] = {}
    for a in arrays:
        base = a if a.base is None else a.base
        seen[id(base)] = base.nbytes
    return sum(seen.values())


@contextlib.contextmanager
def metered(peaks: list[int], plans: list[str]) -> Any:
    """Every step's measured peak into ``peaks`` (from the batch gather to the update); the plan into ``plans``.

    Tracing (NumPy's domain only) starts as step 1 begins: the data set is not counted, what a
    step holds is; the arrays alive before (parameters...) are added by their size.
    """
    real_batch, real_check, real_plan = tr.Trainer._batch, tr.Trainer._check_loss, tr.Trainer._plan_memory
    stack = contextlib.ExitStack()
    before: list[int] = []

    def batch(self: Any, sel: Any) -> Any:
        if not before:
            before.append(_untraced_state(self))
            stack.enter_context(numpy_only_tracing())
        tracemalloc.reset_peak()
        return real_batch(self, sel)

    def check(self: Any, loss: float, b: int) -> None:
        peaks.append(before[0] + tracemalloc.get_traced_memory()[1])
        real_check(self, loss, b)

    def plan(self: Any, x: Any) -> Any:
        p = real_plan(self, x)
        plans.append(f"k={p.microbatches}, e={p.checkpoint_every or '-'}")
        return p

    tr.Trainer._batch, tr.Trainer._check_loss, tr.Trainer._plan_memory = batch, check, plan
    try:
        yield
    finally:
        stack.close()
        tr.Trainer._batch, tr.Trainer._check_loss, tr.Trainer._plan_memory = real_batch, real_check, real_plan


def run(spec: tuple[int, int, int], batch: int, budget: int, optimizer: str = "sgd", steps: int = 2) -> dict[str, Any]:
    """One ``chainrule train --memory-budget`` run: its exit code, plan and every step's peak."""
    peaks: list[int] = []
    plans: list[str] = []
    model = "section" if spec[1] == 0 else "mlp"
    with tempfile.TemporaryDirectory() as tmp, swapped(spec, steps * batch), metered(peaks, plans):
        argv = ["train", "--model", model, "--hidden", str(spec[2]), "--epochs", "1", "--batch-size", str(batch)]
        argv += ["--optimizer", optimizer, "--memory-budget", str(budget), "--out", str(Path(tmp) / "run"), "--quiet"]
        code = cli(argv)
    return {"code": code, "plan": plans[0] if plans else "-", "peaks": peaks}


def sweep(
    specs: list[tuple[int, int, int]], batches: list[int], fractions: tuple[float, ...], optimizer: str = "sgd"
) -> list[dict[str, Any]]:
    """Every (model, batch, budget) of the grid, run and measured."""
    rows = []
    for spec in specs:
        for batch in batches:
            low, high = smallest_and_plain(spec, batch, optimizer)
            for f in fractions:
                budget = int(low + f * (high - low))
                r = run(spec, batch, budget, optimizer)
                worst = max(r["peaks"], default=0)
                rows.append(
                    {"model": name(spec), "optimizer": optimizer, "batch": batch, "budget": budget, "fraction": f,
                     **r, "worst": worst, "ratio": worst / budget, "ok": r["code"] == 0 and worst <= budget}
                )  # fmt: skip
                print(f"{rows[-1]['model']} {optimizer} b={batch} budget={budget:,} {r['plan']} code={r['code']} "
                      f"peaks={r['peaks']} ratio={worst / budget:.3f}", file=sys.stderr, flush=True)  # fmt: skip
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The sweep as Markdown: one row per run."""
    out = [
        "| model | optimizer | batch | budget (bytes) | of the range | plan | exit | step peaks (bytes) "
        "| worst / budget | within |",
        "|---|---|---:|---:|---:|---|---:|---|---:|:-:|",
    ]
    for r in rows:
        peaks = ", ".join(f"{p:,}" for p in r["peaks"])
        out.append(
            f"| {r['model']} | {r['optimizer']} | {r['batch']} | {r['budget']:,} | {r['fraction']:.2f} "
            f"| {r['plan']} | {r['code']} "
            f"| {peaks} | {r['ratio']:.3f} | {'yes' if r['ok'] else '**NO**'} |"
        )
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=None, help="write the Markdown report here")
    p.add_argument("--models", default="64x4x16,64x2x64,784x1x16,784x1x64,784x1x256,784x0x256",
                   help="inputs x hidden layers x width (0 layers: the section's model)")  # fmt: skip
    p.add_argument("--batches", default="64,512,4096")
    p.add_argument("--optimizers", default="sgd,adam")
    args = p.parse_args()
    specs = [tuple(int(v) for v in m.split("x")) for m in args.models.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    t0 = time.perf_counter()
    rows = [r for o in args.optimizers.split(",") for r in sweep(specs, batches, FRACTIONS, o)]  # type: ignore[arg-type]
    bad = sum(not r["ok"] for r in rows)
    report = "\n".join(
        [
            "# Memory budget sweep: every step's measured peak against `chainrule train --memory-budget`",
            "",
            f"Produced by `OPENBLAS_NUM_THREADS=1 PYTHONPATH=src python benchmarks/budget_sweep.py --out "
            f"benchmarks/BUDGET.md` ({time.perf_counter() - t0:.0f} s). See the script's docstring for the method.",
            "",
            table(rows),
            "",
            f"Runs whose exit code was not 0 or with a step above its budget: {bad} of {len(rows)}; "
            f"worst step peak / budget: {max(r['ratio'] for r in rows):.3f}.",
            "",
        ]
    )
    if args.out:
        Path(args.out).write_text(report)
    print(report)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
