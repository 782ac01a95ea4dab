"""Check derivatives against float64 central finite differences, first and second order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from chainrule.core.tensor import Tensor
from chainrule.ops import sum
from chainrule.transforms.functional import grad


@dataclass
class GradCheckReport:
    ok: bool
    worst_error: float
    order: int
    argnum: int
    index: tuple[int, ...]
    analytic: float
    numeric: float

    def __str__(self) -> str:
        status = "ok" if self.ok else "MISMATCH"
        return (
            f"check_grad {status}: worst relative error {self.worst_error:.2e} at order {self.order}, "
            f"input {self.argnum}, index {self.index} (autodiff {self.analytic:.6g}, "
            f"finite differences {self.numeric:.6g})"
        )


class GradCheckError(AssertionError):
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
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-7,
    seed: int = 0,
    raise_on_error: bool = True,
) -> GradCheckReport:
    """Compare autodiff with central differences in float64 for every floating input.

    The output is reduced to a scalar with a fixed random projection so every output
    element counts. Order 2 compares the derivative of the autodiff gradient (along a
    random direction) with finite differences of that gradient. Returns the worst case.
    """
    rng = np.random.default_rng(seed)
    xs = [np.array(x.data if isinstance(x, Tensor) else x, dtype=np.float64) for x in inputs]
    probe = fun(*[Tensor(x, dtype=np.float64) for x in xs])
    weights = rng.standard_normal(np.shape(probe.data)) if isinstance(probe, Tensor) else 1.0
    argnums = [i for i, x in enumerate(xs) if x.dtype.kind == "f"]

    def scalar(*args: Any) -> Any:
        return sum(fun(*args) * weights)

    def scalar_np(values: list[np.ndarray[Any, Any]]) -> float:
        return float(scalar(*[Tensor(v, dtype=np.float64) for v in values]).data)

    worst = GradCheckReport(True, 0.0, 1, 0, (), 0.0, 0.0)

    def compare(order_: int, k: int, analytic: np.ndarray[Any, Any], numeric: np.ndarray[Any, Any]) -> None:
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
            )

    for k in argnums:
        analytic = grad(scalar, k)(*[Tensor(x, dtype=np.float64) for x in xs]).data
        compare(1, k, analytic, _numeric_grad(scalar_np, xs, k, eps))

    if order >= 2:
        directions = [rng.standard_normal(x.shape) for x in xs]
        for k in argnums:
            # d/dx_k of <grad(scalar)(xs), v>, summed over the floating inputs' gradients
            def first_dot(*args: Any) -> Any:
                total: Any = 0.0
                for j in argnums:
                    total = total + sum(grad(scalar, j)(*args) * directions[j])
                return total

            def first_dot_np(values: list[np.ndarray[Any, Any]]) -> float:
                return float(first_dot(*[Tensor(v, dtype=np.float64) for v in values]).data)

            analytic2 = grad(first_dot, k)(*[Tensor(x, dtype=np.float64) for x in xs]).data
            compare(2, k, analytic2, _numeric_grad(first_dot_np, xs, k, eps))

    worst.ok = worst.worst_error <= rtol
    if not worst.ok and raise_on_error:
        raise GradCheckError(worst)
    return worst
