"""How ``cr.compile`` lowers this layer's composite primitives to plain NumPy calls.

Registered with :func:`chainrule.transforms.lower.register` when ``chainrule.nn`` is imported.
Each rule emits the calls the primitive's implementation makes, in the same order on the same
values, so the results are the same bits (the rewriter checks this on the captured arrays and
keeps the original call otherwise). Lowered, the cross-entropy's forward and the softmax of its
backward share their max, exp and sum (the rewriter's common-call pass makes them once), and
``softmax - one_hot(labels)`` becomes one indexed subtraction (at the flat indices of the labels,
which the forward checked and computed).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.nn.functional import _one_hot, _relu, _softmax, _xent
from chainrule.transforms.lower import Expr, Instruction, Rewriter, mean, mean_count, register


def minus_one_hot(p: Any, flat: Any) -> Any:
    """``p - one_hot(labels)``: a copy of ``p`` with 1 taken from each row's label column, found by
    its index ``flat`` in the flattened copy (``x - 0`` is ``x``, and ``x - 1.0`` is what the one-hot
    subtraction computes there)."""
    out = p.copy()
    out.reshape(-1)[flat] -= 1  # the copy is C-contiguous: reshape gives a view of it
    return out


def labels_in_range(labels: Any, classes: int, unsigned: Any) -> None:
    """What eager's label check (outside the primitive, so not captured) must still refuse at replay:
    a label outside ``[0, classes)`` would pick another row's class through the flat indices. One
    reduction checks both ends: read as ``unsigned`` integers of their size, negative labels are huge."""
    if labels.size and np.maximum.reduce(labels.view(unsigned), axis=None) >= classes:
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
    if np.ndim(logits) != 2 or not isinstance(labels, np.ndarray) or np.result_type(np.intp, labels).kind != "i":
        return None  # (uint64 labels: intp + uint64 is float64, no index; the call is kept as captured)
    n, classes = logits.shape
    unsigned = np.dtype(f"u{labels.dtype.itemsize}")
    r.emit(labels_in_range, (ins[1],), {"classes": classes, "unsigned": unsigned})  # not pure: never dropped
    # row i's label column in the flattened (n, classes) array; the one-hot rule below reuses it
    flat = r.memo[("flat labels", ins[1], classes)] = r.emit(np.add, (r.const(np.arange(n) * classes), ins[1]))
    shifted, _, total = _softmax_parts(r, ins[0], 1)
    lse = r.emit(Expr("{0}.reshape(-1)"), (r.emit(np.log, (total,)),))
    picked = r.emit(Expr("{0}.take({1})"), (shifted, flat))  # shifted[arange(n), labels]
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
    flat = r.memo.get(("flat labels", labels, np.shape(r.values[ins[0]])[-1]))
    if flat is None:  # only after the cross-entropy's forward checked these labels
        return None
    return r.emit(minus_one_hot, (ins[0], flat))


register(_relu, _relu_rule, pure=(_relu,))
register(_softmax, _softmax_rule, pure=(_softmax,))
register(_xent, _xent_rule, pure=(_xent,))
register(np.subtract, _minus_one_hot_rule, pure=(_one_hot, minus_one_hot))
