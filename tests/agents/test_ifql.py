"""IFQL (fidec.agents.ifql): the action is the best of N flow samples by min_i Q_i, checked against a
brute-force computation; the update is IQL's value and critic losses plus the flow's BC loss, each on its
own network."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import agent_fakes as fakes
from fidec.agents import common, default_config, ifql, iql, make_agent
from fidec.agents.base import Draw
from fidec.config import apply_overrides
from fidec.flows import flow_matching_loss

pytestmark = pytest.mark.usefixtures("quick_compiles")

OBS_DIM, ACT_DIM = 3, 2


class FakeFlow(nn.Module):
    """v(s, x, t) = rate * (mu(s) - x), mu(s) = s_{3:5}: K Euler steps give x_K = mu + (1 - rate/K)^K (x_0 - mu)."""

    @nn.compact
    def __call__(self, obs, x, t):
        return self.param("rate", nn.initializers.ones, ()) * (obs[..., 3:5] - x)


def config(**overrides) -> ifql.IFQLConfig:
    return apply_overrides(default_config("ifql"), overrides)


def test_best_of_n_on_a_flow_with_a_closed_form_picks_the_sample_of_highest_min_q():
    """Flow samples x_K = mu + (3/4)^4 (x_0 - mu) (rate 1, K = 4), clipped; Q_i = s_{1+i} + slope_i sum(a) with
    slopes (1, -2): min_i Q_i is the lower of two lines in sum(a); the best sample maximises it."""
    cfg = config(num_samples=5, flow_steps=4)
    networks = fakes.networks(ACT_DIM, flow=FakeFlow())
    params = {"critic": fakes.critic_params(1.0, -2.0), "flow": {"params": {"rate": jnp.float32(1.0)}}}
    state = fakes.state(params, {"critic": params["critic"]})
    obs = np.array([[0.0, 0.0, 0.6, 0.2, -0.1], [0.0, 1.0, -1.0, -0.5, 0.5], [0.0, -0.3, 0.3, 0.9, 0.9]])
    noise = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (3, 5, ACT_DIM)))
    assert ifql.action_draws(cfg, 3, ACT_DIM, "best_of_n") == {"noise": Draw((3, 5, ACT_DIM))}
    actions = ifql.act(
        cfg, networks, state, jnp.asarray(obs, jnp.float32), {"noise": jnp.asarray(noise)}, "best_of_n"
    )

    mu = obs[:, None, 3:5]
    samples = np.clip(mu + 0.75**4 * (noise - mu), -1.0, 1.0)  # (B, N, d)
    total = samples.sum(-1)
    q_min = np.minimum(obs[:, 1:2] + 1.0 * total, obs[:, 2:3] - 2.0 * total)
    expected = samples[np.arange(3), q_min.argmax(axis=1)]
    np.testing.assert_allclose(actions, expected, rtol=1e-5, atol=1e-6)
    # Ranking by the critics' mean would pick a different sample somewhere: the min matters.
    q_mean = 0.5 * (obs[:, 1:2] + total + obs[:, 2:3] - 2.0 * total)
    assert np.any(q_mean.argmax(axis=1) != q_min.argmax(axis=1))


def test_best_of_n_on_real_networks_matches_a_brute_force_search():
    """Per state and per sample: the flow's K-step Euler rollout from its noise (clipped), then min_i Q_i(s, a),
    one at a time; the action is the argmax."""
    cfg = config(
        num_samples=6, flow_steps=3, **{"network.actor_hidden": (16,), "network.critic_hidden": (16,)}
    )
    agent = make_agent("ifql", cfg, OBS_DIM, ACT_DIM)
    state = agent.init(jax.random.PRNGKey(1))
    # Two critics far apart, so that the min and the mean rank the samples differently.
    critic = state.params["critic"]
    critic = jax.tree.map(
        lambda x: x * jnp.reshape(jnp.asarray([1.0, -3.0]), (2,) + (1,) * (x.ndim - 1)), critic
    )
    state = state.replace(params={**state.params, "critic": critic})
    obs = jax.random.uniform(jax.random.PRNGKey(2), (5, OBS_DIM), minval=-1, maxval=1)
    noise = jax.random.normal(jax.random.PRNGKey(3), (5, 6, ACT_DIM))
    actions = np.asarray(agent.act_with_draws(state, obs, {"noise": noise}))

    @jax.jit
    def one_sample(s, x0):
        """One state (1, obs_dim), one noise (1, d): the clipped flow sample and each critic's Q."""
        a = common.sample_base_actions(cfg, agent.networks, state.params["flow"], s, x0)
        return a[0], agent.networks.critic.apply(state.params["critic"], s, a)[:, 0]

    picks_by_min, picks_by_mean = [], []
    for b in range(5):
        samples, q_min, q_mean = [], [], []
        for n in range(6):
            a, qs = (np.asarray(x) for x in one_sample(obs[b : b + 1], noise[b, n][None]))
            samples.append(a)
            q_min.append(qs.min())
            q_mean.append(qs.mean())
        picks_by_min.append(int(np.argmax(q_min)))
        picks_by_mean.append(int(np.argmax(q_mean)))
        np.testing.assert_allclose(actions[b], samples[picks_by_min[-1]], rtol=1e-5, atol=1e-6)
    assert np.all(np.abs(actions) <= 1.0)
    assert picks_by_min != picks_by_mean  # the min of the two critics decides, not their mean


