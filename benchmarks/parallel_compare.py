"""Exercise 5 of D2L §5.3, measured: pipeline vs data parallel vs checkpointing vs a smaller minibatch.

    python benchmarks/parallel_compare.py [--quick]      # writes benchmarks/PARALLEL.md and .png

Two parts, every case in its own process(es) with one BLAS thread per process unless stated:

A. Throughput on the README's Fashion-MNIST recipe (``--model mlp --hidden 1024``, Adam, dropout
   0.3, batch 256) through ``chainrule.train.trainer.Trainer``: 1 process (1 and 2 threads),
   data parallel over 2 ranks, pipeline over 2 ranks, microbatching.
B. A deep MLP that does not fit a per-process budget at batch 512: plain, checkpointing
   (√n segments), microbatching, a smaller minibatch, data parallel (2 ranks) and pipeline
   (2 ranks, 1F1B): time per sample, peak memory per rank (tracemalloc: parameters + optimizer
   state + gradients + activations + temporaries), bytes sent per step per rank, recomputation,
   test accuracy after the same number of samples.

A case is ``python benchmarks/parallel_compare.py --case JSON`` (under ``mpiexec -n 2`` for the
2-rank ones); it prints one JSON line from rank 0.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # this checkout's chainrule, also in the driver process
MiB = 2**20


# --- one case -------------------------------------------------------------------------------------
def recipe_case(case: dict[str, Any]) -> dict[str, Any]:
    """Part A: the README recipe through the Trainer's own step (compile on, as `chainrule train`)."""
    from chainrule.train.config import Config
    from chainrule.train.trainer import Trainer

    common = dict(
        batch_size=256, epochs=1, limit_test=2000, parallel=case["parallel"], microbatches=case.get("micro", 1),
        data_reduce=case.get("reduce", "shared"),
    )  # fmt: skip
    if case.get("recipe") == "default":  # `chainrule train` as it comes: the section model, SGD
        cfg = Config(**common)  # type: ignore[arg-type]
    else:
        cfg = Config(
            model="mlp", hidden=1024, optimizer="adam", lr=1e-3, dropout=0.3, init="he_uniform", standardize=True,
            **common,  # type: ignore[arg-type]
        )  # fmt: skip
    trainer = Trainer(cfg, os.devnull, quiet=True)
    steps = case["steps"]
    seen = 0
    start = None
    for k, sel in enumerate(trainer.loader.index_batches(0)):
        if k == 3:  # warm-up (compile capture, allocator) excluded
            if trainer.comm is not None:
                trainer.comm.barrier()
            start = time.perf_counter()
            seen = 0
        if k == steps + 3:
            break
        xb, yb = trainer._batch(sel)  # this rank's shard under data parallelism
        trainer.optimizer.zero_grad()
        trainer._step(xb, yb, len(sel))
        trainer.optimizer.step()
        seen += len(sel)
    assert start is not None
    if trainer.comm is not None:
        trainer.comm.barrier()
    seconds = time.perf_counter() - start
    trainer._sync_stages()
    from chainrule.train.build import accuracy

    acc = accuracy(trainer.model, trainer.x_test, trainer.y_test)
    sent = trainer.comm.sent_bytes if trainer.comm is not None else 0
    shared = getattr(trainer.dp, "shared_bytes_read", 0)  # peers' gradients read through shared memory
    return {
        "samples_per_s": seen / seconds,
        "test_acc": acc,
        "sent_MiB_total": sent / MiB,
        "shared_read_MiB_total": shared / MiB,
        "rank": trainer.rank,
    }


def deep_model(width: int, depth: int, seed: int = 0) -> Any:
    from chainrule import nn

    rng = np.random.default_rng(seed)
    layers: list[Any] = [nn.Linear(784, width, init="he_uniform", rng=rng), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width, init="he_uniform", rng=rng), nn.ReLU()]
    layers.append(nn.Linear(width, 10, init="he_uniform", rng=rng))
    return nn.Sequential(*layers)


