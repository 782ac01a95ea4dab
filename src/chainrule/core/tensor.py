"""Tensor, Primitive, and ``bind``: the one place where an operation runs and is recorded.

Every primitive is callable on NumPy arrays *and* on tensors. Called on plain arrays
it is just its NumPy implementation; called on tensors it also records a graph node.
Derivative rules are written with these same primitives, so one rule serves the fast
first-order backward (arrays in, arrays out) and higher orders (tensors in, recorded).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from chainrule.core.errors import AnomalyError, DTypeError, ShapeError, user_frame
from chainrule.core.node import THREAD, Node, enable_grad, hold, meta_of

Rule = Callable[..., Any]


REGISTRY: dict[str, Primitive] = {}  # every primitive, by name (each registers itself)


class Primitive:
    """An operation defined once: its NumPy implementation, what it saves, its derivative rules.

    ``save`` lists the input positions the VJP rules read; ``save_output`` says whether
    they read the result. VJP rules are ``rule(g, out, *inputs, **params)``; an input
    that is not saved arrives as a :class:`Meta` (shape and dtype only). JVP rules are
    ``rule(t, out, *inputs, **params)``: the tangent of the output contributed by input
    ``i``'s tangent ``t`` (inputs always arrive in full in forward mode). A primitive with
    VJP rules but no JVP rule for an input still works in forward mode: the engine
    transposes its (linear) VJP rule, at the cost of a small backward pass.
    """

    __slots__ = (
        "name",
        "impl",
        "vjps",
        "vjp_any",
        "jvps",
        "jvp_any",
        "save",
        "save_output",
        "differentiable",
        "casts",
        "module",
        "__dict__",  # per-primitive __doc__, so help(cr.exp) describes exp
    )

    def __init__(
        self,
        name: str,
        impl: Callable[..., Any],
        save: tuple[int, ...] = (),
        save_output: bool = False,
        differentiable: bool = True,
        doc: str | None = None,
        casts: bool = False,
    ) -> None:
        self.name = name
        self.impl = impl
        self.vjps: tuple[Rule | None, ...] = ()
        self.vjp_any: Callable[..., Any] | None = None
        self.jvps: tuple[Rule | None, ...] = ()
        self.jvp_any: Callable[..., Any] | None = None
        self.save = save
        self.save_output = save_output
        self.differentiable = differentiable
        self.casts = casts  # its result's dtype is a parameter (astype), not its operands' precision
        self.__doc__ = doc or f"The ``{name}`` primitive (NumPy implementation: ``{getattr(impl, '__name__', impl)}``)."
        self.module: str = sys._getframe(1).f_globals.get("__name__", "?")  # where it was defined
        REGISTRY.setdefault(name, self)

    def defvjp(self, *rules: Rule | None) -> None:
        """One VJP rule per input; ``None`` means that input gets no gradient."""
        self.vjps = rules

    def defvjp_argnum(self, rule: Callable[..., Any]) -> None:
        """A single rule ``rule(argnum, g, out, *inputs, **params)`` for variadic primitives."""
        self.vjp_any = rule

    def defjvp(self, *rules: Rule | None) -> None:
        """One JVP rule per input, ``rule(t, out, *inputs, **params)``; ``None``: no tangent flows."""
        self.jvps = rules

    def defjvp_argnum(self, rule: Callable[..., Any]) -> None:
        """A single rule ``rule(argnum, t, out, *inputs, **params)`` for variadic primitives."""
        self.jvp_any = rule

    def __call__(self, *args: Any, **params: Any) -> Any:
        return bind(self, args, params)

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


def _describe(args: Sequence[Any]) -> str:
    parts = []
    for a in args:
        if isinstance(a, np.ndarray | Tensor):
            parts.append(f"{a.dtype}{list(a.shape)}")
        else:
            parts.append(type(a).__name__)
    return ", ".join(parts)


def bind(prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
    """Run ``prim`` on ``args``; if any argument is a tensor that requires grad, record a node.

    This is forward propagation: the output is computed and, for the backward pass, the
    node keeps exactly what the primitive's rules read. Under forward mode (``cr.jvp``)
    the output's tangent is computed too, for every level the inputs carry.
    """
    state = THREAD.state
    if state.forward:
        top = _top_level(args, state)
        if top:
            return _bind_jvp(prim, args, params, top, state)
    datas: list[Any] = []
    parents: list[Node | Tensor | None] = []
    has_tensor = needs_grad = cast_constants = False
    float_dtype = None
    for a in args:
        if isinstance(a, Tensor):
            has_tensor = True
            d = a.data
            dtype = d.dtype
            if dtype is not float_dtype and dtype.kind == "f":
                if float_dtype is None:
                    float_dtype = dtype
                elif dtype != float_dtype:
                    raise DTypeError(
                        f"{prim.name}: operands have dtypes {float_dtype} and {dtype} "
                        f"(at {user_frame()}); chainrule does not upcast silently - "
                        f"convert one with .astype()"
                    )
            datas.append(d)
            if a.requires_grad:
                needs_grad = True
                parents.append(a.node or a)
            else:
                parents.append(None)
        else:
            if isinstance(a, np.ndarray) and a.dtype.kind == "f":
                cast_constants = True
            elif type(a) is list or type(a) is tuple:
                return _bind_sequence(prim, args, params)
            datas.append(a)
            parents.append(None)
    if not has_tensor:
        return prim.impl(*args, **params)
    if cast_constants and float_dtype is not None:
        # array constants follow the tensors' precision instead of upcasting them
        datas = [
            d.astype(float_dtype) if isinstance(d, np.ndarray) and d.dtype.kind == "f" and d.dtype != float_dtype else d
            for d in datas
        ]
    try:
        out = prim.impl(*datas, **params)
    except (ValueError, IndexError) as exc:
        kind = ShapeError if "shape" in str(exc) or "dimension" in str(exc) else type(exc)
        raise kind(f"{prim.name}: cannot apply to operands ({_describe(datas)}) at {user_frame()}: {exc}") from exc
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    if float_dtype is not None and out.dtype is not float_dtype and out.dtype.kind == "f" and not prim.casts:
        _upcast_error(prim, datas, float_dtype, out.dtype)
    if state.anomaly and out.dtype.kind in "fc" and not np.isfinite(out).all():
        raise AnomalyError(f"{prim.name} produced NaN/Inf in forward at {user_frame()}")
    if state.tracer is not None:
        state.tracer.record(prim, args, datas, params, out)

    node = None
    if needs_grad and state.grad_enabled and prim.differentiable:
        save = prim.save
        kept: list[Any] = []
        for i, d in enumerate(datas):
            kept.append(d if i in save else meta_of(d))
        node = Node(prim, tuple(parents), tuple(kept), out, params)
        if save:
            hold(node, [d for d in kept if type(d) is np.ndarray])  # read-only while the node needs them
        if state.anomaly:
            node.origin = user_frame()
    if state.hooks:
        for h in state.hooks:
            h.forward(node, prim, out)
    return Tensor._make(out, node)


def _upcast_error(prim: Primitive, datas: list[Any], float_dtype: Any, out_dtype: Any) -> None:
    """An integer operand made NumPy promote the floating result (int64 with float32 gives float64)."""
    raise DTypeError(
        f"{prim.name}: operands ({_describe(datas)}) give a {out_dtype} result under NumPy's promotion "
        f"rules, not the {float_dtype} of the floating operands (at {user_frame()}); chainrule does not "
        f"upcast silently - convert the integer operand with .astype(np.{float_dtype})"
    )


def _bind_sequence(prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
    """A list of tensors given as an operand is stacked differentiably, never read through ``__array__``."""
    fixed = []
    for a in args:
        if (type(a) is list or type(a) is tuple) and _contains_tensor(a):
            a = _ops.stack([_ops.stack(x) if type(x) in (list, tuple) else x for x in a])
        fixed.append(a)
    if all(f is a for f, a in zip(fixed, args, strict=True)):  # a plain nested list of numbers
        fixed = [np.asarray(a) if type(a) in (list, tuple) else a for a in args]
    return bind(prim, tuple(fixed), params)


def _contains_tensor(seq: Any) -> bool:
    return any(isinstance(x, Tensor) or (type(x) in (list, tuple) and _contains_tensor(x)) for x in seq)


def _top_level(args: tuple[Any, ...], state: Any) -> int:
    """The highest open forward level (below the one being computed) that an argument carries, or 0."""
    top = 0
    for a in args:
        if isinstance(a, Tensor) and a.tangents:
            for k in a.tangents:
                if top < k < state.limit and k in state.forward:
                    top = k
    return top


def _bind_jvp(prim: Primitive, args: tuple[Any, ...], params: dict[str, Any], top: int, state: Any) -> Any:
    """Forward mode at level ``top``: the primal (with lower levels and recording), then its tangent.

    While the tangent is computed only levels below ``top`` are live, so the rules' own
    operations never pick up level ``top``'s tangents (no perturbation confusion).
    """
    previous = state.limit
    state.limit = top
    try:
        out = bind(prim, args, params)
        tangents = [a.tangents.get(top) if isinstance(a, Tensor) and a.tangents else None for a in args]
        t_out = _jvp(prim, args, tangents, out, params) if prim.differentiable else None
    finally:
        state.limit = previous
    if t_out is not None:
        out.tangents = {**(out.tangents or {}), top: t_out}
        if out.node is not None:
            out.node.forward = (args, out.tangents)
    return out


def _jvp(prim: Primitive, args: tuple[Any, ...], tangents: list[Any], out: Tensor, params: dict[str, Any]) -> Any:
    """The output tangent: the sum over inputs of each input's JVP rule (or its transposed VJP)."""
    total = None
    for i, t in enumerate(tangents):
        if t is None:
            continue
        if prim.jvp_any is not None:
            term = prim.jvp_any(i, t, out, *args, **params)
        else:
            rule = prim.jvps[i] if i < len(prim.jvps) else None
            if rule is not None:
                term = rule(t, out, *args, **params)
            else:
                term = _transposed_vjp(prim, i, t, out, args, params)
        if term is not None:
            total = term if total is None else total + term
    if total is None:
        return None
    if total.shape != out.shape:
        total = _ops.broadcast_to(total, out.shape)
    if total.dtype != out.dtype:
        total = _ops.astype(total, out.dtype)
    return total


