"""The operations. Each family's primitives sit beside their derivative rules; each module's
``__all__`` lists its public operations (NumPy's names and signatures)."""

from chainrule.ops import elementwise, linalg, numpy_dispatch, reduce, shape
from chainrule.ops.elementwise import *  # noqa: F403
from chainrule.ops.linalg import *  # noqa: F403
from chainrule.ops.reduce import *  # noqa: F403
from chainrule.ops.shape import *  # noqa: F403

__all__ = [*elementwise.__all__, *linalg.__all__, *reduce.__all__, *shape.__all__]

numpy_dispatch.install()
