"""A tensor in Jupyter: its repr, and its recorded graph drawn beside it (registered by :mod:`chainrule.viz`).

The core cannot import the drawings (they sit floors above it), so the display is an IPython
formatter for :class:`~chainrule.core.tensor.Tensor`, registered when ``chainrule.viz`` is
imported in a kernel.
"""

from __future__ import annotations

import sys
from typing import Any

from chainrule.core.backward import toposort
from chainrule.core.tensor import Tensor
from chainrule.viz.notebook import _e

MAX_INLINE_OPS = 150  # a larger graph is not drawn with the tensor's repr (draw it by module)


def tensor_html(t: Any) -> str | None:
    """A tensor's repr, and its recorded graph drawn beside it (small graphs, when ``dot`` runs)."""
    text = f"<pre>{_e(repr(t))}</pre>"
    node = getattr(t, "node", None)
    if node is None:
        return text
    try:
        from chainrule.viz.drawing import draw, fit_svg  # graphviz, only when a kernel shows a tensor

        if len(toposort([node])) > MAX_INLINE_OPS:
            return (
                text + f"<p>(graph of over {MAX_INLINE_OPS} operators: <code>cr.viz.draw(t, group='module')</code>)</p>"
            )
        svg: str = fit_svg(draw(t).pipe(format="svg").decode("utf-8"), 480.0, 420.0)
    except Exception:  # no dot, no graphviz: the repr is still worth showing
        return text
    return text + svg[svg.index("<svg") :]


def register_tensor_display(ip: Any = None) -> bool:
    """In an IPython kernel, show a recorded tensor with its graph (``text/html``). True if registered."""
    if ip is None:
        mod = sys.modules.get("IPython")
        get = getattr(mod, "get_ipython", None)
        ip = get() if get is not None else None
    if ip is None or not hasattr(ip, "display_formatter"):
        return False
    ip.display_formatter.formatters["text/html"].for_type(Tensor, tensor_html)
    return True
