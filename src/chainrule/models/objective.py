"""The objective a training step minimises, for any model ``chainrule train`` builds."""

from __future__ import annotations

from typing import Any

import chainrule.nn.functional as F
from chainrule.core.tensor import Tensor
from chainrule.models.section import SectionMLP
from chainrule.nn.modules import Module


def objective(model: Module, x: Tensor, y: Any) -> tuple[Tensor, Tensor]:
    """Return (J, logits) for a minibatch: the section's J = L + s for :class:`SectionMLP`, else
    the cross-entropy of the model's logits."""
    if isinstance(model, SectionMLP):
        nodes = model.objective(x, y)
        return nodes["J"], nodes["o"]
    logits = model(x)
    return F.cross_entropy(logits, y), logits
