"""Per-task hyperparameter presets, as data, with where each value comes from.

A preset is a set of dotted overrides of :class:`fidec.agents.AgentConfig`, applied on top of the
defaults; some values differ by agent (FQL's alpha is a distillation weight, FD's an initial
Lagrange multiplier).  Resolution order: defaults -> the agent's own code's defaults -> task-family
preset -> the task's own values -> named presets the user asks for -> explicit overrides.
Every agent runs with its own authors' settings: FD and iso with the official FD scripts', FQL with
FQL's README's (normalisation off, its alphas); docs/parity.md lists every setting against its source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fidec.agents.config import AgentConfig
from fidec.config import ConfigError, apply_overrides
from fidec.envs.registry import UnknownTaskError, parse_dataset_name, parse_task

SRC_FD = "official FD scripts/ogbench_env_flags.sh and fql_scope_registry.sh (METHOD.md section 9)"
SRC_FD_AGENT = "official FD agents/fidec.py get_config"
SRC_DEFLOW_AGENT = "official FD repository agents/deflow.py get_config (its DeFlow baseline)"
SRC_FQL = "FQL README, 'exact command-line flags' of the main results (seohongpark/fql)"
SRC_FQL_AGENT = "FQL agents/fql.py get_config"


@dataclass(frozen=True)
class Preset:
    """Dotted AgentConfig overrides for every agent, plus per-agent ones, and their source.

    ``online_per_agent`` holds per-agent values that apply only to offline-to-online runs (FQL's README
    lists other alphas for them).
    """

    name: str
    overrides: Mapping[str, Any]
    per_agent: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    source: str = ""
    description: str = ""
    online_per_agent: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def for_agent(self, agent: str, online: bool = False) -> dict[str, Any]:
        values = {**self.overrides, **self.per_agent.get(agent, {})}
        if online:
            values.update(self.online_per_agent.get(agent, {}))
        return values


# Each agent's own code's defaults where they differ from AgentConfig's (applied before everything else).
AGENT_DEFAULTS: dict[str, Preset] = {
    "fd": Preset("fd", {"grad_clip": 5.0}, source=SRC_FD_AGENT, description="global-norm gradient clip 5.0"),
    "iso": Preset(
        "iso", {"grad_clip": 5.0}, source=SRC_DEFLOW_AGENT, description="global-norm gradient clip 5.0"
    ),
    "fql": Preset(
        "fql", {}, source=SRC_FQL_AGENT, description="no gradient clipping (AgentConfig's defaults)"
    ),
    "bcflow": Preset(
        "bcflow", {}, source=SRC_FQL_AGENT, description="FQL's flow and its BC loss (AgentConfig's defaults)"
    ),
}

_FD_LAGRANGE = {"lagrange": True, "alpha": 10.0}


def _ogbench(
    family: str, discount: float, q_agg: str, target: float, fql_alpha: float, fql_online: float | None
) -> Preset:
    fd = {**_FD_LAGRANGE, "target_divergence": target, "normalize_q_loss": True}
    return Preset(
        name=family,
        overrides={"discount": discount, "q_agg": q_agg},
        per_agent={"fd": fd, "iso": fd, "fql": {"alpha": fql_alpha, "normalize_q_loss": False}},
        online_per_agent={} if fql_online is None else {"fql": {"alpha": fql_online}},
        source=f"{SRC_FD}; FQL: {SRC_FQL}",
        description=f"OGBench {family} (state)",
    )


# OGBench state families: (family, discount, q_agg, FD target_divergence, FQL alpha, FQL offline-to-online
# alpha).  FD: METHOD.md section 9.  FQL: its README (offline and offline-to-online command lists).
_OGBENCH_ROWS = [
    ("antmaze-large-navigate", 0.99, "min", 0.01, 10.0, None),
    ("antmaze-giant-navigate", 0.995, "min", 0.01, 10.0, None),
    ("humanoidmaze-medium-navigate", 0.995, "mean", 0.001, 30.0, 100.0),
    ("humanoidmaze-large-navigate", 0.995, "mean", 0.001, 30.0, None),
    ("antsoccer-arena-navigate", 0.995, "mean", 0.01, 10.0, 30.0),
    ("cube-single-play", 0.99, "mean", 0.001, 300.0, None),
    ("cube-double-play", 0.99, "mean", 0.001, 300.0, 300.0),
    ("scene-play", 0.99, "mean", 0.001, 300.0, 300.0),
    ("puzzle-3x3-play", 0.99, "mean", 0.005, 1000.0, None),
    ("puzzle-4x4-play", 0.99, "mean", 0.005, 1000.0, 1000.0),
]

TASK_PRESETS: dict[str, Preset] = {row[0]: _ogbench(*row) for row in _OGBENCH_ROWS}

# Pixel tasks (task 1 of each family): the pixel FD target divergences (METHOD.md section 9) and FQL's
# pixel alphas (its README), IMPALA-style encoder.
for _family, _target, _pixel_fql_alpha in [
    ("cube-single-play", 0.001, 300.0),
    ("cube-double-play", 0.001, 100.0),
    ("scene-play", 0.001, 100.0),
    ("puzzle-3x3-play", 0.005, 300.0),
    ("puzzle-4x4-play", 0.005, 300.0),
]:
    _base = TASK_PRESETS[_family]
    _fd = {**_base.per_agent["fd"], "target_divergence": _target}
    TASK_PRESETS[f"visual-{_family}"] = Preset(
        name=f"visual-{_family}",
        overrides={**_base.overrides, "encoder.name": "impala"},
        per_agent={"fd": _fd, "iso": _fd, "fql": {"alpha": _pixel_fql_alpha, "normalize_q_loss": False}},
        source=_base.source,
        description=f"OGBench visual {_family} (IMPALA encoder, 3 stacked frames, random shift p = 0.5)",
    )

_FD_D4RL = {**_FD_LAGRANGE, "target_divergence": 0.001}
TASK_PRESETS["d4rl-antmaze"] = Preset(
    name="d4rl-antmaze",
    overrides={"discount": 0.99, "q_agg": "mean"},
    per_agent={"fd": _FD_D4RL, "iso": _FD_D4RL},
    source=f"{SRC_FD}; FQL: {SRC_FQL}",
    description="D4RL AntMaze (rewards r - 1); FQL's alpha is per dataset (TASK_OVERRIDES)",
)
TASK_PRESETS["d4rl-adroit"] = Preset(
    name="d4rl-adroit",
    overrides={"discount": 0.99, "q_agg": "min"},
    per_agent={"fd": _FD_D4RL, "iso": _FD_D4RL},
    source=f"{SRC_FD}; FQL: {SRC_FQL}",
    description="D4RL Adroit (clipped double Q); FQL's alpha is per dataset (TASK_OVERRIDES)",
)


def _fql_alpha(task: str, offline: float, online: float | None = None) -> Preset:
    return Preset(
        name=task,
        overrides={},
        per_agent={"fql": {"alpha": offline}},
        online_per_agent={} if online is None else {"fql": {"alpha": online}},
        source=SRC_FQL,
        description=f"FQL's alpha for {task}",
    )


# Per-dataset values on top of the family's: FQL's D4RL alphas (offline; offline-to-online where its
# README lists another value).
TASK_OVERRIDES: dict[str, Preset] = {
    p.name: p
    for p in [
        _fql_alpha("antmaze-umaze-v2", 10.0, 10.0),
        _fql_alpha("antmaze-umaze-diverse-v2", 10.0, 10.0),
        _fql_alpha("antmaze-medium-play-v2", 10.0, 10.0),
        _fql_alpha("antmaze-medium-diverse-v2", 10.0, 10.0),
        _fql_alpha("antmaze-large-play-v2", 3.0, 3.0),
        _fql_alpha("antmaze-large-diverse-v2", 3.0, 3.0),
        _fql_alpha("pen-human-v1", 10000.0),
        _fql_alpha("pen-cloned-v1", 10000.0, 1000.0),
        _fql_alpha("pen-expert-v1", 3000.0),
        _fql_alpha("door-human-v1", 30000.0),
        _fql_alpha("door-cloned-v1", 30000.0, 1000.0),
        _fql_alpha("door-expert-v1", 30000.0),
        _fql_alpha("hammer-human-v1", 30000.0),
        _fql_alpha("hammer-cloned-v1", 10000.0, 1000.0),
        _fql_alpha("hammer-expert-v1", 30000.0),
        _fql_alpha("relocate-human-v1", 10000.0),
        _fql_alpha("relocate-cloned-v1", 30000.0, 10000.0),
        _fql_alpha("relocate-expert-v1", 30000.0),
    ]
}

# Named presets the user can stack on top (``--preset NAME``).
NAMED_PRESETS: dict[str, Preset] = {
    "official": Preset(
        name="official",
        overrides={
            "fisher.estimator": "velocity",
            "fisher.t_eps": 0.95,
            "fisher.t_eps_max": None,
            "fisher.num_samples": 4,
            "fisher.damping": 1e-3,
            "fisher.reuse_base_sample": False,
            "clip_flow_actions": True,
        },
        per_agent={"fd": {"grad_clip": 5.0}, "iso": {"grad_clip": 5.0}},
        source=SRC_FD_AGENT,
        description="the official FD agent's defaults: v/(1-t) score at t = 0.95, M = 4 fresh samples, damping 1e-3",
    ),
    "official-grid": Preset(
        name="official-grid",
        overrides={
            "fisher.estimator": "velocity",
            "fisher.t_eps": 0.85,
            "fisher.t_eps_max": 0.90,
            "fisher.num_samples": 8,
            "fisher.damping": 1e-3,
            "fisher.reuse_base_sample": False,
            "clip_flow_actions": True,
        },
        per_agent={"fd": {"grad_clip": 5.0}, "iso": {"grad_clip": 5.0}},
        source="official FD grid scripts (run_*_grid_*.sh: fisher_t 0.90, width 0.05, 8 samples; METHOD.md section 9)",
        description="what the paper's runs used: v/(1-t), t ~ U[0.85, 0.90] per sample, M = 8, damping 1e-3",
    ),
    "paper-networks": Preset(
        name="paper-networks",
        overrides={
            "network.actor_hidden": (512,) * 4,
            "network.critic_hidden": (512,) * 4,
            "batch_size": 256,
        },
        source="METHOD.md section 5",
        description="4 x 512 MLPs, batch 256",
    ),
    "cpu-networks": Preset(
        name="cpu-networks",
        overrides={
            "network.actor_hidden": (256,) * 3,
            "network.critic_hidden": (256,) * 3,
            "batch_size": 256,
        },
        source="fidec (sized for 2 CPU cores)",
        description="3 x 256 MLPs, batch 256",
    ),
    "cpu-visual": Preset(
        name="cpu-visual",
        overrides={
            "encoder.name": "tiny",
            "network.actor_hidden": (64, 64),
            "network.critic_hidden": (64, 64),
            "batch_size": 32,
        },
        source="fidec (pixel smoke runs on 2 CPU cores)",
        description="tiny CNN encoder (2 stride-2 convs, 32 features), 2 x 64 MLPs, batch 32",
    ),
    "tiny-networks": Preset(
        name="tiny-networks",
        overrides={"network.actor_hidden": (32, 32), "network.critic_hidden": (32, 32), "batch_size": 32},
        source="fidec (tests and smoke runs)",
        description="2 x 32 MLPs, batch 32",
    ),
}


def task_family(env_name: str) -> str:
    """The preset family of a task or dataset name: 'cube-double-play-singletask-task2-v0' ->
    'cube-double-play', 'visual-scene-play-v0' -> 'visual-scene-play', 'antmaze-umaze-v2' -> 'd4rl-antmaze',
    'pen-human-v1' -> 'd4rl-adroit'; a name fidec cannot parse is returned unchanged (it has no preset)."""
    name = env_name.split("/")[-1]
    try:
        spec = parse_task(name)
    except UnknownTaskError:
        try:
            env, dtype, visual = parse_dataset_name(name)
        except UnknownTaskError:
            return name
        return f"{'visual-' if visual else ''}{env}-{dtype}"
    if spec.benchmark == "d4rl":
        return "d4rl-antmaze" if spec.is_antmaze else "d4rl-adroit"
    return f"{'visual-' if spec.visual else ''}{spec.family}"


def task_preset(env_name: str) -> Preset | None:
    """The preset of the task's family, or None when fidec has none for it."""
    return TASK_PRESETS.get(task_family(env_name))


