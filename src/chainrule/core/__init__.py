"""The engine, in the order §5.3 tells it.

* :mod:`.primitive`: forward propagation. A :class:`~.primitive.Primitive` runs and ``bind``
  records a node.
* :mod:`.node`: the computational graph. A :class:`~.node.Node` is one recorded operation and
  what it keeps for backward.
* :mod:`.backward`: backpropagation. The chain rule is applied node by node, and each node is
  released once its rules have run.

Beside them: :mod:`.tensor` (the value users hold), :mod:`.state` (per-thread levels and
modes), :mod:`.interpret` (how instruments plug in), :mod:`.rules` (running one derivative
rule), :mod:`.errors`, :mod:`.constructors`.
"""
