"""Models: the section's MLP and the general MLP used by ``chainrule train``."""

from chainrule.models.objective import objective
from chainrule.models.section import SectionMLP

__all__ = ["SectionMLP", "objective"]
