"""Predicted vs measured peak memory over a grid of MLPs and the section's model.

    PYTHONPATH=src python benchmarks/memory_sweep.py --out docs/figures

Grid: 1-64 hidden layers, widths 16-4096, batch sizes 1-4096, float32 (SGD) and float64
(Adam). Every configuration is predicted (that costs milliseconds); it is also measured
when one step fits the budget (FLOPs and bytes, see --max-gflop/--max-gib): a 64-layer
4096-wide network at batch 4096 would be 26 TFLOP and 17 GiB per step on this machine.
Writes memory_sweep.csv (one row per configuration) and memory_sweep.md (the summary),
plus the speed of the estimate for a 100-layer MLP at batch 4096.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from chainrule.cli.measure import build_mlp, build_section, measure_one
from chainrule.measure import memory
from chainrule.measure.shapes import ShapeDtype
from chainrule.optim import SGD


def mlp_flops(depth: int, width: int, batch: int) -> float:
    macs = 784 * width + (depth - 1) * width * width + width * 10
    return 6.0 * batch * macs  # forward 2·macs, backward 4·macs


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="docs/figures")
    p.add_argument("--depths", default="1,2,4,8,16,32,64")
    p.add_argument("--widths", default="16,64,256,1024,4096")
    p.add_argument("--batches", default="1,16,256,4096")
    p.add_argument("--max-gflop", type=float, default=30.0, help="measure only steps below this many GFLOP")
    p.add_argument("--max-gib", type=float, default=2.0, help="measure only steps predicted below this peak")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    depths = [int(v) for v in args.depths.split(",")]
    widths = [int(v) for v in args.widths.split(",")]
    batches = [int(v) for v in args.batches.split(",")]
    rows: list[dict[str, object]] = []
    fields = [
        "model",
        "depth",
        "width",
        "batch",
        "dtype",
        "optimizer",
        "parameters",
        "predicted_train",
        "measured_train",
        "error_train",
        "predicted_predict",
        "measured_predict",
        "error_predict",
        "ratio",
        "estimate_ms",
        "measured",
    ]
    csv_path = out / "memory_sweep.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()

        def record(row: dict[str, object]) -> None:
            rows.append(row)
            writer.writerow(row)
            fh.flush()
            err = row.get("error_train")
            print(
                f"{row['model']} depth {row['depth']} width {row['width']} batch {row['batch']} {row['dtype']}: "
                + (
                    f"train {100 * float(err):+.2f}% predict {100 * float(row['error_predict']):+.2f}%"  # type: ignore[arg-type]
                    if err != ""
                    else "predicted only"
                ),
                file=sys.stderr,
                flush=True,
            )

        for dtype, opt in (("float32", "sgd"), ("float64", "adam")):
            for b in batches:
                model = build_section(256, np.dtype(dtype), 1e-3)
                r = measure_one(model, opt, b, np.dtype(dtype), True)
                record(_row("section", 1, 256, b, dtype, opt, r))
            for depth in depths:
                for width in widths:
                    params_bytes = (784 * width + (depth - 1) * width * width + 10 * width) * np.dtype(dtype).itemsize
                    if params_bytes > 0.6 * 2**30:
                        continue  # cannot even hold the parameters (and their gradients) here
                    model = build_mlp(depth, width, np.dtype(dtype))
                    for b in batches:
                        pred_only = mlp_flops(depth, width, b) > args.max_gflop * 1e9
                        if not pred_only:
                            est = memory.estimate(
                                model,
                                ShapeDtype((b, 784), dtype),
                                ShapeDtype((b,), np.int64),
                                optimizer=SGD(model.parameters(), 0.01),
                            )
                            pred_only = est.peak > args.max_gib * 2**30
                        r = measure_one(model, opt, b, np.dtype(dtype), not pred_only)
                        record(_row("mlp", depth, width, b, dtype, opt, r))
                    del model

    measured = [r for r in rows if r["measured"]]
    errs_t = [abs(float(r["error_train"])) for r in measured]  # type: ignore[arg-type]
    errs_p = [abs(float(r["error_predict"])) for r in measured]  # type: ignore[arg-type]
    worst = sorted(measured, key=lambda r: -max(abs(float(r["error_train"])), abs(float(r["error_predict"]))))[:5]  # type: ignore[arg-type]

    # speed of the estimate: a 100-layer MLP at batch 4096 (parameters are real arrays; nothing else is)
    speed = [_speed(width) for width in (256, 1024)]

    lines = [
        "# Memory sweep: predicted vs measured peak",
        "",
        "Command: `PYTHONPATH=src python benchmarks/memory_sweep.py --out docs/figures` "
        f"(depths {args.depths}, widths {args.widths}, batches {args.batches}; float32 with SGD, float64 with Adam;"
        f" measured when a step is below {args.max_gflop} GFLOP and {args.max_gib} GiB).",
        "",
        f"- configurations: {len(rows)} predicted, {len(measured)} also measured",
        f"- training peak: max |error| {100 * max(errs_t):.3f}%, mean {100 * float(np.mean(errs_t)):.3f}%",
        f"- prediction peak: max |error| {100 * max(errs_p):.3f}%, mean {100 * float(np.mean(errs_p)):.3f}%",
        f"- configurations over 5%: {sum(1 for a, b in zip(errs_t, errs_p, strict=True) if max(a, b) > 0.05)}",
        "",
        "Worst five:",
        "",
        "| model | depth | width | batch | dtype | train measured | train error | predict measured | predict error |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in worst:
        lines.append(
            f"| {r['model']} | {r['depth']} | {r['width']} | {r['batch']} | {r['dtype']} | {r['measured_train']:,} | "
            f"{100 * float(r['error_train']):+.3f}% | {r['measured_predict']:,} | "  # type: ignore[arg-type]
            f"{100 * float(r['error_predict']):+.3f}% |"  # type: ignore[arg-type]
        )
    lines += [
        "",
        "Estimate speed, 100-layer MLP at batch 4096 (best of 5):",
        "",
        "| width | training estimate ms | prediction estimate ms | predicted training peak MiB | "
        "predicted prediction peak MiB |",
        "|---:|---:|---:|---:|---:|",
    ]
    for width, t_train, t_pred, peak_t, peak_p in speed:
        lines.append(
            f"| {width} | {t_train * 1e3:.1f} | {t_pred * 1e3:.1f} | {peak_t / 2**20:.1f} | {peak_p / 2**20:.1f} |"
        )
    text = "\n".join(lines) + "\n"
    (out / "memory_sweep.md").write_text(text)
    print(text)
    return 0


def _speed(width: int) -> tuple[int, float, float, int, int]:
    """Best-of-5 time of the training and prediction estimates of a 100-layer MLP at batch 4096."""
    model = build_mlp(100, width, np.float32)
    opt = SGD(model.parameters(), 0.01)
    specs = (ShapeDtype((4096, 784)), ShapeDtype((4096,), np.int64))
    memory.estimate(model, *specs, optimizer=opt)
    best = min(_timed(lambda: memory.estimate(model, *specs, optimizer=opt)) for _ in range(5))
    best_pred = min(_timed(lambda: memory.estimate(model, specs[0])) for _ in range(5))
    peak_train = memory.estimate(model, *specs, optimizer=opt).peak
    peak_pred = memory.estimate(model, specs[0]).peak
    return width, best, best_pred, peak_train, peak_pred


def _timed(fn: object) -> float:
    t = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t


def _row(
    model: str, depth: int, width: int, batch: int, dtype: str, opt: str, r: dict[str, object]
) -> dict[str, object]:
    measured = "measured_train" in r
    return {
        "model": model,
        "depth": depth,
        "width": width,
        "batch": batch,
        "dtype": dtype,
        "optimizer": opt,
        "parameters": r["parameters"],
        "predicted_train": r["predicted_train"],
        "measured_train": r.get("measured_train", ""),
        "error_train": r.get("error_train", ""),
        "predicted_predict": r["predicted_predict"],
        "measured_predict": r.get("measured_predict", ""),
        "error_predict": r.get("error_predict", ""),
        "ratio": round(float(r["ratio"]), 4),  # type: ignore[arg-type]
        "estimate_ms": round(1e3 * float(r["estimate_seconds"]), 2),
        "measured": measured,  # type: ignore[arg-type]
    }


if __name__ == "__main__":
    sys.exit(main())
