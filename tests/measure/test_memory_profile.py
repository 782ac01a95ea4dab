"""Measured memory (tracemalloc's NumPy domain + the engine's hooks) and its attribution."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.measure import memory
from chainrule.models import SectionMLP
from chainrule.optim import SGD, Adam


def _data(n: int, d: int = 784, dtype: type = np.float32) -> tuple[cr.Tensor, np.ndarray]:
    rng = np.random.default_rng(0)
    return cr.as_tensor(rng.random((n, d)).astype(dtype)), rng.integers(0, 10, n)


def _section_step(model: SectionMLP, retain_graph: bool = False):
    def step(x, y):
        model.zero_grad()
        J = model.objective(x, y)["J"]
        J.backward(retain_graph=retain_graph)
        return J

    return step


@pytest.mark.parametrize("optimizer", [SGD, Adam])
def test_categories_add_up_to_total(optimizer) -> None:
    model = SectionMLP(784, 32, 10, weight_decay=0.01)
    opt = optimizer(model.parameters(), lr=0.01)
    x, y = _data(16)
    prof = memory.profile(memory.training_step(model, opt), x, y, optimizer=opt, warmup=1)
    assert {p.phase for p in prof.points} == {"forward", "backward", "update"}
    for p in prof.points:
        assert sum(p.categories.values()) == p.total
        assert p.peak >= p.total
        assert p.categories["temporaries"] >= -64  # at most a few stray bytes of rounding
    assert prof.peak == max(p.peak for p in prof.points)
    assert sum(prof.peak_categories().values()) == prof.peak


def test_parameter_saved_twice_counts_once() -> None:
    model = SectionMLP(784, 32, 10, weight_decay=0.01)  # W1 is saved by the matmul (as W1.T) and by W1 * W1
    x, y = _data(8)
    params = model.W1.numpy().nbytes + model.W2.numpy().nbytes
    prof = memory.profile(_section_step(model), x, y, model=model)
    end_of_forward = [p for p in prof.points if p.phase == "forward"][-1]
    assert end_of_forward.categories["parameters"] == params
    # what is saved besides parameters and inputs: h (relu's output, also matmul 2's input) and the logits o
    h, o = 8 * 32 * 4, 8 * 10 * 4
    assert h + o <= end_of_forward.categories["activations"] <= h + o + 64  # + a few 0-d scalars
    assert end_of_forward.categories["inputs"] == x.numpy().nbytes + y.nbytes


def test_saved_activations_are_freed_by_backward() -> None:
    model = SectionMLP(784, 32, 10, weight_decay=0.01)
    x, y = _data(8)
    prof = memory.profile(_section_step(model), x, y, model=model)
    backward = [p for p in prof.points if p.label.startswith("d ")]  # after each node's rules
    assert backward[0].categories["activations"] > 0
    assert backward[-1].categories["activations"] == 0
    assert prof.points[-1].categories["gradients"] == model.W1.numpy().nbytes + model.W2.numpy().nbytes

    kept = memory.profile(_section_step(model, retain_graph=True), x, y, model=model)
    assert [p for p in kept.points if p.label.startswith("d ")][-1].categories["activations"] > 0


def test_prediction_keeps_nothing_for_backward() -> None:
    model = SectionMLP(784, 64, 10)
    x, _ = _data(32)
    prof = memory.profile(memory.prediction_step(model), x, model=model)
    assert all(p.categories["activations"] == 0 for p in prof.points)
    assert all(p.phase == "forward" for p in prof.points)
    # the biggest thing alive besides parameters and input: z and h (n x hidden each), never the graph
    assert prof.peak - x.numpy().nbytes - model.W1.numpy().nbytes - model.W2.numpy().nbytes < 3 * 32 * 64 * 4


def test_context_manager_form_and_plot(tmp_path) -> None:
    model = SectionMLP(784, 16, 10)
    x, y = _data(4)
    with memory.profiling(model=model, inputs=(x, y)) as prof:
        model.objective(x, y)["J"].backward()
    assert prof.points and prof.points[0].label == "start"
    assert "activations" in prof.table()
    prof.plot(str(tmp_path / "timeline.png"))
    assert (tmp_path / "timeline.png").stat().st_size > 1000


def test_nested_profiling_is_refused() -> None:
    with memory.profiling():
        with pytest.raises(RuntimeError, match="already tracing"):
            with memory.profiling():
                pass
