"""Activations and losses. Most are compositions of primitives and are differentiated for free;
relu and sigmoid are primitives so their rules reuse the forward output, and softmax
cross-entropy is fused so it is stable and needs only the logits for backward.

Inputs, as everywhere in chainrule: a tensor gives a tensor (recorded when it requires grad); a
list holding tensors is stacked differentiably; a NumPy array, a plain (nested) list or a number
is computed on with NumPy and gives a NumPy array, as ``cr.exp`` does. Integer or boolean
inputs to a loss or an activation are read as float32.

Examples:
    >>> import chainrule as cr, chainrule.nn.functional as F
    >>> F.relu([1.0, -2.0])
    array([1., 0.])
    >>> F.relu(cr.tensor([1.0, -2.0]))
    tensor([1., 0.])
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from chainrule.core.errors import DTypeError, ShapeError, user_frame
from chainrule.core.primitive import Primitive
from chainrule.core.tensor import Tensor, contains_tensor
from chainrule.data.rng import default_generator
from chainrule.ops import exp, log, max, mean, reshape, stack, sum
from chainrule.ops import facts as fx
from chainrule.ops import vjp_memory as vm
from chainrule.ops.shape import array_of, stop_gradient


def _operand(x: Any) -> Any:
    """A tensor as it is; a list holding tensors stacked into one; anything else a float NumPy array."""
    if isinstance(x, Tensor):
        return x
    if type(x) in (list, tuple) and contains_tensor(x):
        return stack([_operand(e) if type(e) in (list, tuple) else e for e in x])
    a = np.asarray(x)
    return a.astype(np.float32) if a.dtype.kind in "biu" else a


def _relu(x: Any) -> Any:
    return np.maximum(x, 0)


_relu_p = Primitive("relu", _relu, save_output=True)
_relu_p.defvjp(lambda g, out, x: g * (out > 0))
_relu_p.defjvp(lambda t, out, x: t * (out > 0))


def relu(x: Any) -> Any:
    """max(x, 0), elementwise; derivative 0 at x = 0 (as PyTorch).

    Any shape and float dtype; the result has the shape and dtype of ``x``.

    Examples:
        >>> import chainrule as cr
        >>> x = cr.tensor([-1.0, 0.5], requires_grad=True)
        >>> relu(x).sum().backward()
        >>> x.grad
        tensor([0., 1.])
    """
    return _relu_p(_operand(x))


def _sigmoid(x: Any) -> Any:
    return 0.5 * (1 + np.tanh(0.5 * x))  # stable for large |x|


_sigmoid_p = Primitive("sigmoid", _sigmoid, save_output=True)
_sigmoid_p.defvjp(lambda g, out, x: g * out * (1 - out))
_sigmoid_p.defjvp(lambda t, out, x: t * out * (1 - out))


def sigmoid(x: Any) -> Any:
    """1 / (1 + exp(-x)), elementwise, stable for large |x|.

    Any shape and float dtype; the result has the shape and dtype of ``x``.

    Examples:
        >>> sigmoid([0.0, 100.0])
        array([0.5, 1. ])
    """
    return _sigmoid_p(_operand(x))


def log_softmax(x: Any, axis: int = -1) -> Any:
    """log(softmax(x)) along ``axis``, stable at any offset: the max is subtracted before anything
    else, so (x - max) - log(sum(exp(x - max))) never adds a small number to a large one. The max
    carries no gradient (it cancels).

    Any shape and float dtype; the result has the shape and dtype of ``x``.

    Examples:
        >>> import numpy as np
        >>> np.round(log_softmax([1.0, 1.0]), 4)
        array([-0.6931, -0.6931])
    """
    x = _operand(x)
    shifted = x - stop_gradient(max(x, axis=axis, keepdims=True))
    return shifted - log(sum(exp(shifted), axis=axis, keepdims=True))


def _max_keep(x: Any, axis: int) -> Any:
    """``x.max(axis, keepdims=True)``. NumPy reduces a short last axis element by element (15 µs
    for 256 rows of 10 logits); reduced across a transposed copy it is one vectorised maximum per
    column (2 µs), with the same values: a maximum does not depend on the order it is taken in."""
    if x.ndim == 2 and axis in (1, -1) and x.shape[1] <= 32 and x.shape[0] >= 32:
        return np.ascontiguousarray(x.T).max(axis=0)[:, None]
    return x.max(axis=axis, keepdims=True)


def _softmax(x: Any, axis: int) -> Any:
    e = np.exp(x - _max_keep(x, axis))
    e /= e.sum(axis=axis, keepdims=True)
    return e


# A primitive (not exp ∘ log_softmax) because cross-entropy's backward needs it: one call
# instead of eight. Its rule uses only the output: ∂/∂x = out ⊙ (g - Σ g⊙out).
_softmax_p = Primitive("softmax", _softmax, save_output=True)
_softmax_p.defvjp(lambda g, out, x, axis: out * (g - sum(g * out, axis=axis, keepdims=True)))
_softmax_p.defjvp(lambda t, out, x, axis: out * (t - sum(t * out, axis=axis, keepdims=True)))


def softmax(x: Any, axis: int = -1) -> Any:
    """exp(x) / sum(exp(x)) along ``axis``, computed stably.

    Any shape and float dtype; the result has the shape and dtype of ``x`` and sums to 1 along ``axis``.

    Examples:
        >>> softmax([[0.0, 0.0], [1000.0, 1000.0]])
        array([[0.5, 0.5],
               [0.5, 0.5]])
    """
    x = _operand(x)
    ndim = array_of(x).ndim
    if not -builtins.max(ndim, 1) <= axis < builtins.max(ndim, 1):
        raise ValueError(f"softmax: axis {axis} is out of range for an array of {ndim} dimensions")
    if ndim == 0:  # one element: softmax is 1, with zero derivatives (as PyTorch)
        return reshape(_softmax_p(reshape(x, (1,)), axis=0), ())
    return _softmax_p(x, axis=axis % ndim)


def _check_labels(logits: np.ndarray[Any, Any], labels: Any) -> None:
    lab = array_of(labels)
    if logits.ndim != 2:
        raise ShapeError(f"cross_entropy: expected logits of shape (batch, classes), got {logits.shape}")
    if lab.dtype.kind not in "iu":
        raise DTypeError(f"cross_entropy: expected integer class labels, got dtype {lab.dtype}")
    if lab.shape != (logits.shape[0],):
        raise ShapeError(
            f"cross_entropy: expected labels of shape ({logits.shape[0]},) to match logits "
            f"{logits.shape}, got {lab.shape} at {user_frame()}"
        )
    if lab.size and (lab.min() < 0 or lab.max() >= logits.shape[1]):
        raise ValueError(
            f"cross_entropy: labels must lie in [0, {logits.shape[1]}), got values in [{lab.min()}, {lab.max()}]"
        )


def _xent(logits: Any, labels: Any, reduction: str) -> Any:
    shifted = logits - _max_keep(logits, 1)
    lse = np.log(np.exp(shifted).sum(axis=1))
    losses = lse - shifted[np.arange(len(labels)), labels]
    if reduction == "mean":
        return losses.mean(dtype=logits.dtype)
    if reduction == "sum":
        return losses.sum(dtype=logits.dtype)
    return losses


def _one_hot(labels: Any, num_classes: int, dtype: Any) -> Any:
    onehot = np.zeros((len(labels), num_classes), dtype=dtype)
    onehot[np.arange(len(labels)), labels] = 1
    return onehot


one_hot = Primitive("one_hot", _one_hot, differentiable=False)


def _xent_vjp(g: Any, out: Any, logits: Any, labels: Any, reduction: str) -> Any:
    lab = labels  # a primitive's input, so a compiled step sees each batch's labels
    onehot = one_hot(lab, num_classes=logits.shape[1], dtype=logits.dtype)
    probs = _softmax_p(logits, axis=1)
    if reduction == "mean":
        return (probs - onehot) * (g / len(lab))
    if reduction == "sum":
        return (probs - onehot) * g
    return (probs - onehot) * g.reshape((-1, 1))


def _xent_jvp(t: Any, out: Any, logits: Any, labels: Any, reduction: str) -> Any:
    onehot = one_hot(labels, num_classes=logits.shape[1], dtype=logits.dtype)
    per_row = sum((_softmax_p(logits, axis=1) - onehot) * t, axis=1)
    if reduction == "mean":
        return sum(per_row) / len(labels)
    if reduction == "sum":
        return sum(per_row)
    return per_row


def _dropout_mask(x: Any, p: float, rng: np.random.Generator) -> Any:
    keep = rng.random(x.shape, dtype=np.float32) >= p
    return keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))


def skip_draws(rng: np.random.Generator, n: int) -> None:
    """Move ``rng`` on exactly as if :func:`dropout` had drawn ``n`` more numbers (float32 uniforms).

    A data-parallel rank draws only its shard's rows of the batch's mask: it skips the rows
    before and after them, so every rank's mask is the one the whole batch would get in one
    process. PCG64 (NumPy's default) skips in O(1); other generators draw and drop.
    """
    if n <= 0:
        return
    bits = rng.bit_generator
    # PCG64's advance(k) is exactly k 64-bit draws; Philox's counts blocks of four, so it draws and drops
    advance = bits.advance if isinstance(bits, np.random.PCG64 | np.random.PCG64DXSM) else None
    if advance is None:
        while n > 0:
            k = min(n, 1 << 20)
            rng.random(k, dtype=np.float32)
            n -= k
        return
    state = dict(bits.state)
    if state.get("has_uint32"):  # a float32 uses 32 bits: half of a 64-bit draw is waiting, use it first
        state["has_uint32"] = 0
        bits.state = state
        n -= 1
    advance(n // 2)
    if n % 2:  # the low half of one more draw; its high half stays buffered, as after n real draws
        rng.random(1, dtype=np.float32)


# Random draws happen inside a primitive so a compiled step draws a new mask every call.
dropout_mask = Primitive("dropout_mask", _dropout_mask, differentiable=False)


def dropout(x: Any, p: float = 0.5, rng: np.random.Generator | None = None, training: bool = True) -> Any:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p).

    Any shape and float dtype; ``rng`` is a ``numpy.random.Generator`` (default: the one
    ``cr.manual_seed`` seeds). The identity when not ``training`` or when ``p`` is 0.

    Examples:
        >>> import numpy as np
        >>> dropout(np.ones(4, np.float32), 0.5, np.random.default_rng(0))
        array([2., 2., 2., 0.], dtype=float32)
    """
    x = _operand(x)
    if not training or p == 0:
        return x
    return x * dropout_mask(x, p=p, rng=rng if rng is not None else default_generator())


_xent_p = Primitive("cross_entropy", _xent, save=(0, 1))
_xent_p.defvjp(_xent_vjp, None)
_xent_p.defjvp(_xent_jvp, None)


def cross_entropy(logits: Any, labels: Any, reduction: str = "mean") -> Any:
    """Softmax cross-entropy of ``logits`` (batch, classes) against integer ``labels`` (batch,).

    ``logits``: float, shape (batch, classes); ``labels``: integers in [0, classes), shape (batch,)
    (a list or array). ``reduction``: "mean" (a scalar, the section's L), "sum", or "none"
    (shape (batch,)). The result has the dtype of ``logits``.

    Examples:
        >>> import numpy as np
        >>> round(float(cross_entropy([[0.0, 0.0], [0.0, 0.0]], [0, 1])), 4)
        0.6931
        >>> import chainrule as cr
        >>> logits = cr.tensor([[2.0, 0.0]], requires_grad=True)
        >>> cross_entropy(logits, [0]).backward()
        >>> np.round(logits.grad.numpy(), 4)
        array([[-0.1192,  0.1192]], dtype=float32)
    """
    logits = _operand(logits)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    _check_labels(array_of(logits), labels)
    return _xent_p(logits, labels, reduction=reduction)


def mse_loss(prediction: Any, target: Any, reduction: str = "mean") -> Any:
    """Mean squared error. Shapes must match exactly: nothing is broadcast silently.

    Any shape and float dtype; ``reduction`` "mean" and "sum" give a scalar, "none" the
    elementwise squares.

    Examples:
        >>> float(mse_loss([1.0, 2.0], [1.0, 4.0]))
        2.0
    """
    prediction, target = _operand(prediction), _operand(target)
    ps, ts = array_of(prediction).shape, array_of(target).shape
    if ps != ts:
        raise ShapeError(
            f"mse_loss: prediction shape {ps} and target shape {ts} differ at {user_frame()}; "
            "reshape one explicitly (broadcasting here is almost always a bug)"
        )
    diff = prediction - target
    if reduction == "mean":
        return mean(diff * diff)
    if reduction == "sum":
        return sum(diff * diff)
    if reduction == "none":
        return diff * diff
    raise ValueError(f"mse_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def tanh(x: Any) -> Any:
    """Hyperbolic tangent (``cr.tanh``). Any shape and float dtype.

    Examples:
        >>> tanh([0.0])
        array([0.])
    """
    from chainrule.ops import tanh as _tanh

    return _tanh(_operand(x))


# --- facts (chainrule.ops.facts as fx, chainrule.ops.vjp_memory as vm): shape rule, temporaries inside
# the impl, FLOPs of the forward and of each input's rule, what the VJP rule allocates ---------------
_relu_p.deffacts(shape=fx.broadcast(_relu_p), flops=fx.each(1), vjp_flops=fx.each_vjp(1), memory=vm.relu)
_sigmoid_p.deffacts(
    shape=fx.broadcast(_sigmoid_p),
    workspace=fx.sigmoid_workspace,
    flops=fx.each(4),
    vjp_flops=fx.each_vjp(3),
    memory=vm.sigmoid,
)
_softmax_p.deffacts(
    shape=fx.same_shape, workspace=fx.softmax_workspace, flops=fx.each(5), vjp_flops=fx.each_vjp(4), memory=vm.softmax
)
_xent_p.deffacts(
    shape=fx.cross_entropy_shape,
    workspace=fx.cross_entropy_workspace,
    flops=fx.cross_entropy_forward,
    vjp_flops=fx.cross_entropy_vjp,
    memory=vm.cross_entropy,
)
one_hot.deffacts(shape=fx.one_hot_shape, flops=fx.zero)
dropout_mask.deffacts(shape=fx.same_shape, flops=fx.zero)

__all__ = ["cross_entropy", "log_softmax", "mse_loss", "relu", "sigmoid", "softmax", "tanh", "Tensor"]
