"""The official code's defaults that fidec matches (docs/parity.md), each pinned by its behaviour.

Sources: the official FD code (agents/fidec.py, agents/deflow.py, utils/networks.py, utils/flax_utils.py,
envs/env_utils.py) and FQL (agents/fql.py); the per-task values are pinned in test_presets.py.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fidec.agents import AgentConfig, common, fd, get_spec, make_agent
from fidec.agents.base import sample_draws
from fidec.config import apply_overrides
from fidec.networks import MLP, NetworkConfig
from fidec.presets import resolve_agent_config

pytestmark = pytest.mark.usefixtures("quick_compiles")

OBS_DIM, ACT_DIM, BATCH = 3, 2, 8


def tiny(agent: str = "fd", **overrides):
    flow = {"flow_steps": 3} if hasattr(get_spec(agent).config, "flow_steps") else {}
    config = resolve_agent_config(
        agent,
        overrides={"network.actor_hidden": (16,), "network.critic_hidden": (16,), **flow, **overrides},
    )
    return make_agent(agent, config, OBS_DIM, ACT_DIM)


def batch(seed: int = 0) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    arrays = {
        "observations": rng.uniform(-1, 1, (BATCH, OBS_DIM)),
        "actions": rng.uniform(-0.9, 0.9, (BATCH, ACT_DIM)),
        "rewards": rng.normal(size=BATCH),
        "masks": np.ones(BATCH),
        "next_observations": rng.uniform(-1, 1, (BATCH, OBS_DIM)),
    }
    return {k: jnp.asarray(v, jnp.float32) for k, v in arrays.items()}


def test_global_norm_clip_scales_by_min_1_and_c_over_norm():
    """Official TrainState.apply_loss_fn: g * min(1, c / (||g|| + 1e-6)) over all parameters together."""
    clip = common.clip_by_global_norm(5.0)
    grads = {"a": jnp.array([6.0, 0.0]), "b": jnp.array([[0.0], [8.0]])}  # global norm 10
    clipped, _ = clip.update(grads, clip.init(grads))
    np.testing.assert_allclose(optax.tree.norm(clipped), 5.0 * 10.0 / (10.0 + 1e-6), rtol=1e-6)
    np.testing.assert_allclose(clipped["a"], grads["a"] * 5.0 / (10.0 + 1e-6), rtol=1e-6)
    small = {"a": jnp.array([0.3, 0.4])}
    unchanged, _ = clip.update(small, clip.init(small))
    np.testing.assert_array_equal(unchanged["a"], small["a"])


def test_clipped_optimizer_equals_adam_on_pre_clipped_gradients():
    """The clip acts on the whole gradient (networks and log_alpha together) before Adam."""
    config = AgentConfig(grad_clip=1.0)
    params = {"critic": {"w": jnp.zeros(3)}, "log_alpha": jnp.zeros(())}
    rng = np.random.default_rng(0)
    steps = [
        {"critic": {"w": jnp.asarray(rng.normal(size=3) * scale)}, "log_alpha": jnp.asarray(scale)}
        for scale in (50.0, 0.1, 20.0)
    ]
    clipped_opt, plain_opt = common.make_optimizer(config), common.make_optimizer(AgentConfig())
    s1, s2 = clipped_opt.init(params), plain_opt.init(params)
    for g in steps:
        u1, s1 = clipped_opt.update(g, s1, params)
        scale = min(1.0, 1.0 / (float(optax.tree.norm(g)) + 1e-6))
        u2, s2 = plain_opt.update(jax.tree.map(lambda x, scale=scale: x * scale, g), s2, params)
        for a, b in zip(jax.tree.leaves(u1), jax.tree.leaves(u2), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("agent", ["fd", "fql"])
def test_clipping_changes_training_only_when_the_gradient_norm_exceeds_it(agent):
    """Two updates with a huge reward (gradient norm >> 5): a clip at 5 changes the second Adam step, a clip
    far above the norm does not."""
    b = batch()
    b["rewards"] = b["rewards"] * 1e4

    def two_steps(clip):
        a = tiny(agent, grad_clip=clip)
        state = a.init(jax.random.PRNGKey(0))
        state, metrics = a.update(state, b)
        assert float(metrics["grad_norm/critic"]) > 5.0
        b2 = {**b, "rewards": b["rewards"] * 1e-4}
        return jax.tree.leaves(a.update(state, b2)[0].params)

    plain, loose, clipped = two_steps(None), two_steps(1e12), two_steps(5.0)
    for x, y in zip(plain, loose, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    assert any(not np.allclose(x, y, rtol=1e-4, atol=1e-6) for x, y in zip(plain, clipped, strict=True))


def update_draws(agent, seed: int) -> dict[str, jax.Array]:
    return sample_draws(agent.update_draws(BATCH), jax.random.PRNGKey(seed))


def test_flow_samples_are_clipped_to_the_action_box():
    """Official compute_flow_actions clips the Euler result to [-1, 1]; agent.clip_flow_actions=False does not."""
    agent = tiny("fd")
    assert agent.config.clip_flow_actions is True
    state = agent.init(jax.random.PRNGKey(1))
    obs = jnp.zeros((64, OBS_DIM))
    noise = 50.0 * jax.random.normal(jax.random.PRNGKey(2), (64, ACT_DIM))  # Euler ends far outside the box
    flow = state.params["flow"]
    unclipped = apply_overrides(agent.config, {"clip_flow_actions": False})
    clipped = common.sample_base_actions(agent.config, agent.networks, flow, obs, noise)
    raw = common.sample_base_actions(unclipped, agent.networks, flow, obs, noise)
    assert float(jnp.abs(raw).max()) > 2.0
    np.testing.assert_array_equal(clipped, jnp.clip(raw, -1.0, 1.0))


def test_fd_rollouts_clip_base_actions_and_fisher_samples():
    agent = tiny("fd")
    state = agent.init(jax.random.PRNGKey(3))
    b = batch()
    # Scale the flow's last layer so that the Euler rollout leaves the box.
    big = jax.tree.map(lambda x: 100.0 * x, state.params["flow"])
    state = state.replace(params={**state.params, "flow": big})
    draws = update_draws(agent, 4)
    base, samples, next_base = fd.rollouts(agent.config, agent.networks, state, b, draws)
    for x in (base, samples, next_base):
        assert float(jnp.abs(x).max()) <= 1.0
    unclipped = apply_overrides(agent.config, {"clip_flow_actions": False})
    base_raw, *_ = fd.rollouts(unclipped, agent.networks, state, b, draws)
    assert float(jnp.abs(base_raw).max()) > 1.0


def test_fisher_samples_are_fresh_draws_unless_reuse_base_sample():
    """Official: M fresh flow samples per state for F, drawn apart from the base action: a_hat is the rollout
    of ``base_noise``, the M samples those of ``fisher_sample_noise``; with reuse_base_sample the first
    sample is a_hat and M - 1 are fresh."""
    b = batch()
    fresh = tiny("fd", clip_flow_actions=False)  # unclipped, so that no two rollouts meet at a box corner
    state = fresh.init(jax.random.PRNGKey(5))
    draws = update_draws(fresh, 6)
    m = fresh.config.fisher.num_samples
    base, samples, _ = fd.rollouts(fresh.config, fresh.networks, state, b, draws)
    assert samples.shape == (BATCH, m, ACT_DIM)

    def rollout(obs, noise):
        return common.sample_base_actions(fresh.config, fresh.networks, state.params["flow"], obs, noise)

    np.testing.assert_allclose(base, rollout(b["observations"], draws["base_noise"]), atol=1e-5)
    expected = rollout(
        jnp.repeat(b["observations"], m, axis=0), draws["fisher_sample_noise"].reshape(BATCH * m, ACT_DIM)
    )
    np.testing.assert_allclose(samples, expected.reshape(BATCH, m, ACT_DIM), atol=1e-5)
    assert not np.any(np.all(np.isclose(samples, base[:, None, :]), axis=-1))
    reuse = tiny("fd", clip_flow_actions=False, **{"fisher.reuse_base_sample": True})
    draws = update_draws(reuse, 6)
    assert draws["fisher_sample_noise"].shape == (BATCH, m - 1, ACT_DIM)
    base, samples, _ = fd.rollouts(reuse.config, reuse.networks, state, b, draws)
    assert samples.shape == (BATCH, m, ACT_DIM)
    np.testing.assert_array_equal(samples[:, 0], base)


def test_layer_norm_follows_the_activation():
    """FQL's and the official FD code's MLP: Dense -> activation -> LayerNorm."""
    module = MLP((4,), 1, "gelu", layer_norm=True)
    x = jax.random.normal(jax.random.PRNGKey(7), (5, 3))
    params = module.init(jax.random.PRNGKey(8), x)
    hidden = nn.gelu(x @ params["params"]["Dense_0"]["kernel"] + params["params"]["Dense_0"]["bias"])
    mean, var = hidden.mean(-1, keepdims=True), hidden.var(-1, keepdims=True)
    ln = params["params"]["LayerNorm_0"]
    normed = (hidden - mean) / jnp.sqrt(var + 1e-6) * ln["scale"] + ln["bias"]
    expected = normed @ params["params"]["Dense_1"]["kernel"] + params["params"]["Dense_1"]["bias"]
    np.testing.assert_allclose(module.apply(params, x), expected, rtol=1e-5, atol=1e-6)


def test_network_defaults_are_the_official_ones():
    net = NetworkConfig()
    assert net.actor_hidden == net.critic_hidden == (512, 512, 512, 512)
    assert (net.activation, net.actor_layer_norm, net.critic_layer_norm, net.num_critics) == (
        "gelu",
        False,
        True,
        2,
    )
    assert (net.time_embedding, net.residual_init_scale) == ("raw", 1.0)


def test_best_of_n_ranks_base_actions_by_default_and_refines_the_winner():
    """Official sample_actions_max_q: Q of the N base actions, refine only the best one."""
    agent = tiny("fd", num_action_samples=6)
    state = agent.init(jax.random.PRNGKey(9))
    obs = jax.random.uniform(jax.random.PRNGKey(10), (4, OBS_DIM), minval=-1, maxval=1)
    noise = jax.random.normal(jax.random.PRNGKey(11), (4, 6, ACT_DIM))
    action = agent.act_with_draws(state, obs, {"noise": noise}, "best_of_n")
    obs_n = jnp.repeat(obs, 6, axis=0)
    base = common.sample_base_actions(
        agent.config, agent.networks, state.params["flow"], obs_n, noise.reshape(24, ACT_DIM)
    )
    q = common.q_values(agent.networks, state.params["critic"], obs_n, base).reshape(4, 6)
    best = base.reshape(4, 6, ACT_DIM)[jnp.arange(4), jnp.argmax(q, axis=1)]
    np.testing.assert_allclose(
        action, fd.refine(agent.networks, state.params["residual"], obs, best)[0], atol=1e-6
    )


def test_iterative_refinement_keeps_the_base_action_among_the_candidates():
    """Official sample_actions_iterative_refinement: argmax of Q over [a_0 = a_hat, a_1, ..., a_K]."""
    agent = tiny("fd", refine_iterations=3)
    state = agent.init(jax.random.PRNGKey(12))
    obs = jax.random.uniform(jax.random.PRNGKey(13), (32, OBS_DIM), minval=-1, maxval=1)
    noise = jax.random.normal(jax.random.PRNGKey(14), (32, ACT_DIM))
    action = agent.act_with_draws(state, obs, {"noise": noise}, "iterative")
    candidates = [common.sample_base_actions(agent.config, agent.networks, state.params["flow"], obs, noise)]
    for _ in range(3):
        candidates.append(fd.refine(agent.networks, state.params["residual"], obs, candidates[-1])[0])
    stacked = jnp.stack(candidates, axis=1)
    q = jnp.stack(
        [common.q_values(agent.networks, state.params["critic"], obs, c) for c in candidates], axis=1
    )
    np.testing.assert_allclose(action, stacked[jnp.arange(32), jnp.argmax(q, axis=1)], atol=1e-6)
    assert bool(jnp.any(jnp.argmax(q, axis=1) == 0)), "some states should pick the unrefined base action"


def test_pixel_defaults_are_fqls_impala_small_and_its_augmentation():
    from fidec.encoders import EncoderConfig

    enc = EncoderConfig(name="impala")
    assert (enc.impala_channels, enc.impala_blocks, enc.mlp_hidden, enc.layer_norm) == (
        (16, 32, 32),
        1,
        (512,),
        False,
    )
    assert (enc.frame_stack, enc.shift_pad, enc.augment_prob, enc.augment_per_sample) == (3, 3, 0.5, False)


def test_augmentation_coin_is_per_batch_by_default():
    """FQL shifts the whole batch with probability p_aug (one coin), each sample at its own random offset."""
    from fidec.augment import shift_offsets

    pad, batch = 3, 64
    outcomes = set()
    for seed in range(40):
        offsets = np.asarray(shift_offsets(jax.random.PRNGKey(seed), batch, pad, 0.5, per_sample=False))
        shifted = np.any(offsets != pad, axis=1)
        assert (
            shifted.sum() in (0,) or shifted.mean() > 0.8
        )  # all unshifted, or (nearly) all at random offsets
        outcomes.add(bool(shifted.any()))
    assert outcomes == {True, False}
    per_sample = np.asarray(shift_offsets(jax.random.PRNGKey(0), 4000, pad, 0.5, per_sample=True))
    assert (
        0.35 < np.any(per_sample != pad, axis=1).mean() < 0.5
    )  # p (1 - 1/49): a random offset can be (pad, pad)


# -- the target update and the grid's Q normalisation ------------------------------------------------------


def check_target_update(agent: str, mode: str) -> None:
    """Two updates with tau = 0.5 (after the first, the critic and its target differ): the target must equal
    0.5 theta + 0.5 theta' with theta the parameters from before the second update ("before") or after it."""
    b = batch()
    a = tiny(agent, tau=0.5, target_update=mode)
    state, _ = a.update(a.init(jax.random.PRNGKey(20)), b)
    before, target = state.params["critic"], state.target_params["critic"]
    assert any(
        not np.allclose(x, y) for x, y in zip(jax.tree.leaves(before), jax.tree.leaves(target), strict=True)
    )
    new, _ = a.update(state, b)
    after = new.params["critic"]
    source, other = (before, after) if mode == "before" else (after, before)
    expected = jax.tree.map(lambda o, t: 0.5 * o + 0.5 * t, source, target)
    wrong = jax.tree.map(lambda o, t: 0.5 * o + 0.5 * t, other, target)
    got = new.target_params["critic"]
    for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    assert any(
        not np.allclose(x, y, rtol=1e-5, atol=1e-6)
        for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(wrong), strict=True)
    )


