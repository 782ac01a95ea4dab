"""The section's equations derived from the recorded graph (and a user's own primitive)."""

from __future__ import annotations

import numpy as np

import chainrule as cr
from chainrule.cli import graph as cli
from chainrule.viz import examples
from chainrule.viz.equations import equations, explain
from chainrule.viz.notation import notation_of, register_notation

BOOK_BACKWARD = [
    "∂J/∂L = 1",
    "∂J/∂s = 1",
    "∂J/∂W2 = ∂J/∂o hᵀ + λW2",
    "∂J/∂h = W2ᵀ ∂J/∂o",
    "∂J/∂z = ∂J/∂h ⊙ φ′(z)",
    "∂J/∂W1 = ∂J/∂z xᵀ + λW1",
]
BOOK_BACKWARD_TEX = [
    r"\frac{\partial J}{\partial \mathbf{W}^{(2)}} = \frac{\partial J}{\partial \mathbf{o}} \mathbf{h}^\top"
    r" + \lambda \mathbf{W}^{(2)}",
    r"\frac{\partial J}{\partial \mathbf{h}} = {\mathbf{W}^{(2)}}^\top \frac{\partial J}{\partial \mathbf{o}}",
    r"\frac{\partial J}{\partial \mathbf{z}} = \frac{\partial J}{\partial \mathbf{h}}"
    r" \odot \phi'\left(\mathbf{z}\right)",
    r"\frac{\partial J}{\partial \mathbf{W}^{(1)}} = \frac{\partial J}{\partial \mathbf{z}} \mathbf{x}^\top"
    r" + \lambda \mathbf{W}^{(1)}",
]


def _run(argv: list[str], capsys: object) -> tuple[int, str]:
    rc = cli.main(argv)
    return rc, capsys.readouterr().out  # type: ignore[attr-defined]


def test_explain_section_gives_the_books_backward_equations(capsys: object) -> None:
    rc, text = _run(["explain", "--model", "section", "--text"], capsys)
    assert rc == 0
    for line in ["z = W1 x", "h = φ(z)", "o = W2 h", "J = L + s"] + BOOK_BACKWARD:
        assert f"  {line}" in text, (line, text)
    # The book's prod step is made explicit for each gradient it collects.
    assert "∂J/∂W2 = prod(∂J/∂o, ∂o/∂W2) + prod(∂J/∂s, ∂s/∂W2)" in text
    rc, md = _run(["explain", "--model", "section", "--markdown"], capsys)
    for eq in BOOK_BACKWARD_TEX:
        assert eq in md, eq


def test_the_equations_are_in_the_engines_walk_order() -> None:
    ex = examples.section()
    names = [eq.txt.split(" = ")[0] for eq in explain(ex.J, names=ex.names).backward]
    assert names == ["∂J/∂s", "∂J/∂L", "∂J/∂o", "∂J/∂W2", "∂J/∂h", "∂J/∂z", "∂J/∂W1"]


def test_bias_variant_derives_exercise_2(capsys: object) -> None:
    rc, text = _run(["explain", "--model", "section-bias", "--text"], capsys)
    assert "z = W1 x + b1" in text
    assert "∂J/∂b1 = Σ_batch ∂J/∂z" in text  # summed over the batch, no penalty on b1
    assert "∂J/∂W1 = ∂J/∂z xᵀ + λW1" in text
    rc, md = _run(["explain", "--model", "section-bias", "--markdown"], capsys)
    assert (
        r"\frac{\partial J}{\partial \mathbf{b}^{(1)}} = \sum_{\text{batch}} \frac{\partial J}{\partial \mathbf{z}}"
        in md
    )


def test_the_equations_agree_with_the_gradients_the_engine_computes() -> None:
    """∂J/∂b1 = Σ_batch ∂J/∂z and ∂J/∂W2 = ∂J/∂o hᵀ + λW2, checked numerically."""
    ex = examples.section(bias=True)
    t = ex.tensors
    z_grad, o_grad = cr.gradients(ex.J, [t["z"], t["o"]])
    ex.J.backward()
    np.testing.assert_allclose(t["b1"].grad.numpy(), z_grad.numpy().sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)
    expected = o_grad.numpy() @ t["h"].numpy().T + 1e-3 * t["W2"].numpy()
    np.testing.assert_allclose(t["W2"].grad.numpy(), expected, rtol=1e-4, atol=1e-7)


def test_a_users_primitive_without_notation_is_explained_generically() -> None:
    softplus = cr.Primitive("my_softplus", lambda x: np.log1p(np.exp(x)), save=(0,))
    softplus.defvjp(lambda g, out, x: g * (1 / (1 + cr.exp(-x))))
    assert softplus.facts.notation is None and notation_of("my_softplus") is None
    w = cr.tensor(np.ones((3, 2), np.float32), requires_grad=True).named("w")
    u = softplus(w).named("u")
    J = (u * u).sum().named("J")
    text = equations(J, style="text")
    assert "u = my_softplus(w)" in text
    assert "∂J/∂u = 2u" in text
    assert "∂J/∂w = (∂my_softplus(w)/∂w)ᵀ ∂J/∂u" in text
    md = equations(J)
    assert r"\operatorname{my\_softplus}" in md


def test_register_notation_changes_how_a_primitive_is_written() -> None:
    square = cr.Primitive("my_square", np.square, save=(0,))
    square.defvjp(lambda g, out, x: 2 * g * x)
    register_notation(square, forward=("{0}^2", "{0}²"), vjp=("2 {a0} \\odot {g}", "2{a0} ⊙ {g}"), symbol="x²")
    assert square.facts.notation.symbol == "x²"
    try:
        w = cr.tensor(np.ones(3, np.float32), requires_grad=True).named("w")
        q = square(w).named("q")
        J = (q * q).sum().named("J")
        text = equations(J, style="text")
        assert "q = w²" in text
        assert "∂J/∂w = 2w ⊙ ∂J/∂q" in text
    finally:
        square.deffacts(notation=None)


def test_forward_only(capsys: object) -> None:
    rc, text = _run(["explain", "--model", "mlp", "--text", "--forward-only"], capsys)
    assert rc == 0 and "Backpropagation" not in text and "L = l(o, y)" in text


def test_the_order_of_equations_does_not_depend_on_the_hash_seed() -> None:
    """Two leaves whose gradients complete at the same step are written in the graph's order, every run."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import numpy as np, chainrule as cr\n"
        "a = cr.tensor(np.ones(3), requires_grad=True); b = cr.tensor(np.zeros(3), requires_grad=True)\n"
        "print(cr.viz.equations((cr.maximum(a, b) + cr.minimum(a, b)).sum(), style='text'))\n"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    outs = set()
    for seed in ("0", "1"):  # these two seeds ordered a Python set of the leaves differently
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": src}
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        outs.add(run.stdout)
    assert len(outs) == 1
    assert "∂J/∂θ1 = 𝟙[θ1 > θ2] + 𝟙[θ1 < θ2]" in outs.pop()
