"""Neural-network building blocks."""

from chainrule.nn import functional

__all__ = ["functional"]
