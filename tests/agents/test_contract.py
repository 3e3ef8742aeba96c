"""Agent interface: shapes, action modes, metrics, batch checks, determinism, vmap over seeds, options.

Tiny networks throughout; compiled agents are cached per (agent, action dim, options), so most tests
reuse the same jitted update.  Shapes for every action dimension are checked by tracing
(``jax.eval_shape``); values are checked on real updates.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fidec.agents import Agent, AgentConfig, agent_names, fd, make_agent
from fidec.config import apply_overrides
from fidec.fisher import isotropic_penalty
from fidec.presets import get_preset

OBS_DIM = 3
BATCH = 16
TINY = (
    ("network.actor_hidden", (16,)),
    ("network.critic_hidden", (16,)),
    ("flow_steps", 4),
    ("num_action_samples", 4),
    ("refine_iterations", 2),
)
MODES = {
    "fd": ("onestep", "best_of_n", "iterative"),
    "iso": ("onestep", "best_of_n", "iterative"),
    "fql": ("onestep", "best_of_n"),
    "bcflow": ("onestep",),
}
PARTS = {
    "fd": {"flow", "critic", "residual", "log_alpha"},
    "iso": {"flow", "critic", "residual", "log_alpha"},
    "fql": {"flow", "critic", "onestep"},
    "bcflow": {"flow"},
}
CRITIC_METRICS = {"critic_loss", "q_mean", "actor_loss", "bc_loss", "q_loss", "alpha", "delta_abs_mean"}
METRICS = {
    "fd": CRITIC_METRICS | {"penalty", "alpha_loss", "jacobian_term", "fisher_condition"},
    "iso": CRITIC_METRICS | {"penalty", "alpha_loss", "jacobian_term"},
    "fql": CRITIC_METRICS | {"distill_loss"},
    "bcflow": {"bc_loss", "actor_loss"},
}


# Most XLA optimisations off for this module (see conftest.quick_compiles).
pytestmark = pytest.mark.usefixtures("quick_compiles")


def tiny_config(**overrides) -> AgentConfig:
    return apply_overrides(AgentConfig(), {**dict(TINY), **overrides})


@functools.cache
def built(name: str, action_dim: int = 2, overrides: tuple = ()) -> Agent:
    """One Agent (and so one set of jitted functions) per (name, action_dim, overrides)."""
    return make_agent(name, tiny_config(**dict(overrides)), OBS_DIM, action_dim)


def make_batch(action_dim: int, batch_size: int = BATCH, seed: int = 0) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    arrays = {
        "observations": rng.uniform(-1, 1, (batch_size, OBS_DIM)),
        "actions": rng.uniform(-0.9, 0.9, (batch_size, action_dim)),
        "rewards": rng.normal(size=batch_size),
        "masks": (rng.uniform(size=batch_size) > 0.2).astype(float),
        "next_observations": rng.uniform(-1, 1, (batch_size, OBS_DIM)),
    }
    return {k: jnp.asarray(v, jnp.float32) for k, v in arrays.items()}


@functools.cache
def first_update(name: str, action_dim: int = 2, overrides: tuple = ()):
    """(agent, initial state, batch, state after one update, metrics) for a cached agent."""
    agent = built(name, action_dim, overrides)
    state = agent.init(jax.random.PRNGKey(0))
    batch = make_batch(action_dim)
    new_state, metrics = agent.update(state, batch)
    return agent, state, batch, new_state, metrics


def assert_trees_equal(a, b) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _replace_last_layer(net_params, new_layer):
    inner = net_params["params"]
    (mlp_name,) = inner
    mlp = inner[mlp_name]
    last = max((k for k in mlp if k.startswith("Dense_")), key=lambda k: int(k.split("_")[1]))
    return {"params": {mlp_name: {**mlp, last: new_layer(mlp[last])}}}


def scale_last_layer(net_params, factor: float):
    """An MLP's parameters with the output layer multiplied by ``factor`` (0: zero output)."""
    return _replace_last_layer(net_params, lambda layer: jax.tree.map(lambda x: x * factor, layer))


def constant_output(net_params, value):
    """An MLP's parameters whose output is ``value`` for every input (zero kernel, bias = value)."""
    return _replace_last_layer(
        net_params,
        lambda layer: {"kernel": jnp.zeros_like(layer["kernel"]), "bias": jnp.asarray(value, jnp.float32)},
    )


# --------------------------------------------------------------------------------------------------
# Registry and construction
# --------------------------------------------------------------------------------------------------


