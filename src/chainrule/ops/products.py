"""Products: ``einsum`` (a primitive) and NumPy's other products composed from it.

The gradient of an einsum operand is another einsum: the output gradient contracted with
the other operands onto that operand's subscripts. Subscripts that occur only in that
operand get a vector of ones; a subscript repeated within it (a trace or diagonal, ``ii``)
gets an identity matrix that puts the gradient back on the diagonal.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np

from chainrule.core.errors import ShapeError
from chainrule.core.primitive import Primitive
from chainrule.ops import facts as fx
from chainrule.ops.elementwise import multiply
from chainrule.ops.manip import moveaxis
from chainrule.ops.matrix import matmul
from chainrule.ops.reduce import broadcast_to
from chainrule.ops.reduce import sum as _sum
from chainrule.ops.shape import array_of, reshape, stack

_LETTERS = string.ascii_letters
_MAX_OPERANDS = 32


def _einsum(*operands: Any, spec: str) -> Any:
    # a contraction order (and BLAS) pays off for 3+ operands or large ones; it costs ~30 µs
    optimize = len(operands) > 2 or any(np.size(x) > 1024 for x in operands)
    return np.einsum(spec, *operands, optimize=optimize)


def _split_spec(spec: str) -> tuple[list[str], str]:
    ins, out = spec.split("->")
    return ins.split(","), out


def _einsum_vjp(i: int, g: Any, out: Any, *xs: Any, spec: str) -> Any:
    ins, out_subs = _split_spec(spec)
    target = ins[i]
    sizes = {c: n for subs, x in zip(ins, xs, strict=True) for c, n in zip(subs, x.shape, strict=True)}
    free = iter(c for c in _LETTERS if c not in spec)
    subs = [out_subs] + [s for j, s in enumerate(ins) if j != i]
    operands = [g] + [x for j, x in enumerate(xs) if j != i]
    present = set("".join(subs))
    result = ""
    for c in target:
        if c in result:  # repeated within the operand: back onto the diagonal
            fresh = next(free)
            subs.append(c + fresh)
            operands.append(np.eye(sizes[c], dtype=g.dtype))
            result += fresh
            continue
        if c not in present:  # summed within this operand only: the gradient is constant along it
            subs.append(c)
            operands.append(np.ones(sizes[c], dtype=g.dtype))
            present.add(c)
        result += c
    return _einsum_p(*operands, spec=",".join(subs) + "->" + result)


def _einsum_jvp(i: int, t: Any, out: Any, *xs: Any, spec: str) -> Any:
    return _einsum_p(*xs[:i], t, *xs[i + 1 :], spec=spec)


_einsum_p = Primitive("einsum", _einsum, save=tuple(range(_MAX_OPERANDS)))
_einsum_p.defvjp_argnum(_einsum_vjp)
_einsum_p.defjvp_argnum(_einsum_jvp)


def _normalize(subscripts: str, shapes: list[tuple[int, ...]]) -> tuple[str, list[tuple[int, ...] | None]]:
    """Explicit subscripts without ellipses, and the shape each operand must be broadcast to (or None)."""
    subscripts = subscripts.replace(" ", "")
    ins_text, arrow, out_text = subscripts.partition("->")
    ins = ins_text.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"einsum: {len(ins)} operand subscripts for {len(shapes)} operands")
    spare = [c for c in _LETTERS if c not in subscripts]
    ell_ndim = 0
    for s, shape in zip(ins, shapes, strict=True):
        if "..." in s:
            if len(shape) < len(s) - 3:
                raise ShapeError(f"einsum: subscripts {s!r} have more axes than an operand of shape {shape}")
            ell_ndim = max(ell_ndim, len(shape) - (len(s) - 3))
    ell = "".join(spare[:ell_ndim])
    expanded = []
    for s, shape in zip(ins, shapes, strict=True):
        if "..." in s:
            s = s.replace("...", ell[ell_ndim - (len(shape) - (len(s) - 3)) :])
        if len(s) != len(shape) or not all(c in _LETTERS for c in s):
            raise ShapeError(f"einsum: subscripts {s!r} do not fit an operand of shape {shape}")
        expanded.append(s)
    if arrow:
        out = out_text.replace("...", ell)
    else:
        counts = "".join(expanded)
        out = ell + "".join(sorted(c for c in set(counts) if counts.count(c) == 1 and c not in ell))
    sizes: dict[str, int] = {}
    for s, shape in zip(expanded, shapes, strict=True):
        for c, n in zip(s, shape, strict=True):
            if sizes.get(c, 1) == 1 or n == 1:
                sizes[c] = max(sizes.get(c, 1), n)
            elif sizes[c] != n:
                raise ShapeError(f"einsum: subscript {c!r} has sizes {sizes[c]} and {n}")
    targets: list[tuple[int, ...] | None] = []
    for s, shape in zip(expanded, shapes, strict=True):
        full = tuple(sizes[c] for c in s)
        bad = [c for c, n, m in zip(s, shape, full, strict=True) if n != m and c not in ell]
        if bad:
            raise ShapeError(f"einsum: subscript {bad[0]!r} has sizes {shape} vs {full} (only ... broadcasts)")
        targets.append(full if full != shape else None)
    return ",".join(expanded) + "->" + out, targets


def einsum(subscripts: str, *operands: Any) -> Any:
    """Einstein summation (NumPy's ``einsum``, subscripts form): explicit or implicit output,
    ``...`` broadcasting, repeated subscripts for traces and diagonals."""
    if not operands:
        raise ValueError("einsum: expected at least one operand")
    if len(operands) > _MAX_OPERANDS:
        raise ValueError(f"einsum: at most {_MAX_OPERANDS} operands")
    spec, targets = _normalize(subscripts, [array_of(x).shape for x in operands])
    xs = [x if shape is None else broadcast_to(x, shape) for x, shape in zip(operands, targets, strict=True)]
    return _einsum_p(*xs, spec=spec)


def tensordot(a: Any, b: Any, axes: Any = 2) -> Any:
    """Sum products over ``axes`` (an int N: last N of ``a`` with first N of ``b``; or two sequences)."""
    na, nb = array_of(a).ndim, array_of(b).ndim
    if isinstance(axes, int | np.integer):
        axes_a: list[Any] = list(range(na - int(axes), na))
        axes_b: list[Any] = list(range(int(axes)))
    else:
        axes_a, axes_b = ([x] if isinstance(x, int | np.integer) else list(x) for x in axes)
    if len(axes_a) != len(axes_b):
        raise ShapeError(f"tensordot: axes lists have different lengths {axes_a} and {axes_b}")
    letters = iter(_LETTERS)
    sa = [next(letters) for _ in range(na)]
    sb = [next(letters) for _ in range(nb)]
    for x, y in zip(axes_a, axes_b, strict=True):
        sb[int(y) % nb if nb else 0] = sa[int(x) % na if na else 0]
    contracted = {sa[int(x) % na] for x in axes_a} if na else set()
    out = [c for c in sa if c not in contracted] + [c for c in sb if c not in contracted]
    return einsum("".join(sa) + "," + "".join(sb) + "->" + "".join(out), a, b)


def dot(a: Any, b: Any) -> Any:
    """NumPy's ``dot``: for N-D arrays a sum over the last axis of ``a`` and the second-to-last of ``b``
    (shape ``a.shape[:-1] + b.shape[:-2] + b.shape[-1:]``, not a batched matmul)."""
    na, nb = array_of(a).ndim, array_of(b).ndim
    if na == 0 or nb == 0:
        return multiply(a, b)
    if na <= 2 and nb <= 2:
        return matmul(a, b)
    return tensordot(a, b, ([-1], [-2 if nb > 1 else -1]))


def vdot(a: Any, b: Any) -> Any:
    """The dot product of the flattened arrays (real inputs)."""
    x, y = reshape(a, (-1,)), reshape(b, (-1,))
    if array_of(x).shape != array_of(y).shape:
        raise ShapeError(f"vdot: arrays have different sizes {array_of(a).size} and {array_of(b).size}")
    return _sum(multiply(x, y))


def inner(a: Any, b: Any) -> Any:
    """Sum of products over the last axes (NumPy's ``inner``); a 0-d operand multiplies."""
    if array_of(a).ndim == 0 or array_of(b).ndim == 0:
        return multiply(a, b)
    return tensordot(a, b, ([-1], [-1]))


def outer(a: Any, b: Any) -> Any:
    """``out[i, j] = a.ravel()[i] * b.ravel()[j]``."""
    return multiply(reshape(a, (-1, 1)), reshape(b, (1, -1)))


def kron(a: Any, b: Any) -> Any:
    """Kronecker product: blocks ``a[i, j] * b`` (NumPy's ``kron``), as a broadcast product and a reshape."""
    sa, sb = array_of(a).shape, array_of(b).shape
    d = max(len(sa), len(sb))
    sa, sb = (1,) * (d - len(sa)) + sa, (1,) * (d - len(sb)) + sb
    x = reshape(a, tuple(n for m in sa for n in (m, 1)))
    y = reshape(b, tuple(n for m in sb for n in (1, m)))
    return reshape(multiply(x, y), tuple(m * n for m, n in zip(sa, sb, strict=True)))


def cross(a: Any, b: Any, axisa: int = -1, axisb: int = -1, axisc: int = -1, axis: int | None = None) -> Any:
    """Cross product of 3-vectors along the given axes (broadcasting the others)."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a = moveaxis(a, axisa, -1)
    b = moveaxis(b, axisb, -1)
    if array_of(a).shape[-1] != 3 or array_of(b).shape[-1] != 3:
        raise ShapeError(
            f"cross: vectors must have 3 components, got {array_of(a).shape[-1]} and {array_of(b).shape[-1]}"
        )
    a0, a1, a2 = (a[..., k] for k in range(3))
    b0, b1, b2 = (b[..., k] for k in range(3))
    c = stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)
    return moveaxis(c, -1, axisc)


# --- facts (chainrule.ops.facts as fx, chainrule.ops.vjp_memory as vm): shape rule, FLOPs of the
# forward and of each input's rule, what the VJP rule allocates (RULE_ITSELF: its own primitives,
# evaluated shape-only, model it) ------------------------------------------------------------
_einsum_p.deffacts(shape=fx.einsum_shape, flops=fx.einsum_forward, vjp_flops=fx.einsum_vjp, memory=fx.RULE_ITSELF)

__all__ = ["cross", "dot", "einsum", "inner", "kron", "outer", "tensordot", "vdot"]
