"""PyTorch's own test inputs (its OpInfo database, ``op_db``) run through chainrule.

For every OpInfo entry with a chainrule equivalent (a NumPy ufunc reference chainrule has, or an
adapter in ``tests/opinfo_adapters.py``), up to ``SAMPLES`` of its float64 sample inputs are
compared with PyTorch: values, VJPs, JVPs and second-order (reverse-over-reverse) products. Every
mismatch is re-judged by central finite differences of chainrule's own function along a random
direction: chainrule is wrong only if the differences side with PyTorch against it; when they
side with neither (a kink, a tie, a point off the domain), the case is listed as undecided. The
counts, and every skip with its reason, are printed in the test run's summary.
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np
import pytest

import chainrule as cr

torch = pytest.importorskip("torch")
pytest.importorskip("expecttest")  # torch.testing._internal needs it
from tests.opinfo_adapters import ADAPTERS, POST, Skip  # noqa: E402
from torch.testing._internal.common_methods_invocations import op_db  # noqa: E402

SAMPLES = 4  # per op, to keep CI's time in check
MAX_SIZE = 400  # elements over all differentiable inputs of one sample
STEP = 1e-6
COUNTS: collections.Counter[str] = collections.Counter()
SKIPS: collections.Counter[str] = collections.Counter()
NOTES: list[str] = []
RNG = np.random.default_rng(18)


def _entries() -> dict[str, tuple[Any, Any]]:
    """test id -> (OpInfo, chainrule callable in PyTorch's convention)."""
    out: dict[str, tuple[Any, Any]] = {}
    for op in op_db:
        key = (op.name, op.variant_test_name)
        if not op.supports_autograd or torch.float64 not in op.dtypes:
            continue
        fn = ADAPTERS.get(key)
        ref = getattr(op, "ref", None)
        if fn is None and isinstance(ref, np.ufunc) and hasattr(cr, ref.__name__):
            ufunc = getattr(cr, ref.__name__)
            fn = lambda *a, _f=ufunc, **kw: _f(*a) if not kw else _raise(Skip(f"keywords {sorted(kw)}"))  # noqa: E731
        if fn is not None:
            out[".".join(k for k in key if k)] = (op, fn)
    return out


def _raise(exc: Exception) -> Any:
    raise exc


ENTRIES = _entries()


class _Sample:
    """One OpInfo sample with its float64 tensors pulled out as the differentiable inputs."""

    def __init__(self, s: Any) -> None:
        self.float_leaves: list[np.ndarray] = []
        self.pos = [self._scan(s.input), *(self._scan(a) for a in s.args)]
        self.kw = {k: self._scan(v) for k, v in s.kwargs.items()}

    def _scan(self, v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            if v.dtype == torch.float64:
                self.float_leaves.append(v.detach().numpy().copy())
                return ("leaf", len(self.float_leaves) - 1)
            return ("const", v.detach().numpy().copy())
        if isinstance(v, list | tuple) and any(isinstance(e, torch.Tensor) for e in v):
            return ("seq", [self._scan(e) for e in v])
        return ("value", v)

    def _fill(self, v: Any, xs: list[Any], as_torch: bool) -> Any:
        kind, payload = v
        if kind == "leaf":
            return xs[payload]
        if kind == "const":
            return torch.from_numpy(payload) if as_torch else payload
        if kind == "seq":
            return [self._fill(e, xs, as_torch) for e in payload]
        return payload

    def call(self, fn: Any, xs: list[Any], as_torch: bool) -> Any:
        return fn(
            *[self._fill(p, xs, as_torch) for p in self.pos],
            **{k: self._fill(v, xs, as_torch) for k, v in self.kw.items()},
        )


def _np(x: Any) -> np.ndarray:
    return np.asarray(x.numpy() if isinstance(x, cr.Tensor) else x, dtype=np.float64)


def _close(a: Any, b: Any, rtol: float = 1e-7, atol: float = 1e-9) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))


def _judge(name: str, what: str, ours: Any, theirs: Any, fd: Any) -> None:
    """A mismatch: finite differences decide (tolerances scaled for the O(h²) and rounding errors)."""
    tol = {"rtol": 1e-4, "atol": 1e-5}
    if _close(ours, fd, **tol):
        COUNTS[f"{what} mismatch, chainrule confirmed by finite differences"] += 1
        NOTES.append(f"{name}: {what}: PyTorch differs, finite differences agree with chainrule")
    elif _close(theirs, fd, **tol):
        COUNTS[f"{what} mismatch, chainrule WRONG"] += 1
        pytest.fail(f"{name}: chainrule's {what} disagrees with PyTorch and with finite differences")
    else:
        COUNTS[f"{what} mismatch, undecided (finite differences side with neither)"] += 1
        NOTES.append(f"{name}: {what}: finite differences agree with neither (a kink or tie)")