def test_registry_lists_the_four_agents_with_their_modes():
    assert set(agent_names()) == set(MODES)
    for name, modes in MODES.items():
        assert built(name).modes == modes


def test_make_agent_rejects_unknown_names_and_bad_sizes():
    with pytest.raises(ValueError, match=r"unknown agent 'sac'.*fd, iso, fql, bcflow"):
        make_agent("sac", AgentConfig(), OBS_DIM, 2)
    with pytest.raises(ValueError, match="action_dim must be >= 1"):
        make_agent("fd", AgentConfig(), OBS_DIM, 0)


@pytest.mark.parametrize(("name", "mode"), [("fql", "iterative"), ("bcflow", "best_of_n")])
def test_make_agent_rejects_a_configured_action_mode_the_agent_lacks(name, mode):
    """A config whose action_mode the agent cannot serve must fail at construction, not at the first
    evaluation after hours of training."""
    with pytest.raises(ValueError, match=mode):
        make_agent(name, tiny_config(action_mode=mode), OBS_DIM, 2)


@pytest.mark.parametrize("name", list(MODES))
def test_init_holds_the_parts_of_the_agent_and_is_deterministic(name):
    agent = built(name)
    state = agent.init(jax.random.PRNGKey(3))
    assert set(state.params) == PARTS[name]
    assert set(state.target_params) == ({"critic"} if "critic" in PARTS[name] else set())
    assert int(state.step) == 0
    assert_trees_equal(state, agent.init(jax.random.PRNGKey(3)))
    other = agent.init(jax.random.PRNGKey(4))
    same = jax.tree.map(lambda a, b: bool(jnp.all(a == b)), state.params["flow"], other.params["flow"])
    assert not all(jax.tree.leaves(same)), "another key must give other parameters"
    if "log_alpha" in state.params:
        assert float(jnp.exp(state.params["log_alpha"])) == pytest.approx(agent.config.alpha)


# --------------------------------------------------------------------------------------------------
# Shapes and dtypes, every agent x action dimension x mode (traced, not compiled)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("action_dim", [1, 2, 5])
@pytest.mark.parametrize("name", list(MODES))
def test_update_and_sample_shapes_and_dtypes(name, action_dim):
    agent = built(name, action_dim)
    state = jax.eval_shape(agent.init, jax.random.PRNGKey(0))
    batch = make_batch(action_dim)
    new_state, metrics = jax.eval_shape(agent.update_fn, state, batch)

    # The state keeps its structure, shapes and dtypes (so it can be a lax.scan carry).
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    for before, after in zip(jax.tree.leaves(state), jax.tree.leaves(new_state), strict=True):
        assert (before.shape, before.dtype) == (after.shape, after.dtype)
    assert new_state.step.dtype == jnp.int32

    assert METRICS[name] <= set(metrics)
    assert {f"grad_norm/{part}" for part in PARTS[name]} <= set(metrics)
    for key, value in metrics.items():
        assert value.shape == (), key
        assert value.dtype == jnp.float32, key

    observations = batch["observations"][:7]
    for mode in MODES[name]:
        actions = jax.eval_shape(agent.sample_actions_fn(mode), state, observations, jax.random.PRNGKey(1))
        assert (actions.shape, actions.dtype) == ((7, action_dim), jnp.float32), mode


# --------------------------------------------------------------------------------------------------
# Values of real updates and actions
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODES))
def test_one_update_gives_finite_metrics_and_moves_every_part(name):
    _, state, _, new_state, metrics = first_update(name)
    for key, value in metrics.items():
        assert np.isfinite(float(value)), key
    for part in PARTS[name] - {"log_alpha"}:
        assert float(metrics[f"grad_norm/{part}"]) > 0, part
        changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.params[part], new_state.params[part])
        assert any(jax.tree.leaves(changed)), f"{part} did not change"
    assert int(new_state.step) == 1
    assert not np.array_equal(np.asarray(state.rng), np.asarray(new_state.rng))
    if "critic" in PARTS[name]:
        # Polyak: the target moves by tau of the way to the new online critic.
        tau = built(name).config.tau
        expected = jax.tree.map(
            lambda online, target: tau * online + (1 - tau) * target,
            new_state.params["critic"],
            state.target_params["critic"],
        )
        for x, y in zip(
            jax.tree.leaves(expected), jax.tree.leaves(new_state.target_params["critic"]), strict=True
        ):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", list(MODES))
