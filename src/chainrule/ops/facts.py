"""What the instruments know of a primitive: the rules each module registers with ``prim.deffacts``.

Every primitive carries its facts on itself (``prim.facts``, :class:`chainrule.core.primitive.Facts`),
registered right under its definition. This module holds the rule *implementations* the
modules pick from; it needs nothing from the instruments (``chainrule.measure``): the shape
rules and memory models are duck-typed on the placeholder allocator ``mem`` they receive
(``mem.new(shape, dtype)`` a counted placeholder, ``mem.spike(nbytes)`` a transient).

* ``shape``: ``rule(mem, *inputs, **params)``, the output as a placeholder (shape-only
  evaluation, the memory estimate). :func:`broadcast` (elementwise), :func:`reduction`,
  :func:`view` (the impl itself: a view of a placeholder allocates nothing), and one rule each
  for the others.
* ``workspace``: ``fn(inputs, params, out)``, bytes of temporaries alive inside the impl
  beyond its output (``None``: none besides the ufunc buffers the shape rule counts).
* ``flops`` / ``vjp_flops``: ``fn(inputs, params, out)`` / ``fn(i, inputs, params, out)``, the
  conventions of ``torch.utils.flop_counter``: a matrix product ``(m, k) @ (k, n)`` is
  ``2·m·n·k``; an elementwise operation one per output element; a reduction one per input
  element; views, casts and copies nothing; a decomposition its textbook count.
* ``memory``: ``model(mem, i, g, out, args, params)``, input ``i``'s gradient as a placeholder,
  allocating (``mem.new``) what the real VJP rule allocates, in the same order; a temporary is
  a placeholder that goes out of scope (the hand models: :mod:`chainrule.ops.vjp_memory`). Or
  :data:`RULE_ITSELF`: the rule is built of primitives, so running it shape-only models its
  allocations.

An instrument meeting a primitive without the fact it needs raises :class:`MissingFact`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chainrule.core.errors import ChainruleError
from chainrule.core.primitive import Primitive
from chainrule.ops.vjp_memory import shape_of, ufunc_buffer

Rule = Callable[..., Any]


class MissingFact(ChainruleError, LookupError):
    """An instrument needs a fact its primitive does not have."""


class _RuleItself:
    """The ``memory`` fact of a primitive whose VJP rule, run shape-only, models its own allocations."""

    def __repr__(self) -> str:
        return "RULE_ITSELF"


RULE_ITSELF: Any = _RuleItself()


def need(prim: Primitive, fact: str, instrument: str) -> Any:
    """``prim``'s ``fact``, or :class:`MissingFact` naming the primitive, the instrument and ``deffacts``."""
    value = getattr(prim.facts, fact)
    if value is None:
        raise MissingFact(
            f"{instrument}: primitive {prim.name!r} has no {fact!r} fact; register it with "
            f"{prim.name}.deffacts({fact}=...) (rules to pick from: chainrule.ops.facts)"
        )
    return value


def size(x: Any) -> int:
    """Number of elements of an array, placeholder, Meta or scalar."""
    return int(np.prod(shape_of(x), dtype=np.int64))


# --- shape rules ---------------------------------------------------------------------------


def _probe(x: Any) -> Any:
    """A 0-d stand-in with ``x``'s dtype (Python scalars stay scalars: NumPy's weak promotion)."""
    if isinstance(x, np.ndarray):
        return np.zeros((), x.dtype)
    return x


def broadcast(prim: Primitive) -> Rule:
    """Elementwise: shape by ``np.broadcast_shapes``; dtype by the impl on 0-d stand-ins (exact
    type promotion, a few bytes); the ufunc's buffers for broadcast or cast operands as a spike."""
    impl = prim.impl

    def rule(mem: Any, *args: Any, **params: Any) -> Any:
        shape = np.broadcast_shapes(*[shape_of(a) for a in args])
        with np.errstate(all="ignore"):
            dtype = np.asarray(impl(*[_probe(a) for a in args], **params)).dtype
        out = mem.new(shape, dtype)
        buffers = ufunc_buffer(args, shape)
        if buffers:
            mem.spike(buffers)
        return out

    return rule


