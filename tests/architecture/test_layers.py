"""The package's shape, measured from its source: floors import only downward, no cycles, no patches.

Every import that can run counts (module level or inside a function; ``if TYPE_CHECKING:``
blocks excluded). See docs/architecture.md for the floors.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"

# floor of each subpackage: a module may import its own package and packages on lower or equal floors
FLOORS = {
    "core": 1,
    "ops": 2,
    "optim": 2,
    "data": 2,
    "transforms": 3,
    "nn": 4,
    "models": 5,
    "viz": 5,
    "parallel": 5,
    "measure": 6,
    "plan": 7,
    "train": 8,
    "cli": 9,
}
TOP = 9  # chainrule/__init__.py and __main__.py: the public face, on the floor of the commands


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / "chainrule").rglob("*.py")):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _owner(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _type_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def _imports(mod: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: n for n in ast.walk(tree) for child in ast.iter_child_nodes(n)}
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = mod.split(".") if is_pkg else mod.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for n in names:
            owner = _owner(n) if n.startswith("chainrule") else None
            if owner and owner != mod and not _type_only(node, parents):
                out.add(owner)
    return out


GRAPH = {mod: _imports(mod, path) for mod, path in MODULES.items()}


def _floor(mod: str) -> int:
    parts = mod.split(".")
    return FLOORS.get(parts[1], TOP) if len(parts) > 1 else TOP


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(GRAPH):
        if start in index:
            continue
        index[start] = low[start] = len(index)
        stack.append(start)
        on.add(start)
        work = [(start, iter(sorted(GRAPH[start])))]
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(GRAPH[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return found


def test_no_import_cycles() -> None:
    cycles = _cycles()
    detail = [
        f"{a} -> {b}" for comp in cycles for a in comp for b in sorted(GRAPH[a]) if b in comp
    ]  # the edges inside each cycle
    assert not cycles, "import cycles:\n" + "\n".join(detail)


def test_imports_point_downward() -> None:
    upward = [
        f"{mod} (floor {_floor(mod)}) imports {dep} (floor {_floor(dep)})"
        for mod, deps in GRAPH.items()
        for dep in sorted(deps)
        if _floor(dep) > _floor(mod)
    ]
    assert not upward, "\n".join(upward)


def test_the_core_imports_only_numpy_and_itself() -> None:
    outside = [
        f"{mod} imports {dep}" for mod, deps in GRAPH.items() if _floor(mod) == 1 for dep in deps if _floor(dep) != 1
    ]
    assert not outside, "\n".join(outside)


def test_no_runtime_patches_of_the_engine() -> None:
    """Nothing outside the core assigns a primitive's impl or replaces the backward walk."""
    patches = []
    for mod, path in MODULES.items():
        if mod.startswith("chainrule.core"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    text = ast.unparse(t)
                    if text.endswith(".impl") or text.endswith("backward.backward") or text == "sys.settrace":
                        patches.append(f"{path.relative_to(ROOT)}:{node.lineno} {text} = ...")
    assert not patches, "\n".join(patches)


def test_module_and_function_sizes() -> None:
    big_modules = []
    big_functions = []
    for path in MODULES.values():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > 700:
            big_modules.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if ast.get_docstring(node):
                    doc = node.body[0]
                    n -= (doc.end_lineno or doc.lineno) - doc.lineno + 1
                if n > 90:
                    big_functions.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {n} lines")
    assert not big_modules and not big_functions, "\n".join(big_modules + big_functions)


def test_the_backward_walk_is_short() -> None:
    """Every function of the core's backward module (the walk and its steps) is at most 40 lines."""
    tree = ast.parse((SRC / "chainrule" / "core" / "backward.py").read_text(encoding="utf-8"))
    long = []
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef):
            lines = (fn.end_lineno or 0) - fn.lineno + 1
            if ast.get_docstring(fn):
                doc = fn.body[0]
                lines -= (doc.end_lineno or 0) - doc.lineno + 1
            if lines > 40:
                long.append(f"core/backward.py:{fn.lineno} {fn.name}: {lines} lines")
    assert not long, "\n".join(long)


def test_no_large_files_tracked() -> None:
    """Binaries stay out of the repository: no tracked file over 1 MB."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    sizes = {f: (ROOT / f).stat().st_size for f in listed.decode().split("\0") if f and (ROOT / f).is_file()}
    large = [f"{f}: {n:,} bytes" for f, n in sizes.items() if n > 1_000_000]
    assert not large, "\n".join(large)


def test_package_root_holds_only_the_public_face() -> None:
    root = sorted(p.name for p in (SRC / "chainrule").glob("*.py"))
    assert root == ["__init__.py", "__main__.py"], root


@pytest.mark.parametrize("floor_pkg", sorted(FLOORS))
def test_every_floor_exists(floor_pkg: str) -> None:
    assert (SRC / "chainrule" / floor_pkg / "__init__.py").is_file()
