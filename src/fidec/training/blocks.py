"""Fused training steps: a block of updates in one jitted ``lax.scan``, and the online step.

Python dispatches one program per block of ``log_interval`` updates: each scan step draws its
minibatch on device (``sample_batch`` with a key split from the state's sampler key), applies the
agent's pure update and adds the metrics to an on-device accumulator.  The host reads one small
summary per block: metric means, the first step at which each metric stopped being finite, and
whether the parameters are still finite.

Every random number of a run comes from the keys inside :class:`TrainState` (the agent's ``rng``
and the sampler ``key``), so a state saved at a block boundary restarts the run exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import flax
import jax
import jax.numpy as jnp

from fidec.agents.common import AgentState
from fidec.data import sample_batch
from fidec.training import replay as replay_lib
from fidec.training.replay import ReplayBuffer


class TrainState(flax.struct.PyTreeNode):
    """One seed's full training state: agent state, sampler key, and (online phase) its replay ring."""

    agent: AgentState
    key: jax.Array
    replay: ReplayBuffer | None = None


class MetricAccumulator(flax.struct.PyTreeNode):
    """Running sums of the update metrics over a block, and the first step each became non-finite (-1: never)."""

    total: dict
    first_nonfinite: dict
    count: jax.Array


def new_train_state(init_agent: Callable[[jax.Array], AgentState], seed: int) -> TrainState:
    """Agent state from PRNGKey(seed) split in two: one key initialises the agent, one drives sampling."""
    agent_key, sampler_key = jax.random.split(jax.random.PRNGKey(seed))
    return TrainState(agent=init_agent(agent_key), key=sampler_key)


def state_template(init_agent: Callable[[jax.Array], AgentState], num_seeds: int, with_replay: bool = False):
    """Shapes and dtypes (no values) of the seed-stacked state a checkpoint holds.

    With ``with_replay`` the replay ring's pointer and size are included, its rows are not
    (a checkpoint stores the filled rows separately).
    """

    def build():
        state = new_train_state(init_agent, 0)
        if with_replay:
            zero = jnp.zeros((), jnp.int32)
            state = state.replace(replay=ReplayBuffer(data=None, pointer=zero, size=zero))
        return state

    return jax.tree.map(
        lambda leaf: jax.ShapeDtypeStruct((num_seeds, *leaf.shape), leaf.dtype), jax.eval_shape(build)
    )


def empty_accumulator(metric_names: list[str]) -> MetricAccumulator:
    return MetricAccumulator(
        total={k: jnp.zeros((), jnp.float32) for k in metric_names},
        first_nonfinite={k: jnp.full((), -1, jnp.int32) for k in metric_names},
        count=jnp.zeros((), jnp.int32),
    )


def accumulate(
    acc: MetricAccumulator, metrics: Mapping[str, jax.Array], step: jax.Array
) -> MetricAccumulator:
    """Add one update's metrics; remember ``step`` for metrics that turn non-finite for the first time."""
    metrics = {k: jnp.mean(metrics[k]).astype(jnp.float32) for k in acc.total}
    first = {
        k: jnp.where((acc.first_nonfinite[k] < 0) & ~jnp.isfinite(metrics[k]), step, acc.first_nonfinite[k])
        for k in acc.total
    }
    total = {k: acc.total[k] + metrics[k] for k in acc.total}
    return MetricAccumulator(total=total, first_nonfinite=first, count=acc.count + 1)


def metric_names(update_fn: Callable, state: TrainState, batch: Mapping[str, jax.Array]) -> list[str]:
    """Names of the metrics an update returns (traced abstractly, nothing is computed)."""
    _, metrics = jax.eval_shape(update_fn, state.agent, batch)
    return sorted(metrics)


def all_finite(tree) -> jax.Array:
    """True when every floating leaf of ``tree`` is finite."""
    leaves = [
        jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def block_summary(state: TrainState, acc: MetricAccumulator) -> dict:
    """What the host reads after a block: metric means, first non-finite steps, parameters finite."""
    count = jnp.maximum(acc.count, 1).astype(jnp.float32)
    return {
        "mean": {k: v / count for k, v in acc.total.items()},
        "first_nonfinite": acc.first_nonfinite,
        "params_finite": all_finite((state.agent.params, state.agent.target_params)),
    }


def offline_block(
    update_fn: Callable,
    batch_size: int,
    num_steps: int,
    state: TrainState,
    data: Mapping[str, jax.Array],
    start_step: jax.Array,
    names: tuple[str, ...],
    extra_keys: tuple[str, ...] = (),
) -> tuple[TrainState, dict]:
    """``num_steps`` updates on dataset minibatches in one scan; returns (state, block summary).

    Update i (0-based) draws its batch with key_i' from (key_{i+1}, key_i') = split(key_i).
    """
    acc = empty_accumulator(list(names))

    def body(carry, i):
        state, acc = carry
        key, batch_key = jax.random.split(state.key)
        batch = sample_batch(data, batch_key, batch_size, extra_keys)
        agent, metrics = update_fn(state.agent, batch)
        acc = accumulate(acc, metrics, start_step + i + 1)
        return (state.replace(agent=agent, key=key), acc), None

    (state, acc), _ = jax.lax.scan(body, (state, acc), jnp.arange(num_steps, dtype=jnp.int32))
    return state, block_summary(state, acc)


def first_action(act_fn: Callable, state: TrainState, observation: jax.Array) -> tuple[TrainState, jax.Array]:
    """The action for the first online step (the key is split as in :func:`online_step`)."""
    key, act_key = jax.random.split(state.key)
    return state.replace(key=key), act_fn(state.agent, observation[None], act_key)[0]


def online_step(
    update_fn: Callable,
    act_fn: Callable,
    batch_size: int,
    extra_keys: tuple[str, ...],
    state: TrainState,
    acc: MetricAccumulator,
    data: Mapping[str, jax.Array],
    transition: Mapping[str, jax.Array],
    next_observation: jax.Array,
    step: jax.Array,
) -> tuple[TrainState, MetricAccumulator, jax.Array]:
    """Insert the last transition, take one update on a replay minibatch, and act at ``next_observation``.

    The action for the next environment step uses the parameters after this update.
    """
    assert state.replay is not None, "the online phase gives every seed a replay ring"
    buffer = replay_lib.insert(state.replay, transition)
    key, batch_key, act_key = jax.random.split(state.key, 3)
    batch = replay_lib.sample(data, buffer, batch_key, batch_size, extra_keys)
    agent, metrics = update_fn(state.agent, batch)
    acc = accumulate(acc, metrics, step)
    action = act_fn(agent, next_observation[None], act_key)[0]
    return state.replace(agent=agent, key=key, replay=buffer), acc, action


def online_summary(state: TrainState, acc: MetricAccumulator) -> tuple[MetricAccumulator, dict]:
    """Block summary of the online steps since the last call, and a fresh accumulator."""
    return empty_accumulator(list(acc.total)), block_summary(state, acc)