def test_actions_lie_in_the_box_in_every_mode_even_for_huge_network_outputs(name):
    agent, _, batch, state, _ = first_update(name)
    params = dict(state.params)
    for part in ("flow", "residual", "onestep"):
        if part in params:
            params[part] = scale_last_layer(params[part], 1e3)
    wild = state.replace(params=params)
    observations = batch["observations"]
    for mode in MODES[name]:
        actions = np.asarray(agent.sample_actions(state, observations, jax.random.PRNGKey(5), mode))
        assert actions.shape == (BATCH, 2) and actions.dtype == np.float32
        assert np.all(np.isfinite(actions)) and np.all(np.abs(actions) <= 1.0), mode
        # At init the actions are not pinned to the boundary ...
        assert np.mean(np.abs(actions) < 1.0) > 0.5, mode
        # ... but with huge outputs they would be, and they must still be clipped.
        wild_actions = np.asarray(agent.sample_actions(wild, observations, jax.random.PRNGKey(5), mode))
        assert np.all(np.abs(wild_actions) <= 1.0), mode
        assert np.mean(np.abs(wild_actions) == 1.0) > 0.5, mode


def test_action_mode_defaults_to_the_config_and_modes_differ():
    agent, _, batch, state, _ = first_update("fd")
    key = jax.random.PRNGKey(2)
    obs = batch["observations"]
    default = agent.sample_actions(state, obs, key)
    np.testing.assert_array_equal(default, agent.sample_actions(state, obs, key, "onestep"))
    # The unjitted pure function agrees (to rounding: it is not fused the same way).
    np.testing.assert_allclose(default, agent.sample_actions_fn()(state, obs, key), rtol=1e-5, atol=1e-6)
    # best-of-N and iterative choose among other candidates, so they give other actions.
    assert not np.allclose(default, agent.sample_actions(state, obs, key, "best_of_n"))
    assert not np.allclose(default, agent.sample_actions(state, obs, key, "iterative"))


@pytest.mark.parametrize(
    ("name", "mode"), [("bcflow", "best_of_n"), ("bcflow", "iterative"), ("fql", "iterative")]
)
def test_unsupported_action_modes_raise_a_clear_value_error(name, mode):
    agent, _, batch, state, _ = first_update(name)
    obs = batch["observations"]
    with pytest.raises(ValueError, match=rf"{name!r} supports action modes .*not {mode!r}"):
        agent.sample_actions(state, obs, jax.random.PRNGKey(0), mode)
    with pytest.raises(ValueError, match=mode):
        agent.sample_actions_fn(mode)(state, obs, jax.random.PRNGKey(0))


def test_unknown_action_mode_in_the_config_is_rejected():
    with pytest.raises(ValueError, match="action_mode must be one of"):
        AgentConfig(action_mode="greedy")


@pytest.mark.parametrize("name", list(MODES))
def test_metrics_report_what_the_update_did(name):
    agent, _, _, _, metrics = first_update(name)
    assert METRICS[name] <= set(metrics)
    assert float(metrics["bc_loss"]) > 0
    if name == "bcflow":
        assert float(metrics["actor_loss"]) == float(metrics["bc_loss"])
        return
    assert float(metrics["critic_loss"]) > 0
    assert float(metrics["alpha"]) == pytest.approx(agent.config.alpha)
    assert float(metrics["q_loss"]) == pytest.approx(-float(metrics["actor_q_mean"]), rel=1e-5)
    if name in ("fd", "iso"):
        assert float(metrics["penalty"]) > 0
        expected = metrics["bc_loss"] + metrics["alpha"] * metrics["penalty"] + metrics["q_loss"]
        assert float(metrics["actor_loss"]) == pytest.approx(float(expected), rel=1e-5)
        assert float(metrics["jacobian_term"]) == 0.0
    if name == "fd":
        assert float(metrics["fisher_condition"]) >= 1.0
    if name == "fql":
        expected = metrics["bc_loss"] + metrics["alpha"] * metrics["distill_loss"] + metrics["q_loss"]
        assert float(metrics["actor_loss"]) == pytest.approx(float(expected), rel=1e-5)


# --------------------------------------------------------------------------------------------------
# Batch checks
# --------------------------------------------------------------------------------------------------


def test_update_rejects_a_batch_with_a_missing_key():
    agent, state, batch, _, _ = first_update("fd")
    partial_batch = {k: v for k, v in batch.items() if k != "masks"}
    with pytest.raises(KeyError, match=r"missing keys \['masks'\]"):
        agent.update(state, partial_batch)


