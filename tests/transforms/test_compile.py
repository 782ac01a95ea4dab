"""cr.compile: a captured step replays with results identical to eager execution."""

import re

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
from chainrule import nn, optim
from chainrule.models import SectionMLP


def _mlp(dropout=0.0):
    rng = np.random.default_rng(0)
    layers = [nn.Linear(20, 16, rng=rng), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout, seed=3))
    layers.append(nn.Linear(16, 4, rng=rng))
    return nn.Sequential(*layers)


def _batches(n=6, batch=8):
    rng = np.random.default_rng(1)
    return [(rng.random((batch, 20), dtype=np.float32), rng.integers(0, 4, batch)) for _ in range(n)]


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_compiled_training_matches_eager_bitwise(dropout):
    eager, comp = _mlp(dropout), _mlp(dropout)
    opt_e = optim.SGD(eager.parameters(), 0.1, momentum=0.9, weight_decay=1e-3)
    opt_c = optim.SGD(comp.parameters(), 0.1, momentum=0.9, weight_decay=1e-3)

    @cr.compile
    def step(x, y):
        loss = F.cross_entropy(comp(x), y)
        loss.backward()
        return loss

    for x, y in _batches() + [(np.ones((3, 20), np.float32), np.array([0, 1, 2]))]:  # a smaller last batch
        opt_e.zero_grad()
        le = F.cross_entropy(eager(cr.tensor(x)), y)
        le.backward()
        opt_e.step()
        opt_c.zero_grad()
        lc = step(x, y)
        opt_c.step()
        assert lc.item() == le.item()
    for a, b in zip(eager.parameters(), comp.parameters(), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert len(step.programs) == 2  # one capture per batch shape
    assert all(len(p) > 10 for p in step.programs.values())


def test_compiled_section_objective_with_weight_decay():
    model = SectionMLP(20, 16, 4, weight_decay=0.01, init="xavier")
    ref = SectionMLP(20, 16, 4, weight_decay=0.01, init="xavier")

    @cr.compile
    def grads(x, y):
        nodes = model.objective(x, y)
        nodes["J"].backward()
        return nodes["J"], nodes["o"]

    for x, y in _batches(3):
        model.zero_grad()
        ref.zero_grad()
        J, o = grads(x, y)
        nodes = ref.objective(cr.tensor(x), y)
        nodes["J"].backward()
        assert J.item() == nodes["J"].item()
        np.testing.assert_array_equal(o.numpy(), nodes["o"].numpy())
        np.testing.assert_array_equal(model.W1.grad.numpy(), ref.W1.grad.numpy())
        np.testing.assert_array_equal(model.W2.grad.numpy(), ref.W2.grad.numpy())


def test_compiled_gradients_accumulate_like_eager():
    w = cr.tensor(np.array([1.0, 2.0]), requires_grad=True)

    @cr.compile
    def f(x):
        (w * x).sum().backward()

    assert f(np.array([3.0, 4.0], np.float32)) is None
    assert f(np.array([3.0, 4.0], np.float32)) is None  # replay, no zero_grad in between: accumulates
    np.testing.assert_array_equal(w.grad.numpy(), [6.0, 8.0])


def test_compiled_returns_non_tensor_values_as_they_were():
    w = cr.tensor(np.array([1.0, 2.0]), requires_grad=True)

    @cr.compile
    def f(x):
        return (w * x).sum(), "label", 3

    x = np.array([1.0, 1.0], np.float32)
    assert f(x)[1:] == ("label", 3)
    loss, label, n = f(x)  # replayed
    assert (loss.item(), label, n) == (3.0, "label", 3)


def test_compiled_replay_reads_updated_parameters_and_new_data():
    w = cr.tensor(np.array([1.0, 2.0]), requires_grad=True)

    @cr.compile
    def f(x):
        return (w * x).sum()

    assert f(np.array([1.0, 1.0], np.float32)).item() == 3.0
    w.data *= 10
    assert f(np.array([1.0, 0.0], np.float32)).item() == 10.0


def test_compile_cache_is_bounded_least_recently_used_first():
    w = cr.tensor(np.ones(3), requires_grad=True)

    @cr.compile(max_programs=2)
    def step(x):
        loss = (w * x).sum()
        loss.backward()
        return loss

    for n in (1, 2, 3, 2, 4):
        step(np.ones((n, 3), dtype=np.float32))
    # 1, 2 | 3 drops 1 | 2 is used again | 4 drops 3, the least recently used
    assert [sig[0][0] for sig in step.programs] == [(2, 3), (4, 3)]
    for n in range(40):
        step(np.ones((n + 5, 3), dtype=np.float32))
    assert len(step.programs) == 2
    with pytest.raises(ValueError, match="max_programs"):
        cr.compile(lambda x: x, max_programs=0)


def test_gradient_of_a_tensor_argument_reaches_the_callers_tensor():
    @cr.compile
    def step(w, x):
        loss = (w * x).sum()
        loss.backward()
        return loss

    x = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    for call in range(3):  # the trace, then two replays, each with a fresh argument tensor
        w = cr.tensor(np.full(3, float(call)), requires_grad=True)
        step(w, x)
        np.testing.assert_array_equal(w.grad.numpy(), x)


def test_replays_write_intermediates_into_planned_buffers_and_stay_bitwise_equal():
    """The buffer plan: intermediates reuse buffers from call to call; results and .grad stay exact."""
    eager, comp = _mlp(), _mlp()
    opt_e, opt_c = optim.SGD(eager.parameters(), 0.1), optim.SGD(comp.parameters(), 0.1)

    @cr.compile
    def step(x, y):
        h = comp[1](comp[0](x))
        loss = F.cross_entropy(comp[2](h * h + h), y) + ((comp[0].weight * comp[0].weight).sum() * 1e-3)
        loss.backward()
        return loss

    grads_held = []
    for x, y in _batches(5):
        opt_e.zero_grad()
        h = eager[1](eager[0](cr.tensor(x)))
        le = F.cross_entropy(eager[2](h * h + h), y) + ((eager[0].weight * eager[0].weight).sum() * 1e-3)
        le.backward()
        opt_c.zero_grad()
        lc = step(x, y)
        assert lc.item() == le.item()
        for a, b in zip(eager.parameters(), comp.parameters(), strict=True):
            np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
        grads_held.append([p.grad.numpy().copy() for p in comp.parameters()])
        grads_held[-1].append([p.grad for p in comp.parameters()])
        opt_e.step()
        opt_c.step()
    (program,) = step.programs.values()
    assert program.buffer_specs  # some intermediates are planned
    buffers = program.buffers
    step(*_batches(1)[0])
    assert program.buffers is buffers and all(a is b for a, b in zip(buffers, program.buffers, strict=True))
    for held in grads_held:  # a .grad handed out earlier is never a reused buffer: still what it was
        *copies, tensors = held
        for c, t in zip(copies, tensors, strict=True):
            np.testing.assert_array_equal(c, t.numpy())


@pytest.mark.parametrize("straight_line", [True, False])
def test_the_generated_replay_and_the_loop_give_the_same_bits(monkeypatch, straight_line):
    from chainrule.transforms import compile as compile_module

    if not straight_line:
        monkeypatch.setattr(compile_module, "STRAIGHT_LINE_MAX", 0)  # every capture replays through the loop
    program = _compiled_mlp_step_against_eager()
    if straight_line:  # one generated line per instruction, readable as program.source
        assert program.source.startswith("def replay(args, buffers):")
        loads = r"    v\d+ = (args\[|asarray\(args|e\d+\._data|c\d+$)"  # arguments, parameters, constants
        calls = [x for x in program.source.splitlines() if re.match(r"    v\d+ = ", x) and not re.match(loads, x)]
        assert len(calls) == len(program)
    else:
        assert program.source == ""


@pytest.mark.parametrize("straight_line", [True, False])
def test_a_gradient_that_is_a_constant_is_the_leafs_own_array(monkeypatch, straight_line):
    """``+ w`` sends the seed itself to w: a constant of every replay, so each .grad must be a copy
    (writing into one, as clipping does, must not change what later replays compute)."""
    from chainrule.transforms import compile as compile_module

    if not straight_line:
        monkeypatch.setattr(compile_module, "STRAIGHT_LINE_MAX", 0)
    w = cr.tensor(np.float32(2.0), requires_grad=True)
    v = cr.tensor(np.ones(3, np.float32), requires_grad=True)

    @cr.compile
    def f(x):
        loss = (v * 2).sum() + w + x.sum()
        loss.backward()
        return loss

    for _ in range(4):  # the capture, then replays
        w.grad = v.grad = None
        f(np.ones(2, np.float32))
        assert w.grad.item() == 1.0
        np.testing.assert_array_equal(v.grad.numpy(), [2.0, 2.0, 2.0])
        w.grad.numpy()[...] += 10  # the caller's array to write into
        v.grad.numpy()[...] *= 3


def test_a_call_of_constants_only_is_made_once_at_capture():
    """The seed's 1/n (the mean's backward) is folded into a constant; the numbers are eager's."""
    program = _compiled_mlp_step_against_eager()
    constant = {slot for slot, value in enumerate(program.template) if value is not None}
    assert constant, "the capture has constants (the seed, relu's 0, the rows)"
    for impl, ins, *_ in program.instructions:  # no call is left that reads constants only
        assert not set(ins) <= constant, impl


def _compiled_mlp_step_against_eager():
    """Three steps of the MLP, compiled and eager side by side: every loss and gradient the same bits."""
    model, ref = _mlp(), _mlp()

    @cr.compile
    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    for x, y in _batches(3):
        model.zero_grad()
        ref.zero_grad()
        lc = step(x, y)
        le = F.cross_entropy(ref(cr.tensor(x)), y)
        le.backward()
        assert lc.numpy().tobytes() == le.numpy().tobytes()
        for a, b in zip(model.parameters(), ref.parameters(), strict=True):
            assert a.grad.numpy().tobytes() == b.grad.numpy().tobytes()
    (program,) = step.programs.values()
    return program
