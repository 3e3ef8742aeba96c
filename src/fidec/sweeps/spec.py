"""Sweep spec files (TOML or YAML): parsing, validation, and expansion into trials.

A spec names agents (or agent variants), tasks and suites, seeds, and the settings of every run:

    name = "tiny"
    out_dir = "runs/sweeps/tiny"
    agents = ["fd", {name = "fd", label = "fd-velocity", overrides = {"agent.fisher.estimator" = "velocity"}}]
    suites = ["local-tiny"]
    seeds = [0, 1]
    scale = "tiny"
    [train]                     # dotted TrainConfig keys for every run
    steps = 200
    [grid]                      # cartesian product; each point is its own variant
    "agent.alpha" = [1.0, 10.0]
    [resources]
    cpus = 1
    gpus = 0

The trials are variants x grid points x tasks x seeds (or x one seed pack when ``pack_seeds``).  Each has a
readable, deterministic id ``<label>[+key=value...]__<task>__s<seed>[-<seed>...]`` and its run directory
``<out_dir>/runs/<trial id>``.  Every run's config is built (and so validated) with
:func:`fidec.training.config.make_train_config`: defaults -> scale -> task and named presets -> ``train`` ->
``overrides`` -> the variant's ``overrides`` -> the grid point.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fidec.agents import agent_names
from fidec.config import ConfigError
from fidec.envs.registry import SUITES, UnknownTaskError, parse_task, suite_tasks
from fidec.errors import UserError

SPEC_KEYS = (
    "name",
    "out_dir",
    "agents",
    "tasks",
    "suites",
    "seeds",
    "pack_seeds",
    "scale",
    "presets",
    "train",
    "overrides",
    "grid",
    "resources",
    "max_retries",
)
AGENT_KEYS = ("name", "label", "presets", "overrides")
RESOURCE_KEYS = ("cpus", "gpus")
# Run settings the sweep sets itself; each comes from a spec key, never from an override.
SWEEP_OWNED_KEYS = {
    "agent_name": "agents",
    "env": "tasks / suites",
    "scale": "scale",
    "presets": "presets",
    "seeds": "seeds",
    "vmap_seeds": "pack_seeds",
    "run_dir": "out_dir",
    "progress": "(the sweep shows its own progress)",
}
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._=+-]")


class SpecError(UserError, ValueError):
    """A sweep spec that cannot be run; the message names the key and the valid choices."""


@dataclass(frozen=True)
class AgentVariant:
    """An agent under a label: ``fd-velocity`` = ``fd`` with ``agent.fisher.estimator=velocity``."""

    name: str
    label: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    presets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Resources:
    """What one trial reserves on a Ray node: CPU cores and a (possibly fractional) number of GPUs."""

    cpus: float = 1.0
    gpus: float = 0.0


@dataclass(frozen=True)
class Trial:
    """One training run of a sweep: an agent variant on one task with one seed (or a pack of seeds)."""

    trial_id: str
    label: str
    agent: str
    task: str
    seeds: tuple[int, ...]
    scale: str | None
    presets: tuple[str, ...]
    overrides: Mapping[str, Any]
    grid_point: Mapping[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """Hash of what defines the run (not where it is written); a changed spec changes it."""
        what = {
            "agent": self.agent,
            "task": self.task,
            "seeds": list(self.seeds),
            "scale": self.scale,
            "presets": list(self.presets),
            "overrides": _jsonable(self.overrides),
        }
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]

    def train_config(self, run_dir: str | Path | None = None):
        """The run's :class:`fidec.training.config.TrainConfig` (raises ``ConfigError`` when invalid)."""
        import dataclasses

        from fidec.training.config import make_train_config

        config = make_train_config(
            agent=self.agent, env=self.task, scale=self.scale, presets=self.presets, overrides=self.overrides
        )
        return dataclasses.replace(
            config,
            seeds=tuple(self.seeds),
            vmap_seeds=len(self.seeds) > 1,
            run_dir=None if run_dir is None else str(run_dir),
            progress=False,
        )


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep spec.  ``tasks`` holds the explicit tasks followed by the suites' (no duplicates)."""

    name: str
    out_dir: Path
    agents: tuple[AgentVariant, ...]
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    pack_seeds: bool = False
    scale: str | None = None
    presets: tuple[str, ...] = ()
    train: Mapping[str, Any] = field(default_factory=dict)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    grid: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    max_retries: int = 1
    suites: tuple[str, ...] = ()

    def trials(self) -> list[Trial]:
        """Every trial, in a fixed order: variant, grid point, task, seed."""
        seed_groups = [self.seeds] if self.pack_seeds else [(s,) for s in self.seeds]
        trials = []
        for variant in self.agents:
            for point in grid_points(self.grid):
                label = variant.label + grid_tag(point)
                overrides = {**self.train, **self.overrides, **variant.overrides, **point}
                for task in self.tasks:
                    for seeds in seed_groups:
                        trials.append(
                            Trial(
                                trial_id=trial_id(label, task, seeds),
                                label=label,
                                agent=variant.name,
                                task=task,
                                seeds=tuple(seeds),
                                scale=self.scale,
                                presets=self.presets + variant.presets,
                                overrides=overrides,
                                grid_point=point,
                            )
                        )
        return trials

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (recorded in the manifest)."""
        return {
            "name": self.name,
            "out_dir": str(self.out_dir),
            "agents": [
                {
                    "name": a.name,
                    "label": a.label,
                    "overrides": _jsonable(a.overrides),
                    "presets": list(a.presets),
                }
                for a in self.agents
            ],
            "tasks": list(self.tasks),
            "suites": list(self.suites),
            "seeds": list(self.seeds),
            "pack_seeds": self.pack_seeds,
            "scale": self.scale,
            "presets": list(self.presets),
            "train": _jsonable(self.train),
            "overrides": _jsonable(self.overrides),
            "grid": _jsonable(self.grid),
            "resources": {"cpus": self.resources.cpus, "gpus": self.resources.gpus},
            "max_retries": self.max_retries,
        }


# -- trial naming ---------------------------------------------------------------------------------------


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of the grid, in key order ([{}] for an empty grid)."""
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "x".join(_format_value(v) for v in value)
    return str(value)


