"""``chainrule memory`` and ``chainrule cost``: the section's exercises 3 and 4 as commands.

``chainrule memory``: training vs prediction memory of the section's model (against batch
size) and of deeper MLPs (against depth), measured and predicted side by side, with plots.
``chainrule cost --second-order``: nodes, saved bytes, FLOPs and time of the gradient, two
Hessian-vector products and the full Hessian of a small instance of the section's objective.

Also runnable before it is wired into ``chainrule``: ``python -m chainrule.cli.measure memory``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.replace(",", " ").split()]


def add_parsers(subparsers: Any) -> None:
    """Add the ``memory`` and ``cost`` sub-commands to ``chainrule``'s sub-parsers."""
    m = subparsers.add_parser("memory", help="training vs prediction memory, measured and predicted (exercise 3)")
    m.add_argument("--model", default="section", choices=["section", "mlp"], help="model of the batch-size sweep")
    m.add_argument("--batch-sizes", type=_ints, default=[1, 4, 16, 64, 256, 1024, 4096])
    m.add_argument("--depths", type=_ints, default=[1, 2, 4, 8, 16, 32, 64], help="hidden layers (MLP sweep)")
    m.add_argument("--depth-batch", type=int, default=256, help="batch size of the depth sweep")
    m.add_argument("--hidden", type=int, default=256)
    m.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    m.add_argument("--optimizer", default="sgd", choices=["sgd", "momentum", "adam"])
    m.add_argument("--weight-decay", type=float, default=1e-3, help="λ of the section's penalty")
    m.add_argument("--predict-only", action="store_true", help="only the prediction from shapes (no measuring)")
    m.add_argument("--out", default=None, help="folder for tables and plots (e.g. docs/figures)")
    m.set_defaults(handler=memory_command)
    c = subparsers.add_parser("cost", help="FLOPs, saved bytes and time per node (exercise 4 with --second-order)")
    c.add_argument("--second-order", action="store_true", help="gradient vs HVP (rev, fwd) vs full Hessian")
    c.add_argument("--inputs", type=int, default=20, help="small instance for --second-order")
    c.add_argument("--hidden", type=int, default=8)
    c.add_argument("--outputs", type=int, default=3)
    c.add_argument("--batch", type=int, default=16)
    c.add_argument("--weight-decay", type=float, default=1e-3)
    c.add_argument("--repeat", type=int, default=5, help="timing: best of this many runs")
    c.add_argument("--out", default=None, help="folder for the table (e.g. docs/figures)")
    c.set_defaults(handler=cost_command)


def run(args: argparse.Namespace) -> int:
    """Run the sub-command ``args`` was parsed for (what ``chainrule``'s main calls)."""
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


# --- chainrule memory ---------------------------------------------------------------------


def _optimizer(name: str, params: list[Any]) -> Any:
    from chainrule.optim import SGD, Adam

    if name == "sgd":
        return SGD(params, 0.01)
    if name == "momentum":
        return SGD(params, 0.01, momentum=0.9)
    return Adam(params, 1e-3)


def build_mlp(depth: int, hidden: int, dtype: Any, inputs: int = 784, outputs: int = 10, seed: int = 0) -> Any:
    """``depth`` hidden layers of ``hidden`` ReLU units (the section's MLP, deeper)."""
    from chainrule.nn import Linear, ReLU, Sequential

    rng = np.random.default_rng(seed)
    layers: list[Any] = []
    d = inputs
    for _ in range(depth):
        layers += [Linear(d, hidden, rng=rng), ReLU()]
        d = hidden
    layers.append(Linear(d, outputs, rng=rng))
    model = Sequential(*layers)
    for p in model.parameters():
        p._data = p._data.astype(dtype)
    return model


def build_section(hidden: int, dtype: Any, weight_decay: float) -> Any:
    from chainrule.models import SectionMLP

    return SectionMLP(784, hidden, 10, weight_decay=weight_decay, dtype=dtype)


