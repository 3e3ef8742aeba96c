"""Presets as data: how an agent's config is resolved for a task, and the presets every agent shares.

Each agent module owns its per-task settings, as its authors ran them, with their sources
(:class:`~fidec.agents.base.AgentPresets`: task families, tasks, offline-to-online values, named presets
such as ``official``).  This module holds what every agent shares (the pixel tasks' encoder, the network
size presets) and the resolution order:

    the agent's config defaults (its own code's) -> shared task-family values -> the agent's task-family
    preset -> the agent's task preset -> its offline-to-online values (when the run has an online phase)
    -> named presets (``--preset``) -> explicit overrides

``fidec presets`` lists every preset with what it sets and its source; docs/parity.md compares every
setting with its source code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fidec.agents import REGISTRY, AgentConfig, get_spec
from fidec.agents.base import Preset
from fidec.config import ConfigError, apply_overrides, did_you_mean
from fidec.envs.registry import UnknownTaskError, parse_dataset_name, parse_task

# Values every agent takes for a task family: pixel tasks get the IMPALA-style encoder (FQL README's
# ``--agent.encoder=impala_small --p_aug=0.5 --frame_stack=3`` for every pixel command; frame stack 3 and
# p_aug 0.5 are the encoder's defaults).
_PIXEL = Preset(
    {"encoder.name": "impala"},
    "FQL README.md:176-184 (--agent.encoder=impala_small --p_aug=0.5 --frame_stack=3)",
    "pixel task: IMPALA-style encoder, 3 stacked frames, random shift p = 0.5",
)
SHARED_FAMILIES: dict[str, Preset] = {
    f"visual-{family}": _PIXEL
    for family in ("cube-single-play", "cube-double-play", "scene-play", "puzzle-3x3-play", "puzzle-4x4-play")
}

# Named presets that set only what every agent has (network sizes, batch, encoder): ``--preset NAME``.
NETWORK_PRESETS: dict[str, Preset] = {
    "paper-networks": Preset(
        {"network.actor_hidden": (512,) * 4, "network.critic_hidden": (512,) * 4, "batch_size": 256},
        "docs/method.md (the paper's networks)",
        "4 x 512 MLPs, batch 256",
    ),
    "cpu-networks": Preset(
        {"network.actor_hidden": (256,) * 3, "network.critic_hidden": (256,) * 3, "batch_size": 256},
        "fidec (sized for 2 CPU cores)",
        "3 x 256 MLPs, batch 256",
    ),
    "cpu-visual": Preset(
        {
            "encoder.name": "tiny",
            "network.actor_hidden": (64, 64),
            "network.critic_hidden": (64, 64),
            "batch_size": 32,
        },
        "fidec (pixel smoke runs on 2 CPU cores)",
        "tiny CNN encoder (2 stride-2 convs, 32 features), 2 x 64 MLPs, batch 32",
    ),
    "tiny-networks": Preset(
        {"network.actor_hidden": (32, 32), "network.critic_hidden": (32, 32), "batch_size": 32},
        "fidec (tests and smoke runs)",
        "2 x 32 MLPs, batch 32",
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


@dataclass(frozen=True)
class AppliedPreset:
    """One step of a resolution: which preset, what kind, and its values."""

    name: str
    kind: str
    preset: Preset


def task_presets(agent: str, env_name: str, online: bool = False) -> list[AppliedPreset]:
    """The presets a task brings for an agent, in the order they apply (see the module docstring)."""
    presets = get_spec(agent).presets
    name = env_name.split("/")[-1]
    family = task_family(name)
    steps = [
        ("shared family", family, SHARED_FAMILIES),
        ("family", family, presets.families),
        ("task", name, presets.tasks),
    ]
    if online:
        steps += [
            ("online family", family, presets.online_families),
            ("online task", name, presets.online_tasks),
        ]
    return [AppliedPreset(key, kind, table[key]) for kind, key, table in steps if key in table]


def named_preset_names(agent: str | None = None) -> list[str]:
    """``--preset`` names: the network presets and the agent's own named presets (every agent's if None)."""
    specs = [get_spec(agent)] if agent else list(REGISTRY.values())
    own = {name for spec in specs for name in spec.presets.named}
    return sorted(NETWORK_PRESETS) + sorted(own - set(NETWORK_PRESETS))


def preset_names(agent: str | None = None) -> list[str]:
    """Every name ``--preset`` accepts: named presets and task families (an agent's, or any agent's)."""
    specs = [get_spec(agent)] if agent else list(REGISTRY.values())
    families = {f for spec in specs for f in spec.presets.families} | set(SHARED_FAMILIES)
    return named_preset_names(agent) + sorted(families - set(named_preset_names(agent)))


def get_preset(name: str, agent: str) -> Preset:
    """The preset ``--preset NAME`` means for ``agent``: its own named preset, a network preset, or a task
    family's values (shared, then the agent's)."""
    spec = get_spec(agent)
    if name in spec.presets.named:
        return spec.presets.named[name]
    if name in NETWORK_PRESETS:
        return NETWORK_PRESETS[name]
    if name in spec.presets.families or name in SHARED_FAMILIES:
        values = {**_values(SHARED_FAMILIES.get(name)), **_values(spec.presets.families.get(name))}
        source = "; ".join(
            p.source for p in (SHARED_FAMILIES.get(name), spec.presets.families.get(name)) if p
        )
        return Preset(values, source, f"task family {name}")
    others = sorted(a for a, s in REGISTRY.items() if name in s.presets.named)
    where = f" (it is a preset of {', '.join(others)})" if others else ""
    raise ConfigError(
        f"unknown preset {name!r} for agent {agent!r}{where}{did_you_mean(name, preset_names(agent))}; "
        f"its presets: {', '.join(preset_names(agent))}"
    )


def _values(preset: Preset | None) -> Mapping[str, Any]:
    return preset.values if preset is not None else {}


def resolve_agent_config(
    agent: str,
    env_name: str | None = None,
    presets: Sequence[str] = (),
    overrides: Mapping[str, Any] | None = None,
    base: AgentConfig | None = None,
    online: bool = False,
) -> AgentConfig:
    """The agent's config: defaults (or ``base``) -> the task's presets (when ``env_name`` is given) -> named
    ``presets`` in order -> explicit ``overrides``.  ``online``: the run has an online phase."""
    config = base if base is not None else get_spec(agent).config()
    if env_name is not None:
        for step in task_presets(agent, env_name, online):
            config = apply_overrides(config, step.preset.values)
    for name in presets:
        config = apply_overrides(config, get_preset(name, agent).values)
    return apply_overrides(config, overrides or {})


def describe(agent: str | None = None) -> Iterator[tuple[str, str, str, str, str]]:
    """(agent, name, kind, what it sets, description and source) of every preset, for ``fidec presets``."""
    for name, preset in NETWORK_PRESETS.items():
        yield ("every agent", name, "named (--preset)", _setting_text(preset.values), _about(preset))
    for family, preset in SHARED_FAMILIES.items():
        yield (
            "every agent",
            family,
            "task family (from --env)",
            _setting_text(preset.values),
            _about(preset),
        )
    specs = [get_spec(agent)] if agent else list(REGISTRY.values())
    for spec in specs:
        kinds = [
            ("named (--preset)", spec.presets.named),
            ("task family (from --env)", spec.presets.families),
            ("task (from --env)", spec.presets.tasks),
            ("offline-to-online family", spec.presets.online_families),
            ("offline-to-online task", spec.presets.online_tasks),
        ]
        for kind, table in kinds:
            for name, preset in table.items():
                yield (spec.name, name, kind, _setting_text(preset.values), _about(preset))


def _setting_text(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "-"


def _about(preset: Preset) -> str:
    return f"{preset.description} [{preset.source}]" if preset.description else f"[{preset.source}]"
