"""``eval_shape``: run a function on shapes and dtypes only, as ``jax.eval_shape`` does.

Inside :func:`abstract` an :class:`Abstract` interpreter evaluates every primitive by its
*shape rule* (``prim.facts.shape``, registered with the primitive: :mod:`chainrule.ops.facts`)
instead of its NumPy ``impl``. The engine itself runs unchanged (``bind`` records nodes, keeps
what each rule reads, user code holds and drops tensors exactly as in a real run), but every
array is a *placeholder*: a zero-strided view of a one-element buffer with the right shape
and dtype. Nothing of the real size is allocated and no arithmetic happens.

Placeholders come from an :class:`AbstractMemory`, which records how many bytes each
would occupy if it were real and frees them when Python frees the placeholder (a weak
reference on the one-element owner). So the abstract run has exactly the real run's
lifetimes: the basis of :func:`chainrule.measure.memory.estimate`. A primitive's
``workspace`` fact adds the temporaries its impl allocates and frees before returning.

A primitive without a shape rule raises :class:`chainrule.ops.facts.MissingFact`, naming it:
register one with ``prim.deffacts(shape=...)``.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from chainrule.core.interpret import Interpreter
from chainrule.core.node import Meta
from chainrule.core.primitive import Primitive
from chainrule.core.tensor import Tensor
from chainrule.ops.facts import need
from chainrule.transforms.tree import tree_map


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


# --- running a function abstractly ------------------------------------------------------


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
        facts = prim.facts
        rule = facts.shape if facts.shape is not None else need(prim, "shape", "eval_shape")
        out = rule(self.mem, *datas, **params)
        work = facts.workspace
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


__all__ = ["Abstract", "AbstractMemory", "ShapeDtype", "abstract", "eval_shape", "spec"]
