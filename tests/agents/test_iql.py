"""IQL (fidec.agents.iql): the expectile value loss, the critic loss summed over the two critics, AWR's
clipped exponential weights, DDPG+BC, the actions, and where each loss sends its gradient.

The losses are checked on a fixed three-sample batch with networks that read their outputs off the
observation (tests/agent_fakes.py), against numbers worked out by hand in the comments.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import agent_fakes as fakes
from fidec.agents import common, default_config, iql, make_agent
from fidec.agents.base import Draw
from fidec.config import apply_overrides

pytestmark = pytest.mark.usefixtures("quick_compiles")

LOG_2PI = math.log(2.0 * math.pi)

# The fixed batch (agent_fakes): columns V(s), the critics' bases, the actor's mean.
OBS, ACTIONS, BATCH = fakes.IQL_OBS, fakes.IQL_ACTIONS, fakes.IQL_BATCH
# Online critic slopes (1, 1): Q_1 = [2.0, -0.5, 0.0], Q_2 = [1.2, -0.1, 1.0], min = [1.2, -0.5, 0.0].
# Target slopes (0.5, -0.5): Q'_1 = [1.5, -0.25, -0.5], Q'_2 = [-0.3, 0.65, -0.5], min = [-0.3, -0.25, -0.5].
PARAMS, TARGETS = fakes.IQL_PARAMS, fakes.IQL_TARGETS


def config(**overrides) -> iql.IQLConfig:
    return apply_overrides(default_config("iql"), overrides)


# Each loss of ``params``, with V(s) and Q(s, a) computed from them as the update computes them (once, by
# iql.value_and_q), so that a gradient of a loss flows where the update's does.
def value_loss(cfg, networks, params, state, batch):
    v, _ = iql.value_and_q(networks, params, batch)
    return iql.value_loss(cfg, networks, state, batch, v)


def critic_loss(cfg, networks, params, batch):
    _, q = iql.value_and_q(networks, params, batch)
    return iql.critic_loss(cfg, networks, params, batch, q)


def actor_loss(cfg, networks, params, batch, draws):
    v, q = iql.value_and_q(networks, params, batch)
    return iql.actor_loss(cfg, networks, params, batch, draws, v, q)


def test_expectile_loss_weights_positive_errors_by_tau_and_negative_ones_by_1_minus_tau():
    diff = jnp.array([2.0, -1.0, 0.0, 0.5, -3.0])
    # 0.9 * 4, 0.1 * 1, 0, 0.9 * 0.25, 0.1 * 9
    np.testing.assert_allclose(common.expectile_loss(diff, 0.9), [3.6, 0.1, 0.0, 0.225, 0.9], rtol=1e-6)
    np.testing.assert_allclose(common.expectile_loss(diff, 0.5), 0.5 * diff**2, rtol=1e-6)


def test_value_loss_is_the_expectile_of_the_target_critics_min_minus_v():
    """min_i Q'_i - V = [-0.3 - 0.5, -0.25 - 1.0, -0.5 + 1.0] = [-0.8, -1.25, 0.5];
    L_V = (0.1 * 0.64 + 0.1 * 1.5625 + 0.9 * 0.25) / 3 = 0.44525 / 3."""
    networks = fakes.networks(2)
    loss, info = value_loss(config(expectile=0.9), networks, PARAMS, fakes.state(PARAMS, TARGETS), BATCH)
    np.testing.assert_allclose(loss, 0.44525 / 3, rtol=1e-6)
    np.testing.assert_allclose(info["v_mean"], 0.5 / 3, rtol=1e-6)
    assert (float(info["v_max"]), float(info["v_min"])) == (1.0, -1.0)
    # With the online critic instead of the target one it would be [0.7, -1.5, 1.0] -> a different loss.
    online = fakes.state(PARAMS, {"critic": PARAMS["critic"]})
    assert abs(float(value_loss(config(), networks, PARAMS, online, BATCH)[0]) - 0.44525 / 3) > 0.1


def test_critic_loss_is_the_sum_of_the_two_critics_mean_squared_errors():
    """y = r + gamma mask V(s') = [1 + 0.9 * 2, 0, -1 - 0.9] = [2.8, 0, -1.9];
    critic 1: ([-0.8, -0.5, 1.9]^2).mean() = 4.5 / 3 = 1.5; critic 2: ([-1.6, -0.1, 2.9]^2).mean() = 3.66;
    L_Q = 1.5 + 3.66 = 5.16 (the mean over both would be 2.58)."""
    loss, info = critic_loss(config(discount=0.9), fakes.networks(2), PARAMS, BATCH)
    np.testing.assert_allclose(loss, 5.16, rtol=1e-6)
    np.testing.assert_allclose(info["target_q_mean"], 0.9 / 3, rtol=1e-6)
    np.testing.assert_allclose(info["q_mean"], (2.0 - 0.5 + 0.0 + 1.2 - 0.1 + 1.0) / 6, rtol=1e-6)
    # V(s') enters as a constant: the critic loss does not train V.
    grads = jax.grad(lambda p: critic_loss(config(discount=0.9), fakes.networks(2), p, BATCH)[0])(PARAMS)
    assert float(grads["value"]["params"]["offset"]) == 0.0
    # dL/dslope_i = mean_b 2 (Q_i - y) sum(a): critic 1: 2 (-0.8 * 1 - 0.5 * -0.5 + 1.9 * 1) / 3 = 0.9
    np.testing.assert_allclose(
        grads["critic"]["params"]["slope"], [0.9, 2 * (-1.6 + 0.05 + 2.9) / 3], rtol=1e-5
    )


@pytest.mark.parametrize("beta", [5.0, 0.0])
def test_awr_weights_are_exp_beta_advantage_clipped_at_100(beta):
    """A = min_i Q_i(s, a) - V(s) = [1.2 - 0.5, -0.5 - 1.0, 0.0 + 1.0] = [0.7, -1.5, 1.0]; with beta = 5 the
    weights are [e^3.5, e^-7.5, min(e^5, 100) = 100].  log pi(a | s) = -||a - mu||^2 / 2 - log(2 pi) with
    a - mu = [(0, 0.5), (-0.5, 0), (0.2, 0.5)]: ||.||^2 = [0.25, 0.25, 0.29]."""
    weights = np.array([math.exp(0.7 * beta), math.exp(-1.5 * beta), min(math.exp(1.0 * beta), 100.0)])
    if beta == 5.0:
        assert weights[2] == 100.0 and weights[0] < 100.0
    sq = np.array([0.25, 0.25, 0.29])
    log_prob = -0.5 * sq - LOG_2PI
    cfg = config(actor_loss="awr", awr_inverse_temperature=beta)
    loss, info = actor_loss(cfg, fakes.networks(2), PARAMS, BATCH, {})
    np.testing.assert_allclose(loss, -(weights * log_prob).mean(), rtol=1e-6)
    np.testing.assert_allclose(info["adv"], 0.2 / 3, rtol=1e-6)
    np.testing.assert_allclose(info["bc_log_prob"], log_prob.mean(), rtol=1e-6)
    # The gradient reaches the actor only, each sample pulled towards its action with its weight:
    # dL/dshift = -(1/B) sum_b w_b (a_b - mu_b).
    grads = jax.grad(lambda p: actor_loss(cfg, fakes.networks(2), p, BATCH, {})[0])(PARAMS)
    diff = np.array([[0.0, 0.5], [-0.5, 0.0], [0.2, 0.5]])
    np.testing.assert_allclose(
        grads["actor"]["params"]["shift"], -(weights[:, None] * diff).mean(0), rtol=1e-5
    )
    assert float(grads["value"]["params"]["offset"]) == 0.0
    np.testing.assert_array_equal(grads["critic"]["params"]["slope"], [0.0, 0.0])


def test_ddpgbc_is_normalised_q_at_the_clipped_mean_plus_a_weighted_log_likelihood():
    """mu = [(0.5, 0), (1.5, -2), (0, 0.5)] -> clip -> [(0.5, 0), (1, -1), (0, 0.5)], sums [0.5, 0, 0.5];
    min_i Q_i = min([1.5, 0, -0.5], [0.7, 0.4, 0.5]) = [0.7, 0, -0.5]: q_loss = -(0.2 / 3) / (1.2 / 3) = -1/6.
    a - mu = [(0, 0.5), (-2, 2), (0, 0.5)]: ||.||^2 = [0.25, 8, 0.25]; bc_loss = -w mean(log pi)."""
    obs = np.array(OBS)
    obs[:, 3:5] = [[0.5, 0.0], [1.5, -2.0], [0.0, 0.5]]
    batch = {**BATCH, "observations": jnp.asarray(obs, jnp.float32)}
    cfg = config(actor_loss="ddpgbc", ddpgbc_bc_weight=2.5)
    assert iql.update_draws(cfg, 3, 2) == {}  # const_std: the Q action is the mean, nothing is drawn
    loss, info = actor_loss(cfg, fakes.networks(2), PARAMS, batch, {})
    bc = 2.5 * (0.5 * np.array([0.25, 8.0, 0.25]) + LOG_2PI).mean()
    np.testing.assert_allclose(info["q_loss"], -1.0 / 6.0, rtol=1e-5)
    np.testing.assert_allclose(info["bc_loss"], bc, rtol=1e-6)
    np.testing.assert_allclose(loss, bc - 1.0 / 6.0, rtol=1e-6)
    np.testing.assert_allclose(info["actor_q_mean"], 0.2 / 3, rtol=1e-5)


def test_ddpgbc_with_a_learned_std_takes_q_at_a_sampled_action():
    """const_std off: a = clip(mu + sigma z) with the update's ``actor_noise`` z; sigma = 0.5 here.
    mu = [(0.5, 0), (0, 0), (-0.2, 0.5)], z = [(1, 1), (4, 0), (0, -2)] -> a = [(1, 0.5), (1, 0), (-0.2, -0.5)]
    (the second clipped), sums [1.5, 1, -0.7]: min_i Q_i = min([2.5, 1, -1.7], [1.7, 1.4, -0.7]) = [1.7, 1, -1.7]."""
    cfg = config(actor_loss="ddpgbc", const_std=False)
    assert iql.update_draws(cfg, 3, 2) == {"actor_noise": Draw((3, 2))}
    networks = fakes.networks(2, log_std=math.log(0.5))
    noise = jnp.asarray([[1.0, 1.0], [4.0, 0.0], [0.0, -2.0]])
    _, info = actor_loss(cfg, networks, PARAMS, BATCH, {"actor_noise": noise})
    q = np.array([1.7, 1.0, -1.7])
    np.testing.assert_allclose(info["q_loss"], -q.mean() / np.abs(q).mean(), rtol=1e-5)
    np.testing.assert_allclose(info["std"], 0.5, rtol=1e-6)


def test_acting_takes_the_clipped_mean_or_a_clipped_sample():
    obs = jnp.asarray([[0, 0, 0, 0.5, 1.5], [0, 0, 0, -2.0, 0.1]], jnp.float32)
    networks, state = fakes.networks(2, log_std=math.log(0.5)), fakes.state(PARAMS, TARGETS)
    mean = iql.act(config(), networks, state, obs, {}, "mean")
    np.testing.assert_allclose(mean, [[0.5, 1.0], [-1.0, 0.1]], rtol=1e-6)
    noise = jnp.asarray([[1.0, -1.0], [3.0, 0.4]])
    sample = iql.act(config(), networks, state, obs, {"noise": noise}, "sample")
    np.testing.assert_allclose(sample, [[1.0, 1.0], [-0.5, 0.3]], rtol=1e-6)
    assert iql.action_draws(config(), 2, 2, "mean") == {}
    assert iql.action_draws(config(), 2, 2, "sample") == {"noise": Draw((2, 2))}


def test_the_three_losses_train_their_own_networks_only():
    """The update differentiates L_V + L_Q + L_pi once: V gets exactly the gradient of L_V, the critic that of
    L_Q, the actor that of L_pi (real networks)."""
    cfg = config(
        **{"network.actor_hidden": (8,), "network.critic_hidden": (8,), "awr_inverse_temperature": 3.0}
    )
    agent = make_agent("iql", cfg, 3, 2)
    state = agent.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    batch = fakes.batch(
        observations=rng.uniform(-1, 1, (16, 3)),
        actions=rng.uniform(-0.9, 0.9, (16, 2)),
        rewards=rng.normal(size=16),
        masks=np.ones(16),
        next_observations=rng.uniform(-1, 1, (16, 3)),
    )
    # A target critic apart from the online one, so that which one L_V reads matters.
    state = state.replace(target_params={"critic": jax.tree.map(lambda x: 2.0 * x, state.params["critic"])})

    @jax.jit
    def both(state, batch):
        def only(loss_fn, part):
            return jax.grad(lambda p: loss_fn({**state.params, part: p})[0])(state.params[part])

        expected = {
            "value": only(lambda p: value_loss(cfg, agent.networks, p, state, batch), "value"),
            "critic": only(lambda p: critic_loss(cfg, agent.networks, p, batch), "critic"),
            "actor": only(lambda p: actor_loss(cfg, agent.networks, p, batch, {}), "actor"),
        }
        return iql.gradients(cfg, agent.networks, state, batch, {})[0], expected

    grads, expected = both(state, batch)
    for part, tree in expected.items():
        for x, y in zip(jax.tree.leaves(grads[part]), jax.tree.leaves(tree), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-8)
        assert any(float(jnp.abs(x).max()) > 0 for x in jax.tree.leaves(tree))
