"""The package's shape (docs/architecture.md): imports flow one way down the layers, no import cycles, and
no fidec module imported inside a function (an optional heavy dependency may be; fidec modules may not).

Checked from the source (AST), so ``python -m pytest tests/test_architecture.py`` is the command that
verifies a restructuring.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "fidec"

# Lowest first.  A unit (top-level module or subpackage of fidec) imports only units of lower layers.
LAYERS: list[tuple[str, ...]] = [
    ("errors",),
    ("files", "stats", "formatting", "config"),
    ("flows", "networks", "encoders", "augment"),
    ("fisher",),
    ("__init__",),  # the package root (its public API: flows, fisher, networks)
    ("agents", "envs"),
    ("data",),
    ("presets",),
    ("training",),
    ("sweeps", "diagnostics", "bench"),
    ("reports",),  # reads sweep folders through fidec.sweeps.manifest
    ("cli",),
]
LAYER_OF = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported fidec module, inside a function?) for every import in the file."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                found.extend((a.name, in_function) for a in child.names if a.name.split(".")[0] == "fidec")
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                if child.module.split(".")[0] == "fidec":
                    # "from fidec.agents import fd" imports the module fidec.agents.fd when it is one
                    for alias in child.names:
                        candidate = f"{child.module}.{alias.name}"
                        is_module = (SRC / Path(*candidate.split("."))).with_suffix(".py").exists() or (
                            SRC / Path(*candidate.split("."))
                        ).is_dir()
                        found.append((candidate if is_module else child.module, in_function))
            visit(child, nested)

    visit(tree, False)
    return found


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        for target, _ in imports(path):
            edges[module_name(path)].add(target)
    return edges


def test_every_unit_has_a_layer():
    units = {unit_of(module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert units <= set(LAYER_OF), f"add {sorted(units - set(LAYER_OF))} to LAYERS (and docs/architecture.md)"


def test_imports_flow_down_the_layers():
    upward = []
    for source, targets in graph().items():
        for target in targets:
            a, b = unit_of(source), unit_of(target)
            if a != b and LAYER_OF[b] >= LAYER_OF[a]:
                upward.append(f"{source} -> {target}")
    assert not upward, "imports that do not flow down the layers:\n" + "\n".join(sorted(upward))


def test_no_import_cycles_between_modules():
    edges = graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            # a package's __init__ importing its own submodules is how a package exports: not a cycle
            if nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt] if nxt in stack else [node, nxt])
            elif state.get(nxt) is None:
                walk(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            walk(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_fidec_module_is_imported_inside_a_function():
    local = [
        f"{module_name(path)} imports {target}"
        for path in PACKAGE.rglob("*.py")
        for target, in_function in imports(path)
        if in_function
    ]
    assert not local, "function-local imports of fidec modules:\n" + "\n".join(sorted(local))
