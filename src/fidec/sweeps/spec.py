"""Sweep spec files (TOML or YAML) read into typed dataclasses by :mod:`fidec.config`, and their trials.

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

The keys, their types and their descriptions are the fields of :class:`SweepSpec`, :class:`AgentVariant` and
:class:`Resources`; values are read and errors reported as for every other fidec config.  Two shorthands
are expanded first: an agent given by name (``"fd"`` = ``{name = "fd"}``) and seeds given as a count
(``3`` = ``[0, 1, 2]``).

The trials are variants x grid points x tasks x seeds (or x one seed pack when ``pack_seeds``).  Each has a
readable, deterministic id ``<label>[+key=value...]__<task>__s<seed>[-<seed>...]`` and its run directory
``<out_dir>/runs/<trial id>``.  Every run's config is built (and so validated) with
:func:`fidec.training.config.make_train_config`: defaults -> scale -> task and named presets -> ``train`` ->
``overrides`` -> the variant's ``overrides`` -> the grid point.
"""

from __future__ import annotations

import dataclasses
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

import yaml

from fidec.agents import agent_names
from fidec.config import ConfigError, DottedKeys, class_keys, did_you_mean, from_dict, unknown_key_error
from fidec.envs.registry import SUITES, parse_task
from fidec.training.config import SCALES, TrainConfig, config_keys, make_train_config

# Run settings the sweep sets itself; each comes from a spec key, never from an override.
SWEEP_OWNED_KEYS = {
    "agent_name": "agents",
    "env": "tasks / suites",
    "scale": "scale",
    "presets": "presets",
    "seeds": "seeds",
    "run_dir": "out_dir",
    "progress": "(the sweep shows its own progress)",
}
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._=+-]")


class SpecError(ConfigError):
    """A sweep spec that cannot be run; the message names the file, the key and the valid choices."""


@dataclass(frozen=True)
class AgentVariant:
    """An agent under a label: ``fd-velocity`` = ``fd`` with ``agent.fisher.estimator=velocity``.

    Attributes:
        name: the agent (`fidec agents` lists them).
        label: the variant's name in trial ids and reports (default: the agent's name); letters, digits
            and . _ = + - only, no "__".
        overrides: dotted run settings of this variant, applied after the spec's overrides.
        presets: named agent presets of this variant, applied after the spec's presets.
    """

    name: str
    label: str = ""
    overrides: DottedKeys = field(default_factory=dict)
    presets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.name not in agent_names():
            raise ConfigError(
                f"unknown agent {self.name!r}{did_you_mean(self.name, agent_names())}; "
                f"available agents: {', '.join(agent_names())}"
            )
        if not self.label:
            object.__setattr__(self, "label", self.name)  # the documented default
        if _SAFE_CHARS.search(self.label) or "__" in self.label:
            raise ConfigError(f"label {self.label!r} may hold only letters, digits and . _ = + - (no '__')")


@dataclass(frozen=True)
class Resources:
    """What one trial reserves on a Ray node.

    Attributes:
        cpus: CPU cores (a fraction lets several trials share a core).
        gpus: GPUs: a fraction in [0, 1] (0.25: four trials share a GPU) or a whole number.
    """

    cpus: float = 1.0
    gpus: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cpus) and self.cpus > 0):
            raise ConfigError(f"cpus must be a number > 0, got {self.cpus}")
        if (
            not math.isfinite(self.gpus)
            or self.gpus < 0
            or (self.gpus > 1 and not float(self.gpus).is_integer())
        ):
            raise ConfigError(f"gpus must be a fraction in [0, 1] or a whole number of GPUs, got {self.gpus}")


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
        """Hash of what defines the run (not where it is written); a changed spec changes it.

        Recorded in every manifest: its inputs and their encoding must not change, or finished trials of
        existing sweeps would read as changed.
        """
        what = {
            "agent": self.agent,
            "task": self.task,
            "seeds": list(self.seeds),
            "scale": self.scale,
            "presets": list(self.presets),
            "overrides": _jsonable(self.overrides),
        }
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]

    def train_config(self, run_dir: str | Path | None = None) -> TrainConfig:
        """The run's config (raises ``ConfigError`` when invalid).

        Packed seeds run vmapped or one after another as the run's ``vmap_seeds`` says: fidec's rule for
        the backend (:func:`fidec.training.seeds.vmap_by_default`) unless the spec sets ``vmap_seeds``.
        """
        config = make_train_config(
            agent=self.agent, env=self.task, scale=self.scale, presets=self.presets, overrides=self.overrides
        )
        return dataclasses.replace(
            config,
            seeds=tuple(self.seeds),
            run_dir=None if run_dir is None else str(run_dir),
            progress=False,
        )