def grid_tag(point: Mapping[str, Any]) -> str:
    """'+alpha=10+t_eps=0.9' for {'agent.alpha': 10, 'agent.fisher.t_eps': 0.9} (last key part when unique)."""
    tails = [key.split(".")[-1] for key in point]
    parts = []
    for key, tail in zip(point, tails, strict=True):
        name = tail if tails.count(tail) == 1 else key
        parts.append(f"+{name}={_format_value(point[key])}")
    return _SAFE_CHARS.sub("_", "".join(parts))


def trial_id(label: str, task: str, seeds: Sequence[int]) -> str:
    """'fd-velocity__cube-single-play-singletask-task1-v0__s0' (packed seeds: '__s0-1-2')."""
    return _SAFE_CHARS.sub("_", f"{label}__{task}__s{'-'.join(str(s) for s in seeds)}")


# -- loading and validation -----------------------------------------------------------------------------


def load_spec(
    path: str | Path, out_dir: str | Path | None = None, validate_configs: bool = True
) -> SweepSpec:
    """Read and validate a spec file (``.toml``, ``.yaml`` or ``.yml``).

    ``out_dir`` replaces the file's ``out_dir``; relative paths are relative to the current directory.
    ``validate_configs`` builds every trial's TrainConfig once, so that a bad override fails here.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"sweep spec {str(path)!r} does not exist (expected a .toml or .yaml file)")
    raw = _read_table(path)
    if out_dir is not None:
        raw = {**raw, "out_dir": str(out_dir)}
    try:
        return parse_spec(raw, validate_configs=validate_configs, default_name=path.stem)
    except SpecError as exc:
        raise SpecError(f"sweep spec {str(path)!r}: {exc}") from None


def _read_table(path: Path) -> Any:
    suffix = path.suffix.lower()
    text = path.read_text()
    if suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"sweep spec {str(path)!r} is not valid TOML: {exc}") from None
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise SpecError(f"sweep spec {str(path)!r} is not valid YAML: {exc}") from None
    raise SpecError(f"sweep spec {str(path)!r}: unknown file type {suffix!r}; use .toml, .yaml or .yml")


def parse_spec(
    raw: Mapping[str, Any], validate_configs: bool = True, default_name: str = "sweep"
) -> SweepSpec:
    """Validate a spec given as a mapping (the parsed file) and return a :class:`SweepSpec`."""
    if not isinstance(raw, Mapping):
        raise SpecError(f"a spec is a table of keys ({', '.join(SPEC_KEYS)}), got {type(raw).__name__}")
    _check_keys(raw, SPEC_KEYS, "spec")
    name = str(raw.get("name", default_name))
    spec = SweepSpec(
        name=name,
        out_dir=Path(str(raw.get("out_dir", f"runs/sweeps/{name}"))).expanduser(),
        agents=_parse_agents(raw.get("agents")),
        tasks=_parse_tasks(raw.get("tasks", []), raw.get("suites", [])),
        suites=tuple(_as_list(raw.get("suites", []), "suites")),
        seeds=_parse_seeds(raw.get("seeds", [0])),
        pack_seeds=_parse_bool(raw.get("pack_seeds", False), "pack_seeds"),
        scale=_parse_scale(raw.get("scale")),
        presets=tuple(str(p) for p in _as_list(raw.get("presets", []), "presets")),
        train=_parse_overrides(raw.get("train", {}), "train"),
        overrides=_parse_overrides(raw.get("overrides", {}), "overrides"),
        grid=_parse_grid(raw.get("grid", {})),
        resources=_parse_resources(raw.get("resources", {})),
        max_retries=_parse_count(raw.get("max_retries", 1), "max_retries"),
    )
    if validate_configs:
        validate_trial_configs(spec)
    return spec


def validate_trial_configs(spec: SweepSpec) -> None:
    """Build the TrainConfig of each (variant, grid point, task) once; name the variant in any error."""
    seen = set()
    for trial in spec.trials():
        key = (trial.label, trial.task)
        if key in seen:
            continue
        seen.add(key)
        try:
            trial.train_config()
        except (ConfigError, ValueError) as exc:
            where = f"agent {trial.agent!r} (label {trial.label!r}) on task {trial.task!r}"
            raise SpecError(
                f"{where}: {exc}. The run settings are built from scale, presets, [train], [overrides], "
                f"the agent's overrides and [grid]."
            ) from None


def _close(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=2)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _check_keys(table: Mapping[str, Any], valid: Sequence[str], where: str) -> None:
    for key in table:
        if key not in valid:
            raise SpecError(
                f"unknown key {key!r} in {where}.{_close(key, valid)} Valid keys: {', '.join(valid)}"
            )


def _as_list(value: Any, key: str) -> list:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list | tuple):
        raise SpecError(f"{key!r} must be a list, got {value!r}")
    return list(value)


def _parse_bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"{key!r} must be true or false, got {value!r}")
    return value


def _parse_count(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpecError(f"{key!r} must be an integer >= 0, got {value!r}")
    return value


def _parse_agents(value: Any) -> tuple[AgentVariant, ...]:
    valid = agent_names()
    if value is None:
        raise SpecError(
            f"'agents' is required: a list of agent names ({', '.join(valid)}) or tables {{name, label, overrides}}"
        )
    variants = []
    for i, entry in enumerate(_as_list(value, "agents")):
        where = f"agents[{i}]"
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, Mapping):
            raise SpecError(
                f"{where} must be an agent name or a table {{name, label, overrides}}, got {entry!r}"
            )
        _check_keys(entry, AGENT_KEYS, where)
        name = entry.get("name")
        if name not in valid:
            raise SpecError(
                f"{where}: unknown agent {name!r}.{_close(str(name), valid)} Available agents: {', '.join(valid)}"
            )
        label = str(entry.get("label", name))
        if _SAFE_CHARS.search(label) or "__" in label:
            raise SpecError(f"{where}: label {label!r} may hold only letters, digits and . _ = + - (no '__')")
        overrides = _parse_overrides(entry.get("overrides", {}), f"{where}.overrides")
        presets = tuple(str(p) for p in _as_list(entry.get("presets", []), f"{where}.presets"))
        variants.append(AgentVariant(name=name, label=label, overrides=overrides, presets=presets))
    if not variants:
        raise SpecError("'agents' is empty: name at least one agent")
    labels = [v.label for v in variants]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise SpecError(
            f"agents {duplicates} appear more than once with the same label; give each variant a distinct "
            '\'label\', e.g. {name = "fd", label = "fd-velocity", overrides = {...}}'
        )
    return tuple(variants)


def _parse_tasks(tasks: Any, suites: Any) -> tuple[str, ...]:
    names: list[str] = []
    for task in _as_list(tasks, "tasks"):
        try:
            names.append(parse_task(str(task)).name)
        except UnknownTaskError as exc:
            raise SpecError(f"tasks: {exc}") from None
    for suite in _as_list(suites, "suites"):
        try:
            names.extend(suite_tasks(str(suite)))
        except UnknownTaskError:
            raise SpecError(
                f"suites: unknown suite {suite!r}.{_close(str(suite), list(SUITES))} Valid suites: {', '.join(SUITES)}"
            ) from None
    if not names:
        raise SpecError(f"no tasks: give 'tasks' (task names) and/or 'suites' ({', '.join(SUITES)})")
    return tuple(dict.fromkeys(names))


def _parse_seeds(value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise SpecError(f"'seeds' as a count must be >= 1, got {value}")
        return tuple(range(value))
    seeds = _as_list(value, "seeds")
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise SpecError(
            f"'seeds' must be a count (3 = seeds 0, 1, 2) or a list of integers >= 0, got {value!r}"
        )
    if len(set(seeds)) != len(seeds):
        raise SpecError(f"'seeds' must be distinct, got {seeds}")
    return tuple(seeds)


def _parse_scale(value: Any) -> str | None:
    if value is None:
        return None
    from fidec.training.config import SCALES

    if value not in SCALES:
        raise SpecError(
            f"unknown scale {value!r}.{_close(str(value), list(SCALES))} Valid scales: {', '.join(SCALES)}"
        )
    return str(value)


def _parse_overrides(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(
            f'{where!r} must be a table of dotted keys, e.g. {{"agent.alpha" = 3.0}}, got {value!r}'
        )
    from fidec.training.config import config_keys

    flat = _flatten(value)
    valid = config_keys()
    for key in flat:
        head = key.split(".")[0]
        if head in SWEEP_OWNED_KEYS:
            raise SpecError(
                f"{where}: {key!r} is set by the sweep from {SWEEP_OWNED_KEYS[head]!r}, not by an override"
            )
        if key not in valid:
            raise SpecError(
                f"{where}: unknown config key {key!r}.{_close(key, valid)} Valid keys: {', '.join(valid)}"
            )
    return flat


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """YAML/TOML nested tables become dotted keys: {agent: {alpha: 3}} -> {'agent.alpha': 3}."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _parse_grid(value: Any) -> dict[str, tuple[Any, ...]]:
    grid = _parse_overrides(value, "grid")
    for key, values in grid.items():
        if not isinstance(values, list | tuple) or not values:
            raise SpecError(f"grid: {key!r} must be a non-empty list of values, got {values!r}")
    return {key: tuple(values) for key, values in grid.items()}


def _parse_resources(value: Any) -> Resources:
    if not isinstance(value, Mapping):
        raise SpecError(f"'resources' must be a table {{cpus, gpus}}, got {value!r}")
    _check_keys(value, RESOURCE_KEYS, "resources")
    cpus, gpus = value.get("cpus", 1), value.get("gpus", 0)
    for key, number in (("cpus", cpus), ("gpus", gpus)):
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
            raise SpecError(f"resources.{key} must be a number, got {number!r}")
    if cpus <= 0:
        raise SpecError(f"resources.cpus must be > 0, got {cpus}")
    if gpus < 0 or (gpus > 1 and not float(gpus).is_integer()):
        raise SpecError(f"resources.gpus must be a fraction in [0, 1] or a whole number of GPUs, got {gpus}")
    return Resources(cpus=float(cpus), gpus=float(gpus))


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=list))
