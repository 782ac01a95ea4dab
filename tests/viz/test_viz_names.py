"""Names without ceremony: ``names=locals()``, ``with cr.viz.trace():`` and names that survive backward."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F

pytest.importorskip("graphviz")

SECTION = ("x", "W1", "W2", "z", "h", "o", "y", "L", "s", "J")


def _readme(backward: bool = True, record: bool = False) -> dict[str, Any]:
    """The README's example (smaller), returning its local variables."""
    rng = np.random.default_rng(0)
    W1 = cr.tensor(rng.standard_normal((16, 12)) * 0.01, requires_grad=True)
    W2 = cr.tensor(rng.standard_normal((10, 16)) * 0.01, requires_grad=True)
    x, y = cr.tensor(rng.random((12, 4))), rng.integers(0, 10, 4)
    lam = 1e-4
    lr = 0.5  # not a Greek name: never a symbol
    with cr.viz.trace() if record else _nothing():
        z = W1 @ x
        h = F.relu(z)
        o = W2 @ h
        L = F.cross_entropy(o.T, y)
        s = lam / 2 * ((W1 * W1).sum() + (W2 * W2).sum())
        J = L + s
        if backward:
            J.backward()
    del lr
    return dict(locals())


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def test_names_dict_of_constants_still_names_them_after_backward() -> None:
    v = _readme()
    text = cr.viz.equations(v["J"], names={"x": v["x"], "y": v["y"]}, style="text")
    assert "c2" not in text and "c3" not in text  # only the released λ/2 is left unnamed (c1)
    assert "φ(θ1 x)" in text and "onehot(y)" in text and ") xᵀ" in text


def test_locals_after_backward_name_every_variable_of_the_section() -> None:
    v = _readme()
    drawing = cr.viz.draw(v["J"], names=v)
    src = drawing.source
    for name in SECTION:
        assert f'label="{name}\n' in src, name
    text = cr.viz.equations(v["J"], names=v, style="text")
    for eq in ("z = W1 x", "h = φ(z)", "o = W2 h", "L = l(oᵀ, y)", "J = L + s"):
        assert f"  {eq}\n" in text, eq
    # λ/2 was a Python number the backward released: said so, not guessed.
    assert "released by backward" in text


def test_trace_block_names_and_keeps_lambda_over_two_without_arguments() -> None:
    v = _readme(record=True)
    text = cr.viz.equations(v["J"], style="text")
    assert "  s = λ/2 ‖W1‖² + λ/2 ‖W2‖²\n" in text
    assert "∂J/∂W1 = ∂J/∂z xᵀ + λW1" in text
    assert "lr" not in text and "released" not in text
    src = cr.viz.draw(v["J"], backward=True).source
    for name in SECTION:
        assert f'label="{name}\n' in src, name
    assert "∂J/∂W1" in src


def test_symbols_catch_lambda_over_two_before_backward_and_with_a_trace() -> None:
    v = _readme(backward=False)
    text = cr.viz.equations(v["J"], names={"x": v["x"]}, symbols={"λ": v["lam"]}, style="text")
    assert "λ/2 ‖θ1‖²" in text
    with cr.viz.trace() as tr:
        w = _readme(backward=True)
    text = cr.viz.equations(w["J"], names={"W1": w["W1"]}, symbols={"λ": w["lam"]}, trace=tr, style="text")
    assert "λ/2 ‖W1‖²" in text


def test_ambiguous_released_constants_stay_unnamed() -> None:
    rng = np.random.default_rng(1)
    a = cr.tensor(rng.random((3, 3)), requires_grad=True)
    b, c = rng.random((3, 3)).astype(np.float32), rng.random((3, 3)).astype(np.float32)
    out = ((a * b) * c).sum()
    out.backward()
    text = cr.viz.equations(out, names={"b": b, "c": c}, style="text")
    assert " b" not in text and " c " not in text  # two arrays of one shape: no guess


def test_the_readmes_own_example_drawn_after_backward_with_locals() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    code = readme.split("## Using it", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert "J.backward()" in code
    scope: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the README's example, as a user runs it
    drawing = cr.viz.draw(scope["J"], names=scope, layout="book")
    for name in SECTION:
        assert f"label={name} " in drawing.source or f'label="{name}"' in drawing.source, name
    text = cr.viz.equations(scope["J"], names=scope, style="text")
    for eq in ("z = W1 x", "h = φ(z)", "o = W2 h", "L = l(oᵀ, y)", "J = L + s", "∂J/∂z = ∂J/∂h ⊙ φ′(z)"):
        assert eq in text, eq


def test_a_recording_keeps_no_ones_arrays_alive() -> None:
    import gc
    import weakref

    def run() -> tuple[Any, Any]:
        a = cr.tensor(np.ones((3, 3), np.float32), requires_grad=True)
        c = np.ones((3, 3), np.float32)
        with cr.viz.trace():
            out = (a * c).sum()
            out.backward()
        assert "out = Σ (a ⊙ c)" in cr.viz.equations(out, style="text")  # named while alive
        return weakref.ref(a), weakref.ref(c)

    refs = run()
    gc.collect()
    assert all(r() is None for r in refs)
