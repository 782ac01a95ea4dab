"""Op cases for elementwise math, reductions, statistics, scans, sorting (see ``op_cases.Case``).

Functions with a bounded domain get their inputs mapped into it inside ``fn``/``torch_fn`` (the
same map on both sides), e.g. ``arcsin(0.9 * tanh(a))``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import chainrule as cr
import chainrule.nn.functional as F


def _torch() -> Any:
    import torch

    return torch


def _t_reduce(name: str, a: Any, axis: Any, keep: bool) -> Any:
    """PyTorch's one-axis reduction ``name`` (prod, cumsum, ...) applied over several axes."""
    if axis is None:
        axis = tuple(range(a.dim()))
    axes = sorted((axis,) if isinstance(axis, int) else axis, key=lambda d: d % a.dim(), reverse=True)
    for d in axes:
        a = getattr(a, name)(dim=d, keepdim=True)
    return a if keep else a.reshape([n for i, n in enumerate(a.shape) if i not in {d % a.dim() for d in axes}])


def _t_cbrt(a: Any) -> Any:
    return a.sign() * a.abs().pow(1.0 / 3.0)


UNARY_SHAPES = [(3, 4), (), (1,), (2, 1, 3)]
BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (3,)), ((1,), (2, 2))]
AXES = [(None, False), (0, False), (1, True), ((0, 2), False), (-1, True)]
WEIGHTS = np.array([0.5, 2.0, 1.0, 3.0])
ORDER = np.array([[2, 0, 3, 1], [1, 3, 0, 2]])  # a permutation per row


