"""cr.compile's rewrites (transforms/lower.py, nn/lowering.py): fewer calls, the same bits as eager."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
from chainrule.transforms import compile as compile_module
from chainrule.transforms import lower


def _weights(seed=0, shapes=((16, 5), (3, 16))):
    rng = np.random.default_rng(seed)
    return [cr.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in shapes]


def _data(n=8, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 5)).astype(np.float32), rng.integers(0, 3, n)


def _step(ws, reduction="mean", extra=None):
    def step(x, y):
        h = F.relu(x @ ws[0].T)
        o = h @ ws[1].T
        loss = F.cross_entropy(o, y, reduction=reduction)
        if reduction == "none":
            loss = loss.sum()
        if extra is not None:
            loss = loss + extra(ws)
        loss.backward()
        return loss

    return step


def _compare(make_extra=None, reduction="mean", batches=3, rewrite=True, monkeypatch=None):
    """Train eager and compiled copies side by side; every loss and gradient must be the same bits."""
    if not rewrite:
        monkeypatch.setattr(compile_module, "REWRITE", False)
    eager, comp = _weights(), _weights()
    run_e = _step(eager, reduction, make_extra)
    run_c = cr.compile(_step(comp, reduction, make_extra))
    for k in range(batches):
        x, y = _data(seed=k)
        for w in eager + comp:
            w.grad = None
        le, lc = run_e(cr.tensor(x), y), run_c(x, y)
        assert lc.numpy().tobytes() == le.numpy().tobytes()
        for a, b in zip(eager, comp, strict=True):
            assert a.grad.numpy().tobytes() == b.grad.numpy().tobytes()
            a.data -= 0.1 * a.grad.numpy()
            b.data -= 0.1 * b.grad.numpy()
    (program,) = run_c.programs.values()
    return program


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_lowered_cross_entropy_gives_the_eager_bits(reduction):
    program = _compare(reduction=reduction)
    assert not any(f"= {name}_" in program.source for name in ("_xent", "_softmax", "_one_hot"))
    assert "minus_one_hot" in program.source  # softmax - one_hot(labels): one indexed subtraction


def test_the_rewrites_change_calls_not_numbers(monkeypatch):
    penalty = lambda ws: 1e-3 * ((ws[0] * ws[0]).sum() + (ws[1] * ws[1]).sum())  # noqa: E731
    rewritten = _compare(penalty)
    plain = _compare(penalty, rewrite=False, monkeypatch=monkeypatch)
    assert len(rewritten) < len(plain)
    assert "broadcast_to" in plain.source and "broadcast_to" not in rewritten.source  # the ufunc broadcasts itself
    assert ".T.T" not in rewritten.source and "_transpose" not in rewritten.source  # x.T, transpose pairs gone
    # a gradient summed from two new arrays is added into one of them (out=v...), not into a third
    assert "out=v" in rewritten.source
    # the product rule's g*w and w*g: one product per weight, added to itself
    assert sum("multiply" in line for line in rewritten.source.splitlines()) < sum(
        "multiply" in line for line in plain.source.splitlines()
    )


def test_a_lowering_that_would_change_a_bit_is_not_used(monkeypatch):
    from chainrule.nn.functional import _relu

    def wrong(r, program, ins, params):
        return r.emit(np.maximum, (ins[0], r.const(1e-30)))  # not relu's numbers

    monkeypatch.setitem(lower.LOWERINGS, _relu, wrong)
    program = _compare()
    assert "= _relu_" in program.source  # the captured call kept, checked against its captured result


def test_a_transposed_gradient_leaves_the_step_as_its_own_array():
    w = cr.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)

    @cr.compile
    def f(x):
        loss = (x @ w.T.T.T).sum()  # the gradient comes back through three transposes
        loss.backward()
        return loss

    x = np.ones((4, 3), np.float32)
    for _ in range(3):
        w.grad = None
        f(x)
        np.testing.assert_array_equal(w.grad.numpy(), np.full((2, 3), 4.0))
    held = w.grad.numpy()
    w.grad = None
    f(x * 2)
    np.testing.assert_array_equal(held, np.full((2, 3), 4.0))  # not overwritten by the next replay


def test_a_parameter_with_a_new_shape_or_dtype_is_captured_again():
    w = cr.tensor(np.ones((3, 2), np.float32), requires_grad=True)

    @cr.compile
    def f(x):
        return F.relu(x @ w) * 2.0

    x = np.ones((4, 3), np.float32)
    f(x)
    f(x)
    w.data = np.ones((3, 5), np.float32)  # the buffer plan was for (4, 2): must not be reused
    np.testing.assert_array_equal(f(x).numpy(), np.full((4, 5), 6.0))
    with pytest.raises(cr.DTypeError, match="silently change the tensor's dtype"):
        w.data = np.ones((3, 5), np.float64)  # the public way refuses a new dtype...
    w._data = np.ones((3, 5), np.float64)  # ...so the engine's slot: captured again, refused as eager refuses it
    with pytest.raises(cr.DTypeError, match="float32 and float64"):
        f(x)


def test_softmax_and_log_softmax_replay_bitwise():
    w = cr.tensor(np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32), requires_grad=True)
    ref = cr.tensor(w.numpy().copy(), requires_grad=True)

    def step(weights, x):
        o = x @ weights
        loss = (F.softmax(o, axis=1) * o).sum() + F.log_softmax(o, axis=0).sum()
        loss.backward()
        return loss

    run = cr.compile(lambda x: step(w, x))
    for k in range(3):
        x = np.random.default_rng(k).standard_normal((6, 5)).astype(np.float32)
        w.grad = ref.grad = None
        assert run(x).numpy().tobytes() == step(ref, cr.tensor(x)).numpy().tobytes()
        assert w.grad.numpy().tobytes() == ref.grad.numpy().tobytes()


def test_a_tensor_argument_that_now_requires_grad_is_captured_again():
    v = cr.tensor(np.ones(2, np.float32), requires_grad=True)

    @cr.compile
    def f(w, x):
        loss = (w * x * v).sum()
        loss.backward()
        return loss

    x = np.array([1.0, 2.0], np.float32)
    f(cr.tensor(np.ones(2, np.float32)), x)
    f(cr.tensor(np.ones(2, np.float32)), x)  # replayed: no gradient asked for
    w = cr.tensor(np.ones(2, np.float32), requires_grad=True)
    f(w, x)
    np.testing.assert_array_equal(w.grad.numpy(), x)
    assert len(f.programs) == 2


_BAD_LABELS = [(d, bad) for d in (np.int64, np.int32, np.int8, np.uint8, np.uint64) for bad in (-1, -4, 3, 4, 7, 127)]


@pytest.mark.parametrize("dtype,bad", [(d, b) for d, b in _BAD_LABELS if b >= 0 or np.dtype(d).kind == "i"])
def test_a_label_out_of_range_is_refused_at_replay_as_in_eager(dtype, bad):
    """The replay picks each label through flat indices (row * classes + label): a label outside
    [0, 3) would pick another row's class silently, so it is refused before any gradient is added."""
    w = _weights()
    run = cr.compile(_step(w))
    x, y = _data()
    run(x, y.astype(dtype))
    before = [t.grad.numpy().copy() for t in w]
    for row in (0, 2, len(y) - 1):  # the first, a middle and the last row
        with pytest.raises((ValueError, IndexError), match="labels must lie in|out of bounds"):
            run(x, np.where(np.arange(len(y)) == row, bad, y).astype(dtype))
        for t, g in zip(w, before, strict=True):  # a refused replay adds no gradient
            np.testing.assert_array_equal(t.grad.numpy(), g)


