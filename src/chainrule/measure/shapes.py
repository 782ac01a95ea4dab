"""``eval_shape``: run a function on shapes and dtypes only, as ``jax.eval_shape`` does.

Inside :func:`abstract` every primitive's NumPy ``impl`` is temporarily replaced by its
*shape rule* (the :data:`SHAPE_RULES` registry, keyed by primitive name). The engine
itself runs unchanged (``bind`` records nodes, keeps what each rule reads, user code
holds and drops tensors exactly as in a real run), but every array is a *placeholder*:
a zero-strided view of a one-element buffer with the right shape and dtype. Nothing of
the real size is allocated and no arithmetic happens.

Placeholders come from an :class:`AbstractMemory`, which records how many bytes each
would occupy if it were real and frees them when Python frees the placeholder (a weak
reference on the one-element owner). So the abstract run has exactly the real run's
lifetimes: the basis of :func:`chainrule.measure.memory.estimate`.

Which primitives have which kind of rule (see :data:`RULE_KIND`):

* ``elementwise``: output shape by ``np.broadcast_shapes``; dtype by running the impl
  on 0-d stand-ins (exact type promotion, a few bytes).
* ``reduction`` (sum, max, min): shape from ``axis``/``keepdims``; dtype by a 0-d probe.
* ``matmul``: batch dimensions broadcast, then ``(m, n)``.
* ``view`` (reshape, transpose, broadcast_to, watch, basic getitem): the real impl, which
  on a zero-strided placeholder is itself a view: no allocation, exact shape, and the
  result keeps its source alive just as a real view does.
* ``special``: one rule each (cross_entropy, softmax, one_hot, dropout_mask,
  scatter_add, concatenate, astype, getitem with integer arrays).
* anything else falls back to running its impl on the placeholders: that allocates the
  real output (documented cost), and a warning lists such primitives once.
"""

from __future__ import annotations

import contextlib
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from chainrule.core.interpret import Interpreter
from chainrule.core.node import Meta
from chainrule.core.primitive import REGISTRY, Primitive
from chainrule.core.tensor import Tensor
from chainrule.transforms.tree import tree_map

ShapeRule = Callable[..., Any]


class ShapeDtype(Meta):
    """A shape and dtype standing for an array (``jax.ShapeDtypeStruct``); ``requires_grad`` for inputs.

    The engine's :class:`~chainrule.core.node.Meta` (what a node keeps of an unsaved input) with a
    normalised shape and dtype, a byte count, and whether a gradient is wanted.
    """

    __slots__ = ("requires_grad",)

    def __init__(self, shape: tuple[int, ...] | list[int], dtype: Any = np.float32, requires_grad: bool = False):
        super().__init__(tuple(int(n) for n in shape), np.dtype(dtype))
        self.requires_grad = requires_grad

    @property
    def nbytes(self) -> int:
        return self.size * int(np.dtype(self.dtype).itemsize)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ShapeDtype) and (self.shape, self.dtype) == (other.shape, other.dtype)

    def __hash__(self) -> int:
        return hash((self.shape, self.dtype))

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"ShapeDtype({self.shape}, {self.dtype}{grad})"


def spec(x: Any, requires_grad: bool | None = None) -> ShapeDtype:
    """The :class:`ShapeDtype` of an array, tensor or spec."""
    if isinstance(x, ShapeDtype):
        return x
    if isinstance(x, Tensor):
        return ShapeDtype(x.shape, x.dtype, x.requires_grad if requires_grad is None else requires_grad)
    a = np.asarray(x)
    return ShapeDtype(a.shape, a.dtype, bool(requires_grad))


def root_of(a: Any) -> Any:
    """The object that owns ``a``'s memory (follows ``.base`` through views and wrappers)."""
    while True:
        b = getattr(a, "base", None)
        if b is None:
            return a
        a = b