def deep_case(case: dict[str, Any]) -> dict[str, Any]:
    """Part B: the deep MLP under one memory-saving strategy."""
    import chainrule.nn.functional as F
    from chainrule.core.constructors import as_tensor
    from chainrule.data import as_float_inputs, load_fashion_mnist
    from chainrule.optim import Adam
    from chainrule.parallel import Comm, DataParallel, Pipeline, accumulate, shard
    from chainrule.transforms.remat import sqrt_segments

    mode, batch, steps = case["mode"], case["batch"], case["steps"]
    width, depth = case["width"], case["depth"]
    data = load_fashion_mnist(None)
    x = as_float_inputs(data.train_images)
    mean, std = x.mean(), x.std()
    x = (x - mean) / std
    y = data.train_labels.astype(np.int64)
    xt = (as_float_inputs(data.test_images[:2000]) - mean) / std
    yt = data.test_labels[:2000].astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))

    model = deep_model(width, depth)
    comm = Comm() if mode in ("data", "pipeline") else None
    rank = comm.rank if comm is not None else 0
    params = model.parameters()
    pipe = dp = None
    if mode == "pipeline":
        assert comm is not None
        pipe = Pipeline(model, comm, sample=x[:1], schedule="1f1b")
        owned = {id(p) for p in pipe.params}
        keep = [p.numpy() for p in params]  # other stages' weights: not this rank's memory
        for p in params:
            if id(p) not in owned:
                p.data = np.empty((0,), np.float32)
        params = pipe.params
    if mode == "data":
        assert comm is not None
        dp = DataParallel(params, comm)
    if mode == "checkpoint":
        layers_per_segment = sqrt_segments(depth)
        model.checkpoint_every = 2 * layers_per_segment  # Linear + ReLU per layer
    opt = Adam(params, 1e-3)
    micro = case.get("micro", 1)

    def step_fn(xb: Any, yb: Any) -> Any:
        logits = model(xb)
        J = F.cross_entropy(logits, yb)
        J.backward()
        return J, logits

    def step(k: int) -> float:
        idx = order[(k * batch) % len(x) :][:batch]
        xb, yb = x[idx], y[idx]
        opt.zero_grad()
        if pipe is not None:
            loss, _ = pipe.step(xb, yb, F.cross_entropy, micro)
        elif dp is not None:
            assert comm is not None
            part = shard(len(xb), comm.rank, comm.size)
            loss, _ = accumulate(step_fn, params, xb[part], yb[part], micro, len(xb))
            dp.allreduce_gradients(1.0)
        else:
            loss, _ = accumulate(step_fn, params, xb, yb, micro)
        opt.step()
        return loss

    owned_param_bytes = sum(p.numpy().nbytes for p in params)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    step(0)
    step(1)
    peak = tracemalloc.get_traced_memory()[1] - base + owned_param_bytes
    tracemalloc.stop()
    sent0 = comm.sent_bytes if comm is not None else 0
    if comm is not None:
        comm.barrier()
    start = time.perf_counter()
    for k in range(2, steps):
        step(k)
    if comm is not None:
        comm.barrier()
    seconds = time.perf_counter() - start
    sent_per_step = ((comm.sent_bytes - sent0) / (steps - 2)) if comm is not None else 0.0
    if pipe is not None:
        for p, d in zip(model.parameters(), keep, strict=True):
            if p.size == 0:
                p.data = d
        pipe.sync_parameters(model.parameters(), model)
    from chainrule.core.state import no_grad

    with no_grad():
        acc = float((model(as_tensor(xt)).numpy().argmax(1) == yt).mean())
    result = {
        "rank": rank,
        "peak_MiB": peak / MiB,
        "params_MiB": owned_param_bytes / MiB,
        "maxrss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "ms_per_sample": 1000 * seconds / ((steps - 2) * batch),
        "sent_MiB_per_step": sent_per_step / MiB,
        "test_acc": acc,
        "samples": steps * batch,
    }
    if comm is not None:  # every rank's peak: the table shows the largest
        peaks = comm.comm.gather(result["peak_MiB"], root=0)
        rss = comm.comm.gather(result["maxrss_MiB"], root=0)
        if rank == 0:
            result["peak_MiB_ranks"] = peaks
            result["maxrss_MiB_ranks"] = rss
            result["peak_MiB"] = max(peaks)
    return result