def test_update_rejects_mismatched_leading_sizes():
    agent, state, batch, _, _ = first_update("fd")
    bad = {**batch, "rewards": batch["rewards"][:-1]}
    with pytest.raises(ValueError, match=r"batch\['rewards'\] has leading size 15, expected 16"):
        agent.update(state, bad)


def test_update_rejects_a_wrong_action_or_observation_dimension():
    agent, state, batch, _, _ = first_update("fd")
    with pytest.raises(ValueError, match="batch\\['actions'\\] has 3 dims, the agent was built for 2"):
        agent.update(state, {**batch, "actions": jnp.zeros((BATCH, 3))})
    with pytest.raises(ValueError, match="batch\\['observations'\\] has 4 dims, the agent was built for 3"):
        agent.update(state, {**batch, "observations": jnp.zeros((BATCH, 4))})
    with pytest.raises(ValueError, match="must have shape \\(B,\\)"):
        agent.update(state, {**batch, "rewards": batch["rewards"][:, None]})


# --------------------------------------------------------------------------------------------------
# Determinism and vmap over seeds
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODES))
def test_one_update_is_bitwise_deterministic(name):
    agent, state, batch, new_state, metrics = first_update(name)
    again_state, again_metrics = agent.update(state, batch)
    assert_trees_equal(new_state, again_state)
    assert_trees_equal(metrics, again_metrics)
    # ... and the update's noise comes from the state: another seed gives another update.
    _, other_metrics = agent.update(state.replace(rng=jax.random.PRNGKey(99)), batch)
    assert float(other_metrics["bc_loss"]) != float(metrics["bc_loss"])


@pytest.mark.parametrize("name", list(MODES))
def test_vmap_over_two_seeds_equals_two_separate_updates(name):
    agent, _, batch, _, _ = first_update(name)
    states = [agent.init(jax.random.PRNGKey(seed)) for seed in (10, 11)]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
    vmapped_state, vmapped_metrics = jax.jit(jax.vmap(agent.update_fn, in_axes=(0, None)))(stacked, batch)
    for i, state in enumerate(states):
        single_state, single_metrics = agent.update(state, batch)
        for key, value in single_metrics.items():
            np.testing.assert_allclose(vmapped_metrics[key][i], value, rtol=1e-4, atol=1e-6, err_msg=key)
        for x, y in zip(
            jax.tree.leaves(jax.tree.map(lambda v, i=i: v[i], vmapped_state)),
            jax.tree.leaves(single_state),
            strict=True,
        ):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# FD options
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [(("fisher.source", "dataset"),), tuple(get_preset("official-grid").overrides.items())],
    ids=["dataset-source", "official-grid"],
)
def test_fisher_options_run_and_give_a_finite_condition_number(overrides):
    _, _, _, _, metrics = first_update("fd", 2, overrides)
    for key, value in metrics.items():
        assert np.isfinite(float(value)), key
    assert 1.0 <= float(metrics["fisher_condition"]) < 1e7
    assert float(metrics["penalty"]) > 0


# --------------------------------------------------------------------------------------------------
# The penalty: FD with F_n = I is the isotropic penalty; trace normalisation
# --------------------------------------------------------------------------------------------------


def test_fd_penalty_with_the_identity_metric_is_the_isotropic_penalty():
    agent, state, batch, _, _ = first_update("fd")
    delta = 0.3 * jax.random.normal(jax.random.PRNGKey(0), (BATCH, 2))
    args = (agent.config, agent.networks, state.params["residual"], batch["observations"], batch["actions"])
    identity = jnp.broadcast_to(jnp.eye(2), (BATCH, 2, 2))
    penalty, jacobian = fd.penalty_terms(*args, delta, identity, jax.random.PRNGKey(1))
    np.testing.assert_allclose(penalty, isotropic_penalty(delta), rtol=1e-6)
    np.testing.assert_allclose(penalty, np.sum(np.asarray(delta) ** 2, axis=-1) / 2, rtol=1e-6)
    np.testing.assert_array_equal(jacobian, 0.0)
    # An anisotropic metric weighs the directions differently.
    stretched = jnp.broadcast_to(jnp.diag(jnp.array([1.9, 0.1])), (BATCH, 2, 2))
    penalty, _ = fd.penalty_terms(*args, delta, stretched, jax.random.PRNGKey(1))
    np.testing.assert_allclose(penalty, (1.9 * delta[:, 0] ** 2 + 0.1 * delta[:, 1] ** 2) / 2, rtol=1e-6)


