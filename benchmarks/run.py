"""Run the benchmark suite and print a Markdown table (medians, same run, ratios, targets).

    python benchmarks/run.py                # everything (about 15 minutes)
    python benchmarks/run.py --quick        # fewer steps, no 30-epoch training (about 2 minutes)
    python benchmarks/run.py --write        # also write benchmarks/RESULTS.md

Each framework runs each workload in a fresh process; processes are interleaved across
repeats so that drift in machine speed affects all frameworks alike.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAMES = {
    "chainrule": "chainrule",
    "chainrule-compiled": "chainrule + cr.compile",
    "torch": "PyTorch eager",
    "numpy": "NumPy (hand)",
    "autograd": "HIPS autograd",
    "jax": "JAX (jit)",
}


# The rows kept from earlier runs (d2l, deep, tiny, per-op, hvp, training) run every framework's
# process with these glibc allocator settings, as before, for continuity. The "section" rows
# (the objective as users write it, benchmarks/section.py) run with none: the headline.
ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": str(64 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}
TUNING = tuple(ALLOCATOR) + ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CHAINRULE_THREADS")
# workload -> (script, allocator variables?, one busy process beside it?)
SECTION = {
    "section": ("section.py", False, False),
    "section-alloc": ("section.py", True, False),
    "section-busy": ("section.py", False, True),
}


def available() -> list[str]:
    found = ["chainrule", "chainrule-compiled", "numpy"]
    for mod, name in (("torch", "torch"), ("autograd", "autograd"), ("jax", "jax")):
        if importlib.util.find_spec(mod) is not None:
            found.append(name)
    return found


def worker(framework: str, workload: str, steps: int) -> dict:
    script, allocator, busy = SECTION.get(workload, ("workers.py", True, False))
    if workload == "graph-size":
        script, allocator = "graph_size.py", False
        cmd = [sys.executable, str(HERE / script), framework, "--n", ",".join(str(n) for n in GRAPH_SIZES)]
    elif script == "section.py":
        cmd = [sys.executable, str(HERE / script), framework, "--steps", str(steps)]
    else:
        cmd = [sys.executable, str(HERE / script), framework, workload, "--steps", str(steps)]
    env = {k: v for k, v in os.environ.items() if k not in TUNING}  # no tuning inherited from the caller
    env["PYTHONPATH"] = str(HERE.parent / "src")
    if allocator:
        env |= ALLOCATOR
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    if res.returncode != 0:
        raise RuntimeError(f"{framework}/{workload} failed:\n{res.stderr[-2000:]}")
    lines = [json.loads(line) for line in res.stdout.strip().splitlines() if line.startswith("{")]
    if workload == "graph-size":  # one line per graph size: µs per op (record + backward) at each n
        return {f"us_per_op_{line['n']}": line["total_us"] for line in lines}
    return lines[-1]


GRAPH_SIZES = (1_000, 100_000, 1_000_000)


def measure(jobs: list[tuple[str, str, int]], repeats: int) -> dict[tuple[str, str], dict[str, float]]:
    samples: dict[tuple[str, str], list[dict]] = {}
    for r in range(repeats):
        for fw, wl, steps in jobs:
            t = time.perf_counter()
            samples.setdefault((fw, wl), []).append(worker(fw, wl, steps))
            print(f"  [{r + 1}/{repeats}] {fw:9s} {wl:12s} {time.perf_counter() - t:6.1f}s", file=sys.stderr)
    return {k: {m: statistics.median(s[m] for s in v) for m in v[0]} for k, v in samples.items()}


def fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:.0f}"


def build_table(res: dict, frameworks: list[str]) -> tuple[str, list[tuple[str, bool]]]:
    def get(fw: str, wl: str, metric: str) -> float | None:
        return res.get((fw, wl), {}).get(metric)

    cols = [f for f in ["chainrule", "chainrule-compiled", "torch", "numpy", "autograd", "jax"] if f in frameworks]
    rows = []
    checks: list[tuple[str, bool]] = []
    metrics = [
        ("section", "step_ms", "section objective as users write it, no tuning: step (ms)"),
        ("section", "faults_per_step", "section objective, no tuning: minor page faults per step"),
        ("section", "peak_mb", "section objective, no tuning: peak process memory (MB)"),
        ("section-busy", "step_ms", "section objective, no tuning, beside one busy process: step (ms)"),
        ("section-alloc", "step_ms", "section objective with the allocator variables: step (ms)"),
        ("d2l", "step_ms", "d2l 784-256-10 b256: training step (ms)"),
        ("d2l", "predict_ms", "d2l: prediction (ms)"),
        ("d2l", "peak_mb", "d2l: peak process memory (MB)"),
        ("deep", "step_ms", "deep 784-1024x3-10 b256: training step (ms)"),
        ("deep", "gflops", "deep: achieved GFLOP/s"),
        ("tiny", "step_ms", "tiny 2-16-2 b8: training step (ms)"),
        ("perop", "us_per_op", "per-op: record + backward of tanh (µs)"),
        ("hvp", "grad_ms", "section model: gradient (ms)"),
        ("hvp", "hvp_ms", "section model: Hessian-vector product (ms)"),
        ("hvp", "ratio", "section model: HVP time / gradient time"),
        ("hvp", "hvp_fwd_ms", "section model: HVP forward-over-reverse (ms)"),
        ("hvp", "fwd_over_rev", "section model: HVP forward-over-reverse / reverse-over-reverse"),
        ("hvp", "forward_ms", "section model: forward pass, recorded (ms)"),
        ("hvp", "jvp_ms", "section model: cr.jvp, forward mode (ms)"),
        ("hvp", "jvp_ratio", "section model: jvp time / recorded forward time"),
        ("fmnist", "epoch_s", "Fashion-MNIST, default recipe: s/epoch"),
        ("fmnist", "test_accuracy", "Fashion-MNIST, default recipe: test accuracy"),
        ("fmnist-best", "epoch_s", "Fashion-MNIST, README recipe: s/epoch"),
        ("fmnist-best", "test_accuracy", "Fashion-MNIST, README recipe: test accuracy"),
    ]
    header = (
        "| workload | "
        + " | ".join(NAMES[c] for c in cols)
        + " | chainrule / PyTorch | chainrule / NumPy | compiled / PyTorch | compiled / NumPy |"
    )
    rows.append(header)
    rows.append("|" + "---|" * (len(cols) + 5))
    for wl, metric, label in metrics:
        vals = [get(c, wl, metric) for c in cols]
        if all(v is None for v in vals):
            continue
        pt, npy = get("torch", wl, metric), get("numpy", wl, metric)
        ratios = []
        for ours in (get("chainrule", wl, metric), get("chainrule-compiled", wl, metric)):
            ratios.append(f"{ours / pt:.2f}" if ours is not None and pt else "-")
            ratios.append(f"{ours / npy:.2f}" if ours is not None and npy else "-")
        rows.append(f"| {label} | " + " | ".join(fmt(v) for v in vals) + " | " + " | ".join(ratios) + " |")
    limit = get("numpy", "matmul", "gflops")
    if limit:
        rows.append(
            f"| NumPy matmul alone, deep's products (GFLOP/s, the practical limit) | {fmt(limit)} |"
            + " |" * (len(cols) + 1)
        )
    floor, auto = get("numpy", "perop", "bare_tape_us"), get("autograd", "perop", "us_per_op")
    if floor is not None:
        # what the per-op targets leave for the engine: the bare tape is the floor under any Python engine
        budget = f"; autograd / 3 = {fmt(auto / 3)}" if auto else ""
        rows.append(
            f"| per-op floor: a bare Python tape, no checks (µs){budget} | {fmt(floor)} |" + " |" * (len(cols) + 1)
        )
    sizes = res.get(("chainrule", "graph-size"))
    if sizes:
        per = " / ".join(fmt(sizes[f"us_per_op_{n}"]) for n in GRAPH_SIZES)
        rows.append(
            f"| chainrule per-op record + backward in a chain of 1e3 / 1e5 / 1e6 tanh (µs) | {per} |"
            + " |" * (len(cols) + 1)
        )
    mem = res.get(("chainrule", "memory"))
    if mem:
        rows.append(
            f"| chainrule RSS after 100 / {mem['steps']:.0f} d2l steps (MB) | {mem['rss_after_100_mb']:.1f} / "
            f"{mem['rss_after_all_mb']:.1f} |" + " |" * (len(cols) + 1)
        )

    def ratio(wl: str, metric: str, other: str, ours: str = "chainrule") -> float | None:
        a, b = get(ours, wl, metric), get(other, wl, metric)
        return a / b if a is not None and b else None

    def check(name: str, value: float | None, ok: bool) -> None:
        if value is not None:
            checks.append((f"{name}: {value:.3g}", ok))

    v = ratio("section", "step_ms", "torch")
    check("section objective, no tuning: eager / PyTorch <= 1.0", v, v is not None and v <= 1.0)
    v = ratio("section", "step_ms", "numpy")
    check("section objective, no tuning: eager / NumPy <= 1.3", v, v is not None and v <= 1.3)
    v = ratio("section", "step_ms", "numpy", "chainrule-compiled")
    check("section objective, no tuning: compiled / NumPy <= 1.0", v, v is not None and v <= 1.0)
    v = ratio("section-busy", "step_ms", "torch")
    check("section objective beside one busy process: eager / PyTorch <= 1.0", v, v is not None and v <= 1.0)
    for wl in ("d2l", "deep"):
        v = ratio(wl, "step_ms", "jax", "chainrule-compiled")
        check(f"compiled: {wl} step / JAX jit <= 1.0", v, v is not None and v <= 1.0)
    v = ratio("tiny", "step_ms", "numpy", "chainrule-compiled")
    check("compiled: tiny step / NumPy <= 1.3", v, v is not None and v <= 1.3)
    if sizes:
        for n in GRAPH_SIZES[1:]:
            v = sizes[f"us_per_op_{n}"] / sizes[f"us_per_op_{GRAPH_SIZES[0]}"]
            check(f"per-op cost at {n:,} ops / at {GRAPH_SIZES[0]:,} ops <= 1.2", v, v <= 1.2)
    for ours, tag in (("chainrule", "eager"), ("chainrule-compiled", "compiled")):
        v = ratio("d2l", "step_ms", "torch", ours)
        check(f"{tag}: d2l step / PyTorch <= 1.0", v, v is not None and v <= 1.0)
        v = ratio("d2l", "step_ms", "numpy", ours)
        check(f"{tag}: d2l step / NumPy <= 1.15", v, v is not None and v <= 1.15)
        v = ratio("deep", "step_ms", "torch", ours)
        check(f"{tag}: deep step / PyTorch <= 1.0", v, v is not None and v <= 1.0)
        g = get(ours, "deep", "gflops")
        if g is not None and limit:
            check(f"{tag}: deep GFLOP/s / NumPy matmul GFLOP/s >= 0.75", g / limit, g / limit >= 0.75)
        v = ratio("tiny", "step_ms", "torch", ours)
        check(f"{tag}: tiny step / PyTorch <= 1.0", v, v is not None and v <= 1.0)
        v = ratio("perop", "us_per_op", "torch", ours)
        check(f"{tag}: per-op / PyTorch <= 0.5 (issue 2 asks <= 2)", v, v is not None and v <= 0.5)
        v = ratio("perop", "us_per_op", "autograd", ours)
        if v is not None:
            check(f"{tag}: HIPS autograd per-op / chainrule per-op >= 3", 1 / v, 1 / v >= 3)
    v = get("chainrule", "hvp", "ratio")
    check("HVP / gradient <= 3", v, v is not None and v <= 3)
    # the tangent of x @ W is a second product of the same size: no forward mode is near 1x a forward,
    # so the target is PyTorch's forward mode (torch.func.jvp) on the same objective
    v = ratio("hvp", "jvp_ms", "torch")
    check("cr.jvp / torch.func.jvp <= 1.0", v, v is not None and v <= 1.0)
    v = ratio("d2l", "peak_mb", "numpy")
    check("d2l peak memory / NumPy <= 1.3", v, v is not None and v <= 1.3)
    v = ratio("fmnist", "epoch_s", "torch")
    check("Fashion-MNIST s/epoch / PyTorch <= 0.7", v, v is not None and v <= 0.7)
    a, b = get("chainrule", "fmnist", "test_accuracy"), get("torch", "fmnist", "test_accuracy")
    if a is not None and b is not None:
        check("default recipe: |accuracy - PyTorch's| <= 0.01", abs(a - b), abs(a - b) <= 0.01)
    a = get("chainrule", "fmnist-best", "test_accuracy")
    check("README recipe accuracy >= 0.885", a, a is not None and a >= 0.885)
    if mem:
        check("RSS growth 100 -> N steps <= 5%", mem["growth_pct"], abs(mem["growth_pct"]) <= 5)
    return "\n".join(rows), checks


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy

    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, NumPy {numpy.__version__}" + (
        f", PyTorch {__import__('torch').__version__}" if importlib.util.find_spec("torch") else ""
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--smoke", action="store_true", help="a few steps of each, to test the harness")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--only", default=None, help="comma-separated workloads")
    p.add_argument("--write", action="store_true", help="write benchmarks/RESULTS.md")
    args = p.parse_args()
    fws = available()
    scale = 0.02 if args.smoke else (0.2 if args.quick else 1.0)
    repeats = args.repeats or (1 if args.smoke else 5)

    def n(steps: int) -> int:
        return max(int(steps * scale), 3)

    jobs: list[tuple[str, str, int]] = []
    for wl in SECTION:
        for fw in fws:
            if fw in ("chainrule", "chainrule-compiled", "torch", "numpy") or (fw == "jax" and wl == "section"):
                jobs.append((fw, wl, n(300)))
    for wl, steps in (("d2l", 300), ("deep", 100), ("tiny", 2000), ("perop", 50000), ("hvp", 30)):
        for fw in fws:
            if wl == "hvp" and fw not in ("chainrule", "torch"):
                continue
            if fw == "chainrule-compiled" and wl == "hvp":
                continue
            jobs.append((fw, wl, n(steps)))
    jobs.append(("numpy", "matmul", n(40)))
    jobs.append(("chainrule", "memory", 10000 if not (args.quick or args.smoke) else 1000))
    if not args.smoke:
        jobs.append(("chainrule", "graph-size", 0))
    training: list[tuple[str, str, int]] = []
    if not args.smoke:
        for fw in ("chainrule", "torch", "numpy"):  # numpy: the default recipe by hand, the loop's floor
            if fw in fws:
                jobs.append((fw, "fmnist", 10 if not args.quick else 2))
                if not args.quick and fw != "numpy":
                    training.append((fw, "fmnist-best", 30))
    if args.only:
        keep = set(args.only.split(","))
        jobs = [j for j in jobs if j[1] in keep]
    if args.only:
        training = [j for j in training if j[1] in keep]
    print(f"frameworks: {', '.join(fws)}; {len(jobs) + len(training)} jobs", file=sys.stderr)
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    res = measure([j for j in jobs if j[1] not in ("memory", "graph-size")], repeats)
    # the 10,000-step memory run and the 30-epoch trainings run once; they report their own medians
    res |= measure([j for j in jobs if j[1] in ("memory", "graph-size")] + training, 1)
    (HERE / "last_run.json").write_text(json.dumps({f"{fw}|{wl}": v for (fw, wl), v in res.items()}, indent=1))
    table, checks = build_table(res, fws)
    cmd = "python benchmarks/run.py" + (" --quick" if args.quick else "") + (" --smoke" if args.smoke else "")
    lines = [
        f"Machine: {machine()}",
        f"Command: `{cmd}` ({time.strftime('%Y-%m-%d')}); medians of {repeats} interleaved processes; "
        f"load average at the start {load}. The section rows run with no tuning at all (no allocator or thread "
        f"variables; one spinning process beside the busy row); the other rows, as in earlier runs, with "
        f"{' '.join(f'{k}={v}' for k, v in ALLOCATOR.items())}",
        "",
        table,
        "",
        "Targets:",
        "",
        *[f"- [{'x' if ok else ' '}] {name}" for name, ok in checks],
    ]
    report = "\n".join(lines)
    print(report)
    if args.write:
        (HERE / "RESULTS.md").write_text("# Benchmark results\n\n" + report + "\n")


if __name__ == "__main__":
    main()
