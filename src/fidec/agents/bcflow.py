"""BC-flow: behaviour cloning with a flow-matching policy (METHOD.md section 1).

    L_bc = E_{s, a, x0, t} || v_theta(s, x_t, t) - (a - x0) ||^2,   x_t = (1 - t) x0 + t a

Acts with the K-step Euler sampler.  No critic is trained, so the only action mode is "onestep".
"""

from __future__ import annotations

import jax

from fidec.agents import common
from fidec.agents.common import AgentState, Batch, Networks
from fidec.agents.config import AgentConfig
from fidec.flows import flow_matching_loss

PARTS = ("flow",)
MODES = ("onestep",)


def init(
    config: AgentConfig, key: jax.Array, obs_dim: int, action_dim: int, networks: Networks
) -> AgentState:
    init_key, state_key = jax.random.split(key)
    return common.new_state(
        config, common.init_params(networks, init_key, obs_dim, action_dim, PARTS), state_key
    )


def actor_loss(params, networks: Networks, batch: Batch, noise: jax.Array, times: jax.Array):
    """L_bc on the dataset actions (the only loss: no critic)."""
    v = common.velocity_fn(networks, params["flow"], batch["observations"])
    loss = flow_matching_loss(v, batch["actions"], noise, times)
    return loss, {"bc_loss": loss, "actor_loss": loss}


def update(
    config: AgentConfig, networks: Networks, state: AgentState, batch: Batch
) -> tuple[AgentState, dict]:
    """One gradient step of L_bc (pure; jit it)."""
    state, batch = common.prepare_batch(config, state, batch)
    rng, noise_key, time_key = jax.random.split(state.rng, 3)
    b, d = batch["actions"].shape
    noise = jax.random.normal(noise_key, (b, d))
    times = jax.random.uniform(time_key, (b, 1))
    grads, info = jax.grad(actor_loss, has_aux=True)(state.params, networks, batch, noise, times)
    info.update(common.grad_norms(grads))
    return common.apply_gradients(config, state, grads, rng), info


def sample_actions(
    config: AgentConfig,
    networks: Networks,
    state: AgentState,
    observations: jax.Array,
    key: jax.Array,
    mode: str,
) -> jax.Array:
    """a = clip(Euler rollout of the flow from x0 ~ N(0, I), -1, 1)."""
    if mode != "onestep":
        raise ValueError(f"bcflow has no critic, so it only supports action mode 'onestep' (got {mode!r})")
    b, d = observations.shape[0], networks.action_dim
    noise = jax.random.normal(key, (b, d))
    return jax.numpy.clip(
        common.sample_base_actions(
            networks, state.params["flow"], observations, noise, config.flow_steps, config.clip_flow_actions
        ),
        -1,
        1,
    )