def preset_names() -> list[str]:
    return sorted(NAMED_PRESETS) + sorted(TASK_PRESETS)


def get_preset(name: str) -> Preset:
    if name in NAMED_PRESETS:
        return NAMED_PRESETS[name]
    if name in TASK_PRESETS:
        return TASK_PRESETS[name]
    raise ConfigError(f"unknown preset {name!r}; available presets: {', '.join(preset_names())}")


def resolve_agent_config(
    agent: str,
    env_name: str | None = None,
    presets: Sequence[str] = (),
    overrides: Mapping[str, Any] | None = None,
    base: AgentConfig | None = None,
    online: bool = False,
) -> AgentConfig:
    """defaults -> the agent's own defaults (:data:`AGENT_DEFAULTS`; skipped when ``base`` is given) -> the
    task family's preset -> the task's own values (:data:`TASK_OVERRIDES`) -> named ``presets`` in order ->
    explicit ``overrides``.  ``online``: the run has an online phase (offline-to-online values apply)."""
    if base is None:
        config = apply_overrides(
            AgentConfig(), AGENT_DEFAULTS[agent].for_agent(agent) if agent in AGENT_DEFAULTS else {}
        )
    else:
        config = base
    if env_name is not None:
        name = env_name.split("/")[-1]
        for preset in (task_preset(name), TASK_OVERRIDES.get(name)):
            if preset is not None:
                config = apply_overrides(config, preset.for_agent(agent, online))
    for name in presets:
        config = apply_overrides(config, get_preset(name).for_agent(agent, online))
    return apply_overrides(config, overrides or {})
