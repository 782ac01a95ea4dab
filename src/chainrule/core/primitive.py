"""Forward propagation: a :class:`Primitive` runs, and ``bind`` records it as a node of the graph.

Every primitive is callable on NumPy arrays *and* on tensors. Called on plain arrays
it is just its NumPy implementation; called on tensors it also records a graph node.
Derivative rules are written with these same primitives, so one rule serves the fast
first-order backward (arrays in, arrays out) and higher orders (tensors in, recorded).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chainrule.core.errors import DTypeError, ShapeError, user_frame
from chainrule.core.node import Node
from chainrule.core.state import THREAD, State, enable_grad
from chainrule.core.tensor import UP, Tensor, contains_tensor

Rule = Callable[..., Any]


REGISTRY: dict[str, Primitive] = {}  # every primitive, by name (each registers itself)


class Facts:
    """What the instruments know of a primitive, registered with it (``prim.facts``).

    ``shape``: ``rule(mem, *inputs, **params)`` giving the output as a placeholder (shape-only
    evaluation); ``workspace``: ``fn(inputs, params, out)`` bytes of temporaries alive inside the
    impl; ``flops``: ``fn(inputs, params, out)`` for the forward; ``vjp_flops``: ``fn(i, inputs,
    params, out)`` for input ``i``'s rule; ``memory``: ``model(mem, i, g, out, args, params)``
    allocating what the VJP rule allocates; ``notation``: how the drawings write it.
    """

    __slots__ = ("shape", "workspace", "flops", "vjp_flops", "memory", "notation")

    def __init__(self) -> None:
        self.shape: Callable[..., Any] | None = None
        self.workspace: Callable[..., int] | None = None
        self.flops: Callable[..., int] | None = None
        self.vjp_flops: Callable[..., int] | None = None
        self.memory: Callable[..., Any] | None = None
        self.notation: Any = None


class Primitive:
    """An operation defined once: its NumPy implementation, what it saves, its derivative rules.

    ``save`` lists the input positions the VJP rules read; ``save_output`` says whether
    they read the result. VJP rules are ``rule(g, out, *inputs, **params)``; an input
    that is not saved arrives as a :class:`Meta` (shape and dtype only). JVP rules are
    ``rule(t, out, *inputs, **params)``: the tangent of the output contributed by input
    ``i``'s tangent ``t`` (inputs always arrive in full in forward mode). A primitive with
    VJP rules but no JVP rule for an input still works in forward mode: the engine
    transposes its (linear) VJP rule, at the cost of a small backward pass. What the
    instruments need (shape rule, FLOPs, memory model, notation) is in :attr:`facts`.
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
        "facts",
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
        self.facts = Facts()
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

    def deffacts(self, **facts: Any) -> None:
        """Register what the instruments need to know (see :class:`Facts`): ``shape``, ``workspace``,
        ``flops``, ``vjp_flops``, ``memory``, ``notation``."""
        for key, value in facts.items():
            if key not in Facts.__slots__:
                raise TypeError(
                    f"{self.name}.deffacts: unknown fact {key!r}; expected one of {', '.join(Facts.__slots__)}"
                )
            setattr(self.facts, key, value)

    __call__: Callable[..., Any]  # calling a primitive is bind(prim, *args, **params), below

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


def bind(prim: Primitive, *args: Any, **params: Any) -> Any:
    """Run ``prim`` on ``args``; if any argument is a tensor that requires grad, record a node.

    This is forward propagation: the output is computed and, for the backward pass, the
    node keeps exactly what the primitive's rules read. Under forward mode (``cr.jvp``)
    the output's tangent is computed too, for every level the inputs carry.
    """
    state = THREAD.state
    if state.forward:
        top_level = _top_level(args, state)
        if top_level:
            return _bind_jvp(prim, args, params, top_level, state)
    operands = _operands(prim, args)
    if operands is None:  # no tensor among the arguments: plain NumPy
        return prim.impl(*args, **params) if state.top is None else state.top.evaluate(prim, args, params)
    if operands is _SEQUENCE:
        return _bind_sequence(prim, args, params)
    datas, parents, needs_grad, float_dtype = operands
    try:
        out = prim.impl(*datas, **params) if state.top is None else state.top.evaluate(prim, datas, params)
    except (ValueError, IndexError) as exc:
        raise _failed(prim, datas, exc) from exc
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    if float_dtype is not None and out.dtype is not float_dtype and out.dtype.kind == "f" and not prim.casts:
        _upcast_error(prim, datas, float_dtype, out.dtype)
    node = None
    if needs_grad and state.grad_enabled and prim.differentiable:
        node = Node(prim, parents, datas, out, params)  # the graph grows by one node
    if state.top is not None:
        state.top.recorded(node, prim, args, datas, params, out)
    return Tensor._make(out, node)