def cases() -> list[Any]:
    from tests.op_cases import Case  # imported here: op_cases imports this module

    c: list[Case] = []

    def add(name: str, fn: Any, torch_fn: Any, shapes: Any, domain: str = "any") -> None:
        c.append(Case(name, fn, torch_fn, shapes, domain))

    # (name, ours, PyTorch's, domain): unary functions, inputs mapped into their domain where needed
    unary = [
        ("square", cr.square, lambda a: a.square(), "any"),
        ("reciprocal", cr.reciprocal, lambda a: a.reciprocal(), "away_from_zero"),
        ("log1p", lambda a: cr.log1p(cr.tanh(a)), lambda a: a.tanh().log1p(), "any"),
        ("expm1", cr.expm1, lambda a: a.expm1(), "any"),
        ("exp2", cr.exp2, lambda a: a.exp2(), "any"),
        ("log2", cr.log2, lambda a: a.log2(), "positive"),
        ("log10", cr.log10, lambda a: a.log10(), "positive"),
        ("tan", lambda a: cr.tan(a * 0.4), lambda a: (a * 0.4).tan(), "any"),
        ("arcsin", lambda a: cr.arcsin(0.9 * cr.tanh(a)), lambda a: (0.9 * a.tanh()).asin(), "any"),
        ("arccos", lambda a: cr.arccos(0.9 * cr.tanh(a)), lambda a: (0.9 * a.tanh()).acos(), "any"),
        ("arctan", cr.arctan, lambda a: a.atan(), "any"),
        ("sinh", cr.sinh, lambda a: a.sinh(), "any"),
        ("cosh", cr.cosh, lambda a: a.cosh(), "any"),
        ("arcsinh", cr.arcsinh, lambda a: a.asinh(), "any"),
        ("arccosh", lambda a: cr.arccosh(a + 1.0), lambda a: (a + 1.0).acosh(), "positive"),
        ("arctanh", lambda a: cr.arctanh(0.9 * cr.tanh(a)), lambda a: (0.9 * a.tanh()).atanh(), "any"),
        ("sinc", cr.sinc, lambda a: a.sinc(), "any"),
        ("sinc_small", lambda a: cr.sinc(a * 0.03), lambda a: (a * 0.03).sinc(), "any"),  # the series branch
        ("deg2rad", cr.deg2rad, lambda a: a.deg2rad(), "any"),
        ("rad2deg", cr.rad2deg, lambda a: a.rad2deg(), "any"),
        ("radians", cr.radians, lambda a: a * (math.pi / 180), "any"),
        ("degrees", cr.degrees, lambda a: a * (180 / math.pi), "any"),
        ("cbrt", cr.cbrt, _t_cbrt, "away_from_zero"),
        ("fabs", cr.fabs, lambda a: a.abs(), "away_from_zero"),
        ("absolute", cr.absolute, lambda a: a.abs(), "away_from_zero"),
        ("nan_to_num", cr.nan_to_num, lambda a: a.nan_to_num(), "any"),
        # rounding is a constant to the engine: only the other factor carries a gradient
        ("floor", lambda a: a * cr.floor(a * 3), lambda a: a * (a * 3).floor(), "any"),
        ("ceil", lambda a: a * cr.ceil(a * 3), lambda a: a * (a * 3).ceil(), "any"),
        ("trunc", lambda a: a * cr.trunc(a * 3), lambda a: a * (a * 3).trunc(), "any"),
        ("rint", lambda a: a * cr.rint(a * 3), lambda a: a * (a * 3).round(), "any"),
        ("round", lambda a: a * cr.round(a * 3), lambda a: a * (a * 3).round(), "any"),
        ("round_decimals", lambda a: a * cr.round(a, 1), lambda a: a * a.round(decimals=1), "any"),
    ]
    for shape in UNARY_SHAPES:
        for name, ours, theirs, domain in unary:
            add(name, ours, theirs, (shape,), domain)
    add("log_softmax_axis0", lambda a: F.log_softmax(a, axis=0), lambda a: a.log_softmax(dim=0), ((4, 3),))
    add("log_softmax_1", lambda a: F.log_softmax(a), lambda a: a.log_softmax(dim=-1), ((1,),))
    add("softmax_3d", lambda a: F.softmax(a, axis=-1), lambda a: a.softmax(dim=-1), ((2, 3, 4),))

    def t_mod(a: Any, b: Any) -> Any:
        return _torch().remainder(a, b)

    binary = [
        ("arctan2", cr.arctan2, lambda a, b: a.atan2(b), "away_from_zero"),
        ("hypot", cr.hypot, lambda a, b: a.hypot(b), "away_from_zero"),
        ("logaddexp", cr.logaddexp, lambda a, b: a.logaddexp(b), "any"),
        ("logaddexp2", cr.logaddexp2, lambda a, b: a.logaddexp2(b), "any"),
        ("fmax", cr.fmax, lambda a, b: a.fmax(b), "any"),
        ("fmin", cr.fmin, lambda a, b: a.fmin(b), "any"),
        ("mod", lambda a, b: cr.mod(a * 3.3, b), lambda a, b: t_mod(a * 3.3, b), "away_from_zero"),
        ("fmod", lambda a, b: cr.fmod(a * 3.3, b), lambda a, b: _torch().fmod(a * 3.3, b), "away_from_zero"),
        ("remainder", lambda a, b: cr.remainder(a * 3.3, b), lambda a, b: t_mod(a * 3.3, b), "away_from_zero"),
        ("true_divide", cr.true_divide, lambda a, b: a / b, "away_from_zero"),
        ("power_general", lambda a, b: cr.power(a, b * 2), lambda a, b: a ** (b * 2), "positive"),
    ]
    for shapes in BINARY_SHAPES:
        for name, ours, theirs, domain in binary:
            add(name, ours, theirs, shapes, domain)
    # the same tensor in both places: both rules' contributions must add up
    for name, ours, theirs, domain in binary:
        if name != "power_general":
            add(f"{name}_repeated", lambda a, f=ours: f(a, a), lambda a, f=theirs: f(a, a), ((3, 4),), domain)
    add("arctan2_mixed", lambda a, b: cr.arctan2(a * b, a), lambda a, b: (a * b).atan2(a), ((3,), (2, 3)))

    for axis, keep in AXES:
        key = f"{axis}{keep}"
        add(
            f"prod{key}",
            lambda a, ax=axis, k=keep: cr.prod(a, axis=ax, keepdims=k),
            lambda a, ax=axis, k=keep: _t_reduce("prod", a, ax, k),
            ((2, 3, 4),),
        )
        for ddof in (0, 1):
            add(
                f"var{key}ddof{ddof}",
                lambda a, ax=axis, k=keep, d=ddof: cr.var(a, axis=ax, ddof=d, keepdims=k),
                lambda a, ax=axis, k=keep, d=ddof: a.var(dim=ax, correction=d, keepdim=k),
                ((2, 3, 4),),
            )
            add(
                f"std{key}ddof{ddof}",
                lambda a, ax=axis, k=keep, d=ddof: cr.std(a, axis=ax, ddof=d, keepdims=k),
                lambda a, ax=axis, k=keep, d=ddof: a.std(dim=ax, correction=d, keepdim=k),
                ((2, 3, 4),),
            )
        add(
            f"ptp{key}",
            lambda a, ax=axis, k=keep: cr.ptp(a, axis=ax, keepdims=k),
            lambda a, ax=axis, k=keep: _t_reduce("amax", a, ax, k) - _t_reduce("amin", a, ax, k),
            ((2, 3, 4),),
        )
        add(
            f"average{key}",
            lambda a, w, ax=axis, k=keep: cr.average(a, axis=ax, weights=w, keepdims=k),
            lambda a, w, ax=axis, k=keep: (a * w).sum(dim=ax, keepdim=k) / w.expand(a.shape).sum(dim=ax, keepdim=k),
            ((2, 3, 4), (2, 3, 4)),
            "positive",
        )
        add(
            f"mean{key}",
            lambda a, ax=axis, k=keep: cr.mean(a, axis=ax, keepdims=k),
            lambda a, ax=axis, k=keep: a.mean(dim=ax, keepdim=k) if ax is not None else a.mean(),
            ((2, 3, 4),),
        )
    add(
        "average_1d_weights",
        lambda a: cr.average(a, axis=1, weights=WEIGHTS),
        lambda a: (a * _tw()).sum(1) / 6.5,
        ((3, 4),),
    )
    add(
        "average_weights_grad",
        lambda a, w: cr.average(a, axis=-1, weights=w),
        lambda a, w: (a * w).sum(-1) / w.sum(),
        ((3, 4), (4,)),
        "positive",
    )
    add("average_none", lambda a: cr.average(a), lambda a: a.mean(), ((3, 4),))
    add("amax", lambda a: cr.amax(a, axis=1), lambda a: a.amax(dim=1), ((3, 4),))
    add("amin", lambda a: cr.amin(a, axis=0, keepdims=True), lambda a: a.amin(dim=0, keepdim=True), ((3, 4),))
    for shape in [(), (1,), (5,)]:
        add("prod", cr.prod, lambda a: a.prod(), (shape,))
        add("mean", cr.mean, lambda a: a.mean(), (shape,))
        add("var", cr.var, lambda a: a.var(correction=0), (shape,))
    add("std_1d", lambda a: cr.std(a, ddof=1), lambda a: a.std(), ((6,),))
    add("prod_0d_axis", lambda a: cr.prod(a, axis=()), lambda a: a * 1, ((),))

    scans = [("cumsum", cr.cumsum, "any"), ("cumprod", cr.cumprod, "away_from_zero")]
    for name, ours, domain in scans:
        for axis, shape in [(0, (4, 3)), (1, (4, 3)), (-1, (2, 3, 4)), (None, (3, 4)), (0, (1,)), (None, ())]:
            add(
                f"{name}{axis}",
                lambda a, f=ours, ax=axis: f(a, axis=ax),
                lambda a, n=name, ax=axis: getattr(a, n)(dim=ax) if ax is not None else getattr(a.flatten(), n)(dim=0),
                (shape,),
                domain,
            )
    for axis, shape in [(-1, (3, 5)), (0, (3, 5)), (1, (2, 4, 3)), (None, (3, 4)), (0, (1,)), (-1, (6,))]:
        add(
            f"sort{axis}",
            lambda a, ax=axis: cr.sort(a, axis=ax),
            lambda a, ax=axis: (a.sort(dim=ax) if ax is not None else a.flatten().sort(dim=0)).values,
            (shape,),
        )
    # helpers that first-order backward runs on plain arrays, called here on tensors
    reduce = cr.ops.reduce
    add(
        "reverse_cumsum",
        lambda a: reduce._reverse_cumsum_p(a, axis=1),
        lambda a: a.flip(1).cumsum(1).flip(1),
        ((3, 4),),
    )
    add(
        "untake_along_axis",
        lambda a: reduce._unpermute_p(a, ORDER, axis=1),
        lambda a: _torch().zeros_like(a).scatter(1, _torch().tensor(ORDER), a),
        ((2, 4),),
    )
    add("sort_then_scale", lambda a: cr.sort(a) * a, lambda a: a.sort(dim=-1).values * a, ((3, 4),))
    return c


def _tw() -> Any:
    return _torch().tensor(WEIGHTS)
