"""Check derivatives against float64 central finite differences, first and second order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from chainrule.core.tensor import Tensor
from chainrule.ops import sum
from chainrule.transforms.functional import grad, jvp


@dataclass
class GradCheckReport:
    ok: bool
    worst_error: float
    order: int
    argnum: int
    index: tuple[int, ...]
    analytic: float
    numeric: float
    mode: str = "rev"  # how the worst derivative was computed: rev, fwd, or outer-over-inner at order 2

    def __str__(self) -> str:
        status = "ok" if self.ok else "MISMATCH"
        return (
            f"check_grad {status}: worst relative error {self.worst_error:.2e} at order {self.order} "
            f"({self.mode}), input {'all, along a direction' if self.argnum < 0 else self.argnum}, "
            f"index {self.index} (autodiff {self.analytic:.6g}, "
            f"finite differences {self.numeric:.6g})"
        )


class GradCheckError(AssertionError):
    """Raised by :func:`check_grad` when autodiff and finite differences disagree; ``.report`` says where."""

    def __init__(self, report: GradCheckReport) -> None:
        super().__init__(str(report))
        self.report = report


def _numeric_grad(
    f: Callable[[list[np.ndarray[Any, Any]]], float], xs: list[np.ndarray[Any, Any]], k: int, eps: float
) -> np.ndarray[Any, Any]:
    x = xs[k]
    g = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        old = x[idx]
        x[idx] = old + eps
        hi = f(xs)
        x[idx] = old - eps
        lo = f(xs)
        x[idx] = old
        g[idx] = (hi - lo) / (2 * eps)
    return g


def check_grad(
    fun: Callable[..., Any],
    *inputs: Any,
    order: int = 2,
    modes: tuple[str, ...] = ("rev",),
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-7,
    seed: int = 0,
    raise_on_error: bool = True,
) -> GradCheckReport:
    """Compare autodiff with central differences in float64 for every floating input.

    The output is reduced to a scalar S with a fixed random projection so every output
    element counts. ``modes`` picks reverse (``"rev"``: ``grad``) and/or forward (``"fwd"``:
    ``jvp`` along a random direction) mode; ``order=2`` checks every composition of the
    chosen modes (rev-over-rev, fwd-over-rev, rev-over-fwd, fwd-over-fwd), each against finite
    differences of the first derivative. Returns the worst case (as autograd's ``check_grads``).
    """
    for m in modes:
        if m not in ("rev", "fwd"):
            raise ValueError(f"check_grad: modes must be 'rev' and/or 'fwd', got {m!r}")
    rng = np.random.default_rng(seed)
    xs = [np.array(x.data if isinstance(x, Tensor) else x, dtype=np.float64) for x in inputs]
    probe = fun(*[Tensor(x, dtype=np.float64) for x in xs])
    weights = rng.standard_normal(np.shape(probe.data)) if isinstance(probe, Tensor) else 1.0
    argnums = [i for i, x in enumerate(xs) if x.dtype.kind == "f"]
    directions = [rng.standard_normal(x.shape) for x in xs]

    def as_tensors(values: list[np.ndarray[Any, Any]]) -> list[Tensor]:
        return [Tensor(v, dtype=np.float64) for v in values]

    def scalar(*args: Any) -> Any:
        return sum(fun(*args) * weights)

    def along(g: Callable[..., Any]) -> Callable[..., Any]:
        """x -> the derivative of g along ``directions`` (forward mode), a function of all inputs."""

        def d(*args: Any) -> Any:
            dirs = [Tensor(directions[i], dtype=np.float64) for i in argnums]

            def of_floats(*fl: Any) -> Any:
                full = list(args)
                for i, v in zip(argnums, fl, strict=True):
                    full[i] = v
                return g(*full)

            return jvp(of_floats, [args[i] for i in argnums], dirs)[1]

        return d

    def first(mode: str) -> Callable[..., Any]:
        """A scalar function whose value is the first derivative of S (dotted with the directions)."""
        if mode == "fwd":
            return along(scalar)

        def dot_grads(*args: Any) -> Any:
            total: Any = 0.0
            for j in argnums:
                total = total + sum(grad(scalar, j)(*args) * directions[j])
            return total

        return dot_grads

    worst = GradCheckReport(True, 0.0, 1, 0, (), 0.0, 0.0)

    def compare(order_: int, k: int, analytic: np.ndarray[Any, Any], numeric: np.ndarray[Any, Any], mode: str) -> None:
        nonlocal worst
        err = np.abs(analytic - numeric) / (atol / rtol + np.abs(numeric))
        if err.size == 0:
            return
        idx = np.unravel_index(int(np.argmax(err)), err.shape)
        if float(err[idx]) >= worst.worst_error:
            worst = GradCheckReport(
                True,
                float(err[idx]),
                order_,
                k,
                tuple(int(i) for i in idx),
                float(analytic[idx]),
                float(numeric[idx]),
                mode,
            )

    def check(order_: int, g: Callable[..., Any], mode: str, label: str) -> None:
        """Derivatives of the scalar function ``g`` by ``mode``, against finite differences of g."""

        def g_np(values: list[np.ndarray[Any, Any]]) -> float:
            return float(np.asarray(g(*as_tensors(values)).data))

        if mode == "rev":
            for k in argnums:
                analytic = grad(g, k)(*as_tensors(xs)).data
                compare(order_, k, analytic, _numeric_grad(g_np, xs, k, eps), label)
        else:
            analytic = np.asarray(along(g)(*as_tensors(xs)).data)
            hi = [x + eps * d for x, d in zip(xs, directions, strict=True)]
            lo = [x - eps * d for x, d in zip(xs, directions, strict=True)]
            compare(order_, -1, np.atleast_1d(analytic), np.atleast_1d((g_np(hi) - g_np(lo)) / (2 * eps)), label)

    for mode in modes:
        check(1, scalar, mode, mode)
    if order >= 2:
        for inner in modes:
            for outer in modes:
                check(2, first(inner), outer, f"{outer}-over-{inner}")

    worst.ok = worst.worst_error <= rtol
    if not worst.ok and raise_on_error:
        raise GradCheckError(worst)
    return worst
