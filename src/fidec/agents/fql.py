"""Flow Q-learning (FQL): a one-step policy distilled from the BC flow and pushed up the critic.

    L_actor = L_bc(theta) + alpha * E || mu_w(s, z) - flow_theta(s, z) ||^2 / d - E[ Q(s, clip(mu_w(s, z))) ]

with z ~ N(0, I), flow(s, z) the K-step Euler rollout from z (no gradient; clipped to [-1, 1] as in
FQL's ``compute_flow_actions``), and -Q optionally divided by stop_gradient(E|Q|).  The critic's target action is a' = clip(mu_w(s', z')) from the current
one-step policy.  One Euler rollout per update (the distillation target).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from fidec.agents import common
from fidec.agents.common import AgentState, Batch, Networks
from fidec.agents.config import AgentConfig
from fidec.flows import flow_matching_loss

PARTS = ("flow", "critic", "onestep")
MODES = ("onestep", "best_of_n")


def init(
    config: AgentConfig, key: jax.Array, obs_dim: int, action_dim: int, networks: Networks
) -> AgentState:
    init_key, state_key = jax.random.split(key)
    return common.new_state(
        config, common.init_params(networks, init_key, obs_dim, action_dim, PARTS), state_key
    )


class UpdateInputs(NamedTuple):
    """What an update draws before it differentiates (no gradient flows through any of it)."""

    z: jax.Array  # noise of the one-step policy, (B, d)
    flow_actions: jax.Array  # the distillation target flow(s, z), (B, d)
    next_actions: jax.Array  # a' = clip(mu(s', z')) at s', (B, d)
    bc_noise: jax.Array  # x0 of the flow-matching loss, (B, d)
    bc_times: jax.Array  # t of the flow-matching loss, (B, 1)


def critic_loss(
    config: AgentConfig, networks: Networks, params, state: AgentState, batch: Batch, inputs: UpdateInputs
):
    """L_Q = E[(Q_i(s, a) - y)^2], y = r + gamma mask Q_agg'(s', a') with a' = clip(mu(s', z'))."""
    return common.critic_loss(
        networks, config, params["critic"], state.target_params["critic"], batch, inputs.next_actions
    )


def actor_loss(config: AgentConfig, networks: Networks, params, batch: Batch, inputs: UpdateInputs):
    """L_bc(theta) + alpha * E||mu_w(s, z) - flow(s, z)||^2 / d - E[Q(s, clip(mu_w(s, z)))] (critic fixed)."""
    obs = batch["observations"]
    bc_loss = flow_matching_loss(
        common.velocity_fn(networks, params["flow"], obs), batch["actions"], inputs.bc_noise, inputs.bc_times
    )
    onestep = networks.onestep.apply(params["onestep"], obs, inputs.z)
    distill_loss = jnp.mean((onestep - jax.lax.stop_gradient(inputs.flow_actions)) ** 2)
    q_loss, q = common.q_objective(networks, config, params["critic"], obs, jnp.clip(onestep, -1.0, 1.0))
    loss = bc_loss + config.alpha * distill_loss + q_loss
    info = {
        "actor_loss": loss,
        "bc_loss": bc_loss,
        "distill_loss": distill_loss,
        "q_loss": q_loss,
        "alpha": jnp.asarray(config.alpha, jnp.float32),
        "actor_q_mean": q.mean(),
        "delta_abs_mean": jnp.abs(onestep - inputs.flow_actions).mean(),
    }
    return loss, info


def total_loss(
    params, config: AgentConfig, networks: Networks, state: AgentState, batch: Batch, inputs: UpdateInputs
):
    """Critic loss + actor loss: the one function an update differentiates."""
    c_loss, c_info = critic_loss(config, networks, params, state, batch, inputs)
    a_loss, a_info = actor_loss(config, networks, params, batch, inputs)
    return c_loss + a_loss, {**c_info, **a_info}


def draw_inputs(config: AgentConfig, networks: Networks, state: AgentState, batch: Batch):
    """(the state's next rng, the update's :class:`UpdateInputs`): the distillation target (one Euler rollout),
    the target actions and the flow-matching noise."""
    rng, z_key, next_key, bc_key, t_key = jax.random.split(state.rng, 5)
    b, d = batch["actions"].shape
    z = jax.random.normal(z_key, (b, d))
    flow_actions = common.sample_base_actions(
        networks, state.params["flow"], batch["observations"], z, config.flow_steps, config.clip_flow_actions
    )
    next_actions = jnp.clip(
        networks.onestep.apply(
            state.params["onestep"], batch["next_observations"], jax.random.normal(next_key, (b, d))
        ),
        -1.0,
        1.0,
    )
    inputs = UpdateInputs(
        z=z,
        flow_actions=flow_actions,
        next_actions=jax.lax.stop_gradient(next_actions),
        bc_noise=jax.random.normal(bc_key, (b, d)),
        bc_times=jax.random.uniform(t_key, (b, 1)),
    )
    return rng, inputs


def update(
    config: AgentConfig, networks: Networks, state: AgentState, batch: Batch
) -> tuple[AgentState, dict]:
    """One gradient step of FQL (pure; jit it)."""
    state, batch = common.prepare_batch(config, state, batch)
    rng, inputs = draw_inputs(config, networks, state, batch)
    grads, info = jax.grad(total_loss, has_aux=True)(state.params, config, networks, state, batch, inputs)
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
    """onestep: clip(mu(s, z)).  best_of_n: N draws of z, keep the action of highest Q."""
    params = state.params
    b, d = observations.shape[0], networks.action_dim
    if mode == "onestep":
        return jnp.clip(
            networks.onestep.apply(params["onestep"], observations, jax.random.normal(key, (b, d))), -1.0, 1.0
        )
    if mode == "best_of_n":
        n = config.num_action_samples
        obs_n = jnp.repeat(observations, n, axis=0)
        actions = jnp.clip(
            networks.onestep.apply(params["onestep"], obs_n, jax.random.normal(key, (b * n, d))), -1.0, 1.0
        )
        q = common.q_values(networks, params["critic"], obs_n, actions).reshape(b, n)
        return common.best_by_q(actions.reshape(b, n, d), q)
    raise ValueError(f"fql: unknown action mode {mode!r}; choose one of {MODES} (iterative needs a residual)")