def remat_table(depth: int = 16, width: int = 256, batch: int = 1024, repeats: int = 3) -> list[dict[str, Any]]:
    """Part C: checkpoint every k layers of a deep MLP: saved bytes, peak during backward, time."""
    import chainrule as cr
    from chainrule import nn
    from chainrule.core.backward import toposort

    x = np.random.default_rng(0).standard_normal((batch, width)).astype(np.float32)
    act = batch * width * 4
    rows = []
    for k in (0, 1, 2, 4, 8, 16):
        rng = np.random.default_rng(1)
        layers: list[Any] = []
        for _ in range(depth):
            layers += [nn.Linear(width, width, rng=rng), nn.Tanh()]
        model = nn.Sequential(*layers, checkpoint_every=2 * k)
        param_ids = {id(p.numpy()) for p in model.parameters()}
        times = []
        for r in range(repeats + 1):
            model.zero_grad()
            if r == 0:
                tracemalloc.start()
                base = tracemalloc.get_traced_memory()[0]
            start = time.perf_counter()
            loss = (model(cr.tensor(x)) ** 2).mean()
            if r == 0:
                saved = {id(a): a for n in toposort([loss.node]) for a in n.saved_arrays()}
                saved_act = sum(  # parameters (and their transposed views) are not activations
                    a.nbytes for i, a in saved.items() if i not in param_ids and id(a.base) not in param_ids
                )
            loss.backward()
            if r == 0:
                peak = tracemalloc.get_traced_memory()[1] - base
                tracemalloc.stop()
            else:
                times.append(time.perf_counter() - start)
        rows.append(
            {"k": k, "saved_acts": saved_act / act, "peak_acts": peak / act, "ms": 1000 * float(np.median(times))}
        )
    return rows


# --- the driver -------------------------------------------------------------------------------------
def launch(case: dict[str, Any], ranks: int = 1, threads: int = 1) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, __file__, "--case", json.dumps(case)]
    if case.get("independent"):  # `ranks` copies of a 1-process case at once: what the cores give with no communication
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) for _ in range(ranks)]
        results = [
            json.loads([ln for ln in p.communicate(timeout=1800)[0].splitlines() if ln.startswith("{")][-1])
            for p in procs
        ]
        if any(p.returncode for p in procs):
            raise RuntimeError(f"case {case} failed")
        return {**results[0], "samples_per_s": sum(r["samples_per_s"] for r in results)}
    if ranks > 1:
        mpiexec = shutil.which("mpiexec") or str(Path(sys.executable).parent / "mpiexec")
        cmd = [mpiexec, "-bind-to", "core", "-n", str(ranks), *cmd]  # one core per rank, as docs/parallel.md advises
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{out.stderr[-3000:]}")
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1]
    result: dict[str, Any] = json.loads(line)
    return result


