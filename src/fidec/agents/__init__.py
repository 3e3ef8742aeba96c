"""Agents: one module per method over shared parts, and a registry.

Each agent module defines ``PARTS``, ``MODES``, ``init``, ``update`` and ``sample_actions`` (see
:mod:`fidec.agents.fd`).  Adding an agent means one new module and one entry in ``REGISTRY``.

    agent = make_agent("fd", AgentConfig(), obs_dim=28, action_dim=5)
    state = agent.init(jax.random.PRNGKey(0))
    state, metrics = agent.update(state, batch)          # jitted, pure
    actions = agent.sample_actions(state, observations, key)   # jitted; mode from config or argument
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType

import jax

from fidec.agents import bcflow, fd, fql, iso
from fidec.agents.common import AgentState, Networks, build_networks, check_batch
from fidec.agents.config import ACTION_MODES, AgentConfig

REGISTRY: dict[str, ModuleType] = {"fd": fd, "iso": iso, "fql": fql, "bcflow": bcflow}


def agent_names() -> list[str]:
    return list(REGISTRY)


@dataclass(frozen=True)
class Agent:
    """An agent bound to its config and dimensions; its functions are pure and jitted."""

    name: str
    config: AgentConfig
    obs_dim: int | tuple[int, ...]
    action_dim: int
    networks: Networks
    module: ModuleType = field(repr=False)
    _update: Callable = field(repr=False)
    _sample: Callable = field(repr=False)

    @property
    def modes(self) -> tuple[str, ...]:
        return self.module.MODES

    def init(self, key: jax.Array) -> AgentState:
        """Fresh state (parameters, target critic, optimiser state, log_alpha, RNG, step 0)."""
        return self.module.init(self.config, key, self.obs_dim, self.action_dim, self.networks)

    def update(self, state: AgentState, batch: dict) -> tuple[AgentState, dict]:
        """(state, batch) -> (state, metrics): one jitted gradient step."""
        check_batch(batch, self.obs_dim, self.action_dim)
        return self._update(state, batch)

    @property
    def update_fn(self) -> Callable:
        """The raw pure update (unjitted), for composing inside scans and vmaps."""
        return partial(self.module.update, self.config, self.networks)

    def sample_actions(
        self, state: AgentState, observations: jax.Array, key: jax.Array, mode: str | None = None
    ):
        """Actions in [-1, 1]^d for a batch of observations (B, obs_dim) with the given action-selection mode."""
        mode = mode or self.config.action_mode
        if mode not in self.modes:
            raise ValueError(f"agent {self.name!r} supports action modes {list(self.modes)}, not {mode!r}")
        if isinstance(self.obs_dim, tuple) and tuple(observations.shape[1:]) != self.obs_dim:
            raise ValueError(
                f"observations have shape {tuple(observations.shape[1:])} per sample; this pixel agent takes "
                f"{self.obs_dim} ({self.config.encoder.frame_stack} stacked frames): wrap the environments "
                "with fidec.envs.frame_stack.stack_frames(envs, agent.config.encoder.frame_stack)"
            )
        return self._sample(state, observations, key, mode)

    def sample_actions_fn(self, mode: str | None = None) -> Callable:
        """Pure (state, observations, key) -> actions, for composing inside vmaps."""
        mode = mode or self.config.action_mode
        return partial(self.module.sample_actions, self.config, self.networks, mode=mode)


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


def make_agent(name: str, config: AgentConfig, obs_dim: int | tuple[int, ...], action_dim: int) -> Agent:
    """Build agent ``name`` ("fd", "iso", "fql", "bcflow") for the given observation/action sizes.

    ``obs_dim``: the state size, or, with a pixel encoder, the shape (H, W, C) of one frame; the agent
    then takes ``frame_stack`` frames stacked on the channel axis (its ``obs_dim`` is (H, W, C k)).
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown agent {name!r}; available agents: {', '.join(REGISTRY)}")
    if action_dim < 1:
        raise ValueError(f"obs_dim and action_dim must be >= 1, got {obs_dim} and {action_dim}")
    obs_dim = agent_input_shape(config, obs_dim)
    module = REGISTRY[name]
    if config.action_mode not in module.MODES:
        raise ValueError(
            f"agent {name!r} supports action modes {list(module.MODES)}, not action_mode={config.action_mode!r}; "
            f"set agent.action_mode to one of them"
        )
    networks = build_networks(config, action_dim)
    update = jax.jit(partial(module.update, config, networks))
    sample = jax.jit(
        lambda state, obs, key, mode: module.sample_actions(config, networks, state, obs, key, mode),
        static_argnums=3,
    )
    return Agent(name, config, obs_dim, action_dim, networks, module, update, sample)


__all__ = ["ACTION_MODES", "REGISTRY", "Agent", "AgentConfig", "AgentState", "agent_names", "make_agent"]
