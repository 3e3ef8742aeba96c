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
    obs_dim: int
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
        return self._sample(state, observations, key, mode)

    def sample_actions_fn(self, mode: str | None = None) -> Callable:
        """Pure (state, observations, key) -> actions, for composing inside vmaps."""
        mode = mode or self.config.action_mode
        return partial(self.module.sample_actions, self.config, self.networks, mode=mode)


def make_agent(name: str, config: AgentConfig, obs_dim: int, action_dim: int) -> Agent:
    """Build agent ``name`` ("fd", "iso", "fql", "bcflow") for the given observation/action sizes."""
    if name not in REGISTRY:
        raise ValueError(f"unknown agent {name!r}; available agents: {', '.join(REGISTRY)}")
    if obs_dim < 1 or action_dim < 1:
        raise ValueError(f"obs_dim and action_dim must be >= 1, got {obs_dim} and {action_dim}")
    module = REGISTRY[name]
    networks = build_networks(config, action_dim)
    update = jax.jit(partial(module.update, config, networks))
    sample = jax.jit(
        lambda state, obs, key, mode: module.sample_actions(config, networks, state, obs, key, mode),
        static_argnums=3,
    )
    return Agent(name, config, obs_dim, action_dim, networks, module, update, sample)


__all__ = ["ACTION_MODES", "REGISTRY", "Agent", "AgentConfig", "AgentState", "agent_names", "make_agent"]
