"""How long a 1000-layer MLP's graph takes to draw grouped by module (collapsed), and to render.

    python benchmarks/viz_large.py                  # 1000 Linear layers (+ ReLU), to SVG
    python benchmarks/viz_large.py --layers 200 --no-collapse   # every node, clustered by module

Prints the time to build the graph (forward), to lay it out as a Graphviz drawing
(``cr.viz.draw(..., group="module")``) and to render it with ``dot``; the target is under
10 s for the whole drawing + rendering of 1000 layers, collapsed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import chainrule.nn.functional as F
from chainrule.core.tensor import tensor
from chainrule.nn.modules import Linear, ReLU, Sequential
from chainrule.viz.drawing import draw, write
from chainrule.viz.trace import track_modules


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=1000)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--no-collapse", action="store_true", help="draw every node (clusters per module)")
    p.add_argument("--format", default="svg", choices=["svg", "png", "pdf"])
    p.add_argument("--out", default=None, help="keep the rendered file here (default: a temp folder)")
    args = p.parse_args(argv)

    rng = np.random.default_rng(0)
    layers = []
    for k in range(args.layers):
        layers.append(Linear(args.width, args.width, rng=rng))
        if k < args.layers - 1:
            layers.append(ReLU())
    model = Sequential(*layers)
    x = tensor(rng.standard_normal((args.batch, args.width)).astype(np.float32)).named("x")
    y = rng.integers(0, args.width, size=args.batch)

    t0 = time.perf_counter()
    with track_modules(model, "mlp"):
        out = model(x)
    J = F.cross_entropy(out, y).named("J")
    t1 = time.perf_counter()
    drawing = draw(J, group="module", collapse=not args.no_collapse, names={"x": x, "y": y})
    t2 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(args.out) if args.out else Path(tmp) / f"mlp{args.layers}.{args.format}"
        write(drawing, target, force=True)
        t3 = time.perf_counter()
        size = target.stat().st_size
    ops = 3 * args.layers + (args.layers - 1) + 1
    print(f"{args.layers}-layer MLP ({ops} recorded operators), group='module', collapse={not args.no_collapse}")
    print(f"  forward (recording, module tracking): {t1 - t0:7.3f} s")
    print(f"  draw (graph -> graphviz source):      {t2 - t1:7.3f} s   ({len(drawing.source):,} characters)")
    print(f"  render with dot to {args.format}:            {t3 - t2:7.3f} s   ({size:,} bytes)")
    print(f"  draw + render:                        {t3 - t1:7.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
