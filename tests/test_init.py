"""The package root: a light lazy index whose public names are the functions of their modules."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import fidec

ROOT_SOURCE = Path(fidec.__file__)


def _modules_after(statement: str) -> list[str]:
    """The modules loaded by ``statement`` in a fresh interpreter."""
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.split()


@pytest.mark.parametrize(
    "statement", ["import fidec.errors", "import fidec", "from fidec import __version__"]
)
def test_importing_the_root_or_the_errors_loads_no_jax(statement):
    loaded = _modules_after(statement)
    assert "fidec" in loaded
    assert not [m for m in loaded if m == "jax" or m.startswith(("jax.", "jaxlib", "flax", "optax"))]
    assert [m for m in loaded if m.startswith("fidec")] in (["fidec"], ["fidec", "fidec.errors"])


def test_a_public_name_loads_its_module_on_first_use():
    loaded = _modules_after("import fidec\nfidec.fisher_metric")
    assert "fidec.fisher" in loaded and "jax" in loaded
    assert "fidec.training" not in loaded  # only what the name needs


@pytest.mark.parametrize("name", sorted(fidec.EXPORTS))
def test_each_public_name_is_the_object_of_its_module(name):
    assert getattr(fidec, name) is getattr(importlib.import_module(fidec.EXPORTS[name]), name)
    assert name in dir(fidec)


def test_the_index_the_type_checkers_view_and_all_name_the_same_things():
    tree = ast.parse(ROOT_SOURCE.read_text())
    type_only = {
        (alias.name, node.module)
        for block in tree.body
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert type_only == set(fidec.EXPORTS.items())
    assert sorted(fidec.__all__) == sorted([*fidec.EXPORTS, "__version__"])


def test_unknown_names_and_submodules():
    with pytest.raises(AttributeError, match="has no attribute 'fisher_metrc'"):
        fidec.fisher_metrc  # noqa: B018
    from fidec import flows  # a submodule, not a public name: Python's own import still finds it

    assert flows.euler_sample is fidec.euler_sample
