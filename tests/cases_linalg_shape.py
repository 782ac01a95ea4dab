"""Op cases for linear algebra, products, shape manipulation (see ``op_cases.Case``).

Matrix functions get well-conditioned inputs built inside ``fn``/``torch_fn`` (``a @ a.T + 3 I``),
and decompositions are compared through sign-invariant quantities (squared vector entries,
``U * S @ Vh``), since each eigen/singular vector is defined only up to its sign.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import chainrule as cr
import chainrule.ops.linalg as LA
from chainrule.ops import manip as M
from chainrule.ops import products as P

TAKE = np.array([3, 0, 0, 5, 2])
ORDER = np.array([[2, 0, 1, 1], [0, 0, 3, 1], [1, 2, 2, 0]])
ZERO_ROW = np.array([[1.0], [0.0], [1.0]])  # makes row 1 exactly zero: norms at 0


def _t() -> Any:
    import torch

    return torch


def _spd(a: Any) -> Any:
    """A symmetric positive-definite matrix (stack) built from any square ``a``; works for both libraries."""
    n = a.shape[-1]
    eye = np.eye(n) * 3.0
    if isinstance(a, cr.Tensor):
        return a @ cr.swapaxes(a, -1, -2) + eye
    return a @ a.transpose(-1, -2) + _t().tensor(eye)


def _tpad(a: Any, widths: list[tuple[int, int]], value: float = 0.0) -> Any:
    flat = [n for pair in reversed(widths) for n in pair]
    return _t().nn.functional.pad(a, flat, value=value)


def _index_pad(a: Any, widths: list[tuple[int, int]], mode: str) -> Any:
    for ax, (lo, hi) in enumerate(widths):
        idx = np.pad(np.arange(a.shape[ax]), (lo, hi), mode=mode)  # type: ignore[call-overload]
        a = a[(slice(None),) * ax + (_t().tensor(idx),)]
    return a


def _products(c: list[Any], Case: Any) -> None:
    def add(name: str, fn: Any, tfn: Any, *shapes: tuple[int, ...], domain: str = "any") -> None:
        c.append(Case(name, fn, tfn, shapes, domain))

    t = _t
    add("dot_nd", P.dot, lambda a, b: t().tensordot(a, b, dims=([2], [1])), (2, 2, 3), (2, 3, 4))
    add("dot_nd_vec", P.dot, lambda a, b: a @ b, (2, 2, 3), (3,))
    add("dot_2d", P.dot, lambda a, b: a @ b, (3, 4), (4, 2))
    add("dot_vec", P.dot, lambda a, b: (a * b).sum(), (4,), (4,))
    add("dot_0d", P.dot, lambda a, b: a * b, (), (2, 3))
    add("dot_repeated", lambda a: P.dot(a, a), lambda a: a @ a, (3, 3))
    add("vdot", P.vdot, lambda a, b: (a.reshape(-1) * b.reshape(-1)).sum(), (2, 3), (3, 2))
    add("inner", P.inner, lambda a, b: t().inner(a, b), (2, 3), (4, 3))
    add("inner_0d", P.inner, lambda a, b: a * b, (), (3,))
    add("outer", P.outer, lambda a, b: t().outer(a.reshape(-1), b.reshape(-1)), (2, 2), (3,))
    add("tensordot_int", lambda a, b: P.tensordot(a, b, 2), lambda a, b: t().tensordot(a, b, 2), (2, 3, 4), (3, 4, 2))
    add("tensordot_0", lambda a, b: P.tensordot(a, b, 0), lambda a, b: t().tensordot(a, b, 0), (2,), (3,))
    add(
        "tensordot_pairs",
        lambda a, b: P.tensordot(a, b, ([0, 2], [2, 0])),
        lambda a, b: t().tensordot(a, b, ([0, 2], [2, 0])),
        (2, 3, 4),
        (4, 5, 2),
    )
    add("tensordot_int_axes", lambda a, b: P.tensordot(a, b, (1, 0)), lambda a, b: a @ b, (3, 4), (4, 2))
    for spec, shapes in [
        ("ij,jk->ik", ((2, 3), (3, 4))),
        ("ij,jk", ((2, 3), (3, 4))),  # implicit output
        ("ii", ((3, 3),)),  # trace
        ("ii->i", ((3, 3),)),  # diagonal
        ("iij->ji", ((2, 2, 3),)),
        ("ij->", ((2, 3),)),
        ("ij->j", ((2, 3),)),
        ("i,i->", ((4,), (4,))),
        ("i,j->ij", ((2,), (3,))),
        ("bij,bjk->bik", ((2, 2, 3), (2, 3, 2))),
        ("...ij,...jk->...ik", ((2, 1, 2, 3), (3, 3, 2))),  # ellipsis broadcasting
        ("ij,jk,kl->il", ((2, 3), (3, 4), (4, 2))),
        ("ij,ij->i", ((3, 4), (3, 4))),
        ("ji", ((2, 3),)),
        (",ij->ij", ((), (2, 3))),
    ]:
        add(f"einsum[{spec}]", lambda *xs, s=spec: P.einsum(s, *xs), lambda *xs, s=spec: t().einsum(s, *xs), *shapes)
    add("einsum_repeated_arg", lambda a: P.einsum("ij,jk->ik", a, a), lambda a: a @ a, (3, 3))
    add("einsum_repeated_diag", lambda a: P.einsum("ij,ii->j", a, a), lambda a: t().einsum("ij,ii->j", a, a), (3, 3))
    add("kron", P.kron, lambda a, b: t().kron(a, b), (2, 3), (3, 2))
    add("kron_mixed_ndim", P.kron, lambda a, b: t().kron(a.reshape(1, 3), b), (3,), (2, 2))
    add("cross", P.cross, lambda a, b: t().linalg.cross(a, b.expand(4, 3), dim=-1), (4, 3), (3,))
    add(
        "cross_axis",
        lambda a, b: P.cross(a, b, axis=0),
        lambda a, b: t().linalg.cross(a, b, dim=0),
        (3, 2),
        (3, 2),
    )


def _linalg(c: list[Any], Case: Any) -> None:
    def add(name: str, fn: Any, tfn: Any, *shapes: tuple[int, ...], domain: str = "any") -> None:
        c.append(Case(name, fn, tfn, shapes, domain))

    t = _t
    tl = lambda: t().linalg  # noqa: E731
    add("solve", lambda a, b: LA.solve(_spd(a), b), lambda a, b: tl().solve(_spd(a), b), (3, 3), (3, 2))
    add("solve_vec", lambda a, b: LA.solve(_spd(a), b), lambda a, b: tl().solve(_spd(a), b), (3, 3), (3,))
    add(
        "solve_batched_vec",
        lambda a, b: LA.solve(_spd(a), b),
        lambda a, b: tl().solve(_spd(a), b.unsqueeze(-1).expand(2, 3, 1)).squeeze(-1),
        (2, 3, 3),
        (3,),
    )
    add(
        "solve_broadcast",
        lambda a, b: LA.solve(_spd(a), b),
        lambda a, b: tl().solve(_spd(a), b),
        (3, 3),
        (2, 3, 2),
    )
    add("solve_1x1", LA.solve, lambda a, b: tl().solve(a, b), (1, 1), (1, 1), domain="away_from_zero")
    add("solve_repeated", lambda a: LA.solve(_spd(a), a), lambda a: tl().solve(_spd(a), a), (3, 3))
    add("inv", lambda a: LA.inv(_spd(a)), lambda a: tl().inv(_spd(a)), (3, 3))
    add("inv_batched", lambda a: LA.inv(_spd(a)), lambda a: tl().inv(_spd(a)), (2, 3, 3))
    add("inv_general", LA.inv, lambda a: tl().inv(a), (2, 2), domain="away_from_zero")
    add("det", LA.det, lambda a: tl().det(a), (3, 3))
    add("det_batched", LA.det, lambda a: tl().det(a), (2, 2, 2))
    add("det_1x1", LA.det, lambda a: tl().det(a), (1, 1))
    add("slogdet", lambda a: LA.slogdet(a).logabsdet, lambda a: tl().slogdet(a).logabsdet, (3, 3))
    add(
        "slogdet_sign_times",
        lambda a: LA.slogdet(a)[0] * LA.slogdet(a)[1],
        lambda a: tl().slogdet(a)[0] * tl().slogdet(a)[1],
        (2, 3, 3),
    )
    add("cholesky", lambda a: LA.cholesky(_spd(a)), lambda a: tl().cholesky(_spd(a)), (3, 3))
    add("cholesky_batched", lambda a: LA.cholesky(_spd(a)), lambda a: tl().cholesky(_spd(a)), (2, 3, 3))

    def teigh(a: Any) -> Any:
        return tl().eigh((a + a.transpose(-1, -2)) / 2)

    add("eigh_values", lambda a: LA.eigh(a).eigenvalues, lambda a: teigh(a).eigenvalues, (4, 4))
    add("eigvalsh_sq", lambda a: cr.sum(LA.eigvalsh(a) ** 2), lambda a: (teigh(a).eigenvalues ** 2).sum(), (3, 3))
    add("eigh_vectors_sq", lambda a: LA.eigh(a).eigenvectors ** 2, lambda a: teigh(a).eigenvectors ** 2, (3, 3))
    add(
        "eigh_batched_reconstruct",
        lambda a: (lambda w, v: (v * cr.tanh(w)[..., None, :]) @ cr.swapaxes(v, -1, -2))(*LA.eigh(a)),
        lambda a: (lambda r: (r[1] * r[0].tanh()[..., None, :]) @ r[1].transpose(-1, -2))(teigh(a)),
        (2, 3, 3),
    )
    add("eigh_1x1", lambda a: LA.eigh(a).eigenvalues, lambda a: teigh(a).eigenvalues, (1, 1))

    def tsvd(a: Any) -> Any:
        return tl().svd(a, full_matrices=False)

    for shape in [(4, 3), (3, 4), (3, 3)]:
        add("svd_values", lambda a: LA.svd(a, full_matrices=False).S, lambda a: tsvd(a).S, shape)
        add("svd_U_sq", lambda a: LA.svd(a, full_matrices=False).U ** 2, lambda a: tsvd(a).U ** 2, shape)
        add("svd_Vh_sq", lambda a: LA.svd(a, full_matrices=False).Vh ** 2, lambda a: tsvd(a).Vh ** 2, shape)
    add(
        "svd_batched_reconstruct",
        lambda a: (lambda u, s, vh: (u * cr.sin(s)[..., None, :]) @ vh)(*LA.svd(a, full_matrices=False)),
        lambda a: (lambda r: (r.U * r.S.sin()[..., None, :]) @ r.Vh)(tsvd(a)),
        (2, 4, 3),
    )
    add("svdvals", LA.svdvals, lambda a: tl().svdvals(a), (2, 3))
    add("norm", LA.norm, lambda a: tl().norm(a), (3, 4))
    add("norm_0d", LA.norm, lambda a: (a * a).sqrt(), ())
    add("norm_3d", LA.norm, lambda a: tl().norm(a), (2, 3, 2))
    add("norm_keepdims", lambda a: LA.norm(a, keepdims=True), lambda a: tl().norm(a).reshape(1, 1), (3, 4))
    for ord_ in [None, 1, 3, 2.5, np.inf, -np.inf]:
        add(
            f"norm_vec_ord{ord_}",
            lambda a, o=ord_: LA.norm(a, o, axis=1),
            lambda a, o=ord_: tl().vector_norm(a, 2 if o is None else o, dim=1),
            (3, 4),
        )
    add("norm_vec_1d_ord1", lambda a: LA.norm(a, 1), lambda a: a.abs().sum(), (5,))
    add(
        "norm_axis_keepdims",
        lambda a: LA.norm(a, axis=0, keepdims=True),
        lambda a: tl().vector_norm(a, dim=0, keepdim=True),
        (3, 4),
    )
    # at 0, PyTorch's second derivative of the 2-norm is nan: see test_ops_linalg_norm.py
    for ord_ in [1, 3]:
        add(
            f"norm_at_zero_ord{ord_}",
            lambda a, o=ord_: LA.norm(a * ZERO_ROW, o, axis=1),
            lambda a, o=ord_: tl().vector_norm(a * t().tensor(ZERO_ROW), o, dim=1),
            (3, 4),
        )
    for ord_ in ["fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf]:
        add(
            f"norm_mat_ord{ord_}",
            lambda a, o=ord_: LA.norm(a, o),
            lambda a, o=ord_: tl().matrix_norm(a, o),
            (3, 4),
        )
    add(
        "norm_mat_axes",
        lambda a: LA.norm(a, "fro", axis=(2, 0), keepdims=True),
        lambda a: tl().matrix_norm(a, "fro", dim=(2, 0), keepdim=True),
        (3, 2, 4),
    )
    add(
        "norm_mat_nuc_axes",
        lambda a: LA.norm(a, "nuc", axis=(0, 2)),
        lambda a: tl().matrix_norm(a, "nuc", dim=(0, 2)),
        (3, 2, 4),
    )
    add("vector_norm", lambda a: LA.vector_norm(a, ord=3), lambda a: tl().vector_norm(a, 3), (2, 3))
    add("matrix_norm", LA.matrix_norm, lambda a: tl().matrix_norm(a), (2, 2, 3))
    add("pinv_wide", LA.pinv, lambda a: tl().pinv(a), (2, 4))
    add("pinv_tall", LA.pinv, lambda a: tl().pinv(a), (4, 3))
    add("matrix_power3", lambda a: LA.matrix_power(a, 3), lambda a: tl().matrix_power(a, 3), (3, 3))
    add("matrix_power0", lambda a: LA.matrix_power(a, 0), lambda a: tl().matrix_power(a, 0), (2, 3, 3))
    add("matrix_power_neg", lambda a: LA.matrix_power(_spd(a), -2), lambda a: tl().matrix_power(_spd(a), -2), (3, 3))
    add("linalg_trace", LA.trace, lambda a: a.diagonal(dim1=-2, dim2=-1).sum(-1), (2, 3, 3))
    add("linalg_trace_offset", lambda a: LA.trace(a, 1), lambda a: a.diagonal(1, -2, -1).sum(-1), (2, 3, 4))
    add("vecdot", LA.vecdot, lambda a, b: (a * b).sum(-1), (2, 3), (3,))


def _shapes(c: list[Any], Case: Any) -> None:
    def add(name: str, fn: Any, tfn: Any, *shapes: tuple[int, ...], domain: str = "any") -> None:
        c.append(Case(name, fn, tfn, shapes, domain))

    t = _t
    add("diag_from_vector", M.diag, lambda a: t().diag(a), (3,))
    add("diag_from_vector_k", lambda a: M.diag(a, -2), lambda a: t().diag(a, -2), (3,))
    add("diag_of_matrix", lambda a: M.diag(a, 1), lambda a: t().diag(a, 1), (3, 4))
    add("diag_1", M.diag, lambda a: t().diag(a), (1,))
    add("diagonal", M.diagonal, lambda a: t().diagonal(a, 0, 0, 1), (3, 4))
    add(
        "diagonal_axes",
        lambda a: M.diagonal(a, -1, 2, 0),
        lambda a: t().diagonal(a, -1, 2, 0),
        (3, 2, 4),
    )
    add("diagonal_offset_out", lambda a: M.diagonal(a, 5), lambda a: t().diagonal(a, 5), (3, 4))
    add("trace", M.trace, lambda a: t().trace(a), (3, 4))
    add("trace_axes", lambda a: M.trace(a, 1, 1, 2), lambda a: t().diagonal(a, 1, 1, 2).sum(-1), (2, 3, 3))
    add("tril", M.tril, lambda a: t().tril(a), (3, 4))
    add("triu_k", lambda a: M.triu(a, -1), lambda a: t().triu(a, -1), (2, 3, 3))
    add("tril_k", lambda a: M.tril(a, 1), lambda a: t().tril(a, 1), (4, 3))
    add("repeat", lambda a: M.repeat(a, 2, axis=1), lambda a: a.repeat_interleave(2, dim=1), (2, 3))
    add("repeat_flat", lambda a: M.repeat(a, 3), lambda a: a.reshape(-1).repeat_interleave(3), (2, 2))
    add(
        "repeat_counts",
        lambda a: M.repeat(a, [1, 0, 2], axis=0),
        lambda a: a.repeat_interleave(t().tensor([1, 0, 2]), dim=0),
        (3, 2),
    )
    add("repeat_0d", lambda a: M.repeat(a, 4), lambda a: a.reshape(1).repeat_interleave(4), ())
    add("tile", lambda a: M.tile(a, (2, 3)), lambda a: a.tile((2, 3)), (2, 3))
    add("tile_more_dims", lambda a: M.tile(a, (2, 1, 2)), lambda a: a.tile((2, 1, 2)), (3,))
    add("tile_int", lambda a: M.tile(a, 3), lambda a: a.tile((3,)), (2, 2))
    add("pad_constant", lambda a: M.pad(a, ((1, 2), (0, 1))), lambda a: _tpad(a, [(1, 2), (0, 1)]), (2, 3))
    add(
        "pad_value",
        lambda a: M.pad(a, 1, constant_values=2.5),
        lambda a: _tpad(a, [(1, 1), (1, 1)], 2.5),
        (2, 3),
    )
    add("pad_1d", lambda a: M.pad(a, (2, 0)), lambda a: _tpad(a, [(2, 0)]), (3,))
    for mode in ["edge", "reflect", "symmetric", "wrap"]:
        add(
            f"pad_{mode}",
            lambda a, m=mode: M.pad(a, ((1, 2), (2, 1)), mode=m),
            lambda a, m=mode: _index_pad(a, [(1, 2), (2, 1)], m),
            (3, 4),
        )
    add("ravel", M.ravel, lambda a: a.reshape(-1), (2, 3))
    add("ravel_0d", M.ravel, lambda a: a.reshape(-1), ())
    add("moveaxis", lambda a: M.moveaxis(a, 0, -1), lambda a: t().movedim(a, 0, -1), (2, 3, 4))
    add(
        "moveaxis_many",
        lambda a: M.moveaxis(a, [0, 1], [-1, 0]),
        lambda a: t().movedim(a, (0, 1), (-1, 0)),
        (2, 3, 4),
    )
    add("rollaxis", lambda a: M.rollaxis(a, 2, 0), lambda a: t().movedim(a, 2, 0), (2, 3, 4))
    add("rollaxis_start", lambda a: M.rollaxis(a, 0, 3), lambda a: t().movedim(a, 0, 2), (2, 3, 4))
    add("flip", M.flip, lambda a: t().flip(a, (0, 1)), (2, 3))
    add("flip_axis", lambda a: M.flip(a, 1), lambda a: t().flip(a, (1,)), (2, 3, 2))
    add("fliplr", M.fliplr, lambda a: t().fliplr(a), (2, 3))
    add("flipud", M.flipud, lambda a: t().flipud(a), (3,))
    for k in [1, 2, 3, -1]:
        add(f"rot90_{k}", lambda a, k=k: M.rot90(a, k), lambda a, k=k: t().rot90(a, k, (0, 1)), (2, 3))
    add("rot90_axes", lambda a: M.rot90(a, 1, (2, 0)), lambda a: t().rot90(a, 1, (2, 0)), (2, 3, 4))
    add("roll", lambda a: M.roll(a, 2, 1), lambda a: t().roll(a, 2, 1), (2, 3))
    add("roll_flat", lambda a: M.roll(a, -4), lambda a: t().roll(a, -4), (2, 3))
    add("roll_many", lambda a: M.roll(a, (1, -1), (0, 1)), lambda a: t().roll(a, (1, -1), (0, 1)), (2, 3))
    add("diff", M.diff, lambda a: t().diff(a), (3, 4))
    add("diff_n2_axis0", lambda a: M.diff(a, 2, axis=0), lambda a: t().diff(a, 2, dim=0), (4, 3))
    add(
        "diff_prepend",
        lambda a, b: M.diff(a, prepend=b, append=0.5),
        lambda a, b: t().diff(a, prepend=b, append=t().full((2, 1), 0.5, dtype=a.dtype)),
        (2, 3),
        (2, 1),
    )
    add("atleast_1d", M.atleast_1d, lambda a: t().atleast_1d(a), ())
    add("atleast_2d", M.atleast_2d, lambda a: t().atleast_2d(a), (3,))
    add("atleast_3d", M.atleast_3d, lambda a: t().atleast_3d(a), (3,))
    add("atleast_3d_2d", M.atleast_3d, lambda a: t().atleast_3d(a), (2, 3))
    add(
        "atleast_2d_many",
        lambda a, b: M.atleast_2d(a, b)[0] * M.atleast_2d(a, b)[1],
        lambda a, b: t().atleast_2d(a) * t().atleast_2d(b),
        (),
        (3,),
    )
    add("vstack", lambda a, b: M.vstack([a, b, a]), lambda a, b: t().vstack([a, b, a]), (3,), (2, 3))
    add("hstack", lambda a, b: M.hstack([a, b]), lambda a, b: t().hstack([a, b]), (2, 3), (2, 1))
    add("hstack_1d", lambda a, b: M.hstack([a, b]), lambda a, b: t().hstack([a, b]), (2,), ())
    add("dstack", lambda a, b: M.dstack([a, b]), lambda a, b: t().dstack([a, b]), (2, 3), (2, 3))
    add("column_stack", lambda a, b: M.column_stack([a, b]), lambda a, b: t().column_stack([a, b]), (3,), (3, 2))
    add(
        "array_split",
        lambda a: M.array_split(a, 3, axis=1)[0] * 2 + M.array_split(a, 3, axis=1)[2].sum(),
        lambda a: t().tensor_split(a, 3, dim=1)[0] * 2 + t().tensor_split(a, 3, dim=1)[2].sum(),
        (2, 5),
    )
    add(
        "array_split_indices",
        lambda a: M.array_split(a, [1, 3])[1],
        lambda a: t().tensor_split(a, [1, 3])[1],
        (4, 2),
    )
    add("hsplit", lambda a: M.hsplit(a, 2)[1], lambda a: t().hsplit(a, 2)[1], (2, 4))
    add("vsplit", lambda a: M.vsplit(a, [1])[1], lambda a: t().vsplit(a, [1])[1], (3, 2))
    add("dsplit", lambda a: M.dsplit(a, 2)[0], lambda a: t().dsplit(a, 2)[0], (2, 1, 4))
    add("take", lambda a: M.take(a, TAKE), lambda a: t().take(a, t().tensor(TAKE)), (2, 3))
    add("take_axis", lambda a: M.take(a, TAKE % 3, axis=1), lambda a: a[:, t().tensor(TAKE % 3)], (2, 3))
    add("take_scalar", lambda a: M.take(a, 1, axis=0), lambda a: a[1], (2, 3))
    add(
        "take_along_axis",
        lambda a: M.take_along_axis(a, ORDER, 1),
        lambda a: t().take_along_dim(a, t().tensor(ORDER), 1),
        (3, 5),
    )
    add(
        "take_along_axis0",
        lambda a: M.take_along_axis(a, ORDER[:2, :3], 0),
        lambda a: t().take_along_dim(a, t().tensor(ORDER[:2, :3]), 0),
        (4, 3),
    )
    add("stack_axis_last", lambda a, b: cr.stack([a, b], axis=-1), lambda a, b: t().stack([a, b], -1), (2, 3), (2, 3))
    add(
        "concatenate_flat",
        lambda a, b: cr.concatenate([a, b], axis=None),
        lambda a, b: t().cat([a.reshape(-1), b.reshape(-1)]),
        (2, 3),
        (),
    )
    add("stack_0d", lambda a, b: cr.stack([a, b, a]), lambda a, b: t().stack([a, b, a]), (), ())
    # more inputs than one join takes at a time (a tree of joins)
    add(
        "stack_many",
        lambda a: cr.stack([a[i] * (i % 3) for i in range(70)], axis=1),
        lambda a: t().stack([a[i] * (i % 3) for i in range(70)], dim=1),
        (70, 2),
    )
    add(
        "concatenate_many",
        lambda a, b: cr.concatenate([a, b] * 40, axis=0),
        lambda a, b: t().cat([a, b] * 40, dim=0),
        (1, 2),
        (2, 2),
    )


def cases() -> list[Any]:
    from tests.op_cases import Case  # imported here: op_cases imports this module

    c: list[Any] = []
    _products(c, Case)
    _linalg(c, Case)
    _shapes(c, Case)
    return c
