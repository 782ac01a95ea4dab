"""The operations. Each family's primitives sit beside their derivative rules."""

from chainrule.ops.elementwise import (
    abs,
    add,
    clip,
    cos,
    divide,
    equal,
    exp,
    greater,
    greater_equal,
    less,
    less_equal,
    log,
    maximum,
    minimum,
    multiply,
    negative,
    not_equal,
    power,
    sign,
    sin,
    sqrt,
    subtract,
    tanh,
    where,
)
from chainrule.ops.linalg import matmul
from chainrule.ops.reduce import logsumexp, max, mean, min, sum
from chainrule.ops.shape import (
    astype,
    broadcast_to,
    concatenate,
    expand_dims,
    getitem,
    reshape,
    split,
    squeeze,
    stack,
    stop_gradient,
    swapaxes,
    transpose,
)

__all__ = [
    "abs", "add", "astype", "broadcast_to", "clip", "concatenate", "cos", "divide", "equal",
    "exp", "expand_dims", "getitem", "greater", "greater_equal", "less", "less_equal", "log",
    "logsumexp", "matmul", "max", "maximum", "mean", "min", "minimum", "multiply", "negative",
    "not_equal", "power", "reshape", "sign", "sin", "split", "sqrt", "squeeze", "stack",
    "stop_gradient", "subtract", "sum", "swapaxes", "tanh", "transpose", "where",
]
