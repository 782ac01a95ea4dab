"""How chainrule's objects display in Jupyter: self-contained HTML, every user string escaped.

Nothing here needs a network or a front-end extension: equations are shown as readable
Unicode (with the LaTeX kept in the ``text/latex`` part of the bundle for LaTeX/PDF export),
tables as HTML tables, timelines as an inline image. A tensor with a recorded graph shows its
repr and its drawing once :mod:`chainrule.viz` is imported in an IPython kernel
(:mod:`chainrule.viz.tensor_display`).
"""

from __future__ import annotations

import html
import io
from typing import Any

_CSS = "font-family:'DejaVu Sans Mono',Menlo,monospace;font-size:13px;line-height:1.5"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def equations_html(ex: Any, backward: bool = True) -> str:
    """An :class:`~chainrule.viz.equations.Explanation` as HTML: one equation per line, no LaTeX."""
    out = [f'<div class="chainrule-equations" style="{_CSS}">', "<b>Forward propagation</b><br>"]
    out += [f"{_e(eq.txt)}<br>" for eq in ex.forward]
    out += [f'<i style="color:#555">{_e(n)}</i><br>' for n in ex.notes]
    if backward:
        out.append("<b>Backpropagation</b> (chain rule, in the order the engine runs it)<br>")
        for eq in ex.backward:
            step = f' <span style="color:#777">[{_e(eq.step_txt)}]</span>' if eq.step_txt else ""
            out.append(f"{_e(eq.txt)}{step}<br>")
    out.append("</div>")
    return "\n".join(out)


def equations_latex(ex: Any, backward: bool = True) -> str:
    """All equations as one LaTeX ``aligned`` block (for ``text/latex``)."""
    rows = [eq.tex for eq in ex.forward] + ([eq.tex for eq in ex.backward] if backward else [])
    body = " \\\\\n".join(r.replace("=", "&=", 1) for r in rows)
    return "$$\\begin{aligned}\n" + body + "\n\\end{aligned}$$"


def table_html(header: list[str], rows: list[list[Any]], caption: str = "", right_from: int = 1) -> str:
    """A small HTML table, every cell escaped; columns from ``right_from`` on are right-aligned."""
    cell = "padding:2px 8px;border-bottom:1px solid #eee"

    def tr(values: list[Any], tag: str) -> str:
        return (
            "<tr>"
            + "".join(
                f'<{tag} style="{cell};text-align:{"right" if i >= right_from else "left"}">{_e(v)}</{tag}>'
                for i, v in enumerate(values)
            )
            + "</tr>"
        )

    cap = f'<caption style="text-align:left;font-weight:bold">{_e(caption)}</caption>' if caption else ""
    body = "".join(tr(r, "td") for r in rows)
    return f'<table class="chainrule-table" style="border-collapse:collapse">{cap}{tr(header, "th")}{body}</table>'


def cost_html(report: Any) -> str:
    """A :class:`~chainrule.measure.cost.CostReport` as an HTML table."""
    rows: list[list[Any]] = []
    for name, d in sorted(report.by_primitive().items(), key=lambda kv: -kv[1]["forward_flops"]):
        rows.append([name, d["count"], f"{d['forward_flops']:,}", f"{d['backward_flops']:,}", f"{d['bytes']:,}"])
    rows.append(
        [
            "total",
            len(report.rows),
            f"{report.forward_flops:,}",
            f"{report.backward_flops:,}",
            f"{report.bytes_moved:,}",
        ]
    )
    header = ["primitive", "nodes", "forward FLOPs", "backward FLOPs", "bytes moved"]
    return table_html(header, rows, "cost (from shapes alone)")


def memory_html(profile: Any) -> str:
    """A :class:`~chainrule.measure.memory.MemoryProfile`: the breakdown at the peak and its timeline."""
    kind = "predicted" if profile.predicted else "measured"
    cats = profile.peak_categories()
    rows: list[list[Any]] = [[c, f"{n:,}", f"{n / 2**20:.3f}"] for c, n in cats.items()]
    p = profile.peak_point if profile.points else None
    where = f" ({p.phase}: {p.label})" if p is not None else ""
    rows.append([f"peak{where}", f"{profile.peak:,}", f"{profile.peak / 2**20:.3f}"])
    rows += [[f"peak during {ph}", f"{v:,}", f"{v / 2**20:.3f}"] for ph, v in profile.phase_peaks().items()]
    out = table_html(["category (at peak)", "bytes", "MiB"], rows, f"{kind} memory of one step")
    if len(profile.points) > 1:
        out += "<br>" + memory_timeline_svg(profile)
    return out


def figure_svg(fig: Any) -> str:
    """A matplotlib ``Figure`` as inline SVG (no pyplot, so a notebook's backend is left alone)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    text = buf.getvalue()
    return text[text.index("<svg") :]


def memory_timeline_svg(profile: Any) -> str:
    """Bytes over the step's events, stacked by category, phases shaded (SVG)."""
    import numpy as np
    from matplotlib.figure import Figure

    points = profile.points
    cats = list(points[0].categories)
    x = np.arange(len(points))
    fig = Figure(figsize=(8, 3.4))
    ax = fig.subplots()
    ys = [np.array([p.categories[c] for p in points]) / 2**20 for c in cats]
    ax.stackplot(x, *ys, labels=cats, step="post", alpha=0.85)
    ax.plot(x, np.array([p.peak for p in points]) / 2**20, "k:", lw=1, label="peak inside op")
    start = 0
    for i in range(1, len(points) + 1):
        if i == len(points) or points[i].phase != points[start].phase:
            color = {"forward": "C0", "backward": "C3"}.get(points[start].phase, "C2")
            ax.axvspan(start, i, alpha=0.06, color=color)
            ax.text((start + i) / 2, ax.get_ylim()[1] * 0.97, points[start].phase, ha="center", va="top")
            start = i
    ax.set_xlabel("event (op in forward, node in backward, parameter in update)")
    ax.set_ylabel("MiB")
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    return figure_svg(fig)