def _transposed_vjp(prim: Primitive, i: int, t: Any, out: Tensor, args: tuple[Any, ...], params: Any) -> Any:
    """A JVP from a VJP rule: the VJP is linear in its cotangent u, so J·t = d/du <vjp(u), t>."""
    rule = prim.vjps[i] if i < len(prim.vjps) else None
    vjp_any = prim.vjp_any
    if rule is None and vjp_any is None:
        raise NotImplementedError(
            f"{prim.name}: no JVP rule and no VJP rule for input {i}, so forward mode cannot differentiate it "
            f"(at {user_frame()}); define one with {prim.name}.defjvp(...) or {prim.name}.defvjp(...)"
        )
    u = Tensor._make(np.zeros(out.shape, out.dtype), None)
    u.requires_grad = True
    with enable_grad():
        ct = rule(u, out, *args, **params) if rule is not None else vjp_any(i, u, out, *args, **params)  # type: ignore[misc]
        ct = _ops.sum_to(ct, np.shape(args[i].data if isinstance(args[i], Tensor) else args[i]))
        pairing = _ops.sum(ct * t)
        if not pairing.requires_grad:
            return None  # the rule does not depend on u: a zero tangent
        result = _backward.backward([pairing], [None], retain_graph=True, create_graph=True, targets=[u])
    return result[0] if result else None


