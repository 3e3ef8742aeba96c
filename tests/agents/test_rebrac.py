"""ReBRAC (fidec.agents.rebrac): the actor's behaviour penalty and normalised Q, the critic target's behaviour
penalty with clipped smoothing noise, the actor and targets updated every ``actor_freq`` updates only, and
the actions.

The losses are checked on a fixed batch with networks that read their outputs off the observation
(tests/agent_fakes.py) against the formulas written out in NumPy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import agent_fakes as fakes
from fidec.agents import common, default_config, make_agent, rebrac
from fidec.agents.base import Draw
from fidec.config import apply_overrides

pytestmark = pytest.mark.usefixtures("quick_compiles")

OBS = np.array(
    [
        [0.0, 1.0, 0.2, 0.5, -0.3],
        [0.0, -0.4, 0.0, 1.5, 0.2],
        [0.0, 0.3, 0.9, -0.8, 0.6],
    ]
)
NEXT_OBS = np.array(
    [
        [0.0, 1.0, 0.5, 2.0, 0.0],
        [0.0, -0.5, 0.0, 0.0, -0.3],
        [0.0, 0.0, 0.2, 0.5, 1.0],
    ]
)
ACTIONS = np.array([[0.5, 0.5], [-0.5, 0.0], [0.0, 1.0]])
NEXT_ACTIONS = np.array([[0.9, 0.0], [0.1, -0.2], [-0.5, 0.5]])
REWARDS, MASKS = np.array([1.0, 0.0, -1.0]), np.array([1.0, 0.0, 1.0])
BATCH = fakes.batch(
    observations=OBS,
    actions=ACTIONS,
    rewards=REWARDS,
    masks=MASKS,
    next_observations=NEXT_OBS,
    next_actions=NEXT_ACTIONS,
)
SLOPES, TARGET_SLOPES = np.array([1.0, -2.0]), np.array([0.5, -0.5])
SHIFT, TARGET_SHIFT = np.array([0.0, 0.0]), np.array([0.1, -0.1])
PARAMS = {"critic": fakes.critic_params(*SLOPES), "actor": fakes.actor_params(*SHIFT)}
TARGETS = {"critic": fakes.critic_params(*TARGET_SLOPES), "actor": fakes.actor_params(*TARGET_SHIFT)}
NETWORKS = fakes.networks(2)


def config(**overrides) -> rebrac.ReBRACConfig:
    return apply_overrides(default_config("rebrac"), overrides)


def critics(obs: np.ndarray, actions: np.ndarray, slopes: np.ndarray) -> np.ndarray:
    """The fake critics, (2, B)."""
    return obs[:, 1:3].T + slopes[:, None] * actions.sum(-1)[None]


def test_actor_loss_is_normalised_q_of_the_tanh_mode_plus_alpha_actor_times_the_squared_distance():
    """L_pi = -mean(min_i Q_i(s, pi(s))) / mean|Q| + alpha_actor mean ||pi(s) - a||^2, pi(s) = tanh(mu(s))."""
    cfg = config(alpha_actor=0.3)
    pi = np.tanh(OBS[:, 3:5] + SHIFT)
    q = critics(OBS, pi, SLOPES).min(axis=0)
    mse = ((pi - ACTIONS) ** 2).sum(-1)
    q_loss = -(q / np.abs(q).mean()).mean()
    assert not np.isclose(np.abs(q).mean(), 1.0)  # the normalisation changes the answer
    loss, info = rebrac.actor_loss(cfg, NETWORKS, PARAMS, BATCH)
    np.testing.assert_allclose(info["q_loss"], q_loss, rtol=1e-5)
    np.testing.assert_allclose(info["bc_loss"], 0.3 * mse.mean(), rtol=1e-5)
    np.testing.assert_allclose(info["mse"], mse.mean(), rtol=1e-5)
    np.testing.assert_allclose(loss, q_loss + 0.3 * mse.mean(), rtol=1e-5)
    np.testing.assert_allclose(info["actor_q_mean"], q.mean(), rtol=1e-5)
    np.testing.assert_allclose(info["std"], 1.0)


def test_actor_gradient_holds_the_critic_and_the_q_normaliser_fixed():
    """dL/dshift_j = mean_b (1 - pi_bj^2) [ -slope_{k(b)} / mean|Q| + 2 alpha_actor (pi_bj - a_bj) ], with k(b)
    the critic of lower Q at state b; nothing reaches the critic."""
    cfg = config(alpha_actor=0.3)
    pi = np.tanh(OBS[:, 3:5] + SHIFT)
    qs = critics(OBS, pi, SLOPES)
    q, active = qs.min(axis=0), qs.argmin(axis=0)
    assert set(active.tolist()) == {0, 1}  # both critics are the minimum somewhere
    dq_dpi = SLOPES[active][:, None] * np.ones_like(pi)
    expected = ((1 - pi**2) * (-dq_dpi / np.abs(q).mean() + 2 * 0.3 * (pi - ACTIONS))).mean(0)
    grads = jax.grad(lambda p: rebrac.actor_loss(cfg, NETWORKS, p, BATCH)[0])(PARAMS)
    np.testing.assert_allclose(grads["actor"]["params"]["shift"], expected, rtol=1e-5)
    np.testing.assert_array_equal(grads["critic"]["params"]["slope"], [0.0, 0.0])


def expected_critic_loss(cfg, noise_draw: np.ndarray, clip_noise: bool = True) -> float:
    """y = r + gamma mask [min_i Q'_i(s', a~') - alpha_critic ||a~' - a'_data||^2], a~' = clip(tanh(mu'(s')) +
    clip(sigma eps, -c, c), -1, 1); L_Q = mean over critics and batch of (Q_i(s, a) - y)^2."""
    noise = noise_draw * cfg.actor_noise
    if clip_noise:
        noise = np.clip(noise, -cfg.actor_noise_clip, cfg.actor_noise_clip)
    smoothed = np.clip(np.tanh(NEXT_OBS[:, 3:5] + TARGET_SHIFT) + noise, -1.0, 1.0)
    next_q = critics(NEXT_OBS, smoothed, TARGET_SLOPES).min(axis=0)
    next_q = next_q - cfg.alpha_critic * ((smoothed - NEXT_ACTIONS) ** 2).sum(-1)
    target = REWARDS + cfg.discount * MASKS * next_q
    return float(((critics(OBS, ACTIONS, SLOPES) - target[None]) ** 2).mean())


def test_critic_target_subtracts_alpha_critic_times_the_distance_to_the_datasets_next_action():
    cfg = config(alpha_critic=0.5, discount=0.9)
    eps = np.array([[5.0, -0.5], [0.0, 1.0], [-4.0, 2.0]])  # 0.2 eps = [1.0, -0.1], [0, 0.2], [-0.8, 0.4]
    assert rebrac.update_draws(cfg, 3, 2) == {"target_noise": Draw((3, 2))}
    state = fakes.state(PARAMS, TARGETS)
    loss, info = rebrac.critic_loss(cfg, NETWORKS, PARAMS, state, BATCH, {"target_noise": jnp.asarray(eps)})
    np.testing.assert_allclose(loss, expected_critic_loss(cfg, eps), rtol=1e-5)
    np.testing.assert_allclose(info["q_mean"], critics(OBS, ACTIONS, SLOPES).mean(), rtol=1e-5)
    # Each piece matters here: the noise clip at c = 0.5 and the penalty.
    assert abs(expected_critic_loss(cfg, eps, clip_noise=False) - float(loss)) > 1e-2
    assert abs(expected_critic_loss(config(alpha_critic=0.0, discount=0.9), eps) - float(loss)) > 1e-2
    # The target is a constant: only the online critic is trained, through Q_i(s, a) alone.
    grads = jax.grad(
        lambda p: rebrac.critic_loss(cfg, NETWORKS, p, state, BATCH, {"target_noise": jnp.asarray(eps)})[0]
    )(PARAMS)
    np.testing.assert_array_equal(grads["actor"]["params"]["shift"], [0.0, 0.0])


def test_actions_are_the_clipped_tanh_mode_or_it_plus_clipped_noise():
    obs = jnp.asarray([[0, 0, 0, 0.5, 3.0], [0, 0, 0, -0.2, 0.0]], jnp.float32)
    state = fakes.state(PARAMS, TARGETS)
    mode = np.tanh(np.asarray(obs)[:, 3:5])
    np.testing.assert_allclose(rebrac.act(config(), NETWORKS, state, obs, {}, "mean"), mode, rtol=1e-6)
    eps = np.array([[10.0, 1.0], [-1.0, -10.0]])  # 0.2 eps = [2, 0.2], [-0.2, -2] -> clipped at 0.5
    sample = rebrac.act(config(), NETWORKS, state, obs, {"noise": jnp.asarray(eps)}, "sample")
    expected = np.clip(mode + np.clip(0.2 * eps, -0.5, 0.5), -1, 1)
    np.testing.assert_allclose(sample, expected, rtol=1e-6)
    assert float(np.abs(expected).max()) == 1.0
    assert rebrac.action_draws(config(), 2, 2, "mean") == {}


# -- the actor_freq schedule on real networks ------------------------------------------------------------


def tiny_agent(**overrides):
    cfg = config(**{"network.actor_hidden": (8,), "network.critic_hidden": (8,), "tau": 0.5, **overrides})
    return make_agent("rebrac", cfg, 3, 2)


def real_batch(seed: int = 0) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    return fakes.batch(
        observations=rng.uniform(-1, 1, (16, 3)),
        actions=rng.uniform(-0.9, 0.9, (16, 2)),
        rewards=rng.normal(size=16),
        masks=np.ones(16),
        next_observations=rng.uniform(-1, 1, (16, 3)),
        next_actions=rng.uniform(-0.9, 0.9, (16, 2)),
    )


def leaves(tree) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def assert_trees_equal(a, b) -> None:
    for x, y in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def assert_trees_close(a, b, rtol=1e-5, atol=1e-8) -> None:
    for x, y in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def test_update_i_trains_the_actor_when_i_is_a_multiple_of_actor_freq():
    """The FQL training loop: update i (from 1) is full when i % actor_freq == 0; state.step = i - 1."""
    due = [bool(rebrac.full_update_due(config(actor_freq=3), jnp.asarray(step))) for step in range(7)]
    assert due == [False, False, True, False, False, True, False]
    assert rebrac.SPEC.targets_due is rebrac.full_update_due


def test_critic_only_updates_leave_the_targets_and_move_the_actor_by_adams_momentum_only():
    agent, batch = tiny_agent(actor_freq=2), real_batch()
    cfg = agent.config
    s0 = agent.init(jax.random.PRNGKey(0))

    # Update 1: critic only.  The actor's gradient is zero and Adam has no momentum yet: it does not move.
    s1, m1 = agent.update(s0, batch)
    assert float(m1["actor_updated"]) == 0.0 and float(m1["actor_loss"]) == 0.0
    assert_trees_equal(s1.params["actor"], s0.params["actor"])
    assert_trees_equal(s1.target_params, s0.target_params)
    assert any(
        not np.array_equal(x, y)
        for x, y in zip(leaves(s1.params["critic"]), leaves(s0.params["critic"]), strict=True)
    )

    # Update 2: full.  The actor moves and both targets average the parameters from before the update.
    s2, m2 = agent.update(s1, batch)
    assert float(m2["actor_updated"]) == 1.0
    assert any(
        not np.array_equal(x, y)
        for x, y in zip(leaves(s2.params["actor"]), leaves(s1.params["actor"]), strict=True)
    )
    for part in ("critic", "actor"):
        expected = jax.tree.map(lambda o, t: 0.5 * o + 0.5 * t, s1.params[part], s1.target_params[part])
        assert_trees_close(s2.target_params[part], expected, rtol=1e-6, atol=1e-7)

    # Update 3: critic only again.  Targets stay; the actor takes Adam's step with a zero gradient:
    # mu <- b1 mu, nu <- b2 nu, theta <- theta - lr mu_hat / (sqrt(nu_hat) + eps) (the reference's single
    # optimiser over every network does the same).
    s3, m3 = agent.update(s2, batch)
    assert float(m3["actor_updated"]) == 0.0
    assert_trees_equal(s3.target_params, s2.target_params)
    count, mu, nu = common.adam_moments(s2.opt_state, s2.params)
    t = int(count) + 1
    b1, b2, eps = 0.9, 0.999, 1e-8

    def momentum_step(theta, m, v):
        m_hat = b1 * m / (1 - b1**t)
        v_hat = b2 * v / (1 - b2**t)
        return theta - cfg.lr * m_hat / (np.sqrt(v_hat) + eps)

    expected = jax.tree.map(momentum_step, s2.params["actor"], mu["actor"], nu["actor"])
    assert_trees_close(s3.params["actor"], expected, rtol=1e-5, atol=1e-9)
    moved = max(
        float(np.abs(x - y).max())
        for x, y in zip(leaves(s3.params["actor"]), leaves(s2.params["actor"]), strict=True)
    )
    assert moved > 1e-5


def test_the_full_update_sends_each_loss_to_its_own_network():
    """Full update: the critic gets exactly the gradient of L_Q, the actor that of L_pi; critic-only update:
    the actor's gradient is zero."""
    agent, batch = tiny_agent(alpha_actor=0.5, alpha_critic=0.1), real_batch(1)
    cfg, networks = agent.config, agent.networks
    draws = {"target_noise": jax.random.normal(jax.random.PRNGKey(2), (16, 2))}

    @jax.jit
    def compute(state):
        grads, _ = rebrac.gradients(cfg, networks, state, batch, draws)
        critic = jax.grad(
            lambda c: rebrac.critic_loss(cfg, networks, {**state.params, "critic": c}, state, batch, draws)[0]
        )
        actor = jax.grad(lambda a: rebrac.actor_loss(cfg, networks, {**state.params, "actor": a}, batch)[0])
        return grads, critic(state.params["critic"]), actor(state.params["actor"])

    state = agent.init(jax.random.PRNGKey(1))
    grads, critic, actor = compute(state)  # step 0: update 1, critic only
    assert_trees_close(grads["critic"], critic)
    assert all(float(np.abs(x).max()) == 0.0 for x in leaves(grads["actor"]))
    grads, critic, actor = compute(state.replace(step=jnp.asarray(1, jnp.int32)))  # update 2: full
    assert_trees_close(grads["critic"], critic)
    assert_trees_close(grads["actor"], actor, rtol=1e-4, atol=1e-8)
    assert max(float(np.abs(x).max()) for x in leaves(actor)) > 0


def test_an_update_needs_the_datasets_next_actions():
    agent = tiny_agent()
    assert "next_actions" in agent.spec.batch_keys
    batch = {k: v for k, v in real_batch().items() if k != "next_actions"}
    with pytest.raises(KeyError, match="next_actions"):
        agent.update(agent.init(jax.random.PRNGKey(0)), batch)
