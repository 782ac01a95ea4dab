"""The API reference is generated from docstrings, so every public name needs one, and the
examples in them must run (doctest)."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import chainrule

PUBLIC = ["chainrule", "chainrule.nn", "chainrule.nn.functional", "chainrule.optim", "chainrule.data", "chainrule.viz"]
PUBLIC += ["chainrule.ops.linalg"]

KNOWN_MISSING: set[str] = set()  # every public name has a docstring: none may be listed here


def _own_doc(obj: object) -> str | None:
    if inspect.isclass(obj):
        return obj.__dict__.get("__doc__")
    return getattr(obj, "__doc__", None)


def _public_objects() -> dict[str, object]:
    found = {}
    for name in PUBLIC:
        module = importlib.import_module(name)
        for attr in module.__all__:
            obj = getattr(module, attr)
            if callable(obj) or inspect.ismodule(obj):  # constants (CLASSES, float32) document themselves
                found[f"{name}.{attr}"] = obj
    return found


def test_every_public_name_has_a_docstring() -> None:
    missing = {name for name, obj in _public_objects().items() if not (_own_doc(obj) or "").strip()}
    new = sorted(missing - KNOWN_MISSING)
    assert not new, f"public names without a docstring: {new}"


def _modules_with_examples() -> list[ModuleType]:
    modules = []
    for info in pkgutil.walk_packages(chainrule.__path__, "chainrule."):
        if ".cli." in info.name or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        finder = doctest.DocTestFinder()
        if any(t.examples for t in finder.find(module)):
            modules.append(module)
    return modules


MODULES = _modules_with_examples()


def test_the_documented_modules_have_examples() -> None:
    names = {m.__name__ for m in MODULES}
    assert {"chainrule.nn.functional", "chainrule.nn.modules", "chainrule.optim.optimizers"} <= names


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples_run(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} doctest example(s) failed in {module.__name__}"
