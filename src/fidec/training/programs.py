"""The compiled programs of a run, built once per (agent, config, dimensions, seed layout) in a process.

Runs in one process that share an agent config and seed layout (a resumed run, a sweep, the tests)
reuse the same jitted functions instead of compiling them again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from functools import partial

import jax

from fidec.agents import Agent, AgentConfig, make_agent
from fidec.data import sample_batch
from fidec.training import blocks
from fidec.training.seeds import SeedMap


class Programs:
    """Jitted all-seeds programs: offline blocks (one per block length), online step, first action."""

    def __init__(self, agent: Agent, seed_map: SeedMap):
        self.agent = agent
        self.seed_map = seed_map
        self.update_fn = agent.update_fn
        # The online behaviour policy: the agent's exploration action (its reference code's).
        self.act_fn = agent.sample_actions_fn(agent.spec.online_mode) if agent.spec.online_mode else None
        self.extra_keys = tuple(k for k in agent.spec.batch_keys if k == "next_actions")
        self.batch_size = agent.config.batch_size
        self._offline: dict[int, Callable] = {}
        self._names: tuple[str, ...] | None = None
        self._online: Callable | None = None
        self._summarize: Callable | None = None
        self._first: Callable | None = None

    def metric_names(self, data) -> tuple[str, ...]:
        if self._names is None:
            example = jax.eval_shape(
                lambda: sample_batch(data, jax.random.PRNGKey(0), self.batch_size, self.extra_keys)
            )
            state = jax.eval_shape(lambda: blocks.new_train_state(self.agent.init, 0))
            self._names = tuple(blocks.metric_names(self.update_fn, state, example))
        return self._names

    def offline_block(self, num_steps: int, data) -> Callable:
        """(states, data, start_step) -> (states, block summary) for ``num_steps`` fused updates."""
        if num_steps not in self._offline:
            fn = partial(
                blocks.offline_block,
                self.update_fn,
                self.batch_size,
                num_steps,
                names=self.metric_names(data),
                extra_keys=self.extra_keys,
            )
            self._offline[num_steps] = self.seed_map.jit(fn, per_seed=(True, False, False))
        return self._offline[num_steps]

    def _act_fn(self) -> Callable:
        if self.act_fn is None:
            raise ValueError(
                f"agent {self.agent.name!r} has no online action mode (it cannot run an online phase)"
            )
        return self.act_fn

    def online_step(self) -> Callable:
        """(states, accumulators, data, transitions, next observations, step) -> (states, accumulators, actions)."""
        if self._online is None:
            self._online = self.seed_map.jit(
                partial(blocks.online_step, self.update_fn, self._act_fn(), self.batch_size, self.extra_keys),
                per_seed=(True, True, False, True, True, False),
                donate_argnums=(0, 1),
            )
        return self._online

    def online_summary(self) -> Callable:
        if self._summarize is None:
            self._summarize = self.seed_map.jit(blocks.online_summary, per_seed=(True, True))
        return self._summarize

    def first_action(self) -> Callable:
        if self._first is None:
            self._first = self.seed_map.jit(
                partial(blocks.first_action, self._act_fn()), per_seed=(True, True)
            )
        return self._first


@functools.lru_cache(maxsize=8)
def cached_agent(name: str, config: AgentConfig, obs_dim: int, action_dim: int) -> Agent:
    """``make_agent``, memoised: the same agent (and its jitted sampler) for the same arguments."""
    return make_agent(name, config, obs_dim, action_dim)


@functools.lru_cache(maxsize=8)
def cached_programs(name: str, config: AgentConfig, obs_dim: int, action_dim: int, vmapped: bool) -> Programs:
    """The programs for an agent and a seed layout (vmapped programs retrace for a new number of seeds)."""
    return Programs(cached_agent(name, config, obs_dim, action_dim), SeedMap(vmapped))
