"""JAX-style function transforms: grad, value_and_grad, vjp, jvp, jacobian (jacrev, jacfwd),
hessian, hvp. Each opens a transformation level, so any nesting is correct by construction.

Reverse mode (``grad``, ``vjp``) marks each differentiated input with a ``watch`` node (an
identity) and backpropagates to exactly those nodes: an outer transform's variables are
never confused with the inner one's. The backward pass is recorded only when an enclosing
transform is watching (``node.watched()``); otherwise results are plain arrays without a
graph. Forward mode (``jvp``) attaches tangents tagged with its level to the inputs; each
primitive's JVP rule carries them through (see ``core.tensor.bind``). Arguments and results
may be pytrees: nested dicts, lists and tuples of tensors and arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chainrule.core.backward import backward
from chainrule.core.primitive import Primitive
from chainrule.core.state import level, watched
from chainrule.core.tensor import Tensor
from chainrule.ops import facts as fx
from chainrule.ops import reshape, stack, sum
from chainrule.ops import vjp_memory as vm
from chainrule.transforms.tree import tree_flatten, tree_map, tree_unflatten

# The identity that marks "differentiate with respect to this value" on the tape.
watch = Primitive("watch", lambda x: x, doc="Identity: marks a value a transform differentiates with respect to.")
watch.defvjp(lambda g, out, x: g)
watch.defjvp(lambda t, out, x: t)
watch.deffacts(shape=fx.view(watch), flops=fx.zero, vjp_flops=fx.zero_vjp, memory=vm.passes_g)


def gradients(
    output: Tensor,
    inputs: Tensor | Sequence[Tensor],
    gradient: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
) -> Any:
    """Gradient of ``output`` with respect to ``inputs`` (leaf or intermediate tensors).

    Like ``torch.autograd.grad``: returns the gradients and leaves every ``.grad`` alone.
    The graph is kept (``retain_graph`` defaults to True here), so a later ``backward``
    through it still works; pass ``retain_graph=False`` to free it.
    """
    targets: list[Tensor] = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    single = isinstance(inputs, Tensor)
    for t in targets:
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise ValueError(
                "cr.grad(output, inputs): every input must be a tensor that requires grad (a leaf created "
                "with requires_grad=True or a result computed from one)"
            )
    if retain_graph is None:
        retain_graph = True
    out = backward([output], [gradient], retain_graph=retain_graph, create_graph=create_graph, targets=targets)
    assert out is not None
    return out[0] if single else tuple(out)


def _as_float_tensor(x: Any, what: str) -> Tensor:
    """A transform's input as a tensor. Tensors and float NumPy arrays keep their dtype; Python
    numbers and lists become float32 (the ``cr.tensor`` rule); integer and complex arrays raise."""
    if isinstance(x, Tensor):
        array = x._data
    elif isinstance(x, np.ndarray | np.generic):
        array = np.asarray(x)
    else:
        array = np.asarray(x, dtype=np.float32)
    if array.dtype.kind != "f":
        raise TypeError(
            f"{what}: can only differentiate with respect to real floating-point values, got dtype "
            f"{array.dtype}; convert the input with .astype(np.float32) or .astype(np.float64)"
        )
    return x if isinstance(x, Tensor) else Tensor._make(array, None)


def _watch_leaf(x: Any, what: str) -> Tensor:
    """A fresh variable for the current reverse level, joined to ``x``'s graph and tangents."""
    t = _as_float_tensor(x, what)
    if t.requires_grad:
        watched_t: Tensor = watch(t)
        return watched_t
    fresh = Tensor._make(t._data, None)
    fresh.requires_grad = True
    fresh.tangents = t.tangents
    return fresh


def _watch_args(args: tuple[Any, ...], argnums: Sequence[int], what: str) -> tuple[list[Any], list[Any], list[Any]]:
    """Replace each differentiated argument (a pytree) by watched variables; return them flat."""
    args_list = list(args)
    wrt: list[Tensor] = []
    defs = []
    for i in argnums:
        if not -len(args) <= i < len(args):
            raise ValueError(f"{what}: argnums {i} is out of range for {len(args)} positional arguments")
        leaves, treedef = tree_flatten(args_list[i])
        watched_leaves = [_watch_leaf(x, what) for x in leaves]
        args_list[i] = tree_unflatten(treedef, watched_leaves)
        wrt.extend(watched_leaves)
        defs.append(treedef)
    return args_list, wrt, defs


