"""The data and environment layers import one way: envs never imports data, no cycles, no hidden imports.

Run ``python -m pytest tests/test_data_imports.py`` to check; it reads the source, so it needs no
simulator. A function-local import is allowed only for an optional or heavy third-party package
(minari, gymnasium_robotics, ogbench's environment construction), never for a fidec module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import fidec

SOURCE = Path(fidec.__file__).parent
PACKAGES = ("data", "envs")


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((SOURCE / package).glob("*.py"))}


def fidec_imports(tree: ast.AST) -> list[tuple[str, ast.AST]]:
    """(imported fidec module, node) for every import statement under ``tree``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node) for alias in node.names if alias.name.startswith("fidec")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fidec"):
            found.append((node.module, node))
    return found


def module_level_graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        graph[name] = {target for target, _ in fidec_imports(tree)}
    return graph


def test_no_function_local_imports_of_fidec_modules():
    hidden = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                hidden += [f"{name}:{inner.lineno} imports {target}" for target, inner in fidec_imports(node)]
    assert hidden == []


def test_envs_never_imports_data():
    upward = [
        f"{name} imports {target}"
        for name, targets in module_level_graph().items()
        if name.startswith("fidec.envs")
        for target in targets
        if target.startswith("fidec.data")
    ]
    assert upward == []


def test_no_import_cycles_in_data_and_envs():
    graph = module_level_graph()
    inside = {name: {t for t in targets if t in graph} for name, targets in graph.items()}
    # Submodules import their siblings, never their own package (whose __init__ imports them).
    to_package = [
        f"{name} imports {target}"
        for name, targets in inside.items()
        for target in targets
        if name.startswith(f"{target}.")
    ]
    assert to_package == []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = "open"
        for target in sorted(inside[name]):
            if state.get(target) == "open":
                return [*path, name, target]
            if target not in state and (cycle := visit(target, [*path, name])):
                return cycle
        state[name] = "done"
        return None

    for name in sorted(inside):
        if name not in state:
            assert visit(name, []) is None
