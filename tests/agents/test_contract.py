"""The agent contract, driven by the registry: every agent in ``fidec.agents.REGISTRY`` is checked for what its
spec declares (parts, targets, batch keys, modes, draws) with no per-agent table here, so a new agent is picked
up with no edit.

Shapes and dtypes, every mode, determinism, explicit draws (each declared draw is consumed; an update from given
draws is the update), the target update from the pre-update parameters, batch checks, vmap over seeds and a
checkpoint round trip that resumes the same updates.  Tiny networks; compiled agents are cached per
(agent, action dim, options).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fidec.agents import (
    ACTION_MODES,
    REGISTRY,
    Agent,
    UnknownAgentError,
    agent_names,
    default_config,
    get_spec,
    make_agent,
)
from fidec.agents.base import AgentConfig, sample_draws
from fidec.config import apply_overrides
from fidec.training.checkpoint import flatten_tree, read_checkpoint, save_checkpoint, unflatten_tree

OBS_DIM = 3
BATCH = 16
# Small settings, each applied to the agents whose config has the key.
TINY = {
    "network.actor_hidden": (16,),
    "network.critic_hidden": (16,),
    "flow_steps": 3,
    "num_action_samples": 4,
    "refine_iterations": 2,
    "num_samples": 4,
    "fisher.num_samples": 2,
}
NAMES = agent_names()
# The networks whose outputs are actions (scaled up to test that actions stay in the box).
ACTOR_PARTS = ("flow", "residual", "onestep", "actor")

# Most XLA optimisations off for this module (see conftest.quick_compiles).
pytestmark = pytest.mark.usefixtures("quick_compiles")


def has_key(config, dotted: str) -> bool:
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(config) or part not in {f.name for f in dataclasses.fields(config)}:
            return False
        config = getattr(config, part)
    return True


def tiny_config(name: str, **overrides) -> AgentConfig:
    config = default_config(name)
    values = {k: v for k, v in {**TINY, **overrides}.items() if has_key(config, k)}
    return apply_overrides(config, values)


@functools.cache
def built(name: str, action_dim: int = 2, overrides: tuple = ()) -> Agent:
    """One Agent (and so one set of jitted functions) per (name, action_dim, overrides)."""
    return make_agent(name, tiny_config(name, **dict(overrides)), OBS_DIM, action_dim)


def make_batch(action_dim: int, batch_size: int = BATCH, seed: int = 0) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    arrays = {
        "observations": rng.uniform(-1, 1, (batch_size, OBS_DIM)),
        "actions": rng.uniform(-0.9, 0.9, (batch_size, action_dim)),
        "rewards": rng.normal(size=batch_size),
        "masks": (rng.uniform(size=batch_size) > 0.2).astype(float),
        "next_observations": rng.uniform(-1, 1, (batch_size, OBS_DIM)),
        "next_actions": rng.uniform(-0.9, 0.9, (batch_size, action_dim)),
    }
    return {k: jnp.asarray(v, jnp.float32) for k, v in arrays.items()}


@functools.cache
def updates(name: str, count: int = 2):
    """(agent, initial state, batch, states after 1..count updates, their metrics) for a cached agent."""
    agent = built(name)
    state = agent.init(jax.random.PRNGKey(0))
    batch = make_batch(2)
    states, metrics = [], []
    current = state
    for _ in range(count):
        current, info = agent.update(current, batch)
        states.append(current)
        metrics.append(info)
    return agent, state, batch, states, metrics


def assert_trees_equal(a, b) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def changed(a, b) -> bool:
    return any(jax.tree.leaves(jax.tree.map(lambda x, y: bool(jnp.any(x != y)), a, b)))


# --------------------------------------------------------------------------------------------------
# The registry and construction
# --------------------------------------------------------------------------------------------------


def test_the_registry_is_the_list_of_agents_and_every_spec_is_consistent():
    assert NAMES == list(REGISTRY) and len(set(NAMES)) == len(NAMES)
    for name, spec in REGISTRY.items():
        assert spec.name == name
        config = default_config(name)
        assert isinstance(config, spec.config)
        assert config.action_mode in spec.modes
        assert spec.online_mode is None or spec.online_mode in spec.modes
        assert set(spec.modes) <= set(ACTION_MODES)
        assert set(spec.targets) <= set(spec.parts)
        assert {"observations", "actions", "rewards", "masks", "next_observations"} <= set(spec.batch_keys)
        assert spec.summary and "\n" not in spec.summary


def test_make_agent_rejects_unknown_names_another_agents_config_and_bad_sizes():
    with pytest.raises(UnknownAgentError, match=r"unknown agent 'sac'.*" + ", ".join(NAMES)):
        make_agent("sac", default_config(NAMES[0]), OBS_DIM, 2)
    other = next(n for n in NAMES if not isinstance(default_config(NAMES[0]), get_spec(n).config))
    with pytest.raises(ValueError, match=rf"agent {other!r} takes a {get_spec(other).config.__name__}"):
        make_agent(other, default_config(NAMES[0]), OBS_DIM, 2)
    with pytest.raises(ValueError, match="action_dim must be >= 1"):
        make_agent(NAMES[0], default_config(NAMES[0]), OBS_DIM, 0)


@pytest.mark.parametrize("name", NAMES)
def test_a_configured_action_mode_the_agent_lacks_fails_at_construction(name):
    """A config whose action_mode the agent cannot serve fails at construction, not at the first evaluation
    after hours of training."""
    other = next((m for m in ACTION_MODES if m not in get_spec(name).modes), None)
    if other is None:
        pytest.skip("the agent has every mode")
    with pytest.raises(ValueError, match=other):
        make_agent(name, dataclasses.replace(tiny_config(name), action_mode=other), OBS_DIM, 2)


@pytest.mark.parametrize("name", NAMES)
def test_init_holds_the_declared_parts_and_targets_and_is_deterministic(name):
    spec = get_spec(name)
    agent = built(name)
    state = agent.init(jax.random.PRNGKey(3))
    assert set(state.params) == set(spec.parts)
    assert set(state.target_params) == set(spec.targets)
    for target in spec.targets:  # targets start equal to their online group
        assert_trees_equal(state.target_params[target], state.params[target])
    assert int(state.step) == 0
    assert_trees_equal(state, agent.init(jax.random.PRNGKey(3)))
    other = agent.init(jax.random.PRNGKey(4))
    network_parts = [p for p in spec.parts if p != "log_alpha"]
    assert all(changed(state.params[p], other.params[p]) for p in network_parts), (
        "another key, other parameters"
    )


# --------------------------------------------------------------------------------------------------
# Shapes and dtypes, every agent x action dimension x mode (traced, not compiled)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("action_dim", [1, 2, 5])
@pytest.mark.parametrize("name", NAMES)
def test_update_and_sample_shapes_and_dtypes(name, action_dim):
    spec = get_spec(name)
    agent = built(name, action_dim)
    state = jax.eval_shape(agent.init, jax.random.PRNGKey(0))
    batch = make_batch(action_dim)
    new_state, metrics = jax.eval_shape(agent.update_fn, state, batch)

    # The state keeps its structure, shapes and dtypes (so it can be a lax.scan carry).
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    for before, after in zip(jax.tree.leaves(state), jax.tree.leaves(new_state), strict=True):
        assert (before.shape, before.dtype) == (after.shape, after.dtype)
    assert new_state.step.dtype == jnp.int32

    assert {f"grad_norm/{part}" for part in spec.parts} <= set(metrics)
    for key, value in metrics.items():
        assert value.shape == (), key
        assert value.dtype == jnp.float32, key
    if spec.has_critic:
        assert {"critic_loss", "q_mean"} <= set(metrics)

    observations = batch["observations"][:7]
    for mode in spec.modes:
        actions = jax.eval_shape(agent.sample_actions_fn(mode), state, observations, jax.random.PRNGKey(1))
        assert (actions.shape, actions.dtype) == ((7, action_dim), jnp.float32), mode


# --------------------------------------------------------------------------------------------------
# Values of real updates and actions
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_updates_give_finite_metrics_and_move_every_part(name):
    spec = get_spec(name)
    _, state, _, states, metrics = updates(name)
    for info in metrics:
        for key, value in info.items():
            assert np.isfinite(float(value)), key
    # Over two updates every network is trained (an actor updated every second update included).
    for part in spec.parts:
        if part == "log_alpha":
            continue
        assert changed(state.params[part], states[-1].params[part]), f"{part} did not change"
        assert any(float(m[f"grad_norm/{part}"]) > 0 for m in metrics), part
    assert [int(s.step) for s in states] == [1, 2]
    assert not np.array_equal(np.asarray(state.rng), np.asarray(states[0].rng))


@pytest.mark.parametrize("name", [n for n in NAMES if get_spec(n).targets])
def test_targets_move_towards_the_parameters_from_before_the_update(name):
    """theta' <- tau theta_before + (1 - tau) theta' (the reference code's target update), on the updates
    that move the targets; "after" uses the updated parameters instead."""
    spec = get_spec(name)
    agent, state, batch, states, _ = updates(name)
    tau = agent.config.tau
    before = state
    for after in states:
        due = True if spec.targets_due is None else bool(spec.targets_due(agent.config, before.step))
        for group in spec.targets:
            expected = jax.tree.map(
                lambda p, t: tau * p + (1 - tau) * t, before.params[group], before.target_params[group]
            )
            if not due:
                expected = before.target_params[group]
            for x, y in zip(
                jax.tree.leaves(expected), jax.tree.leaves(after.target_params[group]), strict=True
            ):
                np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
        before = after
    post = built(name, 2, (("target_update", "after"),))
    state = post.init(jax.random.PRNGKey(0))
    for _ in range(2):  # two updates: every agent moves its targets on one of them
        previous = state
        state, _ = post.update(state, batch)
        due = True if spec.targets_due is None else bool(spec.targets_due(post.config, previous.step))
        if due:
            group = spec.targets[0]
            expected = jax.tree.map(
                lambda p, t: tau * p + (1 - tau) * t, state.params[group], previous.target_params[group]
            )
            for x, y in zip(
                jax.tree.leaves(expected), jax.tree.leaves(state.target_params[group]), strict=True
            ):
                np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_actions_lie_in_the_box_in_every_mode_even_for_huge_network_outputs(name):
    spec = get_spec(name)
    agent, _, batch, states, _ = updates(name)
    state = states[-1]
    params = dict(state.params)
    for part in ACTOR_PARTS:
        if part in params:
            params[part] = jax.tree.map(lambda x: x * 30.0, params[part])
    wild = state.replace(params=params)
    observations = batch["observations"]
    for mode in spec.modes:
        actions = np.asarray(agent.sample_actions(state, observations, jax.random.PRNGKey(5), mode))
        assert actions.shape == (BATCH, 2) and actions.dtype == np.float32
        assert np.all(np.isfinite(actions)) and np.all(np.abs(actions) <= 1.0), mode
        assert np.mean(np.abs(actions) < 1.0) > 0.5, mode  # not pinned to the boundary at init ...
        wild_actions = np.asarray(agent.sample_actions(wild, observations, jax.random.PRNGKey(5), mode))
        assert np.all(np.isfinite(wild_actions)) and np.all(np.abs(wild_actions) <= 1.0), (
            mode
        )  # ... and clipped


@pytest.mark.parametrize("name", NAMES)
def test_the_default_mode_is_the_configs_and_the_pure_function_agrees(name):
    agent, _, batch, states, _ = updates(name)
    key = jax.random.PRNGKey(2)
    obs = batch["observations"]
    default = agent.sample_actions(states[-1], obs, key)
    np.testing.assert_array_equal(
        default, agent.sample_actions(states[-1], obs, key, agent.config.action_mode)
    )
    np.testing.assert_allclose(default, agent.sample_actions_fn()(states[-1], obs, key), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_a_mode_the_agent_lacks_raises_a_clear_value_error(name):
    agent, _, batch, states, _ = updates(name)
    for mode in [m for m in ACTION_MODES if m not in agent.modes]:
        with pytest.raises(ValueError, match=rf"{name!r} supports action modes .*not {mode!r}"):
            agent.sample_actions(states[-1], batch["observations"], jax.random.PRNGKey(0), mode)
        with pytest.raises(ValueError, match=mode):
            agent.sample_actions_fn(mode)


# --------------------------------------------------------------------------------------------------
# Explicit draws
# --------------------------------------------------------------------------------------------------


def perturbed(draw, value: jax.Array) -> jax.Array:
    """The draw changed within its distribution's support."""
    if draw.kind == "uniform":
        return draw.low + (draw.high - draw.low) * jnp.mod(
            value - draw.low + 0.37 * (draw.high - draw.low), 1.0
        )
    if draw.kind == "rademacher":
        return -value
    return value + 0.5


@pytest.mark.parametrize("name", NAMES)
def test_an_update_is_its_declared_draws_followed_by_the_update_from_them(name):
    """update(state) == update_with_draws(state with the next rng, draws from the key split off), and every
    declared draw is consumed: changing any one of them changes the update."""
    agent, state, batch, states, _ = updates(name)
    rng, key = jax.random.split(state.rng)
    declared = agent.update_draws(BATCH)
    draws = sample_draws(declared, key)
    step = jax.jit(agent.update_with_draws)
    replayed, info = step(state.replace(rng=rng), batch, draws)
    # The same computation (compiled as another program, so equal to float32 rounding).
    assert jax.tree.structure(replayed) == jax.tree.structure(states[0])
    for x, y in zip(jax.tree.leaves(replayed), jax.tree.leaves(states[0]), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
    for name_, draw in declared.items():
        other, other_info = step(
            state.replace(rng=rng), batch, {**draws, name_: perturbed(draw, draws[name_])}
        )
        assert changed(other.params, replayed.params) or changed(other_info, info), (
            f"draw {name_!r} is unused"
        )


@pytest.mark.parametrize("name", NAMES)
def test_every_mode_is_its_declared_draws_followed_by_the_action(name):
    agent, _, batch, states, _ = updates(name)
    obs = batch["observations"]
    for mode in agent.modes:
        declared = agent.action_draws(BATCH, mode)
        draws = sample_draws(declared, jax.random.PRNGKey(9))
        actions = agent.act_with_draws(states[-1], obs, draws, mode)
        np.testing.assert_allclose(
            actions, agent.sample_actions(states[-1], obs, jax.random.PRNGKey(9), mode), rtol=1e-5, atol=1e-6
        )
        for name_, draw in declared.items():
            other = agent.act_with_draws(
                states[-1], obs, {**draws, name_: perturbed(draw, draws[name_])}, mode
            )
            assert not np.allclose(other, actions), f"{mode}: draw {name_!r} is unused"


# --------------------------------------------------------------------------------------------------
# Batch checks
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_update_rejects_a_batch_without_a_key_the_agent_needs(name):
    agent, state, batch, _, _ = updates(name)
    for key in get_spec(name).batch_keys:
        with pytest.raises(KeyError, match=rf"missing keys \[{key!r}\]"):
            agent.update(state, {k: v for k, v in batch.items() if k != key})


def test_update_rejects_mismatched_leading_sizes_and_wrong_dimensions():
    agent, state, batch, _, _ = updates(NAMES[0])
    with pytest.raises(ValueError, match=r"batch\['rewards'\] has leading size 15, expected 16"):
        agent.update(state, {**batch, "rewards": batch["rewards"][:-1]})
    with pytest.raises(ValueError, match="batch\\['actions'\\] has 3 dims, the agent was built for 2"):
        agent.update(state, {**batch, "actions": jnp.zeros((BATCH, 3))})
    with pytest.raises(ValueError, match="batch\\['observations'\\] has 4 dims, the agent was built for 3"):
        agent.update(state, {**batch, "observations": jnp.zeros((BATCH, 4))})
    with pytest.raises(ValueError, match="must have shape \\(B,\\)"):
        agent.update(state, {**batch, "rewards": batch["rewards"][:, None]})


# --------------------------------------------------------------------------------------------------
# Determinism, vmap over seeds, checkpoint round trip
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_one_update_is_bitwise_deterministic_and_its_noise_comes_from_the_state(name):
    agent, state, batch, states, metrics = updates(name)
    again_state, again_metrics = agent.update(state, batch)
    assert_trees_equal(states[0], again_state)
    assert_trees_equal(metrics[0], again_metrics)
    if agent.update_draws(BATCH):
        other_state, _ = agent.update(state.replace(rng=jax.random.PRNGKey(99)), batch)
        assert changed(other_state.params, states[0].params)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_two_seeds_equals_two_separate_updates(name):
    agent, _, batch, _, _ = updates(name)
    seeds = [agent.init(jax.random.PRNGKey(seed)) for seed in (10, 11)]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *seeds)
    vmapped_state, vmapped_metrics = jax.jit(jax.vmap(agent.update_fn, in_axes=(0, None)))(stacked, batch)
    for i, state in enumerate(seeds):
        single_state, single_metrics = agent.update(state, batch)
        for key, value in single_metrics.items():
            np.testing.assert_allclose(vmapped_metrics[key][i], value, rtol=1e-4, atol=1e-6, err_msg=key)
        for x, y in zip(
            jax.tree.leaves(jax.tree.map(lambda v, i=i: v[i], vmapped_state)),
            jax.tree.leaves(single_state),
            strict=True,
        ):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_a_checkpointed_state_resumes_the_same_updates(name, tmp_path):
    """Save the state after one update, restore it into the agent's state template, and the next update from it
    equals the next update of the state that was never saved (bitwise)."""
    agent, _, batch, states, _ = updates(name)
    save_checkpoint(tmp_path, 1, flatten_tree(states[0], "state"), {}, keep=1)
    template = jax.eval_shape(agent.init, jax.random.PRNGKey(0))
    restored = unflatten_tree(template, read_checkpoint(tmp_path / "step_000000001").arrays, "state")
    restored = jax.tree.map(jnp.asarray, restored)
    assert_trees_equal(restored, states[0])
    resumed, _ = agent.update(restored, batch)
    assert_trees_equal(resumed, states[1])