def test_the_update_is_iqls_value_and_critic_losses_plus_the_flows_bc_loss():
    """On IQL's fixed batch (tests/agents/test_iql.py): L_V = 0.44525 / 3, L_Q = 5.16 (the sum over the two
    critics); L_bc = mean (v(s, x_t, t) - (a - x_0))^2 with x_t = (1 - t) x_0 + t a."""
    cfg = config(discount=0.9, expectile=0.9)
    networks = fakes.networks(ACT_DIM, flow=FakeFlow())
    params = {**fakes.IQL_PARAMS, "flow": {"params": {"rate": jnp.float32(0.7)}}}
    state = fakes.state(params, fakes.IQL_TARGETS)
    x0 = np.array([[0.3, -1.0], [1.2, 0.4], [-0.6, 0.0]])
    t = np.array([[0.25], [0.5], [0.9]])
    draws = {"bc_noise": jnp.asarray(x0, jnp.float32), "bc_times": jnp.asarray(t, jnp.float32)}
    assert ifql.update_draws(cfg, 3, ACT_DIM) == {
        "bc_noise": Draw((3, 2)),
        "bc_times": Draw((3, 1), "uniform"),
    }
    loss, info = ifql.total_loss(params, cfg, networks, state, fakes.IQL_BATCH, draws)

    actions, mu = np.array(fakes.IQL_ACTIONS), np.array(fakes.IQL_OBS)[:, 3:5]
    x_t = (1 - t) * x0 + t * actions
    bc = ((0.7 * (mu - x_t) - (actions - x0)) ** 2).mean()
    np.testing.assert_allclose(info["value_loss"], 0.44525 / 3, rtol=1e-5)
    np.testing.assert_allclose(info["critic_loss"], 5.16, rtol=1e-5)
    np.testing.assert_allclose(info["bc_loss"], bc, rtol=1e-5)
    np.testing.assert_allclose(loss, 0.44525 / 3 + 5.16 + bc, rtol=1e-5)


def test_each_loss_trains_its_own_network():
    cfg = config(flow_steps=3, **{"network.actor_hidden": (8,), "network.critic_hidden": (8,)})
    agent = make_agent("ifql", cfg, OBS_DIM, ACT_DIM)
    state = agent.init(jax.random.PRNGKey(4))
    state = state.replace(target_params={"critic": jax.tree.map(lambda x: 2.0 * x, state.params["critic"])})
    rng = np.random.default_rng(5)
    batch = fakes.batch(
        observations=rng.uniform(-1, 1, (16, OBS_DIM)),
        actions=rng.uniform(-0.9, 0.9, (16, ACT_DIM)),
        rewards=rng.normal(size=16),
        masks=np.ones(16),
        next_observations=rng.uniform(-1, 1, (16, OBS_DIM)),
    )
    draws = {
        "bc_noise": jnp.asarray(rng.normal(size=(16, ACT_DIM)), jnp.float32),
        "bc_times": jnp.asarray(rng.uniform(size=(16, 1)), jnp.float32),
    }

    @jax.jit
    def compute(state):
        grads, _ = ifql.gradients(cfg, agent.networks, state, batch, draws)

        def only(loss_fn, part):
            return jax.grad(lambda p: loss_fn({**state.params, part: p}))(state.params[part])

        def v_of(params):  # V(s) and Q(s, a) from the parameters, as the update computes them
            return iql.value_and_q(agent.networks, params, batch)[0]

        def q_of(params):
            return iql.value_and_q(agent.networks, params, batch)[1]

        def bc(params):
            velocity = common.velocity_fn(agent.networks, params["flow"], batch["observations"])
            return flow_matching_loss(velocity, batch["actions"], draws["bc_noise"], draws["bc_times"])

        return grads, {
            "value": only(lambda p: iql.value_loss(cfg, agent.networks, state, batch, v_of(p))[0], "value"),
            "critic": only(lambda p: iql.critic_loss(cfg, agent.networks, p, batch, q_of(p))[0], "critic"),
            "flow": only(bc, "flow"),
        }

    grads, expected = compute(state)
    for part, tree in expected.items():
        for x, y in zip(jax.tree.leaves(grads[part]), jax.tree.leaves(tree), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-8)
        assert max(float(jnp.abs(x).max()) for x in jax.tree.leaves(tree)) > 0