class Tensor:
    """An n-dimensional array that can record the operations applied to it."""

    __slots__ = ("data", "grad", "requires_grad", "node", "name", "tangents", "__weakref__")
    __array_priority__ = 1000.0  # ndarray (op) Tensor defers to Tensor's reflected operators
    # NumPy's dispatch protocols (__array_ufunc__, __array_function__) are attached by
    # chainrule.ops.numpy_dispatch, so np.exp(t) and np.dot(t, t) record like cr.exp and cr.dot.

    data: np.ndarray[Any, Any]
    grad: Tensor | None
    requires_grad: bool
    node: Node | None
    name: str | None
    tangents: dict[int, Tensor] | None  # forward mode: this value's tangent at each open jvp level

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        array = _as_array(data, dtype)
        if requires_grad and array.dtype.kind != "f":
            raise DTypeError(f"tensor: only floating-point tensors can require gradients, got dtype {array.dtype}")
        self.data = array
        self.grad = None
        self.requires_grad = requires_grad
        self.node = None
        self.name = None
        self.tangents = None

    @classmethod
    def _make(cls, data: np.ndarray[Any, Any], node: Node | None) -> Tensor:
        t = object.__new__(cls)
        t.data = data
        t.grad = None
        t.requires_grad = node is not None
        t.node = node
        t.name = None
        t.tangents = None
        return t

    # --- array protocol and properties -------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        return self.node is None

    def numpy(self) -> np.ndarray[Any, Any]:
        return self.data

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray[Any, Any]:
        if self.tangents or (self.requires_grad and THREAD.state.grad_enabled):
            raise TypeError(
                "np.asarray(tensor): this tensor is part of a recorded graph, and turning it into a plain "
                "array would silently drop its gradient. Use a chainrule operation, or t.numpy() / "
                "cr.stop_gradient(t) / t.detach() if you mean to leave the graph"
            )
        if dtype is not None and dtype != self.data.dtype:
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    def item(self) -> Any:
        return self.data.item()

    def tolist(self) -> Any:
        return self.data.tolist()

    def detach(self) -> Tensor:
        return Tensor._make(self.data, None)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        if flag and self.data.dtype.kind != "f":
            raise DTypeError(f"requires_grad_: dtype {self.data.dtype} cannot require gradients")
        if self.node is not None and not flag:
            raise ValueError("requires_grad_: a non-leaf tensor cannot stop requiring grad; use .detach()")
        self.requires_grad = flag
        return self

    def named(self, name: str) -> Tensor:
        """Name this tensor (and the node that made it), e.g. ``z = (W1 @ x).named("z")``."""
        self.name = name
        if self.node is not None:
            self.node.label = name
        return self

    def graph(self, **kwargs: Any) -> Any:
        """This tensor's computational graph as a ``graphviz.Digraph`` (see ``chainrule.viz.draw``)."""
        from chainrule.viz import graph  # the drawing layer sits above the core

        return graph(self, **kwargs)

    def zero_grad(self) -> None:
        self.grad = None

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[Tensor]:
        for i in range(len(self.data)):
            yield self[i]

    def __bool__(self) -> bool:
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.data)

    def __int__(self) -> int:
        return int(self.data)

    def __repr__(self) -> str:
        body = np.array2string(self.data, precision=4, separator=", ", prefix="tensor(")
        extra = ""
        if self.node is not None:
            extra = f", node={self.node.prim.name}"
        elif self.requires_grad:
            extra = ", requires_grad=True"
        dt = "" if self.data.dtype == np.float32 else f", dtype={self.data.dtype}"
        return f"tensor({body}{dt}{extra})"

    __hash__ = object.__hash__

    # --- backward -------------------------------------------------------------------
    def backward(self, gradient: Any = None, retain_graph: bool = False, create_graph: bool = False) -> None:
        """Backpropagate from this tensor into the ``.grad`` of every leaf that requires grad."""
        _backward.backward((self,), (gradient,), retain_graph, create_graph)

    # --- operators (defined in chainrule.ops) ----------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return _ops.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return _ops.add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return _ops.subtract(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _ops.subtract(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return _ops.multiply(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return _ops.multiply(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return _ops.divide(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _ops.divide(other, self)

    def __pow__(self, other: Any) -> Tensor:
        return _ops.power(self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return _ops.power(other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return _ops.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _ops.matmul(other, self)

    def __neg__(self) -> Tensor:
        return _ops.negative(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return _ops.abs(self)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _ops.equal(self, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _ops.not_equal(self, other)

    def __lt__(self, other: Any) -> Tensor:
        return _ops.less(self, other)

    def __le__(self, other: Any) -> Tensor:
        return _ops.less_equal(self, other)

    def __gt__(self, other: Any) -> Tensor:
        return _ops.greater(self, other)

    def __ge__(self, other: Any) -> Tensor:
        return _ops.greater_equal(self, other)

    def __getitem__(self, index: Any) -> Tensor:
        return _ops.getitem(self, index)

    # --- NumPy-style methods ----------------------------------------------------------
    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _ops.sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _ops.mean(self, axis=axis, keepdims=keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _ops.max(self, axis=axis, keepdims=keepdims)

    def min(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _ops.min(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], tuple | list):
            shape = tuple(shape[0])
        return _ops.reshape(self, shape)

    def transpose(self, *axes: Any) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], tuple | list):
            axes = tuple(axes[0])
        return _ops.transpose(self, axes if axes else None)

    @property
    def T(self) -> Tensor:
        return _ops.transpose(self)

    def squeeze(self, axis: Any = None) -> Tensor:
        return _ops.squeeze(self, axis)

    def clip(self, a_min: Any = None, a_max: Any = None) -> Tensor:
        return _ops.clip(self, a_min, a_max)

    def astype(self, dtype: Any) -> Tensor:
        return _ops.astype(self, dtype)

    def dot(self, other: Any) -> Tensor:
        """NumPy's ``dot`` (for N-D operands it is not ``matmul``)."""
        return _ops.dot(self, other)

    def flatten(self) -> Tensor:
        """A 1-D copy of the values (NumPy's ``flatten``)."""
        return _ops.reshape(self, (-1,))

    def ravel(self) -> Tensor:
        """The values as one axis (NumPy's ``ravel``)."""
        return _ops.reshape(self, (-1,))

    def var(self, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Tensor:
        """Variance along ``axis`` (NumPy's ``var``; ``ddof=1`` for the unbiased estimate)."""
        return _ops.var(self, axis=axis, ddof=ddof, keepdims=keepdims)

    def std(self, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Tensor:
        """Standard deviation along ``axis`` (NumPy's ``std``)."""
        return _ops.std(self, axis=axis, ddof=ddof, keepdims=keepdims)

    def prod(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        """Product along ``axis`` (NumPy's ``prod``; exact derivatives with zeros)."""
        return _ops.prod(self, axis=axis, keepdims=keepdims)

    def cumsum(self, axis: Any = None) -> Tensor:
        """Cumulative sum along ``axis`` (NumPy's ``cumsum``; flattened when ``axis`` is None)."""
        return _ops.cumsum(self, axis=axis)

    def cumprod(self, axis: Any = None) -> Tensor:
        """Cumulative product along ``axis`` (NumPy's ``cumprod``)."""
        return _ops.cumprod(self, axis=axis)

    def trace(self, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
        """Sum along a diagonal (NumPy's ``trace``)."""
        return _ops.trace(self, offset=offset, axis1=axis1, axis2=axis2)

    def diagonal(self, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
        """A diagonal as a new axis at the end (NumPy's ``diagonal``)."""
        return _ops.diagonal(self, offset=offset, axis1=axis1, axis2=axis2)

    def repeat(self, repeats: Any, axis: Any = None) -> Tensor:
        """Each element repeated (NumPy's ``repeat``)."""
        return _ops.repeat(self, repeats, axis=axis)

    def swapaxes(self, axis1: int, axis2: int) -> Tensor:
        """Two axes exchanged (NumPy's ``swapaxes``)."""
        return _ops.swapaxes(self, axis1, axis2)

    def argmax(self, axis: Any = None) -> np.ndarray[Any, Any]:
        return np.asarray(self.data.argmax(axis=axis))


def _as_array(data: Any, dtype: Any) -> np.ndarray[Any, Any]:
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.array(data, dtype=np.dtype(dtype))
    array = np.array(data)
    if array.dtype.kind == "f" and array.dtype != np.float32:
        array = array.astype(np.float32)  # float32 by default, as documented
    return array


def array_of(x: Any) -> np.ndarray[Any, Any]:
    """The array behind ``x`` (a tensor's data; nested lists of tensors read element by element)."""
    if isinstance(x, Tensor):
        return x.data
    if (type(x) is list or type(x) is tuple) and _contains_tensor(x):
        return np.asarray([array_of(e) for e in x])
    return np.asarray(x)


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Make a leaf tensor (a copy of ``data``).

    Dtype rule, shared with :func:`as_tensor`: ``dtype`` if given; else float data (Python floats,
    float64 arrays) become float32, and integer and boolean data keep their dtype.
    """
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


_ops: Any = None  # the operations package, once it has installed itself (see install_ops)


def install_ops(ops: Any) -> None:
    """Called once by ``chainrule.ops``: the operations behind Tensor's operators and methods, and
    the few the engine itself applies (``sum_to`` for gradients, ``broadcast_to``/``astype`` for
    tangents, ``stack`` for lists). The dependency points one way: ops import the core, never
    the reverse."""
    global _ops
    _ops = ops


def engine_ops() -> Any:
    """The installed operations package (``chainrule.ops``)."""
    if _ops is None:
        raise RuntimeError("chainrule.ops is not imported: import chainrule, not chainrule.core alone")
    return _ops


from chainrule.core import backward as _backward  # noqa: E402  (backward needs Tensor: a cycle inside the core)