@dataclass(frozen=True)
class SweepSpec:
    """A sweep: agent variants x grid points x tasks x seeds, written to one output folder.

    Attributes:
        agents: agent names, or tables {name, label, presets, overrides} for variants of an agent.
        out_dir: the sweep's folder (manifest, run directories, logs); default runs/sweeps/<name>.
        name: the sweep's name (default: the spec file's name).
        tasks: task names (OGBench single-task or D4RL).
        suites: named suites of tasks (ogbench-state-50, ogbench-pixel-5, d4rl-antmaze-6, d4rl-adroit-12,
            offline-to-online-5, local-tiny), run after the tasks.
        seeds: the seeds (or a count: 3 = seeds 0, 1, 2).
        pack_seeds: one trial per variant and task trains all its seeds in one process, vmapped or one
            after another as vmap_seeds says (default: fidec's rule for the backend).
        scale: tiny, cpu or paper: steps, intervals and network sizes (default: cpu).
        presets: named agent presets for every variant (see fidec presets).
        train: dotted run settings for every trial (see fidec train --help).
        overrides: dotted run settings for every trial, applied after train.
        grid: dotted key -> list of values; every combination is its own variant.
        resources: what one trial reserves on a Ray node.
        max_retries: times a failed trial is tried again before it is reported.
    """

    agents: tuple[AgentVariant, ...]
    out_dir: Path
    name: str = "sweep"
    tasks: tuple[str, ...] = ()
    suites: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)
    pack_seeds: bool = False
    scale: str | None = None
    presets: tuple[str, ...] = ()
    train: DottedKeys = field(default_factory=dict)
    overrides: DottedKeys = field(default_factory=dict)
    grid: DottedKeys = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    max_retries: int = 1

    def __post_init__(self) -> None:
        if not self.agents:
            raise ConfigError("agents is empty: name at least one agent")
        labels = [v.label for v in self.agents]
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ConfigError(
                f"agents {duplicates} appear more than once with the same label; give each variant a "
                'distinct \'label\', e.g. {name = "fd", label = "fd-velocity", overrides = {...}}'
            )
        for i, task in enumerate(self.tasks):
            try:
                parse_task(task)
            except ValueError as exc:
                raise ConfigError(f"tasks[{i}]: {exc}") from None
        for suite in self.suites:
            if suite not in SUITES:
                hint = did_you_mean(suite, SUITES)
                raise ConfigError(f"suites: unknown suite {suite!r}{hint}; valid suites: {', '.join(SUITES)}")
        if not self.all_tasks:
            raise ConfigError(f"no tasks: give tasks (task names) and/or suites ({', '.join(SUITES)})")
        if not self.seeds or any(s < 0 for s in self.seeds):
            raise ConfigError(
                f"seeds must be a count (3 = seeds 0, 1, 2) or integers >= 0, got {list(self.seeds)}"
            )
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct, got {list(self.seeds)}")
        if self.scale is not None and self.scale not in SCALES:
            hint = did_you_mean(self.scale, SCALES)
            raise ConfigError(f"unknown scale {self.scale!r}{hint}; valid scales: {', '.join(SCALES)}")
        if self.max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {self.max_retries}")
        tables = {"train": self.train, "overrides": self.overrides, "grid": self.grid}
        tables.update({f"agents[{i}].overrides": v.overrides for i, v in enumerate(self.agents)})
        for where, table in tables.items():
            _check_override_keys(table, where)
        for key, values in self.grid.items():
            if not isinstance(values, list | tuple) or not values:
                raise ConfigError(f"grid: {key!r} must be a non-empty list of values, got {values!r}")

    @property
    def all_tasks(self) -> tuple[str, ...]:
        """The explicit tasks followed by the suites' tasks, each once."""
        names = list(self.tasks) + [task for suite in self.suites for task in SUITES[suite]]
        return tuple(dict.fromkeys(names))

    def trials(self) -> list[Trial]:
        """Every trial, in a fixed order: variant, grid point, task, seed."""
        seed_groups = [self.seeds] if self.pack_seeds else [(s,) for s in self.seeds]
        trials = []
        for variant in self.agents:
            for point in grid_points(self.grid):
                label = variant.label + grid_tag(point)
                overrides = {**self.train, **self.overrides, **variant.overrides, **point}
                for task in self.all_tasks:
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
        """Plain-JSON form (recorded in the manifest; ``tasks`` lists the suites' tasks too)."""
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
            "tasks": list(self.all_tasks),
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