@pytest.mark.parametrize("agent", ["fd", "iso", "fql", "iql", "ifql"])
def test_the_target_moves_towards_the_parameters_from_before_the_update(agent):
    """The FQL family's ``target_update`` (and the official FD code's) averages the parameters the update
    was called with: theta' <- tau theta_before + (1 - tau) theta'.  That is every agent's default."""
    assert resolve_agent_config(agent).target_update == "before"
    check_target_update(agent, "before")


def test_target_update_after_averages_the_updated_parameters():
    check_target_update("fql", "after")


@pytest.mark.parametrize(("preset", "normalized"), [("official-grid", False), ("official-state5", True)])
@pytest.mark.parametrize("agent", ["fd", "iso"])
def test_the_grid_preset_leaves_the_actors_q_unnormalised(agent, preset, normalized):
    """The paper's grid runs passed normalize_q_loss false: the actor's Q term is -E[Q(s, a)]; the state-5
    script's true divides it by stop_gradient(E|Q|).  The task family does not change that."""
    config = resolve_agent_config(
        agent,
        "cube-single-play-singletask-task1-v0",
        presets=[preset],
        overrides={"network.actor_hidden": (16,), "network.critic_hidden": (16,), "flow_steps": 3},
    )
    assert config.normalize_q_loss is normalized
    a = make_agent(agent, config, OBS_DIM, ACT_DIM)
    state, b = a.init(jax.random.PRNGKey(21)), batch()
    draws = sample_draws(a.update_draws(BATCH), jax.random.PRNGKey(22))
    inputs = fd.update_inputs(config, a.networks, state, b, draws)
    _, info = fd.actor_loss(config, a.networks, state.params, b, inputs)
    actions, _ = fd.refine(a.networks, state.params["residual"], b["observations"], inputs.base_actions)
    q = a.networks.critic.apply(state.params["critic"], b["observations"], actions).mean(axis=0)
    expected = -q.mean() / jnp.abs(q).mean() if normalized else -q.mean()
    np.testing.assert_allclose(info["q_loss"], expected, rtol=1e-5)
    assert not np.isclose(float(jnp.abs(q).mean()), 1.0, rtol=1e-2)  # so the two answers differ