def test_iso_penalty_is_the_mean_squared_displacement_at_the_base_actions():
    """Recompute ||delta(s, a_hat)||^2 / d from the state's residual at the base actions of the update."""
    agent, state, batch, _, _ = first_update("iso")
    # A large residual, so the penalty depends strongly on where it is evaluated.
    params = {**state.params, "residual": scale_last_layer(state.params["residual"], 100.0)}
    state = state.replace(params=params)
    _, metrics = agent.update(state, batch)
    roll_key = jax.random.split(state.rng, 6)[1]  # the key fd.update hands to its rollouts
    base, _, _ = fd.rollouts(agent.config, agent.networks, state, batch, roll_key, use_fisher=False)
    delta = np.asarray(
        agent.networks.residual.apply(params["residual"], batch["observations"], base), np.float64
    )
    assert np.abs(delta).mean() > 0.05
    np.testing.assert_allclose(metrics["penalty"], np.mean(np.sum(delta**2, axis=-1)) / 2, rtol=1e-4)
    np.testing.assert_allclose(metrics["delta_abs_mean"], np.abs(delta).mean(), rtol=1e-4)


@pytest.mark.parametrize("name", ["iso", "fd"])
def test_penalty_of_constant_displacements_along_each_axis_sums_to_their_squared_size(name):
    """delta = r e_i for every (s, a_hat): iso gives r^2 / d each; FD gives r^2 F_n[i, i] / d, and
    the trace normalisation (tr F_n = d) makes the d penalties sum to r^2."""
    agent, state, batch, _, _ = first_update(name)
    size, d = 0.1, 2
    penalties = []
    for axis in range(d):
        displacement = size * np.eye(d, dtype=np.float32)[axis]
        params = {**state.params, "residual": constant_output(state.params["residual"], displacement)}
        _, metrics = agent.update(state.replace(params=params), batch)
        np.testing.assert_allclose(metrics["delta_abs_mean"], size / d, rtol=1e-6)
        penalties.append(float(metrics["penalty"]))
    assert sum(penalties) == pytest.approx(size**2, rel=1e-3)
    if name == "iso":
        assert penalties == pytest.approx([size**2 / d] * d, rel=1e-5)
    else:
        # The behaviour flow's metric is anisotropic, so the axes cost differently.
        assert abs(penalties[0] - penalties[1]) > 1e-3 * size**2


# --------------------------------------------------------------------------------------------------
# Lagrange multiplier and stop-gradients seen from a whole update
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fd", "iso"])
@pytest.mark.parametrize(("residual_scale", "above_target"), [(100.0, True), (0.0, False)])
def test_lagrange_multiplier_rises_above_the_target_and_falls_below_it(name, residual_scale, above_target):
    """A huge residual puts the penalty far above target_divergence (1e-3), a zero one far below."""
    agent, state, batch, _, _ = first_update(name)
    state = state.replace(
        params={**state.params, "residual": scale_last_layer(state.params["residual"], residual_scale)}
    )
    target = agent.config.target_divergence
    alphas = [float(jnp.exp(state.params["log_alpha"]))]
    for _ in range(4):
        state, metrics = agent.update(state, batch)
        assert (float(metrics["penalty"]) > target) == above_target
        alphas.append(float(jnp.exp(state.params["log_alpha"])))
    steps = np.diff(alphas)
    assert np.all(steps > 0) if above_target else np.all(steps < 0), alphas


@pytest.mark.parametrize("name", ["fd", "iso", "fql"])
def test_the_flow_update_ignores_the_critic_the_actor_head_and_alpha(name):
    """Only L_bc reaches the flow: changing every other parameter leaves its step unchanged."""
    agent, state, batch, new_state, metrics = first_update(name)
    head = "onestep" if name == "fql" else "residual"
    other = agent.init(jax.random.PRNGKey(7))
    params = {
        **state.params,
        "critic": other.params["critic"],
        head: scale_last_layer(other.params[head], 30.0),
    }
    if "log_alpha" in params:
        params["log_alpha"] = params["log_alpha"] + 2.0
    other_state, other_metrics = agent.update(state.replace(params=params), batch)
    # The change matters for everything else ...
    assert float(other_metrics[f"grad_norm/{head}"]) != float(metrics[f"grad_norm/{head}"])
    assert float(other_metrics["actor_q_mean"]) != float(metrics["actor_q_mean"])
    # ... but not for the flow.
    assert float(other_metrics["grad_norm/flow"]) == float(metrics["grad_norm/flow"])
    assert float(other_metrics["bc_loss"]) == float(metrics["bc_loss"])
    assert_trees_equal(other_state.params["flow"], new_state.params["flow"])