def measure_one(model: Any, optimizer_name: str, batch: int, dtype: Any, measure: bool = True) -> dict[str, Any]:
    """Training and prediction peaks of one model at one batch size: measured (optional) and predicted."""
    from chainrule.core.constructors import as_tensor
    from chainrule.measure import memory
    from chainrule.measure.shapes import ShapeDtype

    opt = _optimizer(optimizer_name, model.parameters())
    rng = np.random.default_rng(0)
    x = rng.random((batch, 784)).astype(dtype)
    y = rng.integers(0, 10, batch)
    row: dict[str, Any] = {"batch": batch, "parameters": int(sum(p._data.nbytes for p in model.parameters()))}
    t = time.perf_counter()
    est_train = memory.estimate(model, ShapeDtype(x.shape, dtype), ShapeDtype(y.shape, y.dtype), optimizer=opt)
    row["estimate_seconds"] = time.perf_counter() - t
    est_pred = memory.estimate(model, ShapeDtype(x.shape, dtype))
    row["predicted_train"], row["predicted_predict"] = est_train.peak, est_pred.peak
    row["predicted_breakdown"] = est_train.peak_categories()
    row["predicted_working_ratio"] = _working(est_train) / max(_working(est_pred), 1)
    row["predicted_saved"] = max(p.categories["activations"] for p in est_train.points)
    if measure:
        step = memory.training_step(model, opt)
        prof = memory.profile(step, as_tensor(x, dtype=x.dtype), y, optimizer=opt, warmup=1)
        model.zero_grad()
        pred = memory.profile(memory.prediction_step(model), as_tensor(x, dtype=x.dtype), model=model)
        row["measured_train"], row["measured_predict"] = prof.peak, pred.peak
        row["measured_breakdown"] = prof.peak_categories()
        row["error_train"] = (est_train.peak - prof.peak) / prof.peak
        row["error_predict"] = (est_pred.peak - pred.peak) / pred.peak
        row["ratio"] = prof.peak / pred.peak
        row["working_ratio"] = _working(prof) / max(_working(pred), 1)
        row["measured_saved"] = max(p.categories["activations"] for p in prof.points)
        row["_profile"] = prof
    else:
        row["ratio"] = est_train.peak / est_pred.peak
        row["working_ratio"] = row["predicted_working_ratio"]
    return row


def _working(prof: Any) -> int:
    """Peak bytes beyond the parameters and the input batch (what the step itself needs)."""
    cats = prof.peak_categories()
    return int(prof.peak - cats["parameters"] - cats["inputs"])


def _made_by() -> str:
    return f"Made by `chainrule {' '.join(sys.argv[1:])}`.\n\n"


def _mib(n: int) -> str:
    return f"{n / 2**20:.3f}"


def _table(rows: list[dict[str, Any]], key: str) -> str:
    measured = "measured_train" in rows[0]
    head = f"| {key} | params MiB | saved activations MiB (predicted) | train MiB predicted |"
    rule = "|---:|---:|---:|---:|"
    if measured:
        head += (
            " train MiB measured | error | predict MiB predicted | predict MiB measured | error | train/predict |"
            " same, beyond params+input |"
        )
        rule += "---:|---:|---:|---:|---:|---:|---:|"
    else:
        head += " predict MiB predicted | train/predict | same, beyond params+input |"
        rule += "---:|---:|---:|"
    lines = [head, rule]
    for r in rows:
        line = f"| {r[key]} | {_mib(r['parameters'])} | {_mib(r['predicted_saved'])} | {_mib(r['predicted_train'])} |"
        if measured:
            line += (
                f" {_mib(r['measured_train'])} | {100 * r['error_train']:+.2f}% | {_mib(r['predicted_predict'])} |"
                f" {_mib(r['measured_predict'])} | {100 * r['error_predict']:+.2f}% | {r['ratio']:.2f} |"
                f" {r['working_ratio']:.1f} |"
            )
        else:
            line += f" {_mib(r['predicted_predict'])} | {r['ratio']:.2f} | {r['working_ratio']:.1f} |"
        lines.append(line)
    return "\n".join(lines)