Primitive.__call__ = bind  # type: ignore[method-assign]  # calling a primitive binds it

_SEQUENCE: Any = object()  # an operand is a list or tuple (possibly of tensors): stacked first


def _operands(prim: Primitive, args: tuple[Any, ...]) -> Any:
    """The arrays behind ``args``, each input's parent, whether a gradient is needed, the float dtype.

    The dtype policy: floating tensors must agree (no silent upcast); floating array constants
    follow the tensors' precision; NumPy scalars (``np.float64(0.5)``, ``np.int64(2)``) are numbers,
    as Python's are. ``None`` when no argument is a tensor.
    """
    datas: list[Any] = []
    parents: list[Node | Tensor | None] = []
    has_tensor = needs_grad = cast_constants = False
    float_dtype = None
    for a in args:
        if isinstance(a, Tensor):
            has_tensor = True
            d = a._data
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
                return _SEQUENCE
            elif isinstance(a, np.generic):  # np.float64(0.5) is a number, as 0.5 is (PyTorch's rule too)
                a = a.item()
            datas.append(a)
            parents.append(None)
    if not has_tensor:
        return None
    if cast_constants and float_dtype is not None:
        datas = [
            d.astype(float_dtype) if isinstance(d, np.ndarray) and d.dtype.kind == "f" and d.dtype != float_dtype else d
            for d in datas
        ]
    return datas, parents, needs_grad, float_dtype


def _failed(prim: Primitive, datas: list[Any], exc: Exception) -> Exception:
    """The error for an impl that refused its operands: it names the op, the operands and the user's line."""
    kind = ShapeError if "shape" in str(exc) or "dimension" in str(exc) else type(exc)
    return kind(f"{prim.name}: cannot apply to operands ({_describe(datas)}) at {user_frame()}: {exc}")


def _describe(args: Sequence[Any]) -> str:
    parts = []
    for a in args:
        if isinstance(a, np.ndarray | Tensor):
            parts.append(f"{a.dtype}{list(a.shape)}")
        else:
            parts.append(type(a).__name__)
    return ", ".join(parts)


def _upcast_error(prim: Primitive, datas: list[Any], float_dtype: Any, out_dtype: Any) -> None:
    """A non-floating operand made NumPy promote the floating result (int64 with float32 gives float64)."""
    raise DTypeError(
        f"{prim.name}: operands ({_describe(datas)}) give a {out_dtype} result under NumPy's promotion "
        f"rules, not the {float_dtype} of the floating operands (at {user_frame()}); chainrule does not "
        f"upcast silently - convert the other operand with .astype(np.{float_dtype})"
    )


def _bind_sequence(prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
    """A list of tensors given as an operand is stacked differentiably, never read through ``__array__``."""
    fixed = []
    for a in args:
        if (type(a) is list or type(a) is tuple) and contains_tensor(a):
            a = UP.ops.stack([UP.ops.stack(x) if type(x) in (list, tuple) else x for x in a])
        fixed.append(a)
    if all(f is a for f, a in zip(fixed, args, strict=True)):  # a plain nested list of numbers
        fixed = [np.asarray(a) if type(a) in (list, tuple) else a for a in args]
    return bind(prim, *fixed, **params)


# --- forward mode -------------------------------------------------------------------------


def _top_level(args: tuple[Any, ...], state: State) -> int:
    """The highest open forward level (below the one being computed) that an argument carries, or 0."""
    top = 0
    for a in args:
        if isinstance(a, Tensor) and a.tangents:
            for k in a.tangents:
                if top < k < state.limit and k in state.forward:
                    top = k
    return top


def _bind_jvp(prim: Primitive, args: tuple[Any, ...], params: dict[str, Any], top: int, state: State) -> Any:
    """Forward mode at level ``top``: the primal (with lower levels and recording), then its tangent.

    While the tangent is computed only levels below ``top`` are live, so the rules' own
    operations never pick up level ``top``'s tangents (no perturbation confusion).
    """
    previous = state.limit
    state.limit = top
    try:
        out = bind(prim, *args, **params)
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
        total = UP.ops.broadcast_to(total, out.shape)
    if total.dtype != out.dtype:
        total = UP.ops.astype(total, out.dtype)
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
        ct = UP.ops.sum_to(ct, np.shape(args[i]._data if isinstance(args[i], Tensor) else args[i]))
        pairing = UP.ops.sum(ct * t)
        if not pairing.requires_grad:
            return None  # the rule does not depend on u: a zero tangent
        result = UP.backward([pairing], [None], retain_graph=True, create_graph=True, targets=[u])
    return result[0] if result else None
