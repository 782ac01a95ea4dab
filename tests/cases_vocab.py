"""Op cases for the vocabulary added in issue 18 (compositions of chainrule's primitives, and the
forward-pass edge cases that now work), with their PyTorch equivalents; see ``op_cases.Case``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import chainrule as cr
import chainrule.nn.functional as F

LA = cr.linalg
TAKE = np.array([[0, 3]])


def _t() -> Any:
    import torch

    return torch


def cases() -> list[Any]:
    from tests.op_cases import Case  # imported here: op_cases imports this module

    c: list[Case] = []

    def add(name: str, fn: Any, tfn: Any, *shapes: tuple[int, ...], domain: str = "any") -> None:
        c.append(Case(name, fn, tfn, shapes, domain))

    t = _t
    add("copy", lambda a: cr.copy(a) * a, lambda a: a.clone() * a, (3, 4))
    add("tensor_copy", lambda a: a.copy() * a, lambda a: a.clone() * a, (2, 3))
    add("positive", lambda a: cr.positive(a) * a, lambda a: t().positive(a) * a, (3,))
    add("real_conj", lambda a: cr.real(a) * cr.conj(a), lambda a: a.real * a.conj(), (3,))
    add(
        "nansum",
        lambda a: cr.nansum(cr.where(a > 0.8, math.nan, a * a), axis=1),
        lambda a: t().nansum(t().where(a > 0.8, math.nan, a * a), dim=1),
        (3, 4),
    )
    add(
        "nanmean",
        lambda a: cr.nanmean(cr.where(a > 0.8, math.nan, a**3), axis=0, keepdims=True),
        lambda a: t().nanmean(t().where(a > 0.8, math.nan, a**3), dim=0, keepdim=True),
        (4, 3),
    )
    for indexing in ("xy", "ij"):
        add(
            f"meshgrid_{indexing}",
            lambda a, b, i=indexing: cr.stack(cr.meshgrid(a, b * a[0], indexing=i)),
            lambda a, b, i=indexing: t().stack(t().meshgrid(a, b * a[0], indexing=i)),
            (3,),
            (2,),
        )
    add(
        "broadcast_arrays",
        lambda a, b: cr.stack(cr.broadcast_arrays(a, b)) * a,
        lambda a, b: t().stack(t().broadcast_tensors(a, b)) * a,
        (2, 1),
        (3,),
    )
    add("diagflat", lambda a: cr.diagflat(a, 1), lambda a: t().diagflat(a, 1), (2, 2))
    add(
        "float_power",
        cr.float_power,
        lambda a, b: t().float_power(a, b),
        (3, 2),
        (2,),
        domain="positive",
    )
    add(
        "heaviside",
        lambda a, b: cr.heaviside(cr.floor(a), b) * b,
        lambda a, b: t().where(a.floor() > 0, 1.0, t().where(a.floor() < 0, 0.0, b)) * b,  # no torch derivative
        (4, 3),
        (4, 3),
    )
    add("vander", lambda a: cr.vander(a, 4), lambda a: t().linalg.vander(a, N=4).flip(-1), (3,))
    add("vander_increasing", lambda a: cr.vander(a, increasing=True), lambda a: t().linalg.vander(a), (3,))
    add("append_axis", lambda a, b: cr.append(a, b, axis=0), lambda a, b: t().cat([a, b], 0), (2, 3), (1, 3))
    add(
        "append_flat",
        lambda a, b: cr.append(a, b),
        lambda a, b: t().cat([a.flatten(), b.flatten()]),
        (2, 2),
        (3,),
    )
    add(
        "select",
        lambda a, b: cr.select([a > 0.3, a < -0.5], [a * a, b], default=a * 3.0),
        lambda a, b: t().where(a > 0.3, a * a, t().where(a < -0.5, b, a * 3.0)),
        (3, 4),
        (3, 4),
    )
    add("tensorinv", lambda a: LA.tensorinv(a, ind=2), lambda a: t().linalg.tensorinv(a, ind=2), (2, 3, 6))
    add("tensorsolve", LA.tensorsolve, lambda a, b: t().linalg.tensorsolve(a, b), (2, 3, 6), (2, 3))
    add(  # a rank-2 4x3 matrix: the rank stays 2 under any change of the factors
        "pinv_constant_rank",
        lambda u, v: LA.pinv(u @ v),
        lambda u, v: t().linalg.pinv(u @ v),
        (4, 2),
        (2, 3),
    )
    # forward-pass edge cases of issue 18, now with derivatives checked too
    add(
        "take_along_axis_broadcast",
        lambda a: cr.take_along_axis(a, TAKE, axis=1),
        lambda a: t().take_along_dim(a, t().tensor(TAKE), dim=1),
        (5, 5),
    )
    add("sum_0d_axis0", lambda a: cr.sum(a, axis=0), lambda a: a.sum(0), ())
    add("prod_0d_axis-1", lambda a: cr.prod(a, axis=-1), lambda a: a.prod(-1), ())
    add("max_0d_axis0", lambda a: cr.max(a, axis=0), lambda a: a.amax(0), ())
    add("cumsum_0d_axis0", lambda a: cr.cumsum(a, axis=0), lambda a: a.cumsum(0).reshape(1), ())
    add("cumprod_0d_axis-1", lambda a: cr.cumprod(a, axis=-1), lambda a: a.cumprod(-1).reshape(1), ())
    add("logsumexp_0d", lambda a: cr.logsumexp(a, axis=0), lambda a: a.logsumexp(0), ())
    add("softmax_0d", lambda a: F.softmax(a) * a, lambda a: a.softmax(0) * a, ())
    add("log_softmax_0d", lambda a: F.log_softmax(a) + a, lambda a: a.log_softmax(0) + a, ())
    add("std_one_element", lambda a: cr.std(a, axis=1), lambda a: a.std(1, correction=0), (3, 1))
    add("expand_dims_tuple", lambda a: cr.expand_dims(a, (0, 2)), lambda a: a.unsqueeze(0).unsqueeze(2), (2, 3))
    add(
        "einsum_sublist",
        lambda a, b: cr.einsum(a, [0, 1], b, [1, 2], [0, 2]),
        lambda a, b: t().einsum("ij,jk->ik", a, b),
        (2, 3),
        (3, 4),
    )
    add(
        "norm_of_list",
        lambda a: LA.norm([a[0], a[1] * 2.0]),
        lambda a: t().linalg.norm(t().stack([a[0], a[1] * 2.0])),
        (2, 3),
    )
    add("diff_n0", lambda a: cr.diff(a, n=0, append=a) * a, lambda a: a * a, (2, 3))
    add("mod_operator", lambda a: a % 0.7, lambda a: t().remainder(a, 0.7), (3, 4))
    return c