def _check_override_keys(table: Mapping[str, Any], where: str) -> None:
    """Every key is a run setting that a spec may set (not one the sweep sets from its own keys)."""
    valid = config_keys()
    for key in table:
        head = key.split(".")[0]
        if head in SWEEP_OWNED_KEYS:
            raise ConfigError(
                f"{where}: {key!r} is set by the sweep from {SWEEP_OWNED_KEYS[head]!r}, not by an override"
            )
        if key not in valid:
            raise ConfigError(f"{where}: {unknown_key_error(key, valid)}")


# -- trial naming (the ids are recorded in manifests: keep them stable) ---------------------------------


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
    """'+alpha=10+t_eps=0.9' for {'agent.alpha': 10, 'agent.fisher.t_eps': 0.9} (the key's last part when
    unique)."""
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
    if out_dir is not None and isinstance(raw, Mapping):
        raw = {**raw, "out_dir": str(out_dir)}
    try:
        return parse_spec(raw, validate_configs=validate_configs, default_name=path.stem)
    except SpecError as exc:
        raise SpecError(f"sweep spec {str(path)!r}: {exc}") from None


def _read_table(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise SpecError(f"sweep spec {str(path)!r}: unknown file type {suffix!r}; use .toml, .yaml or .yml")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"sweep spec {str(path)!r} cannot be read ({exc}); give a text file") from None
    if suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"sweep spec {str(path)!r} is not valid TOML: {exc}") from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        message = " ".join(str(exc).split())
        raise SpecError(f"sweep spec {str(path)!r} is not valid YAML: {message}") from None


def parse_spec(
    raw: Mapping[str, Any], validate_configs: bool = True, default_name: str = "sweep"
) -> SweepSpec:
    """Validate a spec given as a mapping (the parsed file) and return a :class:`SweepSpec`."""
    if not isinstance(raw, Mapping):
        keys = ", ".join(class_keys(SweepSpec))
        raise SpecError(f"a spec is a table of keys ({keys}), got {type(raw).__name__}")
    try:
        spec = from_dict(SweepSpec, _expand_shorthands(raw, default_name))
    except ConfigError as exc:
        raise SpecError(str(exc)) from None
    if validate_configs:
        validate_trial_configs(spec)
    return spec


def _expand_shorthands(raw: Mapping[str, Any], default_name: str) -> dict[str, Any]:
    """An agent given by name is the table {name}; seeds given as a count N are 0..N-1; out_dir defaults to
    runs/sweeps/<name>.  Everything else is read as written."""
    table = {"name": default_name, **raw}
    table.setdefault("out_dir", f"runs/sweeps/{table['name']}")
    agents = table.get("agents")
    if isinstance(agents, str | Mapping):
        agents = [agents]
    if isinstance(agents, list | tuple):
        table["agents"] = [{"name": entry} if isinstance(entry, str) else entry for entry in agents]
    seeds = table.get("seeds")
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise SpecError(f"seeds as a count must be >= 1, got {seeds}")
        table["seeds"] = list(range(seeds))
    return table


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
        except ValueError as exc:
            where = f"agent {trial.agent!r} (label {trial.label!r}) on task {trial.task!r}"
            raise SpecError(
                f"{where}: {exc}. The run settings are built from scale, presets, [train], [overrides], "
                f"the agent's overrides and [grid]."
            ) from None


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=list))