def _run_sample(name: str, op: Any, fn: Any, sample: Any) -> None:
    s = _Sample(sample)
    xs = s.float_leaves
    if not xs:
        SKIPS["no float64 tensor input"] += 1
        return
    if sum(x.size for x in xs) > MAX_SIZE:
        SKIPS[f"sample larger than {MAX_SIZE} elements"] += 1
        return
    post = POST.get((op.name, op.variant_test_name), lambda out: out)

    def ours(*arrays: Any) -> Any:
        return s.call(fn, list(arrays), as_torch=False)

    def theirs(*ts: Any) -> Any:
        return post(s.call(op, list(ts), as_torch=True))

    try:
        value = ours(*xs)
    except Skip as exc:
        SKIPS[str(exc)] += 1
        return
    except (ValueError, TypeError, cr.ChainruleError) as exc:  # a documented refusal: listed, not hidden
        SKIPS[f"chainrule refuses: {type(exc).__name__}: {str(exc)[:90]}"] += 1
        return
    ts = [torch.tensor(x, requires_grad=True) for x in xs]
    ref = theirs(*ts)
    if not isinstance(ref, torch.Tensor) or ref.dtype != torch.float64:
        SKIPS["PyTorch's output is not one float64 tensor"] += 1
        return
    COUNTS["samples"] += 1
    if not _close(_np(value), ref.detach().numpy()):
        np_ref = getattr(op, "ref", None)
        if np_ref is not None and _close(_np(value), np.asarray(s.call(np_ref, list(xs), as_torch=False))):
            COUNTS["value mismatch, chainrule agrees with NumPy"] += 1
            NOTES.append(f"{name}: value: PyTorch differs from NumPy; chainrule follows NumPy")
            return
        pytest.fail(f"{name}: value {_np(value)} vs PyTorch {ref.detach().numpy()}")
    COUNTS["values equal"] += 1
    if not ref.requires_grad or ref.numel() == 0:
        SKIPS["no gradient (PyTorch's output does not require grad, or is empty)"] += 1
        return
    _derivatives(name, ours, theirs, xs, ts, ref)


def _fd(ours: Any, xs: list[np.ndarray], ds: list[np.ndarray], f: Any = None) -> np.ndarray:
    f = f or (lambda *a: _np(ours(*a)))
    plus = f(*[x + STEP * d for x, d in zip(xs, ds, strict=True)])
    minus = f(*[x - STEP * d for x, d in zip(xs, ds, strict=True)])
    return (plus - minus) / (2 * STEP)


def _derivatives(name: str, ours: Any, theirs: Any, xs: list[np.ndarray], ts: list[Any], ref: Any) -> None:
    u = RNG.standard_normal(ref.shape)
    ds = [RNG.standard_normal(x.shape) for x in xs]
    vs = [RNG.standard_normal(x.shape) for x in xs]
    mine = [cr.tensor(x, dtype="float64", requires_grad=True) for x in xs]
    out = ours(*mine)
    if not getattr(out, "requires_grad", False):  # piecewise constant (floor, sign...): a constant to chainrule
        tgrads = torch.autograd.grad(ref, ts, torch.tensor(u), allow_unused=True)
        zero = all(g is None or not g.abs().max() > 0 for g in tgrads)
        COUNTS["VJPs equal (zero: piecewise constant)" if zero else "VJP: PyTorch nonzero, chainrule constant"] += 1
        assert zero, f"{name}: chainrule treats it as a constant but PyTorch's VJP is nonzero"
        return
    try:
        grads = cr.grad(out, mine, gradient=cr.tensor(u, dtype="float64"), create_graph=True)
    except cr.ChainruleError as exc:
        SKIPS[f"chainrule refuses the derivative ({type(exc).__name__})"] += 1
        NOTES.append(f"{name}: derivative refused: {str(exc)[:100]}")
        return
    tgrads = torch.autograd.grad(ref, ts, torch.tensor(u), create_graph=True, allow_unused=True)
    tgrads_np = [
        np.zeros(x.shape) if g is None else g.detach().numpy(force=True) for g, x in zip(tgrads, xs, strict=True)
    ]
    if all(_close(g.numpy(), tg) for g, tg in zip(grads, tgrads_np, strict=True)):
        COUNTS["VJPs equal"] += 1
    else:
        fd = float(np.sum(u * _fd(ours, xs, ds)))
        dot = lambda gs: sum(float(np.sum(g * d)) for g, d in zip(gs, ds, strict=True))  # noqa: E731
        _judge(name, "VJP", dot([g.numpy() for g in grads]), dot(tgrads_np), fd)
    _tangents(name, ours, theirs, xs, ds)
    _second_order(name, ours, xs, ts, grads, tgrads, vs, ds, u)