def reduction(prim: Primitive) -> Rule:
    """``axis`` (a tuple or None) and ``keepdims``; dtype by the impl on a one-element probe."""
    impl = prim.impl

    def rule(mem: Any, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        shape = shape_of(x)
        axes = tuple(range(len(shape))) if axis is None else tuple(a % len(shape) for a in axis)
        if keepdims:
            out = tuple(1 if i in axes else n for i, n in enumerate(shape))
        else:
            out = tuple(n for i, n in enumerate(shape) if i not in axes)
        dtype = np.asarray(impl(np.zeros((1,) * len(shape), x.dtype), axis=axis, keepdims=keepdims)).dtype
        return mem.new(out, dtype)

    return rule


def view(prim: Primitive) -> Rule:
    """The impl itself: on a zero-strided placeholder it is a view (no allocation, exact shape,
    and the result keeps its source alive as a real view does)."""
    impl = prim.impl

    def rule(mem: Any, *args: Any, **params: Any) -> Any:
        return impl(*args, **params)

    return rule


def passthrough(mem: Any, x: Any, **params: Any) -> Any:
    """The impl returns its input itself (``check``): so does the rule, without evaluating anything."""
    return x


def _probe_dtype(prim: Primitive, args: Sequence[Any], params: dict[str, Any], fill: float = 0) -> Any:
    """The impl's result dtype, from one-element arrays of each operand's dtype and rank."""
    probes = [np.full((1,) * a.ndim, fill, a.dtype) if isinstance(a, np.ndarray) else a for a in args]
    with np.errstate(all="ignore"):
        return np.asarray(prim.impl(*probes, **params)).dtype


def like_input(prim: Primitive) -> Rule:
    """A new array of the first input's shape (scans, ``argsort``); dtype by a one-element probe."""

    def rule(mem: Any, x: Any, *rest: Any, **params: Any) -> Any:
        return mem.new(shape_of(x), _probe_dtype(prim, (x, *rest), params))

    return rule


def take_along_axis_shape(prim: Primitive) -> Rule:
    """``np.take_along_axis(x, order, axis)``: the shapes broadcast, ``order``'s length along ``axis``."""

    def rule(mem: Any, x: Any, order: Any, axis: int) -> Any:
        xs, os_ = list(shape_of(x)), list(shape_of(order))
        n = os_[axis]
        xs[axis] = os_[axis] = 1
        shape = list(np.broadcast_shapes(tuple(xs), tuple(os_)))
        shape[axis] = n
        return mem.new(tuple(shape), _probe_dtype(prim, (x, order), {"axis": axis}))

    return rule


def matmul_shape(mem: Any, x: Any, y: Any) -> Any:
    """Batch dimensions broadcast, then ``(m, n)``."""
    xs, ys = shape_of(x), shape_of(y)
    batch = np.broadcast_shapes(xs[:-2], ys[:-2])
    dtype = np.result_type(x.dtype, y.dtype)
    return mem.new((*batch, xs[-2], ys[-1]), dtype)


def getitem_shape(mem: Any, x: Any, index: Any) -> Any:
    """Basic indexing is a view; integer-array indexing copies (its shape probed on a 1-byte view)."""
    items = index if isinstance(index, tuple) else (index,)
    if any(isinstance(i, np.ndarray | list) for i in items):
        probe = np.broadcast_to(np.zeros((), np.uint8), shape_of(x))[index]
        return mem.new(probe.shape, x.dtype)
    return x[index]


def astype_shape(mem: Any, x: Any, dtype: Any) -> Any:
    """A copy in ``dtype``."""
    return mem.new(shape_of(x), dtype)


def cross_entropy_shape(mem: Any, logits: Any, labels: Any, reduction: str) -> Any:
    """One loss per row (``reduction='none'``) or a scalar."""
    n = shape_of(logits)[0]
    return mem.new((n,) if reduction == "none" else (), logits.dtype)


def same_shape(mem: Any, x: Any, **params: Any) -> Any:
    """A new array of ``x``'s shape and dtype."""
    return mem.new(shape_of(x), x.dtype)


def one_hot_shape(mem: Any, labels: Any, num_classes: int, dtype: Any) -> Any:
    """``(len(labels), num_classes)`` in ``dtype``."""
    return mem.new((len(labels), num_classes), dtype)


def scatter_add_shape(mem: Any, g: Any, index: Any, shape: tuple[int, ...]) -> Any:
    """Zeros of ``shape`` receiving ``g``."""
    return mem.new(tuple(shape), g.dtype)


def concatenate_shape(mem: Any, *xs: Any, axis: int, **params: Any) -> Any:
    """The inputs' sizes along ``axis`` added."""
    shape = list(shape_of(xs[0]))
    shape[axis] = sum(shape_of(x)[axis] for x in xs)
    return mem.new(tuple(shape), np.result_type(*[x.dtype for x in xs]))


def stack_shape(mem: Any, *xs: Any, axis: int) -> Any:
    """A new axis of length ``len(xs)`` at ``axis``."""
    shape = list(shape_of(xs[0]))
    shape.insert(axis, len(xs))
    return mem.new(tuple(shape), np.result_type(*[x.dtype for x in xs]))


def linalg(prim: Primitive, out_shape: Callable[..., tuple[int, ...]]) -> Rule:
    """A matrix function: ``out_shape(*input shapes)``; dtype by the impl on 1×1 matrices of ones."""

    def rule(mem: Any, *args: Any, **params: Any) -> Any:
        shapes = [tuple(shape_of(a)) for a in args]
        return mem.new(tuple(out_shape(*shapes)), _probe_dtype(prim, args, params, fill=1))

    return rule


def solve_out(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """``solve(a (..., M, M), b (..., M, K))``: the batches broadcast, then ``(M, K)``."""
    return (*np.broadcast_shapes(a[:-2], b[:-2]), *b[-2:])


def batch_of(a: tuple[int, ...]) -> tuple[int, ...]:
    """One value per matrix (det, log|det|)."""
    return a[:-2]


def same_out(a: tuple[int, ...]) -> tuple[int, ...]:
    """The input's shape (inv, cholesky)."""
    return a


def transposed_out(a: tuple[int, ...]) -> tuple[int, ...]:
    """``(..., N, M)`` for an ``(..., M, N)`` input (pinv)."""
    return (*a[:-2], a[-1], a[-2])


def eigh_out(a: tuple[int, ...]) -> tuple[int, ...]:
    """eigh's packed result: the eigenvalues as one row above the ``(M, M)`` eigenvectors."""
    return (*a[:-2], a[-2] + 1, a[-1])


def svd_out(a: tuple[int, ...]) -> tuple[int, ...]:
    """svd's packed result, ``k = min(M, N)`` columns: U ``(M, k)``, S one row, V ``(N, k)``."""
    m, n = a[-2:]
    return (*a[:-2], m + 1 + n, min(m, n))


def _einsum_sizes(xs: Sequence[Any], spec: str) -> tuple[dict[str, int], str]:
    ins, out = spec.split("->")
    sizes = {c: n for subs, x in zip(ins.split(","), xs, strict=True) for c, n in zip(subs, shape_of(x), strict=True)}
    return sizes, out


def einsum_shape(mem: Any, *xs: Any, spec: str) -> Any:
    """The output subscripts' sizes (the subscripts are explicit, without ellipses)."""
    sizes, out = _einsum_sizes(xs, spec)
    return mem.new(tuple(sizes[c] for c in out), np.result_type(*[x.dtype for x in xs]))


def segment(prim: Primitive) -> Rule:
    """A primitive built of primitives (``checkpoint``): its impl runs them, each shape-only."""
    return view(prim)


# --- workspaces -----------------------------------------------------------------------------


def sigmoid_workspace(ins: Sequence[Any], params: dict[str, Any], out: Any) -> int:
    """``0.5 * x`` and ``tanh(.)`` alive together, then ``1 + t`` and the output."""
    return int(out.nbytes)


def softmax_workspace(ins: Sequence[Any], params: dict[str, Any], out: Any) -> int:
    """The shifted input, and the per-slice max and sum."""
    return int(out.nbytes + 2 * out.nbytes // max(out.shape[params["axis"]], 1))


def cross_entropy_workspace(ins: Sequence[Any], params: dict[str, Any], out: Any) -> int:
    """The shifted logits and their exp alive together, plus ``np.arange(n)`` (int64) to pick the labels."""
    return int(2 * ins[0].nbytes + 8 * ins[0].shape[0])


# --- FLOPs ---------------------------------------------------------------------------------

FlopRule = Callable[[Sequence[Any], dict[str, Any], Any], int]
VjpFlopRule = Callable[[int, Sequence[Any], dict[str, Any], Any], int]


def each(k: int) -> FlopRule:
    """``k`` FLOPs per output element."""
    return lambda ins, params, out: k * size(out)


def each_vjp(*ks: int) -> VjpFlopRule:
    """``k`` FLOPs per output element for each input's rule (one ``k`` for all, or one per input)."""
    if len(ks) == 1:
        k = ks[0]
        return lambda i, ins, params, out: k * size(out)
    return lambda i, ins, params, out: ks[i] * size(out)


def input_size(ins: Sequence[Any], params: dict[str, Any], out: Any) -> int:
    """One FLOP per element of the first input (a reduction)."""
    return size(ins[0])


def input_size_vjp(k: int) -> VjpFlopRule:
    """``k`` FLOPs per element of the first input (a reduction's rule spreads back over it)."""
    return lambda i, ins, params, out: k * size(ins[0])


def zero(ins: Sequence[Any], params: dict[str, Any], out: Any) -> int:
    """Views, casts, copies, gathers: no arithmetic."""
    return 0


def zero_vjp(i: int, ins: Sequence[Any], params: dict[str, Any], out: Any) -> int:
    """A rule with no arithmetic (a view, a slice, a scatter of ``g``)."""
    return 0


def matmul_flops(a: Any, b: Any) -> int:
    """``2·m·n·k`` times the broadcast batch, for ``(..., m, k) @ (..., k, n)``."""
    sa, sb = shape_of(a), shape_of(b)
    batch = int(np.prod(np.broadcast_shapes(sa[:-2], sb[:-2]), dtype=np.int64))
    return 2 * batch * sa[-2] * sa[-1] * sb[-1]


def matmul_forward(ins: Sequence[Any], params: dict[str, Any], out: Any) -> int:
    """The product itself."""
    return matmul_flops(ins[0], ins[1])


def matmul_vjp(i: int, ins: Sequence[Any], params: dict[str, Any], out: Any) -> int:
    """dx = g @ yᵀ: (m, n) @ (n, k); dy = xᵀ @ g: (k, m) @ (m, n): both 2·m·n·k."""
    return matmul_flops(ins[0], ins[1])


def cross_entropy_forward(ins: Sequence[Any], params: dict[str, Any], out: Any) -> int:
    """Shift, exp, sum, log and pick: 5 per logit."""
    return 5 * size(ins[0])


def cross_entropy_vjp(i: int, ins: Sequence[Any], params: dict[str, Any], out: Any) -> int:
    """Softmax again, minus the one-hot, scaled: 8 per logit (the labels get no gradient)."""
    return 8 * size(ins[0]) if i == 0 else 0


def argsort_flops(ins: Sequence[Any], params: dict[str, Any], out: Any) -> int:
    """``n log₂ n`` comparisons per slice of length ``n`` along ``axis``."""
    shape = shape_of(ins[0])
    n = shape[params["axis"]] if shape else 1
    return size(ins[0]) * max(math.ceil(math.log2(n)) if n > 1 else 0, 0)


def _einsum_terms(ins: Sequence[Any], spec: str) -> tuple[int, int]:
    sizes, _ = _einsum_sizes(ins, spec)
    return int(np.prod(list(sizes.values()), dtype=np.int64)), len(ins)


def einsum_forward(ins: Sequence[Any], params: dict[str, Any], out: Any) -> int:
    """Over the full index space, ``k − 1`` products and one sum per term: ``2·(k − 1)·∏sizes`` for
    ``k ≥ 2`` operands (``2·m·n·k`` for a matrix product), ``∏sizes`` for one."""
    terms, k = _einsum_terms(ins, params["spec"])
    return terms if k == 1 else 2 * (k - 1) * terms


def einsum_vjp(i: int, ins: Sequence[Any], params: dict[str, Any], out: Any) -> int:
    """Each input's gradient is an einsum of ``g`` with the other operands: the forward's count."""
    return einsum_forward(ins, params, out)


def _matrix_dims(x: Any) -> tuple[int, int, int]:
    """(matrices in the batch, rows, columns)."""
    s = shape_of(x)
    return int(np.prod(s[:-2], dtype=np.int64)), s[-2], s[-1]


def cubic(c: float, rhs: float = 0.0) -> FlopRule:
    """A square-matrix algorithm of ``c·n³`` FLOPs per matrix (LU ``2/3``, Cholesky ``1/3``, inverse
    ``2``, symmetric eigendecomposition with vectors ``9``), plus ``rhs·n²`` per right-hand side."""

    def rule(ins: Sequence[Any], params: dict[str, Any], out: Any) -> int:
        batch, n, _ = _matrix_dims(ins[0])
        k = shape_of(ins[1])[-1] if len(ins) > 1 and rhs else 0
        return int(batch * (c * n**3 + rhs * n * n * k))

    return rule


def cubic_vjp(*cs: float) -> VjpFlopRule:
    """``c·n³`` per matrix for each input's rule (one ``c`` for all, or one per input): the
    products and solves the rule is built of, counted at ``2·n³`` each."""

    def rule(i: int, ins: Sequence[Any], params: dict[str, Any], out: Any) -> int:
        batch, n, _ = _matrix_dims(ins[0])
        return int(batch * cs[i if len(cs) > 1 else 0] * n**3)

    return rule


def solve_vjp(i: int, ins: Sequence[Any], params: dict[str, Any], out: Any) -> int:
    """A solve with ``aᵀ`` (``2/3·n³ + 2·n²·k``), and for ``a`` the product ``-ḡ xᵀ`` (``2·n²·k``)."""
    batch, n, _ = _matrix_dims(ins[0])
    k = shape_of(ins[1])[-1]
    return int(batch * (2 * n**3 / 3 + (4 if i == 0 else 2) * n * n * k))


def svd_forward(ins: Sequence[Any], params: dict[str, Any], out: Any) -> int:
    """Thin SVD (Golub-Reinsch, Golub & Van Loan table 8.6.1): ``14·m·n² + 8·n³``, ``m ≥ n``."""
    batch, rows, cols = _matrix_dims(ins[0])
    m, n = max(rows, cols), min(rows, cols)
    return int(batch * (14 * m * n * n + 8 * n**3))


def svd_vjp(i: int, ins: Sequence[Any], params: dict[str, Any], out: Any) -> int:
    """The rule's six products of ``(m, k)``/``(k, k)`` matrices: ``12·m·n·k``."""
    batch, rows, cols = _matrix_dims(ins[0])
    return int(batch * 12 * rows * cols * min(rows, cols))


def pinv_forward(ins: Sequence[Any], params: dict[str, Any], out: Any) -> int:
    """An SVD, then ``V · S⁺ · Uᵀ``: ``2·m·n·k`` more."""
    batch, rows, cols = _matrix_dims(ins[0])
    return svd_forward(ins, params, out) + int(batch * 2 * rows * cols * min(rows, cols))
