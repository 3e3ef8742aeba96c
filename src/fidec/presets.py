"""Per-task hyperparameter presets, as data, with where each value comes from.

A preset is a set of dotted overrides of :class:`fidec.agents.AgentConfig`, applied on top of the
defaults; some values differ by agent (FQL's alpha is a distillation weight, FD's an initial
Lagrange multiplier).  Resolution order: defaults -> task-family preset -> named presets the user
asks for -> explicit overrides.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fidec.agents.config import AgentConfig
from fidec.config import ConfigError, apply_overrides

SRC_FD = "official FD per-task flags (METHOD.md section 9)"
SRC_FQL = "FQL paper (Park et al., 2025), per-environment alpha (appendix hyperparameter table)"


@dataclass(frozen=True)
class Preset:
    """Dotted AgentConfig overrides for every agent, plus per-agent ones, and their source."""

    name: str
    overrides: Mapping[str, Any]
    per_agent: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    source: str = ""
    description: str = ""

    def for_agent(self, agent: str) -> dict[str, Any]:
        return {**self.overrides, **self.per_agent.get(agent, {})}


def _ogbench(family: str, discount: float, q_agg: str, target: float, fql_alpha: float) -> Preset:
    return Preset(
        name=family,
        overrides={"discount": discount, "q_agg": q_agg, "normalize_q_loss": True},
        per_agent={
            "fd": {"lagrange": True, "alpha": 10.0, "target_divergence": target},
            "iso": {"lagrange": True, "alpha": 10.0, "target_divergence": target},
            "fql": {"alpha": fql_alpha},
        },
        source=f"{SRC_FD}; FQL alpha: {SRC_FQL}",
        description=f"OGBench {family} (state)",
    )


# OGBench state families (METHOD.md section 9 table).
_OGBENCH_ROWS = [
    ("antmaze-large-navigate", 0.99, "min", 0.01, 10.0),
    ("antmaze-giant-navigate", 0.995, "min", 0.01, 10.0),
    ("humanoidmaze-medium-navigate", 0.995, "mean", 0.001, 30.0),
    ("humanoidmaze-large-navigate", 0.995, "mean", 0.001, 30.0),
    ("antsoccer-arena-navigate", 0.995, "mean", 0.01, 10.0),
    ("cube-single-play", 0.99, "mean", 0.001, 300.0),
    ("cube-double-play", 0.99, "mean", 0.001, 300.0),
    ("scene-play", 0.99, "mean", 0.001, 300.0),
    ("puzzle-3x3-play", 0.99, "mean", 0.005, 1000.0),
    ("puzzle-4x4-play", 0.99, "mean", 0.005, 1000.0),
]

TASK_PRESETS: dict[str, Preset] = {row[0]: _ogbench(*row) for row in _OGBENCH_ROWS}

# Pixel tasks: same families, the pixel target divergences (METHOD.md section 9).
for _family, _target in [
    ("cube-single-play", 0.001),
    ("cube-double-play", 0.001),
    ("scene-play", 0.001),
    ("puzzle-3x3-play", 0.005),
    ("puzzle-4x4-play", 0.005),
]:
    _base = TASK_PRESETS[_family]
    TASK_PRESETS[f"visual-{_family}"] = Preset(
        name=f"visual-{_family}",
        overrides={**_base.overrides, "encoder.name": "impala"},
        per_agent={
            **_base.per_agent,
            "fd": {**_base.per_agent["fd"], "target_divergence": _target},
            "iso": {**_base.per_agent["iso"], "target_divergence": _target},
        },
        source=_base.source,
        description=f"OGBench visual {_family} (IMPALA encoder, 3 stacked frames, random shift p = 0.5)",
    )

TASK_PRESETS["d4rl-antmaze"] = Preset(
    name="d4rl-antmaze",
    overrides={"discount": 0.99, "q_agg": "min"},
    per_agent={
        "fd": {"lagrange": True, "alpha": 10.0, "target_divergence": 0.001},
        "iso": {"lagrange": True, "alpha": 10.0, "target_divergence": 0.001},
        "fql": {"alpha": 10.0},
    },
    source=f"{SRC_FD}; FQL alpha: {SRC_FQL}",
    description="D4RL AntMaze (rewards r - 1)",
)
TASK_PRESETS["d4rl-adroit"] = Preset(
    name="d4rl-adroit",
    overrides={"discount": 0.99, "q_agg": "min"},
    per_agent={
        "fd": {"lagrange": True, "alpha": 10.0, "target_divergence": 0.001},
        "iso": {"lagrange": True, "alpha": 10.0, "target_divergence": 0.001},
    },
    source=SRC_FD,
    description="D4RL Adroit (no per-task FQL alpha is shipped: tune agent.alpha for fql)",
)

# Named presets the user can stack on top (``--preset NAME``).
NAMED_PRESETS: dict[str, Preset] = {
    "official-fisher": Preset(
        name="official-fisher",
        overrides={
            "fisher.estimator": "velocity",
            "fisher.t_eps": 0.85,
            "fisher.t_eps_max": 0.90,
            "fisher.num_samples": 8,
            "fisher.damping": 1e-3,
        },
        source="official FD grid scripts (METHOD.md section 9)",
        description="the Fisher settings that produced the paper's runs (v/(1-t), t ~ U[0.85, 0.90], M = 8)",
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
    """'cube-double-play-singletask-task2-v0' -> 'cube-double-play'; 'antmaze-umaze-v2' -> 'd4rl-antmaze'."""
    name = env_name.split("/")[-1]
    visual = name.startswith("visual-")
    base = name.removeprefix("visual-")
    base = re.sub(r"-singletask(-task\d+)?-v\d+$", "", base)
    base = re.sub(r"-v\d+$", "", base)
    if visual:
        return f"visual-{base}"
    if base.startswith("antmaze-") and any(
        s in base for s in ("umaze", "medium-play", "medium-diverse", "large-play", "large-diverse")
    ):
        return "d4rl-antmaze"
    if re.match(r"^(pen|door|hammer|relocate)-(human|cloned|expert)$", base):
        return "d4rl-adroit"
    return base


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
) -> AgentConfig:
    """defaults -> the task family's preset -> named ``presets`` in order -> explicit ``overrides``."""
    config = base or AgentConfig()
    if env_name is not None and (family := task_preset(env_name)) is not None:
        config = apply_overrides(config, family.for_agent(agent))
    for name in presets:
        config = apply_overrides(config, get_preset(name).for_agent(agent))
    return apply_overrides(config, overrides or {})