@pytest.mark.parametrize("method", ["step", "zero_grad"])
def test_an_optimizer_called_inside_a_compiled_function_is_refused_not_skipped_on_replay(method):
    w = cr.tensor(np.ones(3, np.float32), requires_grad=True)
    opt = cr.optim.SGD([w], lr=0.1)

    @cr.compile
    def train_step(x):
        loss = (w * x).sum()
        loss.backward()
        getattr(opt, method)()  # would run at capture only: every replay would leave w as it is
        return loss

    with pytest.raises(RuntimeError, match=rf"SGD.{method}\(\): called inside a function that cr.compile"):
        train_step(cr.tensor(np.ones(3, np.float32)))
    w.grad = None
    opt.zero_grad()  # outside the compiled function: as usual
    (w * 2.0).sum().backward()
    opt.step()
    np.testing.assert_allclose(w.numpy(), np.full(3, 0.8, np.float32))


def _layout(a, kind):
    """The same matrix as C-contiguous, F-contiguous, a transposed copy's transpose, or a strided view."""
    if kind == "F":
        return np.asfortranarray(a)
    if kind == "T":
        return np.ascontiguousarray(a.T).T
    if kind == "strided":
        big = np.zeros((a.shape[0] * 2, a.shape[1] * 3), a.dtype)
        big[::2, ::3] = a
        return big[::2, ::3]
    return np.ascontiguousarray(a)


