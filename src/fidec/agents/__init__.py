"""Agents: one module per method, and the registry, the one list of agents.

Each agent module (``fd``, ``iso``, ``fql``, ``bcflow``, ``iql``, ``rebrac``, ``ifql``) holds its config
dataclass, networks, losses, update, action selection and presets, and declares them in its ``SPEC``
(:class:`~fidec.agents.base.AgentSpec`).  Adding an agent is one module and one line in :data:`REGISTRY`.

    agent = make_agent("fd", default_config("fd"), obs_dim=28, action_dim=5)
    state = agent.init(jax.random.PRNGKey(0))
    state, metrics = agent.update(state, batch)                  # jitted, pure
    actions = agent.sample_actions(state, observations, key)     # jitted; mode from the config or argument
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jax

from fidec.agents import bcflow, fd, fql, ifql, iql, iso, rebrac
from fidec.agents.base import AgentConfig, AgentSpec, Draw, sample_draws
from fidec.agents.common import AgentState, Networks, apply_gradients, check_batch, prepare_batch

REGISTRY: dict[str, AgentSpec] = {
    spec.name: spec for spec in (fd.SPEC, iso.SPEC, fql.SPEC, bcflow.SPEC, iql.SPEC, rebrac.SPEC, ifql.SPEC)
}
# Every action-selection mode some agent has (each agent's own are ``REGISTRY[name].modes``).
ACTION_MODES: tuple[str, ...] = tuple(dict.fromkeys(m for spec in REGISTRY.values() for m in spec.modes))


class UnknownAgentError(ValueError):
    """An agent name that is not in the registry."""


def agent_names() -> list[str]:
    return list(REGISTRY)


def get_spec(name: str) -> AgentSpec:
    """The registered agent ``name``; a clear error listing the agents otherwise."""
    if name not in REGISTRY:
        raise UnknownAgentError(f"unknown agent {name!r}; available agents: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def default_config(name: str) -> AgentConfig:
    """Agent ``name``'s config with its own code's defaults."""
    return get_spec(name).config()


def agent_input_shape(config: AgentConfig, obs_dim: int | tuple[int, ...]) -> int | tuple[int, ...]:
    """What the networks take per sample: ``obs_dim`` for states; (H, W, C * frame_stack) for frames (H, W, C)."""
    pixels = config.encoder.pixels
    if isinstance(obs_dim, tuple | list) and pixels:
        if len(obs_dim) != 3 or min(obs_dim) < 1:
            raise ValueError(f"pixel observations need the frame shape (H, W, C), got {tuple(obs_dim)}")
        h, w, c = (int(v) for v in obs_dim)
        return (h, w, c * config.encoder.frame_stack)
    if pixels:
        raise ValueError(
            f"agent.encoder.name={config.encoder.name!r} needs pixel observations: pass the frame shape (H, W, C) "
            f"as obs_dim, not {obs_dim!r} (a visual dataset's obs_dim is that shape)"
        )
    if isinstance(obs_dim, tuple | list):
        raise ValueError(
            f"observations of shape {tuple(obs_dim)} need a pixel encoder: set agent.encoder.name to 'impala' "
            "or 'tiny' (or pass a flat obs_dim for state vectors)"
        )
    if obs_dim < 1:
        raise ValueError(f"obs_dim must be >= 1, got {obs_dim}")
    return obs_dim


def update_step(spec: AgentSpec, config: AgentConfig, networks: Networks, state: AgentState, batch: dict):
    """One update: (pixel agents: augment the batch,) draw the update's random numbers from the state's rng,
    then ``spec.update_with_draws``.  Pure; (state, batch) -> (state, metrics)."""
    state, batch = prepare_batch(config, state, batch)
    rng, key = jax.random.split(state.rng)
    b, d = batch["actions"].shape
    draws = sample_draws(spec.update_draws(config, b, d), key, batch["actions"].dtype)
    return update_with_draws(spec, config, networks, state.replace(rng=rng), batch, draws)


def update_with_draws(
    spec: AgentSpec, config: AgentConfig, networks: Networks, state: AgentState, batch, draws
):
    """The agent's gradients from the given draws, one optimiser step, and the target update when due."""
    grads, info = spec.gradients(config, networks, state, batch, draws)
    due = True if spec.targets_due is None else spec.targets_due(config, state.step)
    return apply_gradients(config, state, grads, update_targets=due), info


def act_step(spec: AgentSpec, config: AgentConfig, networks: Networks, state, observations, key, mode: str):
    """Actions for a batch of observations: the mode's draws from ``key``, then ``spec.act``.  Pure."""
    draws = sample_draws(spec.action_draws(config, observations.shape[0], networks.action_dim, mode), key)
    return spec.act(config, networks, state, observations, draws, mode)


