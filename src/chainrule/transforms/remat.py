"""Activation checkpointing (rematerialization): trade compute for the memory of saved activations.

``checkpoint(fn, *args)`` runs ``fn`` with recording off, so none of its intermediates are
kept, and records ONE node whose only saved arrays are its inputs. When backward reaches that
node, ``fn`` is run again with recording on (on fresh leaves holding the saved inputs) and the
incoming gradient is backpropagated through the recomputed graph. The gradients are the ones a
plain run gives, bit for bit: the same operations run on the same arrays in the same order.

Tensors that ``fn`` reads without receiving them as arguments (a module's parameters, a
closed-over tensor) are found while the forward runs and become extra inputs of the node, so
their gradients arrive as usual.

Not supported (each raises ``NotImplementedError`` naming ``checkpoint``): a backward that is
itself recorded (``create_graph=True``, ``cr.hessian`` / nested ``cr.grad``) through the
checkpoint node. Under ``cr.jvp`` and ``cr.compile``, ``checkpoint`` simply calls ``fn`` (same
values and gradients, no memory saving). ``fn`` must return one tensor and be deterministic
(``nn.Sequential(checkpoint_every=k)`` replays its Dropout layers' generators; a hand-written
``fn`` that draws random numbers must do the same, or keep the randomness outside).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chainrule.core.backward import backward
from chainrule.core.interpret import Interpreter, active
from chainrule.core.primitive import Primitive
from chainrule.core.state import THREAD, enable_grad, no_grad
from chainrule.core.tensor import Tensor
from chainrule.ops import facts as fx

__all__ = ["checkpoint", "checkpoint_sequential", "segment_bounds", "sqrt_segments"]


class _Finder(Interpreter):
    """Notes every recording-capable tensor an operation in ``fn`` reads (the tensors it captures)."""

    def __init__(self, own: set[int]) -> None:
        super().__init__()
        self.own = own
        self.found: dict[int, Tensor] = {}

    def recorded(self, node: Any, prim: Any, args: Any, datas: Any, params: Any, out: Any) -> None:
        super().recorded(node, prim, args, datas, params, out)
        for a in args:
            if isinstance(a, Tensor) and a.requires_grad and id(a) not in self.own:
                self.found.setdefault(id(a), a)

    def to_leaf(self, leaf: Tensor, g: Any) -> bool:
        raise RuntimeError("checkpoint: fn ran a backward pass during its forward")


class _Box:
    """Per-node state: the output computed in ``checkpoint`` and the gradients of one backward."""

    __slots__ = ("fn", "n_args", "captured", "out", "grads", "g")

    def __init__(self, fn: Callable[..., Any], n_args: int, captured: list[Tensor]) -> None:
        self.fn = fn
        self.n_args = n_args
        self.captured = captured
        self.out: np.ndarray[Any, Any] | None = None
        self.grads: list[Any] | None = None
        self.g: Any = None

    def __repr__(self) -> str:  # shown in graph drawings
        return getattr(self.fn, "__name__", type(self.fn).__name__)


def _impl(*datas: Any, box: _Box, needs: tuple[bool, ...]) -> np.ndarray[Any, Any]:
    out = box.out
    if out is not None:  # computed by checkpoint() itself (to find the captured tensors)
        box.out = None
        return out
    with no_grad():  # called on plain arrays (e.g. a replay): just the function
        result = _call(box, [Tensor._make(np.asarray(d), None) for d in datas])
    return result._data


def _call(box: _Box, tensors: Sequence[Tensor]) -> Tensor:
    """``fn`` on the explicit arguments; the captured tensors are read by ``fn`` itself."""
    result = box.fn(*tensors[: box.n_args])
    if not isinstance(result, Tensor):
        raise TypeError(f"checkpoint: fn must return one Tensor, got {type(result).__name__}")
    return result


def _vjp(i: int, g: Any, out: Any, *inputs: Any, box: _Box, needs: tuple[bool, ...]) -> Any:
    if isinstance(g, Tensor):
        raise NotImplementedError(
            "checkpoint: a recorded backward (create_graph=True, cr.hessian, nested cr.grad) through a "
            "checkpointed segment is not supported; call fn without cr.checkpoint for higher-order derivatives"
        )
    if box.grads is None or box.g is not g:
        box.grads = _recompute(box, g, inputs, needs)
        box.g = g
    gi = box.grads[i]
    box.grads[i] = None
    if i == max(k for k, n in enumerate(needs) if n):  # the last gradient this backward asks for
        box.grads, box.g = None, None
    return gi


def _recompute(box: _Box, g: Any, inputs: Sequence[Any], needs: tuple[bool, ...]) -> list[Any]:
    """Run ``fn`` again with recording on and backpropagate ``g`` to its inputs.

    The captured tensors are made leaves for the duration (their node, flag and ``.grad`` put
    aside and restored), so the recomputed graph stops at them and their gradients land in
    ``.grad``. (A backward with ``targets`` would keep every node's incoming gradient alive to
    the end; accumulating into leaves frees each one as it goes, so the peak is one segment.)
    """
    n = box.n_args
    fresh: list[Tensor] = []
    for k in range(n):
        t = Tensor._make(np.asarray(inputs[k]), None)
        t.requires_grad = needs[k]
        fresh.append(t)
    aside = [(c, c.node, c.requires_grad, c.grad) for c in box.captured]
    try:
        for c, need in zip(box.captured, needs[n:], strict=True):
            c.node, c.requires_grad, c.grad = None, need, None
        with enable_grad():
            result = _call(box, fresh)
        if not result.requires_grad:
            return [None] * len(inputs)
        backward([result], [g])
        del result
        leaves = fresh + box.captured
        pairs = zip(leaves, needs, strict=True)
        return [leaf.grad._data if need and leaf.grad is not None else None for leaf, need in pairs]
    finally:
        for c, node, flag, grad in aside:
            c.node, c.requires_grad, c.grad = node, flag, grad


class _Every(tuple):  # type: ignore[type-arg]
    """``save`` for a variadic primitive that keeps every input: ``i in save`` for any i."""

    def __contains__(self, item: object) -> bool:
        return True


_checkpoint_p = Primitive(
    "checkpoint", _impl, save=_Every((0,)), doc="An activation-checkpointed segment (cr.checkpoint)."
)
_checkpoint_p.defvjp_argnum(_vjp)
# Built of primitives: its shape rule runs the segment (each primitive shape-only), and so does its
# VJP rule under the memory estimate (the recomputation and its backward, modelled node by node).
# Its own FLOPs are 0 both ways: the segment's primitives are counted as they run (the forward, the
# recomputation and its backward); ``cr.cost``, which does not run backward, leaves the latter out.
_checkpoint_p.deffacts(shape=fx.segment(_checkpoint_p), flops=fx.zero, vjp_flops=fx.zero_vjp, memory=fx.RULE_ITSELF)


def checkpoint(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` without keeping its intermediates; they are recomputed during backward.

    The gradients equal a plain ``fn(*args)``'s. The node saves only the inputs (the explicit
    ``args`` that are arrays or tensors, and the tensors ``fn`` captures, e.g. parameters).
    """
    state = THREAD.state
    tensors = [a for a in args if isinstance(a, Tensor)]
    recording = state.grad_enabled and any(t.requires_grad for t in tensors)
    if state.forward or state.capturing or active(_Finder) or not state.grad_enabled:
        return fn(*args)  # forward mode / compile / no_grad: nothing to save, so nothing to gain
    if not all(isinstance(a, Tensor | np.ndarray) for a in args):
        raise TypeError("checkpoint: pass the arguments of fn as tensors or arrays (bind other values with a closure)")
    finder = _Finder({id(t) for t in tensors})
    plain = [Tensor._make(a._data if isinstance(a, Tensor) else np.asarray(a), None) for a in args]
    finder.own |= {id(t) for t in plain}
    with finder, no_grad():
        result = fn(*plain)
    if not isinstance(result, Tensor):
        raise TypeError(f"checkpoint: fn must return one Tensor, got {type(result).__name__}")
    captured = list(finder.found.values())
    if not recording and not captured:
        return result
    box = _Box(fn, len(args), captured)
    box.out = result._data
    inputs = [a if isinstance(a, Tensor) else Tensor._make(np.asarray(a), None) for a in args] + captured
    needs = tuple(bool(t.requires_grad) for t in inputs)
    return _checkpoint_p(*inputs, box=box, needs=needs)