def _tangents(name: str, ours: Any, theirs: Any, xs: list[np.ndarray], ds: list[np.ndarray]) -> None:
    _, tangent = cr.jvp(ours, xs, ds)
    try:
        _, ttangent = torch.func.jvp(theirs, tuple(torch.tensor(x) for x in xs), tuple(torch.tensor(d) for d in ds))
    except (NotImplementedError, RuntimeError):
        SKIPS["JVP: PyTorch has no forward mode for this op"] += 1
        return
    if _close(_np(tangent), ttangent.numpy(force=True)):
        COUNTS["JVPs equal"] += 1
    else:
        _judge(name, "JVP", _np(tangent), ttangent.numpy(force=True), _fd(ours, xs, ds))


def _second_order(name: str, ours: Any, xs: Any, ts: Any, grads: Any, tgrads: Any, vs: Any, ds: Any, u: Any) -> None:
    total = sum(cr.sum(g * v) for g, v in zip(grads, vs, strict=True))
    pairs = [(g, v) for g, v in zip(tgrads, vs, strict=True) if g is not None and g.requires_grad]
    if not getattr(total, "requires_grad", False) and not pairs:
        COUNTS["second order: zero in both"] += 1
        return
    mine = [cr.tensor(x, dtype="float64", requires_grad=True) for x in xs]
    g1 = cr.grad(ours(*mine), mine, gradient=cr.tensor(u, dtype="float64"), create_graph=True)
    s = sum(cr.sum(g * v) for g, v in zip(g1, vs, strict=True))
    h = cr.grad(s, mine) if getattr(s, "requires_grad", False) else [np.zeros(x.shape) for x in xs]
    h = [_np(x) for x in h]
    if pairs:
        tt = sum((g * torch.tensor(v)).sum() for g, v in pairs)
        th = torch.autograd.grad(tt, ts, allow_unused=True)
        th = [np.zeros(x.shape) if g is None else g.numpy(force=True) for g, x in zip(th, xs, strict=True)]
    else:
        th = [np.zeros(x.shape) for x in xs]
    if all(_close(a, b, rtol=1e-6, atol=1e-8) for a, b in zip(h, th, strict=True)):
        COUNTS["second-order products equal"] += 1
        return

    def first(*arrays: Any) -> np.ndarray:
        ms = [cr.tensor(a, dtype="float64", requires_grad=True) for a in arrays]
        gs = cr.grad(ours(*ms), ms, gradient=cr.tensor(u, dtype="float64"))
        return np.array(sum(float(np.sum(_np(g) * v)) for g, v in zip(gs, vs, strict=True)))

    fd = float(_fd(ours, xs, ds, first))
    dot = lambda gs: sum(float(np.sum(g * d)) for g, d in zip(gs, ds, strict=True))  # noqa: E731
    _judge(name, "second-order product", dot(h), dot(th), fd)


@pytest.mark.filterwarnings("ignore")  # PyTorch's own deprecation notes and the samples' degenerate slices
@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_opinfo_samples_match_pytorch(name):
    op, fn = ENTRIES[name]
    with np.errstate(all="ignore"):
        for i, sample in enumerate(op.sample_inputs("cpu", torch.float64, requires_grad=False)):
            if i >= SAMPLES:
                break
            _run_sample(f"{name}[{i}]", op, fn, sample)


def summary() -> list[str]:
    """The lines for the test run's summary (tests/conftest.py prints them)."""
    if not COUNTS and not SKIPS:
        return []
    lines = [f"PyTorch OpInfo suite: {len(ENTRIES)} ops with a chainrule equivalent, up to {SAMPLES} samples each"]
    lines += [f"  {k}: {v}" for k, v in sorted(COUNTS.items())]
    lines += ["  skipped samples, by reason:"] + [f"    {k}: {v}" for k, v in sorted(SKIPS.items())]
    lines += (
        ["  notes:"]
        + [f"    {n}" for n in NOTES[:60]]
        + ([f"    ... {len(NOTES) - 60} more"] if len(NOTES) > 60 else [])
    )
    return lines
