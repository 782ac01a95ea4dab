"""Drawing, explaining and exploring the computational graph (needs the ``viz`` extra: graphviz).

- :func:`draw` / :func:`graph`: a ``graphviz.Digraph`` of what produced some tensors
  (forward, backward with the engine's walk order, saved memory, grouped by module).
- :func:`equations`: the graph written out as forward equations and chain-rule steps.
- :func:`html`: one offline HTML page to explore the drawing and replay backpropagation.
- :func:`trace`: ``with cr.viz.trace():`` around a forward names its variables from the caller's and keeps
  its constants (λ/2, x) for drawings made after backward; :func:`track_modules` records each node's module.
"""

from chainrule.viz.equations import Equations, Explanation, equations, explain
from chainrule.viz.notation import register_notation
from chainrule.viz.recording import trace
from chainrule.viz.trace import Trace, track_modules

__all__ = [
    "DotNotFoundError",
    "Equations",
    "Explorer",
    "Explanation",
    "Trace",
    "draw",
    "equations",
    "explain",
    "graph",
    "html",
    "register_notation",
    "trace",
    "track_modules",
    "write",
]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    """The drawing functions import graphviz only when first used."""
    if name in ("draw", "graph", "write", "DotNotFoundError", "Drawing"):
        from chainrule.viz import drawing as _draw

        return getattr(_draw, name)
    if name in ("html", "Explorer"):
        from chainrule.viz import explorer as _explorer

        return getattr(_explorer, name)
    raise AttributeError(f"module 'chainrule.viz' has no attribute {name!r}")


def _in_a_kernel() -> None:
    from chainrule.viz.tensor_display import register_tensor_display

    register_tensor_display()


_in_a_kernel()
