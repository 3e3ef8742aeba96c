"""What every section measures on: agents built from presets, and synthetic batches and datasets.

Speed does not depend on the values in a batch, so the benchmarks use synthetic transitions with
the shapes of the task (cube-single: 28-dimensional states, 5-dimensional actions) instead of
reading a dataset from disk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from fidec.agents import Agent, AgentState, make_agent
from fidec.agents.common import TRANSITION_KEYS
from fidec.bench.settings import BenchSettings
from fidec.presets import resolve_agent_config
from fidec.training.blocks import TrainState, metric_names, offline_block


@dataclass(frozen=True)
class Built:
    """An agent, a fresh state and one batch for it."""

    agent: Agent
    state: AgentState
    batch: dict[str, jax.Array]


def synthetic_transitions(
    key: jax.Array, rows: int, obs_dim: int, action_dim: int, keys: tuple[str, ...] = TRANSITION_KEYS
) -> dict[str, jax.Array]:
    """``rows`` random transitions with the layout of an update batch (actions in [-1, 1]); ``keys``: the batch
    keys an agent needs (``spec.batch_keys``: the transition's, and ``next_actions`` for ReBRAC)."""
    k_obs, k_act, k_rew, k_next = jax.random.split(key, 4)
    batch = {
        "observations": jax.random.normal(k_obs, (rows, obs_dim), jnp.float32),
        "actions": jax.random.uniform(k_act, (rows, action_dim), jnp.float32, -1.0, 1.0),
        "rewards": jax.random.normal(k_rew, (rows,), jnp.float32),
        "masks": jnp.ones((rows,), jnp.float32),
        "next_observations": jax.random.normal(k_next, (rows, obs_dim), jnp.float32),
    }
    if "next_actions" in keys:  # the dataset's next action: the following row's, as in a trajectory
        batch["next_actions"] = jnp.roll(batch["actions"], -1, axis=0)
    return batch


def dataset(settings: BenchSettings, seed: int = 5) -> dict[str, jax.Array]:
    """The on-device dataset of ``settings.dataset_rows`` synthetic transitions that fused blocks sample from."""
    return synthetic_transitions(
        jax.random.PRNGKey(seed), settings.dataset_rows, settings.obs_dim, settings.action_dim
    )


def build(
    agent_name: str,
    preset: str,
    obs_dim: int,
    action_dim: int,
    overrides: dict[str, Any] | None = None,
    seed: int = 0,
) -> Built:
    """Agent ``agent_name`` with the named network preset (then dotted ``overrides``), its state and a batch."""
    config = resolve_agent_config(agent_name, presets=[preset], overrides=overrides or {})
    agent = make_agent(agent_name, config, obs_dim, action_dim)
    init_key, batch_key = jax.random.split(jax.random.PRNGKey(seed))
    state = agent.init(init_key)
    batch = synthetic_transitions(batch_key, config.batch_size, obs_dim, action_dim, agent.spec.batch_keys)
    return Built(agent, state, batch)


def network_summary(agent: Agent) -> str:
    """'4 x 512, batch 256' style description of an agent's sizes."""
    hidden = agent.config.network.actor_hidden
    widths = f"{len(hidden)} x {hidden[0]}" if len(set(hidden)) == 1 else "-".join(map(str, hidden))
    return f"{widths}, batch {agent.config.batch_size}"


def fused_block(built: Built, updates: int, seed: int = 6) -> tuple[Callable, TrainState]:
    """The training loop's fused block of ``updates`` updates of ``built``'s agent, (state, data, start) ->
    (state, summary) (on-device sampling and the update, :func:`fidec.training.blocks.offline_block`;
    unjitted), and a train state to start from."""
    state = TrainState(agent=built.state, key=jax.random.PRNGKey(seed))
    names = tuple(metric_names(built.agent.update_fn, state, built.batch))
    update, batch_size = built.agent.update_fn, built.agent.config.batch_size
    return partial(offline_block, update, batch_size, updates, names=names), state