@dataclass(frozen=True)
class Agent:
    """An agent bound to its config and dimensions; its functions are pure and jitted."""

    spec: AgentSpec
    config: AgentConfig
    obs_dim: int | tuple[int, ...]
    action_dim: int
    networks: Networks
    _update: Callable = field(repr=False)
    _sample: Callable = field(repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def modes(self) -> tuple[str, ...]:
        return self.spec.modes

    def init(self, key: jax.Array) -> AgentState:
        """Fresh state (parameters, targets, optimiser state, RNG, step 0)."""
        return self.spec.init(self.config, self.networks, key, self.obs_dim, self.action_dim)

    def update(self, state: AgentState, batch: dict) -> tuple[AgentState, dict]:
        """(state, batch) -> (state, metrics): one jitted gradient step."""
        check_batch(batch, self.spec.batch_keys, self.obs_dim, self.action_dim)
        return self._update(state, batch)

    @property
    def update_fn(self) -> Callable:
        """The raw pure update (unjitted), for composing inside scans and vmaps."""
        return partial(update_step, self.spec, self.config, self.networks)

    def update_draws(self, batch_size: int) -> dict[str, Draw]:
        """The named random draws of one update (see :class:`~fidec.agents.base.Draw`)."""
        return dict(self.spec.update_draws(self.config, batch_size, self.action_dim))

    def update_with_draws(self, state: AgentState, batch: dict, draws: dict[str, Any]):
        """One update from given draws (unjitted; state agents: the state's rng is not advanced)."""
        return update_with_draws(self.spec, self.config, self.networks, state, batch, draws)

    def check_mode(self, mode: str | None) -> str:
        mode = mode or self.config.action_mode
        if mode not in self.modes:
            raise ValueError(f"agent {self.name!r} supports action modes {list(self.modes)}, not {mode!r}")
        return mode

    def sample_actions(
        self, state: AgentState, observations: jax.Array, key: jax.Array, mode: str | None = None
    ):
        """Actions in [-1, 1]^d for a batch of observations (B, obs_dim) with the given action-selection mode."""
        mode = self.check_mode(mode)
        if isinstance(self.obs_dim, tuple) and tuple(observations.shape[1:]) != self.obs_dim:
            raise ValueError(
                f"observations have shape {tuple(observations.shape[1:])} per sample; this pixel agent takes "
                f"{self.obs_dim} ({self.config.encoder.frame_stack} stacked frames): wrap the environments "
                "with fidec.envs.frame_stack.stack_frames(envs, agent.config.encoder.frame_stack)"
            )
        return self._sample(state, observations, key, mode)

    def sample_actions_fn(self, mode: str | None = None) -> Callable:
        """Pure (state, observations, key) -> actions, for composing inside vmaps."""
        mode = self.check_mode(mode)
        return partial(act_step, self.spec, self.config, self.networks, mode=mode)

    def action_draws(self, batch_size: int, mode: str | None = None) -> dict[str, Draw]:
        return dict(self.spec.action_draws(self.config, batch_size, self.action_dim, self.check_mode(mode)))

    def act_with_draws(self, state: AgentState, observations, draws: dict[str, Any], mode: str | None = None):
        """Actions from given draws (unjitted)."""
        return self.spec.act(self.config, self.networks, state, observations, draws, self.check_mode(mode))


def make_agent(name: str, config: AgentConfig, obs_dim: int | tuple[int, ...], action_dim: int) -> Agent:
    """Build agent ``name`` for the given observation/action sizes; ``config`` must be its config class.

    ``obs_dim``: the state size, or, with a pixel encoder, the shape (H, W, C) of one frame; the agent then
    takes ``frame_stack`` frames stacked on the channel axis (its ``obs_dim`` is (H, W, C k)).
    """
    spec = get_spec(name)
    if not isinstance(config, spec.config):
        raise ValueError(
            f"agent {name!r} takes a {spec.config.__name__}, got a {type(config).__name__}: "
            f"build it with fidec.agents.default_config({name!r}) or fidec.presets.resolve_agent_config"
        )
    if action_dim < 1:
        raise ValueError(f"obs_dim and action_dim must be >= 1, got {obs_dim} and {action_dim}")
    obs_dim = agent_input_shape(config, obs_dim)
    if config.action_mode not in spec.modes:
        raise ValueError(
            f"agent {name!r} supports action modes {list(spec.modes)}, not action_mode={config.action_mode!r}; "
            f"set agent.action_mode to one of them"
        )
    networks = spec.build(config, action_dim)
    update = jax.jit(partial(update_step, spec, config, networks))
    sample = jax.jit(
        lambda state, obs, key, mode: act_step(spec, config, networks, state, obs, key, mode),
        static_argnums=3,
    )
    return Agent(spec, config, obs_dim, action_dim, networks, update, sample)


__all__ = [
    "ACTION_MODES",
    "REGISTRY",
    "Agent",
    "AgentConfig",
    "AgentSpec",
    "AgentState",
    "UnknownAgentError",
    "agent_names",
    "default_config",
    "get_spec",
    "make_agent",
]