def sqrt_segments(n_layers: int) -> int:
    """Chen et al. (2016): ⌈√n⌉ segments of about √n layers balance saved inputs and one live segment."""
    return max(1, math.ceil(math.sqrt(n_layers)))


def segment_bounds(n_layers: int, every: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n_layers)`` in runs of ``every`` layers."""
    if every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {every}")
    return [(s, min(s + every, n_layers)) for s in range(0, n_layers, every)]


class _Replay:
    """A run of layers whose random draws (a Dropout layer's ``rng``) repeat when it is recomputed.

    The first call notes the state of every ``np.random.Generator`` found as a layer's ``rng``;
    a later call (the recomputation in backward) starts from those states and puts the
    generators back where they were afterwards, so the recomputed masks are the forward's.
    """

    def __init__(self, block: list[Callable[[Any], Any]], name: str) -> None:
        self.block = block
        self.__name__ = name
        self.rngs = [g for g in (getattr(m, "rng", None) for m in block) if isinstance(g, np.random.Generator)]
        self.states: list[Any] | None = None

    def __call__(self, h: Any) -> Any:
        if self.states is None:
            self.states = [g.bit_generator.state for g in self.rngs]
            return self._run(h)
        now = [g.bit_generator.state for g in self.rngs]
        for g, st in zip(self.rngs, self.states, strict=True):
            g.bit_generator.state = st
        try:
            return self._run(h)
        finally:
            for g, st in zip(self.rngs, now, strict=True):
                g.bit_generator.state = st

    def _run(self, h: Any) -> Any:
        for layer in self.block:
            h = layer(h)
        return h


def checkpoint_sequential(layers: Sequence[Callable[[Any], Any]], x: Any, every: int) -> Any:
    """Apply ``layers`` in order, checkpointing each run of ``every`` consecutive layers.

    A layer with a ``np.random.Generator`` as ``.rng`` (``nn.Dropout``) draws the same mask
    again when its segment is recomputed.
    """
    for start, stop in segment_bounds(len(layers), every):
        x = checkpoint(_Replay(list(layers[start:stop]), f"layers[{start}:{stop}]"), x)
    return x
