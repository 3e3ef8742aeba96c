"""Networks whose outputs are read off the observation, so that an agent's losses can be checked on a fixed
batch against numbers computed by hand.

Observation columns: 0 -> V(s); 1, 2 -> the two critics' Q_i(s, .) before their action term; 3.. -> the
actor's mean.  Each network has one parameter that the tests set (and differentiate):

    V(s)        = s_0 + offset
    Q_i(s, a)   = s_{1+i} + slope_i * sum_j a_j                (two critics, shape (2, B))
    mu(s)       = s_{3:3+d} + shift,   log_std = const          (a Gaussian actor head)
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from fidec.agents.common import AgentState, Networks


class FakeValue(nn.Module):
    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return obs[..., 0] + self.param("offset", nn.initializers.zeros, ())


class FakeCritic(nn.Module):
    @nn.compact
    def __call__(self, obs: jax.Array, actions: jax.Array) -> jax.Array:
        slope = self.param("slope", nn.initializers.zeros, (2,))
        base = jnp.moveaxis(obs[..., 1:3], -1, 0)
        return base + slope.reshape((2,) + (1,) * (base.ndim - 1)) * actions.sum(-1)[None]


class FakeActor(nn.Module):
    action_dim: int
    log_std: float = 0.0

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean = obs[..., 3 : 3 + self.action_dim] + self.param(
            "shift", nn.initializers.zeros, (self.action_dim,)
        )
        return mean, jnp.full(mean.shape, self.log_std, mean.dtype)


def value_params(offset: float) -> dict:
    return {"params": {"offset": jnp.asarray(offset, jnp.float32)}}


def critic_params(slope_1: float, slope_2: float) -> dict:
    return {"params": {"slope": jnp.asarray([slope_1, slope_2], jnp.float32)}}


def actor_params(*shift: float) -> dict:
    return {"params": {"shift": jnp.asarray(shift, jnp.float32)}}


def networks(action_dim: int, log_std: float = 0.0, **extra: nn.Module) -> Networks:
    modules = {
        "value": FakeValue(),
        "critic": FakeCritic(),
        "actor": FakeActor(action_dim, log_std),
        **extra,
    }
    return Networks(modules, action_dim)


def state(params: dict, target_params: dict, step: int = 0) -> AgentState:
    """A state holding the given parameters (no optimiser: the losses alone are under test)."""
    return AgentState(
        params=params,
        target_params=target_params,
        opt_state=None,
        rng=jax.random.PRNGKey(0),
        step=jnp.asarray(step, jnp.int32),
    )


def batch(**arrays) -> dict[str, jax.Array]:
    return {k: jnp.asarray(v, jnp.float32) for k, v in arrays.items()}


# The fixed batch of the IQL-family hand computations (tests/agents/test_iql.py works the numbers out).
IQL_OBS = [
    [0.5, 1.0, 0.2, 0.5, 0.0],
    [1.0, 0.0, 0.4, 0.0, 0.0],
    [-1.0, -1.0, 0.0, -0.2, 0.5],
]
IQL_ACTIONS = [[0.5, 0.5], [-0.5, 0.0], [0.0, 1.0]]  # sum_j a_j = 1.0, -0.5, 1.0
IQL_BATCH = batch(
    observations=IQL_OBS,
    actions=IQL_ACTIONS,
    rewards=[1.0, 0.0, -1.0],
    masks=[1.0, 0.0, 1.0],
    next_observations=[[2.0, 0, 0, 0, 0], [5.0, 0, 0, 0, 0], [-1.0, 0, 0, 0, 0]],  # V(s') = 2, 5, -1
)
# Online critic slopes (1, 1): Q_1 = [2.0, -0.5, 0.0], Q_2 = [1.2, -0.1, 1.0], min = [1.2, -0.5, 0.0].
# Target slopes (0.5, -0.5): Q'_1 = [1.5, -0.25, -0.5], Q'_2 = [-0.3, 0.65, -0.5], min = [-0.3, -0.25, -0.5].
IQL_PARAMS = {"value": value_params(0.0), "critic": critic_params(1.0, 1.0), "actor": actor_params(0.0, 0.0)}
IQL_TARGETS = {"critic": critic_params(0.5, -0.5)}
