"""JAX-style function transforms built on the tape: grad, value_and_grad, vjp, jvp,
jacobian, hessian, hvp. Higher orders come from recording the backward pass itself."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chainrule.core.backward import backward, toposort
from chainrule.core.node import STATE
from chainrule.core.tensor import Tensor
from chainrule.ops import reshape, stack, sum


def gradients(
    output: Tensor,
    inputs: Tensor | Sequence[Tensor],
    gradient: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
) -> Any:
    """Gradient of ``output`` with respect to ``inputs`` (leaf or intermediate tensors).

    Like ``torch.autograd.grad``: returns the gradients and leaves every ``.grad`` alone.
    """
    targets: list[Tensor] = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    single = isinstance(inputs, Tensor)
    for t in targets:
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise ValueError(
                "grad: every input must be a tensor that requires grad (a leaf created with "
                "requires_grad=True or a result computed from one)"
            )
    if retain_graph is None:
        retain_graph = create_graph
    out = backward([output], [gradient], retain_graph=retain_graph, create_graph=create_graph, targets=targets)
    assert out is not None
    return out[0] if single else tuple(out)


def _needs_graph(out: Tensor, own_leaves: Sequence[Tensor]) -> bool:
    """Whether the result must stay differentiable: an outer transform is watching."""
    if not STATE.grad_enabled or out.node is None:
        return False
    mine = {id(t) for t in own_leaves}
    for node in toposort([out.node]):
        for p in node.parents:
            if isinstance(p, Tensor) and id(p) not in mine:
                return True
    return False


def _prepare(args: tuple[Any, ...], argnums: Sequence[int]) -> tuple[list[Any], list[Tensor], list[Tensor]]:
    args_list = list(args)
    wrt: list[Tensor] = []
    fresh: list[Tensor] = []
    for i in argnums:
        a = args_list[i]
        if isinstance(a, Tensor) and a.requires_grad:
            t = a  # already part of an outer graph: keep the connection
        else:
            # a tensor keeps its dtype; raw floats follow the float32 default
            t = Tensor(a.data, dtype=a.dtype) if isinstance(a, Tensor) else Tensor(a)
            if t.dtype.kind != "f":
                t = Tensor(t.data.astype(np.float32))
            t.requires_grad = True
            fresh.append(t)
        args_list[i] = t
        wrt.append(t)
    return args_list, wrt, fresh


def _argnums(argnums: int | Sequence[int]) -> tuple[tuple[int, ...], bool]:
    if isinstance(argnums, int):
        return (argnums,), True
    return tuple(argnums), False


def value_and_grad(fun: Callable[..., Any], argnums: int | Sequence[int] = 0) -> Callable[..., tuple[Any, Any]]:
    nums, single = _argnums(argnums)

    def wrapped(*args: Any) -> tuple[Any, Any]:
        args_list, wrt, fresh = _prepare(args, nums)
        out = fun(*args_list)
        if not isinstance(out, Tensor) or out.size != 1:
            shape = out.shape if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"grad: the function must return a scalar tensor, got {shape}")
        if not out.requires_grad:
            zeros = [Tensor._make(np.zeros(t.shape, t.dtype), None) for t in wrt]
            return out, zeros[0] if single else tuple(zeros)
        create = _needs_graph(out, fresh)
        gs = gradients(out, wrt, create_graph=create)
        value = out if create else out.detach()
        return value, gs[0] if single else gs

    return wrapped


def grad(fun: Any, argnums: int | Sequence[int] = 0, **kwargs: Any) -> Any:
    """``grad(f)`` returns a function computing df/dx (JAX style).

    ``grad(output, inputs)`` with tensors returns the gradient of ``output`` with respect to
    ``inputs`` directly, which may be intermediate tensors (PyTorch's ``autograd.grad``).
    """
    if isinstance(fun, Tensor):
        return gradients(fun, argnums, **kwargs)  # type: ignore[arg-type]
    vg = value_and_grad(fun, argnums)

    def wrapped(*args: Any) -> Any:
        return vg(*args)[1]

    return wrapped


def vjp(fun: Callable[..., Any], *primals: Any) -> tuple[Any, Callable[[Any], tuple[Any, ...]]]:
    """``out, vjp_fn = vjp(f, *xs)``; ``vjp_fn(ct)`` gives the cotangent of each x."""
    args_list, wrt, fresh = _prepare(primals, range(len(primals)))
    out = fun(*args_list)
    create = _needs_graph(out, fresh) if isinstance(out, Tensor) else False

    def vjp_fn(cotangent: Any) -> tuple[Any, ...]:
        if not out.requires_grad:
            return tuple(Tensor._make(np.zeros(t.shape, t.dtype), None) for t in wrt)
        ct = cotangent if isinstance(cotangent, Tensor) else np.asarray(cotangent, dtype=out.dtype)
        differentiable = create or (isinstance(ct, Tensor) and ct.requires_grad)
        res = backward([out], [ct], retain_graph=True, create_graph=differentiable, targets=wrt)
        assert res is not None
        return tuple(res)

    return (out if create else out.detach()), vjp_fn


def jvp(fun: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """Forward-mode product J·v, by transposing the (linear) VJP: reverse-over-reverse."""
    out, vjp_fn = vjp(fun, *primals)
    u = Tensor(np.zeros(out.shape, out.dtype), requires_grad=True, dtype=out.dtype)
    cts = vjp_fn(u)
    total: Any = None
    for ct, tangent in zip(cts, tangents, strict=True):
        v = tangent.data if isinstance(tangent, Tensor) else np.asarray(tangent, dtype=ct.dtype)
        if v.shape != ct.shape:
            raise ValueError(f"jvp: tangent shape {v.shape} does not match primal shape {ct.shape}")
        term = sum(ct * v)
        total = term if total is None else total + term
    if total is None or not total.requires_grad:
        return out, Tensor._make(np.zeros(out.shape, out.dtype), None)
    tangent_out = gradients(total, u)
    return out, tangent_out


def jacobian(fun: Callable[..., Any], argnums: int = 0) -> Callable[..., Any]:
    """Full Jacobian, shape ``out.shape + x.shape``, one VJP per output element."""

    def wrapped(*args: Any) -> Any:
        args_list = list(args)
        x = args_list[argnums]

        def f_of_x(xx: Any) -> Any:
            args_list[argnums] = xx
            return fun(*args_list)

        out, vjp_fn = vjp(f_of_x, x)
        flat = out.size
        rows = []
        for k in range(flat):
            e = np.zeros(flat, dtype=out.dtype)
            e[k] = 1
            rows.append(vjp_fn(e.reshape(out.shape))[0])
        x_shape = np.shape(x.data if isinstance(x, Tensor) else x)
        if not rows:
            return Tensor._make(np.zeros(out.shape + x_shape, out.dtype), None)
        return reshape(stack(rows), out.shape + tuple(x_shape))

    return wrapped


def hessian(fun: Callable[..., Any], argnums: int = 0) -> Callable[..., Any]:
    """Second derivatives: the Jacobian of the gradient."""
    return jacobian(grad(fun, argnums), argnums)


def hvp(fun: Callable[..., Any], x: Any, v: Any) -> Any:
    """Hessian-vector product H(x)·v without forming H (reverse-over-reverse)."""
    vv = v.data if isinstance(v, Tensor) else np.asarray(v)
    return grad(lambda xx: sum(grad(fun)(xx) * vv))(x)