def load() -> str:
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=5, help="part A: rounds of every configuration")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "PARALLEL.md"))
    ap.add_argument("--only-c", action="store_true", help="redo part C, keep A and B from the .json")
    args = ap.parse_args()
    if args.case:
        case = json.loads(args.case)
        if case["part"] == "C":
            print(json.dumps({"rows": remat_table()}), flush=True)
            return
        result = recipe_case(case) if case["part"] == "A" else deep_case(case)
        if result["rank"] == 0:
            print(json.dumps(result), flush=True)
        return

    if args.only_c:
        raw = json.loads(Path(args.out).with_suffix(".json").read_text())
        raw["C"] = launch({"part": "C"})["rows"]
        Path(args.out).with_suffix(".json").write_text(json.dumps(raw, indent=1) + "\n")
        write_report(Path(args.out), raw["A"], raw["B"], raw["base"], raw["loads"], raw["steps_a"], raw["C"])
        return
    steps_a = 30 if args.quick else 150
    strong = "README recipe (`--model mlp --hidden 1024`, Adam, dropout 0.3, batch 256)"
    default = "`chainrule train` as it comes (the section model 784-256-10, SGD, batch 256)"
    allreduce = {"parallel": "data", "reduce": "allreduce"}
    default_dp = {"parallel": "data", "recipe": "default"}
    independent = {"parallel": "none", "independent": True}
    a_cases = [
        (strong, "1 process, 1 thread", {"parallel": "none"}, 1, 1),
        (strong, "1 process, 2 threads", {"parallel": "none"}, 1, 2),
        (strong, "data parallel, 2 ranks × 1 thread (sharded Adam, shared memory)", {"parallel": "data"}, 2, 1),
        (strong, "data parallel, 2 ranks × 1 thread (`--data-reduce allreduce`)", allreduce, 2, 1),
        (strong, "2 independent processes × 1 thread, no communication (what 2 cores give)", independent, 2, 1),
        (strong, "pipeline, 2 ranks × 1 thread, 4 microbatches", {"parallel": "pipeline", "micro": 4}, 2, 1),
        (strong, "1 process, 4 microbatches", {"parallel": "none", "micro": 4}, 1, 1),
        (default, "1 process, 1 thread", {"parallel": "none", "recipe": "default"}, 1, 1),
        (default, "1 process, 2 threads", {"parallel": "none", "recipe": "default"}, 1, 2),
        (default, "data parallel, 2 ranks × 1 thread (sharded, shared memory)", default_dp, 2, 1),
        (default, "2 independent processes × 1 thread, no communication", {**independent, "recipe": "default"}, 2, 1),
    ]  # fmt: skip
    loads = [load()]
    runs: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(a_cases))}
    for _ in range(args.repeats):  # round-robin: a burst of other load does not hit one configuration only
        for i, (_, name, extra, ranks, threads) in enumerate(a_cases):
            runs[i].append(launch({"part": "A", "steps": steps_a, **extra}, ranks, threads))
            print(name, runs[i][-1], file=sys.stderr)
    part_a = []
    for i, (recipe, name, _, ranks, _) in enumerate(a_cases):
        base = next(j for j, c in enumerate(a_cases) if c[0] == recipe)  # that recipe's 1 process, 1 thread
        best = dict(max(runs[i], key=lambda r: r["samples_per_s"]))
        best["all"] = [round(r["samples_per_s"]) for r in runs[i]]
        best["median"] = float(np.median([r["samples_per_s"] for r in runs[i]]))
        # each round's ratio to the 1-process run of the same round (run seconds apart): a slow spell of
        # the machine then moves both sides of a ratio, not one
        best["ratios"] = [r["samples_per_s"] / b["samples_per_s"] for r, b in zip(runs[i], runs[base], strict=True)]
        part_a.append((recipe, name, ranks, best))
    loads.append(load())

    # activations (batch × width × 4 bytes a layer) outweigh parameters and Adam's state here
    width, depth, batch = (256, 8, 1024) if args.quick else (256, 8, 2048)
    steps_b = 6 if args.quick else 10
    base = {"part": "B", "width": width, "depth": depth, "batch": batch, "steps": steps_b}
    b_cases = [
        (f"plain (batch {batch})", {"mode": "plain"}, 1),
        ("checkpointing, √n segments", {"mode": "checkpoint"}, 1),
        ("microbatching, k = 4", {"mode": "plain", "micro": 4}, 1),
        (f"smaller minibatch ({batch // 4})", {"mode": "plain", "batch": batch // 4, "steps": 4 * steps_b}, 1),
        ("data parallel, 2 ranks", {"mode": "data"}, 2),
        ("pipeline 1F1B, 2 ranks, 4 microbatches", {"mode": "pipeline", "micro": 4}, 2),
    ]
    part_b = []
    for name, extra, ranks in b_cases:
        r = launch({**base, **extra}, ranks, 1)
        part_b.append((name, ranks, r))
        print(name, r, file=sys.stderr)
    loads.append(load())
    part_c = launch({"part": "C"})["rows"]  # one BLAS thread, like every other case
    print(part_c, file=sys.stderr)
    raw = {"A": part_a, "B": part_b, "C": part_c, "base": base, "loads": loads, "steps_a": steps_a}
    Path(args.out).with_suffix(".json").write_text(json.dumps(raw, indent=1) + "\n")
    write_report(Path(args.out), part_a, part_b, base, loads, steps_a, part_c)


def write_report(
    path: Path,
    part_a: list[Any],
    part_b: list[Any],
    base: dict[str, Any],
    loads: list[str],
    steps_a: int,
    part_c: list[dict[str, Any]],
) -> None:
    lines = [
        "# When the graph outgrows one memory: measured",
        "",
        "Generated by `python benchmarks/parallel_compare.py` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{os.cpu_count()} CPU cores, load average during the run {' → '.join(loads)}. MPI rows run under "
        "`mpiexec -bind-to core -n 2`.",
        "",
        "## A. Throughput of one process against two (one BLAS thread per process)",
        "",
        f"{steps_a} timed steps after 3 warm-up steps; every configuration run {len(part_a[0][3]['all'])} times, "
        "round-robin; best and median of the runs, all runs listed. *Speed-up*: each round's samples/s over the "
        "same round's 1-process, 1-thread run (the median of those per-round ratios, and their range). Accuracy on "
        "2000 test images after those steps. "
        "*MiB sent*: bytes this rank handed to MPI; *MiB shared*: peers' gradient bytes this rank read through "
        "MPI shared memory.",
    ]
    recipe = None
    for rec, name, ranks, r in part_a:
        if rec != recipe:
            recipe = rec
            lines += [
                "",
                f"### {rec}",
                "",
                "| configuration | processes | samples/s best (median; runs) | speed-up over 1 process, 1 thread: "
                "median (range) | MiB sent per rank | MiB shared per rank | test acc |",
                "|---|---|---|---|---|---|---|",
            ]
        lines.append(
            f"| {name} | {ranks} | {r['samples_per_s']:.0f} ({r['median']:.0f}; {', '.join(map(str, r['all']))}) | "
            f"{np.median(r['ratios']):.2f}× ({min(r['ratios']):.2f}–{max(r['ratios']):.2f}) | "
            f"{r['sent_MiB_total']:.1f} | {r.get('shared_read_MiB_total', 0.0):.1f} | {r['test_acc']:.3f} |"
        )
    lines += [
        "",
        f"## B. A deep MLP over a per-process budget (784 → {base['depth']} × {base['width']} → 10, ReLU, Adam, "
        f"global batch {base['batch']})",
        "",
        "Peak memory per rank: tracemalloc of one rank's first two steps (optimizer state is created in the first), "
        "plus the parameters that rank owns; the largest rank is shown. Accuracy on 2000 test images after the "
        "same number of samples in every row.",
        "",
        "| strategy | ranks | peak MiB / rank (each rank) | parameters MiB / rank | ms / sample | "
        "MiB sent / step / rank | samples | test acc |",
        "|---|---|---|---|---|---|---|---|",
    ]
    plain = part_b[0][2]
    for name, ranks, r in part_b:
        each = ", ".join(f"{v:.0f}" for v in r.get("peak_MiB_ranks", [r["peak_MiB"]]))
        lines.append(
            f"| {name} | {ranks} | {r['peak_MiB']:.0f} ({each}) | {r['params_MiB']:.1f} | {r['ms_per_sample']:.3f} "
            f"({r['ms_per_sample'] / plain['ms_per_sample']:.2f}×) | {r['sent_MiB_per_step']:.2f} | {r['samples']} | "
            f"{r['test_acc']:.3f} |"
        )
    lines += ["", "![peak memory and time per sample](parallel_compare.png)", ""]
    lines += [
        "## C. Checkpointing every k layers (16 × Linear(256, 256) + tanh, batch 1024, one process)",
        "",
        "In units of one activation (1024 × 256 × 4 bytes = 1 MiB). *Saved*: arrays the graph keeps after the "
        "forward, parameters excluded. *Peak*: tracemalloc from the start of the forward to the end of the "
        "backward, the parameters' gradients (4 MiB here) included. Time: forward + backward, median of 3. "
        "Expected: saved ≈ 16/k segment inputs (+ the input and output), peak ≈ 16/k + k + gradients.",
        "",
        "| layers per segment k | saved | peak | forward+backward ms | recompute cost |",
        "|---|---|---|---|---|",
    ]
    t0 = part_c[0]["ms"]
    for row in part_c:
        label = "none (plain)" if row["k"] == 0 else str(row["k"]) + (" (√16)" if row["k"] == 4 else "")
        lines.append(
            f"| {label} | {row['saved_acts']:.1f} | {row['peak_acts']:.1f} | {row['ms']:.0f} | "
            f"{row['ms'] / t0 - 1:+.0%} |"
        )
    lines.append("")
    path.write_text("\n".join(lines) + "\n")
    try:
        plot(path.with_name("parallel_compare.png"), part_b)
    except ImportError:
        pass


def plot(path: Path, part_b: list[Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, _ranks, r in part_b:
        ax.scatter(r["peak_MiB"], r["ms_per_sample"], s=60)
        ax.annotate(name, (r["peak_MiB"], r["ms_per_sample"]), fontsize=8, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("peak memory per rank (MiB)")
    ax.set_ylabel("ms per sample (wall clock)")
    ax.set_title("Deep MLP: memory vs time per strategy")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
