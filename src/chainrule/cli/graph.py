"""``chainrule graph`` (draw the section's models) and ``chainrule explain`` (print their equations).

Wired into the main parser with ``graph.add_parsers(sub)``; each sub-command stores its
function in ``func``, so ``main`` runs ``args.func(args)``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from chainrule.viz import examples
from chainrule.viz.equations import equations
from chainrule.viz.trace import trace

FORMATS = ("svg", "png", "pdf", "html", "dot")


def add_parsers(subparsers: Any) -> None:
    """Add ``graph`` and ``explain`` to ``chainrule``'s sub-command parsers."""
    g = subparsers.add_parser("graph", help="draw the computational graph of the section's models")
    g.add_argument("--model", default="section", choices=examples.MODELS)
    g.add_argument("--backward", action="store_true", help="add the backward pass, numbered in the engine's order")
    g.add_argument("--saved", action="store_true", help="label operators with the bytes they keep for backward")
    g.add_argument(
        "--second-order",
        action="store_true",
        help="record the backward pass (create_graph) and draw the gradient's graph too",
    )
    g.add_argument("--group", choices=["module"], default=None, help="cluster nodes by nn.Module (mlp)")
    g.add_argument("--format", default=None, choices=FORMATS, help="default: from --out's suffix, else svg")
    g.add_argument("--out", default=None, help="output file (default graph-<model>.<format>)")
    g.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    g.add_argument("--batch", type=int, default=4, help="examples in the batch drawn")
    g.set_defaults(func=graph_command)
    e = subparsers.add_parser("explain", help="print the forward and backward equations of the section's models")
    e.add_argument("--model", default="section", choices=examples.MODELS)
    e.add_argument("--forward-only", action="store_true", help="only the forward equations")
    e.add_argument("--text", action="store_true", help="plain Unicode text instead of Markdown with LaTeX")
    e.add_argument("--batch", type=int, default=4)
    e.set_defaults(func=explain_command)


def _format_and_path(args: argparse.Namespace) -> tuple[str, Path]:
    fmt = args.format
    if fmt is None and args.out:
        suffix = Path(args.out).suffix.lstrip(".").lower()
        fmt = suffix if suffix in FORMATS else None
    fmt = fmt or "svg"
    suffix = "-second-order" if args.second_order else "-backward" if args.backward else ""
    out = Path(args.out) if args.out else Path(f"graph-{args.model}{suffix}.{fmt}")
    return fmt, out


def graph_command(args: argparse.Namespace) -> int:
    """Draw the chosen model's graph to a file; 2 on a usage problem (existing file, no ``dot``)."""
    from chainrule.viz.drawing import DotNotFoundError, atomic_write, draw, write

    fmt, out = _format_and_path(args)
    if out.exists() and not args.force:
        print(f"chainrule: error: {out} exists; pass --force to overwrite it", file=sys.stderr)
        return 2
    folder = out.parent
    if not folder.is_dir():  # the drawing is written there; a mistyped folder is not created
        why = "is not a folder" if folder.exists() else "does not exist (create it first)"
        print(f"chainrule: error: --out {out}: the folder {folder} {why}", file=sys.stderr)
        return 2
    with trace() as tr:  # sees the forward and the backward, for the walk order and the replay
        ex = examples.build(args.model, batch=args.batch)
        outputs: list[Any] = [ex.J]
        if args.second_order:
            ex.J.backward(create_graph=True)
            for name, t in ex.tensors.items():
                if getattr(t, "requires_grad", False) and t.node is None and t.grad is not None:
                    outputs.append(t.grad.named(f"∂J/∂{name}"))
        elif args.backward or fmt == "html":
            ex.J.backward()  # a real backward: its walk is what gets numbered and replayed
    try:
        if fmt == "html":
            from chainrule.viz.explorer import html

            html(
                *outputs,
                path=out,
                trace=tr,
                force=args.force,
                names=ex.names,
                symbols=ex.symbols,
                batch_axis=ex.batch_axis,
            )
        else:
            drawing = draw(
                *outputs,
                backward=args.backward,
                saved=args.saved or args.second_order,
                group=args.group or ("module" if args.model == "mlp" else None),
                names=ex.names,
                trace=tr,
            )
            if fmt == "dot":
                atomic_write(out, drawing.source.encode("utf-8"), force=args.force)
            else:
                write(drawing, out, fmt, force=args.force)
    except FileExistsError as exc:
        print(f"chainrule: error: {exc}", file=sys.stderr)
        return 2
    except DotNotFoundError as exc:
        print(f"chainrule: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


def explain_command(args: argparse.Namespace) -> int:
    """Print the chosen model's forward equations and its chain-rule steps."""
    ex = examples.build(args.model, batch=args.batch)
    text = equations(
        ex.J,
        backward=not args.forward_only,
        names=ex.names,
        symbols=ex.symbols,
        batch_axis=ex.batch_axis,
        style="text" if args.text else "markdown",
    )
    sys.stdout.write(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m chainrule.cli.graph graph ...``) until main.py wires the commands."""
    parser = argparse.ArgumentParser(prog="chainrule")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
