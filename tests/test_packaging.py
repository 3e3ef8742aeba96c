"""Packaging: dependency ranges (installable into an existing environment), and the exact tested set."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _requirements() -> list[Requirement]:
    reqs = [Requirement(r) for r in PROJECT["dependencies"]]
    for extra in PROJECT["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra]
    return reqs


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_dependencies_are_ranges_with_a_lower_bound_not_exact_pins():
    for req in _requirements():
        operators = {spec.operator for spec in req.specifier}
        assert "==" not in operators and "===" not in operators, f"{req} is pinned exactly"
        assert ">=" in operators, f"{req} has no tested lower bound"


def test_every_dependency_has_a_tested_version_inside_its_range():
    """Every requirement the test extras install (what CI tests) has its tested version in constraints.txt;
    every other extra's requirement that is in constraints.txt lies inside its range."""
    pins = _constraints()
    installed = [Requirement(r) for r in PROJECT["dependencies"] + PROJECT["optional-dependencies"]["test"]]
    for req in _requirements():
        name = canonicalize_name(req.name)
        if req not in installed and name not in pins:
            continue  # an extra CI does not install (wandb, reference, gpu)
        assert name in pins, f"{req.name} is missing from constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"{req.name}=={pins[name]} outside {req}"


def test_the_installed_environment_is_the_tested_set():
    """What CI installs (pip install -e ".[test]" -c constraints.txt) is what constraints.txt says."""
    pins = _constraints()
    for name in ("jax", "jaxlib", "flax", "optax", "numpy", "ogbench", "mujoco"):
        assert metadata.version(name) == pins[name], name


def test_python_range_is_the_widest_the_dependencies_allow():
    assert PROJECT["requires-python"] == ">=3.11"  # jax, numpy, flax, mujoco, typer: >=3.11