def _scalar_output(out: Any, what: str) -> Any:
    if not isinstance(out, Tensor):
        out = Tensor._make(np.asarray(out), None)
    if out.size != 1:
        raise ValueError(f"{what}: the function must return a scalar (size-1) tensor, got shape {out.shape}")
    if out.dtype.kind not in "f":
        raise TypeError(
            f"{what}: the function must return a real floating-point scalar, got {out.dtype}; "
            "for a complex output differentiate its real and imaginary parts separately"
        )
    return out


def _finish(x: Any, keep_graph: bool) -> Any:
    """A transform's result: as is when an outer transform is watching, else without graph."""
    if not isinstance(x, Tensor):
        return Tensor._make(np.asarray(x), None)
    return x if keep_graph else Tensor._make(x._data, None)


def _regroup(flat: list[Any], defs: list[Any], single: bool) -> Any:
    groups = []
    start = 0
    for treedef in defs:
        groups.append(tree_unflatten(treedef, flat[start : start + treedef.num_leaves]))
        start += treedef.num_leaves
    return groups[0] if single else tuple(groups)


def _argnums(argnums: int | Sequence[int]) -> tuple[tuple[int, ...], bool]:
    if isinstance(argnums, int):
        return (argnums,), True
    return tuple(argnums), False


def value_and_grad(
    fun: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False
) -> Callable[..., tuple[Any, Any]]:
    """``value_and_grad(f)(*args)`` returns ``(f(*args), df/dargs[argnums])`` (JAX style).

    The differentiated arguments may be pytrees (dicts, lists, tuples of tensors or arrays);
    the gradient has the same structure. With ``has_aux``, ``f`` returns ``(value, aux)``
    and the result is ``((value, aux), grad)``.
    """
    nums, single = _argnums(argnums)

    def wrapped(*args: Any) -> tuple[Any, Any]:
        # Decided before this level opens: does an enclosing transform differentiate the result
        # (keep its tangents), and is one of them reverse mode (record the backward pass)?
        keep, record = watched(), watched(reverse_only=True)
        with level("grad", grad_enabled=True):
            args_list, wrt, defs = _watch_args(args, nums, "grad")
            result = fun(*args_list)
            out, aux = result if has_aux else (result, None)
            out = _scalar_output(out, "grad")
            if out.requires_grad:
                gs = backward([out], [None], retain_graph=record, create_graph=record, targets=wrt)
                assert gs is not None
            else:
                gs = [Tensor._make(np.zeros(t.shape, t.dtype), None) for t in wrt]
        value = _finish(out, keep)
        grads = _regroup([_finish(g, keep) for g in gs], defs, single)
        return ((value, aux) if has_aux else value), grads

    return wrapped


def grad(fun: Any, argnums: Any = 0, has_aux: bool = False, **kwargs: Any) -> Any:
    """``grad(f)`` returns a function computing df/dx (JAX style); ``argnums`` picks the arguments.

    ``grad(output, inputs)`` with tensors returns the gradient of ``output`` with respect to
    ``inputs`` directly, which may be intermediate tensors (PyTorch's ``autograd.grad``;
    keyword arguments ``gradient``, ``retain_graph``, ``create_graph``).
    """
    if isinstance(fun, Tensor):
        return gradients(fun, argnums, **kwargs)
    vg = value_and_grad(fun, argnums, has_aux=has_aux)

    def wrapped(*args: Any) -> Any:
        (value, grads) = vg(*args)
        return (grads, value[1]) if has_aux else grads

    return wrapped


