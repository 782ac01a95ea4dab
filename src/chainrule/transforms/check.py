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
    run = _GradCheck(fun, inputs, eps, rtol, atol, seed)
    for mode in modes:
        run.check(1, run.scalar, mode, mode)
    if order >= 2:
        for inner in modes:
            for outer in modes:
                run.check(2, run.first(inner), outer, f"{outer}-over-{inner}")
    worst = run.worst
    worst.ok = worst.worst_error <= rtol
    if not worst.ok and raise_on_error:
        raise GradCheckError(worst)
    return worst


class _GradCheck:
    """One ``check_grad`` run: the float64 inputs, the projection to a scalar, the worst error so far."""

    def __init__(self, fun: Callable[..., Any], inputs: Any, eps: float, rtol: float, atol: float, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.fun = fun
        self.xs = [np.array(x._data if isinstance(x, Tensor) else x, dtype=np.float64) for x in inputs]
        probe = fun(*self.tensors(self.xs))
        self.weights = rng.standard_normal(np.shape(probe._data)) if isinstance(probe, Tensor) else 1.0
        self.argnums = [i for i, x in enumerate(self.xs) if x.dtype.kind == "f"]
        self.directions = [rng.standard_normal(x.shape) for x in self.xs]
        self.eps, self.rtol, self.atol = eps, rtol, atol
        self.worst = GradCheckReport(True, 0.0, 1, 0, (), 0.0, 0.0)

    @staticmethod
    def tensors(values: list[np.ndarray[Any, Any]]) -> list[Tensor]:
        return [Tensor(v, dtype=np.float64) for v in values]

    def scalar(self, *args: Any) -> Any:
        return sum(self.fun(*args) * self.weights)

    def along(self, g: Callable[..., Any]) -> Callable[..., Any]:
        """x -> the derivative of g along ``directions`` (forward mode), a function of all inputs."""
        argnums = self.argnums

        def d(*args: Any) -> Any:
            dirs = [Tensor(self.directions[i], dtype=np.float64) for i in argnums]

            def of_floats(*fl: Any) -> Any:
                full = list(args)
                for i, v in zip(argnums, fl, strict=True):
                    full[i] = v
                return g(*full)

            return jvp(of_floats, [args[i] for i in argnums], dirs)[1]

        return d

    def first(self, mode: str) -> Callable[..., Any]:
        """A scalar function whose value is the first derivative of S (dotted with the directions)."""
        if mode == "fwd":
            return self.along(self.scalar)

        def dot_grads(*args: Any) -> Any:
            total: Any = 0.0
            for j in self.argnums:
                total = total + sum(grad(self.scalar, j)(*args) * self.directions[j])
            return total

        return dot_grads

    def compare(
        self, order: int, k: int, analytic: np.ndarray[Any, Any], numeric: np.ndarray[Any, Any], mode: str
    ) -> None:
        err = np.abs(analytic - numeric) / (self.atol / self.rtol + np.abs(numeric))
        if err.size == 0:
            return
        idx = np.unravel_index(int(np.argmax(err)), err.shape)
        if float(err[idx]) >= self.worst.worst_error:
            where = tuple(int(i) for i in idx)
            self.worst = GradCheckReport(
                True, float(err[idx]), order, k, where, float(analytic[idx]), float(numeric[idx]), mode
            )

    def check(self, order: int, g: Callable[..., Any], mode: str, label: str) -> None:
        """Derivatives of the scalar function ``g`` by ``mode``, against finite differences of g."""

        def g_np(values: list[np.ndarray[Any, Any]]) -> float:
            return float(np.asarray(g(*self.tensors(values))._data))

        xs, eps = self.xs, self.eps
        if mode == "rev":
            for k in self.argnums:
                analytic = grad(g, k)(*self.tensors(xs))._data
                self.compare(order, k, analytic, _numeric_grad(g_np, xs, k, eps), label)
        else:
            analytic = np.asarray(self.along(g)(*self.tensors(xs))._data)
            hi = [x + eps * d for x, d in zip(xs, self.directions, strict=True)]
            lo = [x - eps * d for x, d in zip(xs, self.directions, strict=True)]
            numeric = (g_np(hi) - g_np(lo)) / (2 * eps)
            self.compare(order, -1, np.atleast_1d(analytic), np.atleast_1d(numeric), label)