def _plot(rows: list[dict[str, Any]], key: str, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    xs = [r[key] for r in rows]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax.plot(xs, [r["predicted_train"] / 2**20 for r in rows], "C3-", label="training, predicted")
    ax.plot(xs, [r["predicted_predict"] / 2**20 for r in rows], "C0-", label="prediction, predicted")
    if "measured_train" in rows[0]:
        ax.plot(xs, [r["measured_train"] / 2**20 for r in rows], "C3o", label="training, measured")
        ax.plot(xs, [r["measured_predict"] / 2**20 for r in rows], "C0s", label="prediction, measured")
    ax.plot(xs, [r["parameters"] / 2**20 for r in rows], "k:", label="parameters")
    ax.plot(xs, [r["predicted_saved"] / 2**20 for r in rows], "C2--", label="saved activations (training)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(key)
    ax.set_ylabel("peak MiB")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax2.plot(xs, [r["ratio"] for r in rows], "k-o", label="whole peak")
    ax2.plot(xs, [r["working_ratio"] for r in rows], "C2-s", label="beyond parameters + input batch")
    ax2.set_xscale("log", base=2)
    ax2.set_yscale("log")
    ax2.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax2.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax2.legend(fontsize=8)
    ax2.set_xlabel(key)
    ax2.set_ylabel("peak training / peak prediction")
    ax2.set_title("training / prediction memory")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def memory_command(args: argparse.Namespace) -> int:
    dtype = np.dtype(args.dtype)
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    measure = not args.predict_only
    batch_rows = []
    for b in args.batch_sizes:
        model = (
            build_section(args.hidden, dtype, args.weight_decay)
            if args.model == "section"
            else build_mlp(1, args.hidden, dtype)
        )
        batch_rows.append(measure_one(model, args.optimizer, b, dtype, measure))
        print(f"batch {b}: done", file=sys.stderr, flush=True)
    depth_rows = []
    for d in args.depths:
        row = measure_one(build_mlp(d, args.hidden, dtype), args.optimizer, args.depth_batch, dtype, measure)
        row["depth"] = d
        depth_rows.append(row)
        print(f"depth {d}: done", file=sys.stderr, flush=True)
    what = f"{args.model} model, hidden {args.hidden}, {args.dtype}, {args.optimizer}"
    text = (
        f"### Peak memory against batch size ({what})\n\n{_table(batch_rows, 'batch')}\n\n"
        f"### Peak memory against depth (MLP, hidden {args.hidden}, batch {args.depth_batch}, {args.dtype}, "
        f"{args.optimizer})\n\n{_table(depth_rows, 'depth')}\n"
    )
    print(text)
    if out:
        (out / "memory_tables.md").write_text(_made_by() + text)
        _plot(batch_rows, "batch", out / "memory_vs_batch.png", f"{args.model} model: peak memory vs batch")
        _plot(depth_rows, "depth", out / "memory_vs_depth.png", f"MLP, batch {args.depth_batch}: peak vs depth")
        for r in batch_rows:
            prof = r.get("_profile")
            if prof is not None and r["batch"] == max(x["batch"] for x in batch_rows):
                prof.plot(str(out / "memory_timeline.png"), f"{args.model} model, batch {r['batch']}: one step")
                (out / "memory_timeline.md").write_text(_made_by() + prof.table() + "\n")
        clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in batch_rows + depth_rows]
        (out / "memory_sweep.json").write_text(json.dumps(clean, indent=1))
        print(f"wrote {out}/memory_tables.md, memory_vs_batch.png, memory_vs_depth.png, memory_timeline.png")
    return 0


# --- chainrule cost -------------------------------------------------------------------------


def second_order_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    import chainrule as cr
    from chainrule.measure import memory
    from chainrule.measure.cost import FlopCounter
    from chainrule.models import SectionMLP
    from chainrule.ops import reshape

    d, h, k, n = args.inputs, args.hidden, args.outputs, args.batch
    model = SectionMLP(d, h, k, weight_decay=args.weight_decay, dtype=np.float64, seed=0)
    rng = np.random.default_rng(0)
    x = cr.as_tensor(rng.standard_normal((n, d)), dtype=np.float64)
    y = rng.integers(0, k, n)
    sizes = [h * d, k * h]

    def J(theta: Any) -> Any:  # the section's objective as a function of all parameters, flattened
        model.W1 = reshape(theta[: sizes[0]], (h, d))
        model.W2 = reshape(theta[sizes[0] :], (k, h))
        return model.objective(x, y)["J"]

    theta = np.concatenate([rng.standard_normal(s) * 0.3 for s in sizes])
    v = rng.standard_normal(theta.size)
    jobs: list[tuple[str, Callable[[], Any]]] = [
        ("gradient (reverse)", lambda: cr.grad(J)(theta)),
        ("HVP reverse-over-reverse", lambda: cr.hvp(J, theta, v, mode="rev")),
        ("HVP forward-over-reverse", lambda: cr.hvp(J, theta, v)),
        (f"full Hessian ({theta.size}×{theta.size})", lambda: cr.hessian(J)(theta)),
    ]
    rows: list[dict[str, Any]] = []
    for name, job in jobs:
        job()  # warm up
        best = float("inf")
        for _ in range(args.repeat if name.startswith(("grad", "HVP")) else 1):
            t = time.perf_counter()
            job()
            best = min(best, time.perf_counter() - t)
        with FlopCounter() as counter:
            job()
        prof = memory.profile(job, stride=1 if name.startswith(("grad", "HVP")) else 400)
        acts = max(p.categories["activations"] for p in prof.points)
        rows.append(
            {
                "computation": name,
                "nodes": counter.nodes,
                "peak_saved_bytes": acts,
                "peak_bytes": prof.peak,
                "flops": counter.flops,
                "seconds": best,
            }
        )
    base = rows[0]
    for r in rows:
        r["time_vs_gradient"] = r["seconds"] / base["seconds"]
        r["flops_vs_gradient"] = r["flops"] / max(base["flops"], 1)
    return rows


def cost_command(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    if args.second_order:
        rows = second_order_rows(args)
        p = args.hidden * args.inputs + args.outputs * args.hidden
        lines = [
            f"Section objective J = L + λ/2(‖W1‖² + ‖W2‖²), d={args.inputs}, hidden={args.hidden}, "
            f"q={args.outputs}, batch {args.batch}, float64, {p} parameters, λ={args.weight_decay}",
            "",
            "| computation | nodes recorded | peak saved bytes | peak bytes (measured) | FLOPs | "
            f"time ms (best of {args.repeat}; Hessian: 1 run) | time / gradient | FLOPs / gradient |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            lines.append(
                f"| {r['computation']} | {r['nodes']} | {r['peak_saved_bytes']:,} | {r['peak_bytes']:,} | "
                f"{r['flops']:,} | {r['seconds'] * 1e3:.3f} | {r['time_vs_gradient']:.1f}× | "
                f"{r['flops_vs_gradient']:.1f}× |"
            )
        text = "\n".join(lines)
        print(text)
        if out:
            (out / "cost_second_order.md").write_text(_made_by() + text + "\n")
            (out / "cost_second_order.json").write_text(json.dumps(rows, indent=1))
        return 0
    # first order: FLOPs per primitive from shapes, and a timed step of the section's model
    import chainrule as cr
    from chainrule.measure.cost import cost, profile_time
    from chainrule.measure.shapes import ShapeDtype
    from chainrule.models import SectionMLP

    model = SectionMLP(784, 256, 10, weight_decay=args.weight_decay)
    n = 256
    report = cost(lambda x, y: model.objective(x, y)["J"], ShapeDtype((n, 784)), ShapeDtype((n,), np.int64))
    rng = np.random.default_rng(0)
    xs, ys = rng.random((n, 784)).astype(np.float32), rng.integers(0, 10, n)

    def step(x: Any, y: Any) -> None:
        model.objective(cr.as_tensor(x, dtype=x.dtype), y)["J"].backward()

    for _ in range(3):
        step(xs, ys)
        model.zero_grad()
    timing = profile_time(step, xs, ys, repeat=args.repeat)
    text = (
        f"FLOPs and bytes per primitive, section model 784-256-10, batch {n} (from shapes):\n\n{report.table()}\n\n"
        f"Timed step (machine matmul rate {timing.machine_gflops:.1f} GFLOP/s):\n\n{timing.table()}\n\n"
        f"per-node times sum to {timing.node_seconds * 1e3:.3f} ms of a {timing.wall * 1e3:.3f} ms step"
    )
    print(text)
    if out:
        (out / "cost_first_order.md").write_text(_made_by() + text + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chainrule")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