def test_numpy_dot_and_matmul_give_the_same_bits_for_matrices():
    """What the matmul -> np.dot lowering rests on, checked on this NumPy and BLAS: for 2-D float32
    and float64 operands of any layout whose product is at least 2 x 2 (an inner dimension of 1
    included), and for a matrix times its own transpose (syrk), the two return the same bits. A
    matrix times a vector through a strided operand can differ: the lowering leaves those alone."""
    rng = np.random.default_rng(0)
    for _ in range(600):
        m, n = (int(rng.choice((2, 3, 8, 17, 64, 130))) for _ in range(2))
        k = int(rng.choice((1, 2, 3, 8, 17, 64, 130)))
        dtype = (np.float32, np.float64)[int(rng.integers(2))]
        kinds = ("C", "F", "T", "strided")
        a = _layout(rng.standard_normal((m, k)).astype(dtype), kinds[int(rng.integers(4))])
        b = _layout(rng.standard_normal((k, n)).astype(dtype), kinds[int(rng.integers(4))])
        assert np.matmul(a, b).tobytes() == np.dot(a, b).tobytes(), (m, k, n, dtype, a.strides, b.strides)
        assert np.matmul(a, a.T).tobytes() == np.dot(a, a.T).tobytes(), (m, k, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(8, 2, 16), (1, 5, 3), (4, 1, 6), (6, 7, 1), (33, 64, 10)])
def test_products_of_matrices_replay_as_np_dot_with_the_eager_bits(dtype, shape):
    """x @ W.T and its gradients: lowered to np.dot where the product is at least 2 x 2, planned
    into buffers, the same bits as eager, also when later calls pass x in another layout than the
    capture saw (strided included)."""
    m, k, n = shape
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal((n, k)).astype(dtype)
    wc, we = cr.tensor(w0, dtype=dtype, requires_grad=True), cr.tensor(w0.copy(), dtype=dtype, requires_grad=True)

    def step(w, x):
        loss = ((x @ w.T) * (x @ w.T)).sum()
        loss.backward()
        return loss

    run = cr.compile(lambda x: step(wc, x))
    for kind in ("C", "C", "F", "T", "strided"):
        x = _layout(rng.standard_normal((m, k)).astype(dtype), kind)
        wc.grad = we.grad = None
        lc, le = run(x), step(we, cr.as_tensor(x, dtype=dtype))  # eager on the same layout (cr.tensor copies)
        assert lc.numpy().tobytes() == le.numpy().tobytes()
        assert wc.grad.numpy().tobytes() == we.grad.numpy().tobytes()
    (program,) = run.programs.values()
    dots = [buf for impl, *_, buf, _ in program.instructions if impl is np.dot]
    if min(m, n) >= 2:  # the forward product x @ W.T at least: into a planned buffer
        assert "= dot_" in program.source and any(buf is not None for buf in dots)
    else:
        assert "= matmul_" in program.source
