"""How ``cr.compile`` lowers this layer's composite primitives to plain NumPy calls.

Registered with :func:`chainrule.transforms.lower.register` when ``chainrule.nn`` is imported.
Each rule emits the calls the primitive's implementation makes, in the same order on the same
values, so the results are the same bits (the rewriter checks this on the captured arrays and
keeps the original call otherwise). Lowered, the cross-entropy's forward and the softmax of its
backward share their max, exp and sum (the rewriter's common-call pass makes them once), and
``softmax - one_hot(labels)`` becomes one indexed subtraction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.nn.functional import _one_hot, _relu, _softmax, _xent
from chainrule.transforms.lower import Expr, Instruction, Rewriter, mean, mean_count, register


def minus_one_hot(p: Any, labels: Any, rows: Any) -> Any:
    """``p - one_hot(labels)``: a copy of ``p`` with 1 taken from each row's label column
    (``x - 0`` is ``x`` and ``x - 1.0`` is what the one-hot subtraction computes there)."""
    out = p.copy()
    out[rows, labels] -= 1
    return out


def labels_not_negative(labels: Any, classes: int) -> None:
    """What eager's label check (outside the primitive, so not captured) must still refuse at replay:
    a negative label would silently index from the end; one too large raises IndexError anyway."""
    if labels.size and np.minimum.reduce(labels, axis=None) < 0:
        raise ValueError(
            f"cross_entropy: labels must lie in [0, {classes}), got values in [{labels.min()}, {labels.max()}]"
        )


def _relu_rule(r: Rewriter, program: list[Instruction], ins: tuple[int, ...], params: dict[str, Any]) -> int | None:
    return r.emit(np.maximum, (ins[0], r.const(0)))  # _relu is np.maximum(x, 0): now a planned ufunc


def _softmax_parts(r: Rewriter, x: int, axis: int) -> tuple[int, int, int]:
    """x - max(x), its exp, and the exp's sum (dims kept), as softmax and cross-entropy compute them."""
    shifted = r.emit(np.subtract, (x, r.emit(np.maximum.reduce, (x,), {"axis": axis, "keepdims": True})))
    e = r.emit(np.exp, (shifted,))
    return shifted, e, r.emit(np.add.reduce, (e,), {"axis": axis, "keepdims": True})


def _softmax_rule(r: Rewriter, program: list[Instruction], ins: tuple[int, ...], params: dict[str, Any]) -> int | None:
    if np.ndim(r.values[ins[0]]) != 2:
        return None
    _, e, total = _softmax_parts(r, ins[0], params["axis"])
    return r.emit(np.divide, (e, total))  # _softmax's e /= e.sum(...): the same quotients


def _xent_rule(r: Rewriter, program: list[Instruction], ins: tuple[int, ...], params: dict[str, Any]) -> int | None:
    logits, labels = (r.values[i] for i in ins)
    if np.ndim(logits) != 2 or not isinstance(labels, np.ndarray):
        return None
    r.emit(labels_not_negative, (ins[1],), {"classes": logits.shape[1]})  # not pure: never dropped
    shifted, _, total = _softmax_parts(r, ins[0], 1)
    lse = r.emit(Expr("{0}.reshape(-1)"), (r.emit(np.log, (total,)),))
    picked = r.emit(Expr("{0}[{1}, {2}]"), (shifted, r.arange(len(labels)), ins[1]))
    losses = r.emit(np.subtract, (lse, picked))
    if params["reduction"] == "mean":
        return r.emit(mean, (losses,), {"dtype": logits.dtype, "count": mean_count(logits.dtype, len(labels))})
    if params["reduction"] == "sum":
        return r.emit(np.add.reduce, (losses,), {"axis": None, "dtype": logits.dtype})
    return losses


def _minus_one_hot_rule(
    r: Rewriter, program: list[Instruction], ins: tuple[int, ...], params: dict[str, Any]
) -> int | None:
    maker = r.made.get(ins[1])
    if maker is None or maker[0] is not _one_hot or r.readers[ins[1]] != 1 or ins[1] in r.keep:
        return None
    labels = maker[1][0]
    return r.emit(minus_one_hot, (ins[0], labels, r.arange(len(r.values[labels]))))


register(_relu, _relu_rule, pure=(_relu,))
register(_softmax, _softmax_rule, pure=(_softmax,))
register(_xent, _xent_rule, pure=(_xent,))
register(np.subtract, _minus_one_hot_rule, pure=(_one_hot, minus_one_hot))
