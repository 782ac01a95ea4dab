"""Forward hooks on modules, as PyTorch has them: instruments watch a module's call, never patch it.

``module.register_forward_pre_hook(fn)`` calls ``fn(module, args)`` before ``forward`` runs and
``module.register_forward_hook(fn)`` calls ``fn(module, args, output)`` after; the
``register_module_forward_*`` functions do the same for every module. A hook that returns
something other than ``None`` replaces the arguments (pre) or the output (post), as in PyTorch.
Each registration returns a handle whose ``remove()`` takes the hook away.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

_ids = itertools.count()
# hooks of every module, called before a module's own: id -> hook
GLOBAL_PRE: dict[int, Callable[..., Any]] = {}
GLOBAL_POST: dict[int, Callable[..., Any]] = {}


class RemovableHandle:
    """What a ``register_*hook`` call returns: ``remove()`` unregisters the hook (again is a no-op)."""

    def __init__(self, table: dict[int, Callable[..., Any]]) -> None:
        self.id = next(_ids)
        self._table = table

    def remove(self) -> None:
        self._table.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def add(table: dict[int, Callable[..., Any]], hook: Callable[..., Any]) -> RemovableHandle:
    """Register ``hook`` in ``table``; hooks run in registration order."""
    if not callable(hook):
        raise TypeError(f"register hook: expected a callable, got {type(hook).__name__}")
    handle = RemovableHandle(table)
    table[handle.id] = hook
    return handle


def register_module_forward_pre_hook(hook: Callable[..., Any]) -> RemovableHandle:
    """Call ``hook(module, args)`` before every module's ``forward`` (as ``torch.nn.modules.module``'s)."""
    return add(GLOBAL_PRE, hook)


def register_module_forward_hook(hook: Callable[..., Any]) -> RemovableHandle:
    """Call ``hook(module, args, output)`` after every module's ``forward``."""
    return add(GLOBAL_POST, hook)


def call(module: Any, args: tuple[Any, ...], pre: list[Any], post: list[Any]) -> Any:
    """Run ``module.forward(*args)`` between its pre-hooks and hooks (the global ones first)."""
    for hook in pre:
        result = hook(module, args)
        if result is not None:
            args = result if isinstance(result, tuple) else (result,)
    out = module.forward(*args)
    for hook in post:
        result = hook(module, args, out)
        if result is not None:
            out = result
    return out
