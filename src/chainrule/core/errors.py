"""Error types. Every message names the operation, what was expected and what came."""

from __future__ import annotations

import os
import sys

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ChainruleError(Exception):
    """Base class of chainrule's own errors."""


class ShapeError(ChainruleError, ValueError):
    """Operands whose shapes do not fit the operation."""


class DTypeError(ChainruleError, TypeError):
    """Operands whose dtypes do not fit the operation."""


class GraphReleasedError(ChainruleError, RuntimeError):
    """Backward reached a node whose saved arrays were already freed."""


class AnomalyError(ChainruleError, FloatingPointError):
    """An operation produced NaN or Inf while anomaly detection was on."""


class InPlaceError(ChainruleError, RuntimeError):
    """An in-place update of an array that a recorded node saved for its backward pass."""


class DataError(ChainruleError, ValueError):
    """A data file or checkpoint is missing, truncated or corrupt."""


def user_frame() -> str:
    """Return 'file:line' of the innermost caller outside the chainrule package."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not os.path.abspath(filename).startswith(_PACKAGE_DIR):
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return "<unknown>"