def vjp(fun: Callable[..., Any], *primals: Any) -> tuple[Any, Callable[[Any], tuple[Any, ...]]]:
    """``out, vjp_fn = vjp(f, *xs)``; ``vjp_fn(ct)`` gives the cotangent of each x.

    ``out`` and ``ct`` may be pytrees of the same structure; so may each x. ``vjp_fn`` can
    be called repeatedly (the graph is kept until ``vjp_fn`` is garbage collected).
    """
    keep, record_outer = watched(), watched(reverse_only=True)  # as in value_and_grad
    with level("grad", grad_enabled=True):
        args_list, wrt, defs = _watch_args(primals, range(len(primals)), "vjp")
        out = fun(*args_list)
    out_leaves, out_def = tree_flatten(out)
    out_leaves = [o if isinstance(o, Tensor) else Tensor._make(np.asarray(o), None) for o in out_leaves]

    def vjp_fn(cotangent: Any) -> tuple[Any, ...]:
        ct_leaves, ct_def = tree_flatten(cotangent)
        if ct_def != out_def:
            raise ValueError(f"vjp: the cotangent has structure {ct_def}, the output {out_def}")
        roots, cts = [], []
        for o, ct in zip(out_leaves, ct_leaves, strict=True):
            if np.shape(ct._data if isinstance(ct, Tensor) else ct) != o.shape:
                raise ValueError(f"vjp: cotangent shape {np.shape(ct)} does not match the output's {o.shape}")
            if o.requires_grad:
                roots.append(o)
                cts.append(ct if isinstance(ct, Tensor) else np.asarray(ct, dtype=o.dtype))
        # Record the backward only for a reverse transform (when vjp was made or now) or a cotangent
        # that is itself being differentiated; keep tangents for any enclosing transform.
        record = (
            record_outer or watched(reverse_only=True) or any(isinstance(c, Tensor) and c.requires_grad for c in cts)
        )
        keep_result = record or keep or watched()
        with level("grad", grad_enabled=True):
            if roots:
                res = backward(roots, cts, retain_graph=True, create_graph=record, targets=wrt)
                assert res is not None
            else:
                res = [Tensor._make(np.zeros(t.shape, t.dtype), None) for t in wrt]
        return _regroup([_finish(r, keep_result) for r in res], defs, False)  # type: ignore[no-any-return]

    return tree_unflatten(out_def, [_finish(o, keep) for o in out_leaves]), vjp_fn