class AbstractMemory:
    """A pretend allocator: bytes each placeholder would take, current total and peak since a mark."""

    def __init__(self) -> None:
        self.sizes: dict[int, int] = {}  # id(owner) -> bytes it stands for
        self._refs: dict[int, Any] = {}
        self.current = 0
        self.peak = 0  # highest ``current`` since the last ``mark()``
        self.allocations = 0

    def _freer(self, key: int) -> Callable[[Any], None]:
        def callback(_ref: Any) -> None:
            self._free(key)

        return callback

    def _free(self, key: int) -> None:
        self._refs.pop(key, None)
        self.current -= self.sizes.pop(key, 0)

    def new(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray[Any, Any]:
        """A writeable placeholder of ``shape``/``dtype`` counted as a fresh allocation."""
        dtype = np.dtype(dtype)
        owner = np.zeros(1, dtype)
        key = id(owner)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        self.sizes[key] = nbytes
        self._refs[key] = weakref.ref(owner, self._freer(key))
        self.current += nbytes
        self.allocations += 1
        if self.current > self.peak:
            self.peak = self.current
        return np.ndarray(shape, dtype, buffer=owner, strides=(0,) * len(shape))

    def spike(self, nbytes: int) -> None:
        """Temporaries that an impl allocates and frees before returning."""
        if self.current + nbytes > self.peak:
            self.peak = self.current + nbytes

    def mark(self) -> int:
        """Start a new interval; returns the peak of the one that ended."""
        peak, self.peak = self.peak, self.current
        return peak

    def nbytes_of(self, owner: Any) -> int | None:
        return self.sizes.get(id(owner))


# --- shape rules -----------------------------------------------------------------------


def _probe(x: Any) -> Any:
    """A 0-d stand-in with ``x``'s dtype (Python scalars stay scalars: NumPy's weak promotion)."""
    if isinstance(x, np.ndarray):
        return np.zeros((), x.dtype)
    return x


def _shape(x: Any) -> tuple[int, ...]:
    return x.shape if isinstance(x, np.ndarray) else np.shape(x)


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


def _elementwise(impl: Callable[..., Any]) -> ShapeRule:
    def rule(mem: AbstractMemory, *args: Any, **params: Any) -> Any:
        shape = np.broadcast_shapes(*[_shape(a) for a in args])
        with np.errstate(all="ignore"):
            dtype = np.asarray(impl(*[_probe(a) for a in args], **params)).dtype
        out = mem.new(shape, dtype)
        buffers = ufunc_buffer(args, shape)
        if buffers:
            mem.spike(buffers)
        return out

    return rule


def _reduction(impl: Callable[..., Any]) -> ShapeRule:
    def rule(mem: AbstractMemory, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        shape = _shape(x)
        axes = tuple(range(len(shape))) if axis is None else tuple(a % len(shape) for a in axis)
        if keepdims:
            out = tuple(1 if i in axes else n for i, n in enumerate(shape))
        else:
            out = tuple(n for i, n in enumerate(shape) if i not in axes)
        dtype = np.asarray(impl(np.zeros((1,) * len(shape), x.dtype), axis=axis, keepdims=keepdims)).dtype
        return mem.new(out, dtype)

    return rule


def _matmul(mem: AbstractMemory, x: Any, y: Any) -> Any:
    xs, ys = _shape(x), _shape(y)
    batch = np.broadcast_shapes(xs[:-2], ys[:-2])
    dtype = np.result_type(x.dtype, y.dtype)
    return mem.new((*batch, xs[-2], ys[-1]), dtype)


def _view(impl: Callable[..., Any]) -> ShapeRule:
    def rule(mem: AbstractMemory, *args: Any, **params: Any) -> Any:
        return impl(*args, **params)  # a view of a zero-strided placeholder: nothing allocated

    return rule


def _getitem(mem: AbstractMemory, x: Any, index: Any) -> Any:
    items = index if isinstance(index, tuple) else (index,)
    if any(isinstance(i, np.ndarray | list) for i in items):
        # integer-array indexing copies: probe on a 1-byte zero-strided view for the shape
        probe = np.broadcast_to(np.zeros((), np.uint8), _shape(x))[index]
        return mem.new(probe.shape, x.dtype)
    return x[index]  # basic indexing is a view


def _astype(mem: AbstractMemory, x: Any, dtype: Any) -> Any:
    return mem.new(_shape(x), dtype)


def _cross_entropy(mem: AbstractMemory, logits: Any, labels: Any, reduction: str) -> Any:
    n = _shape(logits)[0]
    return mem.new((n,) if reduction == "none" else (), logits.dtype)


def _same(mem: AbstractMemory, x: Any, **params: Any) -> Any:
    return mem.new(_shape(x), x.dtype)


def _one_hot(mem: AbstractMemory, labels: Any, num_classes: int, dtype: Any) -> Any:
    return mem.new((len(labels), num_classes), dtype)


def _scatter_add(mem: AbstractMemory, g: Any, index: Any, shape: tuple[int, ...]) -> Any:
    return mem.new(tuple(shape), g.dtype)


def _concatenate(mem: AbstractMemory, *xs: Any, axis: int) -> Any:
    shape = list(_shape(xs[0]))
    shape[axis] = sum(_shape(x)[axis] for x in xs)
    return mem.new(tuple(shape), np.result_type(*[x.dtype for x in xs]))


ELEMENTWISE = (
    "add subtract multiply divide power negative exp log sqrt abs tanh sin cos maximum minimum where clip "
    "sign equal not_equal less less_equal greater greater_equal relu sigmoid"
).split()
VIEWS = ("reshape", "transpose", "broadcast_to", "watch")

SHAPE_RULES: dict[str, ShapeRule] = {}
RULE_KIND: dict[str, str] = {}


def register_shape_rule(name: str, rule: ShapeRule, kind: str = "special") -> None:
    """``rule(mem, *inputs, **params)`` returns a placeholder from ``mem.new`` (or a view)."""
    SHAPE_RULES[name] = rule
    RULE_KIND[name] = kind


def _install_default_rules() -> None:
    """Rules for the primitives registered so far (called again by ``abstract``: some modules
    that define primitives, such as ``nn.functional``, may be imported after this one)."""
    for names, make, kind in (
        (ELEMENTWISE, _elementwise, "elementwise"),
        (("sum", "max", "min"), _reduction, "reduction"),
        (VIEWS, _view, "view"),
    ):
        for name in names:
            if name in REGISTRY and name not in SHAPE_RULES:
                register_shape_rule(name, make(REGISTRY[name].impl), kind)
    register_shape_rule("matmul", _matmul, "matmul")
    register_shape_rule("getitem", _getitem)
    register_shape_rule("astype", _astype)
    register_shape_rule("cross_entropy", _cross_entropy)
    register_shape_rule("softmax", _same)
    register_shape_rule("dropout_mask", _same)
    register_shape_rule("one_hot", _one_hot)
    register_shape_rule("scatter_add", _scatter_add)
    register_shape_rule("concatenate", _concatenate)


_install_default_rules()

# Transient bytes an impl allocates internally (and frees before returning), beyond its output:
# fn(inputs, params, out) -> bytes. Used by the memory estimate as a spike at that op.
WORKSPACE: dict[str, Callable[..., int]] = {
    "sigmoid": lambda ins, params, out: out.nbytes,  # 0.5*x, tanh(.) alive together, then 1+t and out
    "softmax": lambda ins, params, out: out.nbytes + 2 * out.nbytes // max(out.shape[params["axis"]], 1),
    # shifted logits and their exp alive together, plus np.arange(n) (int64) to pick the labels
    "cross_entropy": lambda ins, params, out: 2 * ins[0].nbytes + 8 * ins[0].shape[0],
}

# --- running a function abstractly ------------------------------------------------------

_FALLBACKS: set[str] = set()


class Abstract(Interpreter):
    """Shape-only evaluation: each primitive's shape rule runs instead of its impl, on placeholders.

    The backward walk's own arrays (seeds, accumulated and cast gradients, leaf copies) are
    placeholders from the same :class:`AbstractMemory`, so every byte a real step would
    allocate is counted, with the real step's lifetimes.
    """

    def __init__(self, mem: AbstractMemory) -> None:
        super().__init__()
        self.mem = mem

    def evaluate(self, prim: Primitive, datas: Sequence[Any], params: dict[str, Any]) -> Any:
        if len(RULE_KIND) < len(REGISTRY):
            _install_default_rules()
        rule = SHAPE_RULES.get(prim.name)
        if rule is None:
            if prim.name not in _FALLBACKS:
                _FALLBACKS.add(prim.name)
                warnings.warn(
                    f"eval_shape: primitive {prim.name!r} has no shape rule; running its impl on placeholders "
                    f"(allocates its real output). Add one with chainrule.measure.shapes.register_shape_rule",
                    stacklevel=4,
                )
            return prim.impl(*datas, **params)
        out = rule(self.mem, *datas, **params)
        work = WORKSPACE.get(prim.name)
        if work is not None:
            self.mem.spike(int(work(datas, params, out)))
        return out

    def ones(self, shape: tuple[int, ...], dtype: Any) -> Any:
        return self.mem.new(shape, dtype)

    def copy(self, array: Any) -> Any:
        return self.mem.new(array.shape, array.dtype)

    def add(self, a: Any, b: Any) -> Any:
        return self.mem.new(tuple(np.broadcast_shapes(a.shape, b.shape)), np.result_type(a.dtype, b.dtype))

    def cast(self, array: Any, dtype: Any) -> Any:
        return self.mem.new(array.shape, dtype)


@contextlib.contextmanager
def abstract(mem: AbstractMemory | None = None) -> Iterator[AbstractMemory]:
    """Run the block shape-only (an :class:`Abstract` interpreter on this thread)."""
    mem = mem if mem is not None else AbstractMemory()
    with Abstract(mem):
        yield mem


def placeholder(s: ShapeDtype, mem: AbstractMemory) -> Tensor:
    """A tensor whose data is a placeholder for ``s``."""
    t = Tensor._make(mem.new(s.shape, s.dtype), None)
    t.requires_grad = s.requires_grad
    return t


def _to_abstract(x: Any, mem: AbstractMemory) -> Any:
    if isinstance(x, ShapeDtype):
        return placeholder(x, mem)
    return x


def _to_spec(x: Any) -> Any:
    if isinstance(x, Tensor | np.ndarray):
        return ShapeDtype(x.shape, x.dtype)
    return x


def eval_shape(fun: Callable[..., Any], *specs: Any, **kwargs: Any) -> Any:
    """The shapes and dtypes of ``fun(*args)``, computed without arithmetic or real allocation.

    ``specs`` are :class:`ShapeDtype` (or pytrees of them; ``requires_grad=True`` makes the
    input differentiable, so the graph is recorded as in training), tensors or arrays
    (used as they are: their shapes flow through). Returns the outputs as ``ShapeDtype``.
    """
    with abstract() as mem:
        args = tree_map(lambda x: _to_abstract(x, mem), list(specs))
        out = fun(*args, **kwargs)
        return tree_map(_to_spec, out)


__all__ = ["AbstractMemory", "ShapeDtype", "SHAPE_RULES", "WORKSPACE", "abstract", "eval_shape", "spec"]
