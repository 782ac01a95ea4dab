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
    g.add_argument(
        "--layout",
        choices=["dot", "book"],
        default=None,
        help="book: Figure 5.3.1's layout, input lower-left and objective upper-right (the section model's "
        "default for its forward graph); dot: inputs at the bottom",
    )
    g.add_argument("--format", default=None, choices=FORMATS, help="default: from --out's suffix, else svg")
    g.add_argument("--out", default=None, help="output file (default graph-<model>.<format>)")
    g.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    g.add_argument("--batch", type=int, default=4, help="examples in the batch drawn")
    g.set_defaults(func=graph_command)
    e = subparsers.add_parser("explain", help="print the forward and backward equations of the section's models")
    e.add_argument("--model", default="section", choices=examples.MODELS)
    e.add_argument("--forward-only", action="store_true", help="only the forward equations")
    style = e.add_mutually_exclusive_group()
    style.add_argument(
        "--text", dest="style", action="store_const", const="text", help="plain Unicode text, for a terminal (default)"
    )
    style.add_argument(
        "--markdown",
        dest="style",
        action="store_const",
        const="markdown",
        help="Markdown with LaTeX math ($$ … $$), for a notebook or a docs page",
    )
    style.add_argument(
        "--latex", dest="style", action="store_const", const="latex", help="LaTeX only: one \\[ … \\] per equation"
    )
    e.set_defaults(style="text")
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


NO_GRAPHVIZ_PACKAGE = (
    "chainrule: error: drawing needs the Python package graphviz, which is not installed: "
    '`pip install graphviz` (it comes with `pip install -e ".[train]"`)'
)


def no_dot_message(source_path: str | None) -> str:
    """The one line printed when Graphviz's ``dot`` program is missing (the drawing's source kept)."""
    line = (
        "chainrule: error: Graphviz's `dot` program is not on PATH: install it with `sudo apt-get install graphviz` "
        "(macOS: `brew install graphviz`; conda: `conda install -c conda-forge graphviz`)"
    )
    if source_path:
        line += f"; the graph's source is in {source_path} (`dot -Tsvg {source_path}` renders it)"
    return line


def graph_command(args: argparse.Namespace) -> int:
    """Draw the chosen model's graph to a file; 2 on a usage problem (existing file, no ``dot``,
    no Python ``graphviz``), each told in one line."""
    try:
        from chainrule.viz.drawing import DotNotFoundError, atomic_write, draw, write
    except ModuleNotFoundError as exc:
        if exc.name != "graphviz":
            raise
        print(NO_GRAPHVIZ_PACKAGE, file=sys.stderr)
        return 2

    fmt, out = _format_and_path(args)
    if args.layout == "book" and (args.backward or args.saved or args.second_order or args.group or fmt == "html"):
        print(
            "chainrule: error: --layout book draws the forward graph as the book's Figure 5.3.1; "
            "drop --layout (or use --layout dot) with --backward, --saved, --second-order, --group or html",
            file=sys.stderr,
        )
        return 2
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
            group = args.group or ("module" if args.model == "mlp" else None)
            forward_only = not (args.backward or args.saved or args.second_order or group)
            layout = args.layout or (ex.layout if forward_only else "dot")
            drawing = draw(
                *outputs,
                backward=args.backward,
                saved=args.saved or args.second_order,
                group=group,
                names=ex.names,
                trace=tr,
                layout=layout,
            )
            if fmt == "dot":
                atomic_write(out, drawing.source.encode("utf-8"), force=args.force)
            else:
                write(drawing, out, fmt, force=args.force)
    except FileExistsError as exc:
        print(f"chainrule: error: {exc}", file=sys.stderr)
        return 2
    except DotNotFoundError as exc:
        print(no_dot_message(exc.source_path), file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


def explain_command(args: argparse.Namespace) -> int:
    """Print the chosen model's forward equations and its chain-rule steps: Unicode text by
    default, Markdown with LaTeX (``--markdown``) or LaTeX alone (``--latex``) on request."""
    ex = examples.build(args.model, batch=args.batch)
    text: str = equations(
        ex.J,
        backward=not args.forward_only,
        names=ex.names,
        symbols=ex.symbols,
        batch_axis=ex.batch_axis,
        style="text" if args.style == "text" else "markdown",
    )
    if args.style == "latex":
        text = markdown_to_latex(text)
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except UnicodeEncodeError:
        encoding = getattr(sys.stdout, "encoding", "?")
        print(
            f"chainrule: error: the output's encoding ({encoding}) cannot show the equations' symbols (∂, ⊙, λ); "
            "use a UTF-8 locale or set PYTHONIOENCODING=utf-8",
            file=sys.stderr,
        )
        return 1
    return 0


def markdown_to_latex(markdown: str) -> str:
    """The equations' Markdown as LaTeX alone: each ``$$ … $$`` and each inline chain-rule ``$ … $``
    becomes ``\\[ … \\]``; headings and notes become ``%`` comments."""
    out = []
    for line in markdown.splitlines():
        stripped = line.strip()
        if stripped.startswith("$$") and stripped.endswith("$$") and len(stripped) > 4:
            out.append(f"\\[ {stripped[2:-2].strip()} \\]")
        elif stripped.startswith("chain rule: $") and stripped.endswith("$"):
            out.append(f"% chain rule:\n\\[ {stripped[len('chain rule: $') : -1].strip()} \\]")
        elif stripped.startswith("#"):
            out.append("% " + stripped.lstrip("#").strip())
        elif stripped.startswith("_") and stripped.endswith("_"):
            out.append("% " + stripped.strip("_"))
        elif stripped:
            out.append("% " + stripped)
        else:
            out.append("")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m chainrule.cli.graph graph ...``) until main.py wires the commands."""
    parser = argparse.ArgumentParser(prog="chainrule")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