def jvp(fun: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """Forward mode: ``(f(*primals), J·tangents)`` in one pass that carries tangents along.

    Costs about one extra forward pass (each primitive's JVP rule runs beside it).
    ``primals`` and ``tangents`` are sequences of pytrees with matching structures.
    """
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: got {len(primals)} primals but {len(tangents)} tangents")
    keep = watched()
    with level("jvp") as lvl:
        args = []
        for p, t in zip(primals, tangents, strict=True):
            p_leaves, p_def = tree_flatten(p)
            t_leaves, t_def = tree_flatten(t)
            if p_def != t_def:
                raise ValueError(f"jvp: tangent structure {t_def} does not match primal structure {p_def}")
            seeded = [_seed_tangent(x, v, lvl.id) for x, v in zip(p_leaves, t_leaves, strict=True)]
            args.append(tree_unflatten(p_def, seeded))
        out = fun(*args)
        out_leaves, out_def = tree_flatten(out)
        primal_out = [_finish(_strip(o, lvl.id), keep) for o in out_leaves]
        tangent_out = [_finish(_tangent_of(o, lvl.id), keep) for o in out_leaves]
    return tree_unflatten(out_def, primal_out), tree_unflatten(out_def, tangent_out)


def _seed_tangent(x: Any, v: Any, lvl: int) -> Tensor:
    t = _as_float_tensor(x, "jvp")
    vv = v if isinstance(v, Tensor) else Tensor._make(np.asarray(v, dtype=t.dtype), None)
    if vv.shape != t.shape:
        raise ValueError(f"jvp: tangent shape {vv.shape} does not match primal shape {t.shape}")
    if vv.dtype != t.dtype:
        raise TypeError(f"jvp: tangent dtype {vv.dtype} does not match primal dtype {t.dtype}")
    seeded: Tensor = watch(t)  # a new value (recorded if t requires grad), safe to give tangents
    seeded.tangents = {**(seeded.tangents or {}), lvl: vv}
    return seeded


def _strip(o: Any, lvl: int) -> Any:
    if not isinstance(o, Tensor) or not o.tangents or lvl not in o.tangents:
        return o
    t = Tensor._make(o._data, o.node)
    t.requires_grad = o.requires_grad
    rest = {k: v for k, v in o.tangents.items() if k != lvl}
    t.tangents = rest or None
    return t


def _tangent_of(o: Any, lvl: int) -> Any:
    if isinstance(o, Tensor) and o.tangents and lvl in o.tangents:
        return o.tangents[lvl]
    shape = o.shape if isinstance(o, Tensor) else np.shape(o)
    dtype = o.dtype if isinstance(o, Tensor) else np.result_type(o)
    return Tensor._make(np.zeros(shape, dtype), None)  # the output does not depend on the inputs


def jacrev(fun: Callable[..., Any], argnums: int = 0) -> Callable[..., Any]:
    """Full Jacobian by reverse mode, one VJP per output element; shape ``out.shape + x.shape``."""

    def wrapped(*args: Any) -> Any:
        args_list = list(args)

        def f_of_x(xx: Any) -> Any:
            return fun(*args_list[:argnums], xx, *args_list[argnums + 1 :])

        out, vjp_fn = vjp(f_of_x, args_list[argnums])
        x_shape = np.shape(args_list[argnums]._data if isinstance(args_list[argnums], Tensor) else args_list[argnums])
        rows = []
        for k in range(out.size):
            e = np.zeros(out.size, dtype=out.dtype)
            e[k] = 1
            rows.append(vjp_fn(e.reshape(out.shape))[0])
        if not rows:
            return Tensor._make(np.zeros(out.shape + x_shape, out.dtype), None)
        return reshape(stack(rows), out.shape + tuple(x_shape))

    return wrapped


def jacfwd(fun: Callable[..., Any], argnums: int = 0) -> Callable[..., Any]:
    """Full Jacobian by forward mode, one JVP per input element; shape ``out.shape + x.shape``."""

    def wrapped(*args: Any) -> Any:
        args_list = list(args)
        x = _as_float_tensor(args_list[argnums], "jacfwd")

        def f_of_x(xx: Any) -> Any:
            return fun(*args_list[:argnums], xx, *args_list[argnums + 1 :])

        cols = []
        for k in range(x.size):
            e = np.zeros(x.size, dtype=x.dtype)
            e[k] = 1
            cols.append(jvp(f_of_x, (x,), (e.reshape(x.shape),))[1])
        if not cols:
            out = f_of_x(x)
            return Tensor._make(np.zeros(np.shape(out._data) + x.shape, x.dtype), None)
        jac = stack(cols, axis=-1)
        return reshape(jac, jac.shape[:-1] + x.shape)

    return wrapped


jacobian = jacrev


def hessian(fun: Callable[..., Any], argnums: int = 0) -> Callable[..., Any]:
    """Second derivatives: the forward-mode Jacobian of the reverse-mode gradient (as JAX does)."""
    return jacfwd(grad(fun, argnums), argnums)


def hvp(fun: Callable[..., Any], x: Any, v: Any, mode: str = "fwd") -> Any:
    """Hessian-vector product H(x)·v without forming H.

    ``mode="fwd"`` (default): forward-over-reverse, a JVP of the gradient. ``mode="rev"``:
    reverse-over-reverse, the gradient of <grad f, v>. Both agree; see the benchmarks for cost.
    """
    if mode == "fwd":
        return jvp(grad(fun), (x,), (v,))[1]
    if mode == "rev":
        x_leaves, x_tree = tree_flatten(x)
        v_leaves, v_tree = tree_flatten(v)
        if v_tree != x_tree:
            raise ValueError(f"hvp: v must have the structure of x ({x_tree!r}), got {v_tree!r}")
        vs = [u._data if isinstance(u, Tensor) else np.asarray(u) for u in v_leaves]
        for i, (a, u) in enumerate(zip(x_leaves, vs, strict=True)):
            if np.shape(a) != u.shape:
                raise ValueError(f"hvp: leaf {i} of v has shape {u.shape}, x's has {np.shape(a)}")

        def inner(xx: Any) -> Any:  # <grad f(xx), v>, summed over the leaves of the tree
            g_leaves, _ = tree_flatten(grad(fun)(xx))
            total: Any = 0
            for g, u in zip(g_leaves, vs, strict=True):
                total = total + sum(g * u)
            return total

        return grad(inner)(x)
    raise ValueError(f"hvp: mode must be 'fwd' or 'rev', got {mode!r}")


__all__ = [
    "grad",
    "gradients",
    "hessian",
    "hvp",
    "jacfwd",
    "jacobian",
    "jacrev",
    "jvp",
    "tree_map",
    "value_and_grad",
    "vjp",
]
