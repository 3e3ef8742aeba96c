"""The run configuration: one typed dataclass nesting the agent's, with scale presets as data.

Resolution order of :func:`make_train_config` (each step a set of dotted overrides):

    the agent's config defaults (its own code's) -> task-family and task presets (from ``env``;
        offline-to-online values when ``online_steps`` > 0) -> the scale's agent presets
        -> the scale's values (run keys, and the ``agent.*`` keys the agent has) -> the scale's pixel presets
        (``visual-`` tasks) -> named agent presets (``--preset``) -> explicit overrides (run and ``agent.*`` keys)

``TrainConfig()`` is the built-in main job: FD on cube-single-play-singletask-task1-v0 at the ``cpu``
scale.  Build other runs with :func:`make_train_config` so that the agent's task preset follows the
environment (constructing ``TrainConfig(env=...)`` directly keeps the agent config you pass).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from fidec.agents import ACTION_MODES, AgentConfig, agent_names, default_config, get_spec
from fidec.config import (
    ConfigError,
    all_keys,
    apply_overrides,
    check_finite_fields,
    field_descriptions,
    flatten,
    format_value,
    from_dict,
    type_name,
)
from fidec.presets import preset_names, resolve_agent_config

DEFAULT_AGENT = "fd"
DEFAULT_ENV = "cube-single-play-singletask-task1-v0"
DEFAULT_SCALE = "cpu"
WANDB_MODES = ("offline", "online", "disabled")
ACTION_POLICIES = ("refuse", "clip", "rescale")
# Keys that choose presets: they are set by make_train_config, never by a plain override.
PRESET_KEYS = ("agent_name", "env", "scale", "presets")


@dataclass(frozen=True)
class ScalePreset:
    """How long and how big a run is: dotted TrainConfig overrides plus named agent presets."""

    name: str
    description: str
    overrides: Mapping[str, Any]
    agent_presets: tuple[str, ...] = ()
    pixel_agent_presets: tuple[str, ...] = ()  # also applied for pixel tasks (visual-...)


SCALES: dict[str, ScalePreset] = {
    "tiny": ScalePreset(
        name="tiny",
        description="tests and smoke runs: 2 x 32 networks, 100 steps, 2 evaluation episodes, 10 generated episodes",
        overrides={
            "dataset_episodes": 10,
            "steps": 100,
            "log_interval": 25,
            "eval_interval": 50,
            "save_interval": 50,
            "eval_episodes": 2,
            "replay_capacity": 10_000,
            "agent.flow_steps": 3,
            "agent.fisher.num_samples": 2,
        },
        agent_presets=("tiny-networks",),
        pixel_agent_presets=("cpu-visual",),
    ),
    "cpu": ScalePreset(
        name="cpu",
        description=(
            "the built-in main job on 2 CPU cores (README: measured time and score): 2 x 256 networks, "
            "batch 128, 20k steps, evaluation every 2k steps over 20 episodes (the last three at 80-100% of "
            "training), 100 generated episodes (100k transitions) for generated OGBench datasets"
        ),
        overrides={
            "dataset_episodes": 100,
            "steps": 20_000,
            "log_interval": 1_000,
            "eval_interval": 2_000,
            "save_interval": 5_000,
            "eval_episodes": 20,
            "replay_capacity": 1_000_000,
            "agent.network.actor_hidden": (256, 256),
            "agent.network.critic_hidden": (256, 256),
            "agent.batch_size": 128,
        },
        # IMPALA encoders run at ~0.01-0.1 updates/s on a CPU (docs/pixels.md): the tiny CNN instead.
        pixel_agent_presets=("cpu-visual",),
    ),
    "paper": ScalePreset(
        name="paper",
        description=(
            "the paper's protocol: each agent's own networks (4 x 512, batch 256; IQL 4 x 256 on state "
            "manipulation tasks), 1M steps, eval every 100k steps over 50 episodes, log every 5k, replay "
            "buffer 2M, official dataset sizes"
        ),
        overrides={
            "dataset_episodes": None,
            "steps": 1_000_000,
            "log_interval": 5_000,
            "eval_interval": 100_000,
            "save_interval": 100_000,
            "eval_episodes": 50,
            "replay_capacity": 2_000_000,
        },
    ),
}


def scale_overrides(scale: ScalePreset, agent: AgentConfig) -> dict[str, Any]:
    """The scale's overrides for a run of this agent: its run keys, and those of its ``agent.*`` keys the agent's
    config has (the ``tiny`` scale's ``agent.flow_steps`` reaches the flow agents, ``agent.fisher.num_samples``
    FD only)."""
    keys = set(all_keys(agent))
    return {
        k: v for k, v in scale.overrides.items() if not k.startswith("agent.") or k[len("agent.") :] in keys
    }


def pixel_presets(scale: ScalePreset, env: str) -> tuple[str, ...]:
    """The scale's pixel agent presets for a ``visual-`` task (after the scale's own values), else none."""
    return scale.pixel_agent_presets if env.split("/")[-1].startswith("visual-") else ()


def _main_job_agent() -> AgentConfig:
    scale = SCALES[DEFAULT_SCALE]
    agent_overrides = {k[len("agent.") :]: v for k, v in scale.overrides.items() if k.startswith("agent.")}
    return resolve_agent_config(DEFAULT_AGENT, DEFAULT_ENV, scale.agent_presets, agent_overrides)


def _main_job(key: str) -> Any:
    return SCALES[DEFAULT_SCALE].overrides[key]


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs; saved as ``config.json`` in the run directory.

    Attributes:
        agent_name: the agent (``fidec agents`` lists them).
        env: task name (OGBench single-task or D4RL), e.g. cube-single-play-singletask-task1-v0.
        agent: the agent's hyperparameters (already resolved with the task and named presets).
        scale: the scale preset the run was built from (recorded; see ``SCALES``).
        presets: named agent presets applied (recorded; ``fidec presets`` lists them).
        dataset: path to a dataset file (overrides the task's default location).
        dataset_dir: folder holding official dataset files.
        generate_dataset: generate an OGBench manipulation dataset locally when it is missing (cached).
        dataset_episodes: episodes to generate (None: the data layer's default).
        action_policy: what loading does with dataset actions outside [-1, 1]: "refuse" (the default: an
            error that names the file and the range found), "clip" them to the box, or "rescale" the data's
            range onto it.
        action_clip_eps: clip the dataset's actions to [-1 + eps, 1 - eps] before training, as the official FD
            and FQL code do (``action_clip_eps`` of their ``make_env_and_datasets``); None keeps them.
        seeds: seeds trained together; each has its own parameters, RNG and sampler key.
        vmap_seeds: train several seeds in one vmapped program (True) or one after another per block (False);
            None: fidec's rule for the backend (:func:`fidec.training.seeds.vmap_by_default`: sequential on a
            CPU, where vmapped seeds are slower per seed, vmapped on accelerators).
        steps: offline gradient steps.
        online_steps: environment steps (one update each) after the offline phase (0: offline only).
        log_interval: steps per fused block; train metrics (block means) are written once per block.
        eval_interval: steps between evaluations (multiple of log_interval; 0: only at the end).
        save_interval: steps between checkpoints (multiple of log_interval; 0: only at the end).
        keep_checkpoints: checkpoints kept on disk (the newest ones).
        eval_episodes: episodes per evaluation (0: no evaluation).
        eval_action_mode: action selection at evaluation (None: ``agent.action_mode``).
        eval_num_envs: vectorised environments per evaluation (None: the environment layer's choice).
        replay_capacity: online replay buffer size (at least the dataset size; FQL-style, seeded by it).
        run_dir: output folder (None: runs/<agent>-<env>-<time>).
        progress: show a live progress bar.
        tensorboard: also write TensorBoard event files (needs tensorboardX).
        wandb: also log to Weights & Biases (needs wandb; off by default).
        wandb_project: wandb project name.
        wandb_mode: "offline" (default: no network), "online" or "disabled".
    """

    agent_name: str = DEFAULT_AGENT
    env: str = DEFAULT_ENV
    agent: AgentConfig = field(default_factory=_main_job_agent)
    scale: str = DEFAULT_SCALE
    presets: tuple[str, ...] = ()
    dataset: str | None = None
    dataset_dir: str | None = None
    generate_dataset: bool = True
    dataset_episodes: int | None = field(default_factory=lambda: _main_job("dataset_episodes"))
    action_policy: Literal["refuse", "clip", "rescale"] = "refuse"
    action_clip_eps: float | None = 1e-5
    seeds: tuple[int, ...] = (0,)
    vmap_seeds: bool | None = None
    steps: int = field(default_factory=lambda: _main_job("steps"))
    online_steps: int = 0
    log_interval: int = field(default_factory=lambda: _main_job("log_interval"))
    eval_interval: int = field(default_factory=lambda: _main_job("eval_interval"))
    save_interval: int = field(default_factory=lambda: _main_job("save_interval"))
    keep_checkpoints: int = 3
    eval_episodes: int = field(default_factory=lambda: _main_job("eval_episodes"))
    eval_action_mode: str | None = None
    eval_num_envs: int | None = None
    replay_capacity: int = field(default_factory=lambda: _main_job("replay_capacity"))
    run_dir: str | None = None
    progress: bool = True
    tensorboard: bool = False
    wandb: bool = False
    wandb_project: str = "fidec"
    wandb_mode: Literal["offline", "online", "disabled"] = "offline"

    def __post_init__(self) -> None:
        check_finite_fields(self)
        checks = [
            (
                self.agent_name in agent_names(),
                f"unknown agent {self.agent_name!r}; available: {agent_names()}",
            ),
            (self.scale in SCALES, f"unknown scale {self.scale!r}; available scales: {list(SCALES)}"),
            (len(self.seeds) >= 1, "seeds must hold at least one seed"),
            (len(set(self.seeds)) == len(self.seeds), f"seeds must be distinct, got {self.seeds}"),
            (all(s >= 0 for s in self.seeds), f"seeds must be >= 0, got {self.seeds}"),
            (self.steps >= 0, f"steps must be >= 0, got {self.steps}"),
            (self.online_steps >= 0, f"online_steps must be >= 0, got {self.online_steps}"),
            (self.log_interval >= 1, f"log_interval must be >= 1, got {self.log_interval}"),
            (self.eval_interval >= 0, f"eval_interval must be >= 0, got {self.eval_interval}"),
            (self.save_interval >= 0, f"save_interval must be >= 0, got {self.save_interval}"),
            (self.keep_checkpoints >= 1, f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}"),
            (self.eval_episodes >= 0, f"eval_episodes must be >= 0, got {self.eval_episodes}"),
            (
                self.eval_action_mode is None or self.eval_action_mode in ACTION_MODES,
                f"eval_action_mode must be one of {ACTION_MODES} (or none), got {self.eval_action_mode!r}",
            ),
            (
                self.agent_name not in agent_names()
                or isinstance(self.agent, get_spec(self.agent_name).config),
                f"agent {self.agent_name!r} takes a {_config_name(self.agent_name)}, got a "
                f"{type(self.agent).__name__}: resolve it with make_train_config",
            ),
            (self.eval_num_envs is None or self.eval_num_envs >= 1, "eval_num_envs must be >= 1 or none"),
            (self.replay_capacity >= 1, f"replay_capacity must be >= 1, got {self.replay_capacity}"),
            (
                self.wandb_mode in WANDB_MODES,
                f"wandb_mode must be one of {WANDB_MODES}, got {self.wandb_mode!r}",
            ),
            (
                self.action_policy in ACTION_POLICIES,
                f"action_policy must be one of {ACTION_POLICIES}, got {self.action_policy!r}",
            ),
            (
                self.action_clip_eps is None or 0.0 <= self.action_clip_eps < 1.0,
                f"action_clip_eps must lie in [0, 1) or be none, got {self.action_clip_eps}",
            ),
            (
                self.dataset_episodes is None or self.dataset_episodes >= 1,
                f"dataset_episodes must be >= 1 or none, got {self.dataset_episodes}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def total_steps(self) -> int:
        return self.steps + self.online_steps

    @property
    def action_mode(self) -> str:
        """The action-selection mode used at evaluation."""
        return self.eval_action_mode or self.agent.action_mode


def _config_name(agent: str) -> str:
    return get_spec(agent).config.__name__ if agent in agent_names() else "?"


def train_config_from_dict(data: Any) -> TrainConfig:
    """A :class:`TrainConfig` from a plain table (``config.json``): the ``agent`` section is read as the config
    of ``agent_name``'s own class (its defaults, then the keys given)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a table of run settings, got {data!r}")
    name = data.get("agent_name", DEFAULT_AGENT)
    if name not in agent_names():
        raise ConfigError(f"unknown agent {name!r}; available agents: {', '.join(agent_names())}")
    agent_table = data.get("agent", {})
    if not isinstance(agent_table, Mapping):
        raise ConfigError(f"config key 'agent': expected a table of the agent's keys, got {agent_table!r}")
    agent = apply_overrides(default_config(name), flatten(agent_table), "agent.")
    rest = {k: v for k, v in data.items() if k not in ("agent", "agent_name")}
    return dataclasses.replace(from_dict(TrainConfig, rest), agent_name=name, agent=agent)


def check_consistency(config: TrainConfig) -> TrainConfig:
    """Checks that involve several fields (single fields are checked on construction)."""
    modes = get_spec(config.agent_name).modes
    if config.action_mode not in modes:
        raise ConfigError(
            f"agent {config.agent_name!r} acts with the modes {list(modes)}, not {config.action_mode!r}: "
            "set eval_action_mode (or agent.action_mode) to one of them"
        )
    if config.online_steps and get_spec(config.agent_name).online_mode is None:
        raise ConfigError(f"agent {config.agent_name!r} cannot run an online phase; set online_steps to 0")
    if config.total_steps == 0:
        raise ConfigError("steps + online_steps is 0: nothing to train. Set --steps or --online-steps.")
    for name in ("eval_interval", "save_interval"):
        value = getattr(config, name)
        if value % config.log_interval:
            raise ConfigError(
                f"{name} ({value}) must be a multiple of log_interval ({config.log_interval}): updates run in "
                f"fused blocks of log_interval steps and evaluations/checkpoints happen between blocks."
            )
    return config


def split_presets(names: Sequence[str]) -> tuple[str | None, tuple[str, ...]]:
    """Separate a scale preset (at most one) from named agent presets; unknown names list the valid ones."""
    scales = [n for n in names if n in SCALES]
    unknown = [n for n in names if n not in SCALES and n not in preset_names()]
    if unknown:
        raise ConfigError(
            f"unknown preset(s) {unknown}; scale presets: {', '.join(SCALES)}; "
            f"agent presets: {', '.join(preset_names())}"
        )
    if len(scales) > 1:
        raise ConfigError(f"give at most one scale preset, got {scales}")
    return (scales[0] if scales else None), tuple(n for n in names if n not in SCALES)


def make_train_config(
    agent: str = DEFAULT_AGENT,
    env: str = DEFAULT_ENV,
    scale: str | None = None,
    presets: Sequence[str] = (),
    overrides: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Resolve a run's config (see the module docstring for the order).

    ``presets`` may name one scale preset (``tiny``, ``cpu``, ``paper``) and any agent presets;
    ``overrides`` are dotted TrainConfig keys, ``agent.*`` ones reaching the agent config.
    """
    if agent not in agent_names():
        raise ConfigError(f"unknown agent {agent!r}; available agents: {', '.join(agent_names())}")
    preset_scale, agent_presets = split_presets(presets)
    if scale is not None and preset_scale is not None and scale != preset_scale:
        raise ConfigError(f"two scale presets given: {scale!r} and {preset_scale!r}")
    scale = scale or preset_scale or DEFAULT_SCALE
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; available scales: {', '.join(SCALES)}")
    overrides = dict(overrides or {})
    blocked = [k for k in overrides if k.split(".")[0] in PRESET_KEYS]
    if blocked:
        raise ConfigError(f"{blocked} choose presets: pass them as arguments (--agent, --env, --preset)")
    if "agent" in overrides:
        raise ConfigError("override agent settings with dotted keys, e.g. agent.lr=1e-4")
    scale_preset = SCALES[scale]
    online = int(overrides.get("online_steps", scale_preset.overrides.get("online_steps", 0)) or 0) > 0
    agent_config = resolve_agent_config(agent, env, scale_preset.agent_presets, online=online)
    config = TrainConfig(agent_name=agent, env=env, agent=agent_config, scale=scale, presets=agent_presets)
    config = apply_overrides(config, scale_overrides(scale_preset, agent_config))
    named = resolve_agent_config(
        agent, None, pixel_presets(scale_preset, env) + agent_presets, base=config.agent, online=online
    )
    # The user's overrides as full dotted keys, so that errors name the key as it was typed.
    config = apply_overrides(dataclasses.replace(config, agent=named), overrides)
    return check_consistency(config)


def config_keys() -> list[str]:
    """Every dotted key a run can override (for ``--help`` and error messages)."""
    return [k for k in all_keys(TrainConfig()) if k not in PRESET_KEYS]


def describe_config(config: TrainConfig) -> list[tuple[str, str, str, str]]:
    """(dotted key, type or allowed values, value, one-line description) of every key ``--set`` accepts,
    in declaration order (the keys that choose presets -- agent, env, scale, presets -- are left out:
    they are ``--agent``, ``--env`` and ``--preset``)."""
    rows: list[tuple[str, str, str, str]] = []

    def walk(obj: Any, prefix: str) -> None:
        hints = typing.get_type_hints(type(obj))
        descriptions = field_descriptions(type(obj))
        for f in dataclasses.fields(obj):
            if not prefix and f.name in PRESET_KEYS:
                continue
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            else:
                rows.append(
                    (
                        f"{prefix}{f.name}",
                        type_name(hints[f.name]),
                        format_value(value),
                        descriptions.get(f.name, ""),
                    )
                )

    walk(config, "")
    return rows
