"""What each VJP rule allocates, as models run on placeholders (the ``memory`` fact), and the NumPy
allocation behaviours they and the shape rules share (ufunc buffers, temporary elision).

A model is ``model(mem, i, g, out, args, params)``: it returns input ``i``'s gradient as a placeholder
and allocates (``mem.new``) what the real rule allocates, in the same order; a temporary is a
placeholder that goes out of scope; ``g`` returned as is means the rule passes it through. ``mem`` is
duck-typed (``new(shape, dtype)``, ``spike(nbytes)``): the instruments' ``AbstractMemory``.
Measured against the real rules by ``tests/measure/test_memory_estimate.py`` (within 5% of the peaks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

UFUNC_BUFFER = 8192  # elements: NumPy's default ufunc buffer size (np.getbufsize())
ITERATOR_BYTES = 1040  # the buffered iterator's own allocation while the ufunc runs (measured, 2-D, 3 operands)


def ufunc_buffer(operands: Any, shape: tuple[int, ...]) -> int:
    """Bytes of the buffers a ufunc allocates while it runs (measured on NumPy 2.x).

    An operand of one or more dimensions that is broadcast (shape differs from the result)
    or cast (dtype differs from the loop's) is copied through a buffer of
    ``min(result size, 8192)`` elements of the loop's dtype; 0-d arrays and scalars are not.
    The buffered iterator itself takes about 1 KiB while it runs.
    """
    arrays = [a for a in operands if isinstance(a, np.ndarray) and a.ndim > 0]
    if not arrays:
        return 0
    loop = np.result_type(*[a.dtype for a in arrays], *[a for a in operands if not isinstance(a, np.ndarray)])
    count = sum(1 for a in arrays if a.shape != shape or a.dtype != loop)
    if not count:
        return 0
    size = int(np.prod(shape, dtype=np.int64))
    return count * min(size, UFUNC_BUFFER) * int(loop.itemsize) + ITERATOR_BYTES


def shape_of(x: Any) -> tuple[int, ...]:
    """The shape of an array, placeholder, Meta or scalar."""
    return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


def _b(*xs: Any) -> tuple[int, ...]:
    return tuple(np.broadcast_shapes(*[shape_of(x) for x in xs]))


VjpModel = Callable[..., Any]


ELIDE_BYTES = 256 * 1024  # NumPy reuses a temporary operand of at least this size for the result


def elide(mem: Any, temp: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """The result of ``temp (op) other`` with ``temp`` a temporary: NumPy writes into ``temp``
    when it is large enough and already has the result's shape and dtype (temporary elision)."""
    if temp.nbytes >= ELIDE_BYTES and temp.shape == tuple(shape) and temp.dtype == np.dtype(dtype):
        return temp
    return mem.new(shape, dtype)


def passes_g(mem: Any, i: int, g: Any, out: Any, args: Any, params: Any) -> Any:
    """add, watch: the rule returns ``g`` itself."""
    return g


def like_g(mem: Any, i: int, g: Any, out: Any, args: Any, params: Any) -> Any:
    """One ``g``-shaped result (negative, exp, log)."""
    return mem.new(g.shape, g.dtype)


def subtract(mem: Any, i: int, g: Any, out: Any, args: Any, params: Any) -> Any:
    """``g`` for x, ``negative(g)`` for y."""
    return g if i == 0 else mem.new(g.shape, g.dtype)


def multiply(mem: Any, i: int, g: Any, out: Any, args: Any, params: Any) -> Any:
    """``g * other``: the broadcast result, and the ufunc buffer for a broadcast operand."""
    other = args[1 - i]
    r = mem.new(_b(g, other), g.dtype)
    mem.spike(ufunc_buffer((g, other), r.shape))
    return r


def divide(mem: Any, i: int, g: Any, out: Any, args: Any, params: Any) -> Any:
    """``g / y``; for y ``negative(g) * x / (y * y)``, the temporaries elided where NumPy does."""
    x, y = args
    if i == 0:
        return mem.new(_b(g, y), g.dtype)
    a = mem.new(g.shape, g.dtype)  # negative(g)
    b = elide(mem, a, _b(a, x), g.dtype)  # * x
    del a
    c = mem.new(shape_of(y), g.dtype)  # y * y
    return elide(mem, b, _b(b, c), g.dtype)  # / (y * y)


def chain(n_temps: int) -> VjpModel:
    """A rule that builds ``n_temps`` g-shaped temporaries, each alive with the next, then the result."""

    def model(mem: Any, i: int, g: Any, out: Any, args: Any, params: Any) -> Any:
        prev = None
        for _ in range(n_temps):
            cur = mem.new(g.shape, g.dtype)
            del prev
            prev = cur
        r = mem.new(g.shape, g.dtype)
        del prev
        return r

    return model


def sigmoid(mem: Any, i: int, g: Any, out: Any, args: Any, params: Any) -> Any:
    """``g * out * (1 - out)``."""
    a = mem.new(g.shape, g.dtype)  # g * out
    b = mem.new(g.shape, g.dtype)  # 1 - out
    r = elide(mem, a, g.shape, g.dtype)  # a * b
    del a, b
    return r


def tanh(mem: Any, i: int, g: Any, out: Any, args: Any, params: Any) -> Any:
    """``g - g * out * out``."""
    a = mem.new(g.shape, g.dtype)  # g * out
    b = elide(mem, a, g.shape, g.dtype)  # * out
    del a
    r = mem.new(g.shape, g.dtype)  # g - b: subtract cannot write into its right operand
    del b
    return r


def times_temp(n_left: int) -> VjpModel:
    """``g * f(x)`` (``n_left`` = 0) or ``negative(g) * f(x)`` (1): the temporary takes the result."""

    def model(mem: Any, i: int, g: Any, out: Any, args: Any, params: Any) -> Any:
        left = mem.new(g.shape, g.dtype) if n_left else None
        f = mem.new(shape_of(args[0]), g.dtype)
        r = elide(mem, left if left is not None else f, g.shape, g.dtype)
        del left, f
        return r

    return model


def relu(mem: Any, i: int, g: Any, out: Any, args: Any, params: Any) -> Any:
    """``g * (out > 0)``: the boolean mask, cast through a buffer, and the result."""
    mask = mem.new(g.shape, np.bool_)  # out > 0
    r = mem.new(g.shape, g.dtype)
    mem.spike(ufunc_buffer((g, mask), r.shape))  # the mask is cast to g's dtype through a buffer
    del mask
    return r


def compare_mask(mem: Any, i: int, g: Any, out: Any, args: Any, params: Any) -> Any:
    """maximum/minimum: ``(x > y) + (x == y) * 0.5`` in float64, cast to g's dtype, times g."""
    # maximum/minimum: (x > y) + (x == y) * 0.5 in float64, cast to g's dtype, times g
    shape = _b(*args)
    gt = mem.new(shape, np.bool_)
    eq = mem.new(shape, np.bool_)
    half = mem.new(shape, np.float64)
    del eq
    s = mem.new(shape, np.float64)
    del gt, half
    m = mem.new(shape, g.dtype)
    del s
    r = mem.new(_b(g, m), g.dtype)
    del m
    return r


def where(mem: Any, i: int, g: Any, out: Any, args: Any, params: Any) -> Any:
    """``where(c, g, g * 0)``: the zeros and the result (the condition gets none)."""
    if i == 0:
        return None
    z = mem.new(g.shape, g.dtype)
    r = mem.new(_b(args[0], g), g.dtype)
    del z
    return r


def softmax(mem: Any, i: int, g: Any, out: Any, args: Any, params: Any) -> Any:
    """``out * (g - sum(g * out, axis, keepdims=True))``."""
    axis = params["axis"]
    a = mem.new(g.shape, g.dtype)
    s = mem.new(tuple(1 if k == axis else n for k, n in enumerate(g.shape)), g.dtype)
    del a
    d = mem.new(g.shape, g.dtype)
    r = mem.new(g.shape, g.dtype)
    del d, s
    return r


def cross_entropy(mem: Any, i: int, g: Any, out: Any, args: Any, params: Any) -> Any:
    """One-hot, softmax (shift, exp, normalise), difference and scale (labels: none)."""
    if i != 0:
        return None
    logits = args[0]
    n, c = logits.shape
    onehot = mem.new((n, c), logits.dtype)
    mx = mem.new((n, 1), logits.dtype)  # softmax: x - max, exp, / sum
    d = mem.new((n, c), logits.dtype)
    del mx
    probs = mem.new((n, c), logits.dtype)
    del d
    s = mem.new((n, 1), logits.dtype)
    del s
    diff = mem.new((n, c), logits.dtype)
    scale = mem.new(g.shape if params.get("reduction") != "none" else (n, 1), g.dtype)
    r = elide(mem, diff, (n, c), logits.dtype)
    del diff, scale, probs, onehot
    return r


def matmul(mem: Any, i: int, g: Any, out: Any, args: Any, params: Any) -> Any:
    """One input-shaped product."""
    return mem.new(shape_of(args[i]), g.dtype)


def _keep_shape(shape: tuple[int, ...], axis: Any) -> tuple[int, ...]:
    if axis is None:
        return (1,) * len(shape)
    return tuple(1 if k in axis else n for k, n in enumerate(shape))


def sum_view(mem: Any, i: int, g: Any, out: Any, args: Any, params: Any) -> Any:
    """``g`` broadcast back: a read-only view, nothing allocated."""
    shape = shape_of(args[0])
    gg = g if params.get("keepdims") else g.reshape(_keep_shape(shape, params.get("axis")))
    return np.broadcast_to(gg, shape)  # a read-only view of g: nothing allocated


def extremum(mem: Any, i: int, g: Any, out: Any, args: Any, params: Any) -> Any:
    """max/min: the hit mask, its float copy, the count per slice, the share and the result."""
    shape = shape_of(args[0])
    eq = mem.new(shape, np.bool_)
    hit = mem.new(shape, g.dtype)
    del eq
    count = mem.new(_keep_shape(shape, params.get("axis")), g.dtype)
    q = mem.new(shape, g.dtype)
    r = mem.new(shape, g.dtype)
    del hit, count, q
    return r


def reshape(mem: Any, i: int, g: Any, out: Any, args: Any, params: Any) -> Any:
    """A view of ``g``."""
    return g.reshape(shape_of(args[0]))


def transpose(mem: Any, i: int, g: Any, out: Any, args: Any, params: Any) -> Any:
    """A view of ``g`` (the inverse permutation)."""
    axes = params.get("axes")
    inv = None if axes is None else tuple(int(k) for k in np.argsort(axes))
    return np.transpose(g, inv)


def broadcast_to(mem: Any, i: int, g: Any, out: Any, args: Any, params: Any) -> Any:
    """``g`` summed back to the input's shape (a new array only if axes are summed)."""
    return sum_to(mem, g, shape_of(args[0]))


def astype(mem: Any, i: int, g: Any, out: Any, args: Any, params: Any) -> Any:
    """``g`` cast back to the input's dtype."""
    return mem.new(g.shape, args[0].dtype)


def getitem(mem: Any, i: int, g: Any, out: Any, args: Any, params: Any) -> Any:
    """Zeros of the input's shape receiving ``g`` (scatter)."""
    return mem.new(shape_of(args[0]), g.dtype)


def concatenate(mem: Any, i: int, g: Any, out: Any, args: Any, params: Any) -> Any:
    """A slice of ``g``: a view."""
    axis = params["axis"]
    start = sum(shape_of(x)[axis] for x in args[:i])
    index = [slice(None)] * g.ndim
    index[axis] = slice(start, start + shape_of(args[i])[axis])
    return g[tuple(index)]


def sum_to(mem: Any, x: Any, shape: tuple[int, ...]) -> Any:
    """``x`` summed over the axes that broadcasting added or stretched (a view if none)."""
    if x.shape == shape:
        return x
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(k + lead for k, n in enumerate(shape) if n == 1 and x.shape[k + lead] != 1)
    if axes:
        x = mem.new(tuple(1 if k in axes else n for k, n in enumerate(x.shape)), x.dtype)
    if x.shape != shape:
        x = x.reshape(shape)
    return x
