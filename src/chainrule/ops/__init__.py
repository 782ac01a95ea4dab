"""The operations. Each family's primitives sit beside their derivative rules; each module's
``__all__`` lists its public operations (NumPy's names and signatures)."""

import sys

from chainrule.core.backward import backward
from chainrule.core.tensor import install_ops
from chainrule.ops import elementwise, manip, matrix, numeric, numpy_dispatch, products, reduce, shape
from chainrule.ops.elementwise import *  # noqa: F403
from chainrule.ops.manip import *  # noqa: F403
from chainrule.ops.matrix import *  # noqa: F403
from chainrule.ops.numeric import *  # noqa: F403
from chainrule.ops.products import *  # noqa: F403
from chainrule.ops.reduce import *  # noqa: F403
from chainrule.ops.reduce import sum_to as sum_to  # for the engine (install_ops), not public
from chainrule.ops.shape import *  # noqa: F403

__all__ = [
    *elementwise.__all__,
    *matrix.__all__,
    *manip.__all__,
    *numeric.__all__,
    *products.__all__,
    *reduce.__all__,
    *shape.__all__,
]

numpy_dispatch.install()
install_ops(sys.modules[__name__], backward)  # Tensor's operators and backward; sum_to, broadcast_to, astype, stack
