"""Fisher Decorator (FD): a BC flow policy refined by a residual under a Fisher-metric KL budget.

Actor (METHOD.md section 5), with a_hat = Euler rollout of the flow (no gradient) and
a = clip(a_hat + delta_phi(s, a_hat), -1, 1):

    L_actor = L_bc(theta) + alpha * E_s[ delta^T F_n(s) delta / d ] - E_s[ Q(s, a) ]

F_n(s) is the trace-normalised Fisher metric of the behaviour flow at s (stop-gradient).  alpha is
fixed or a Lagrange multiplier: log_alpha minimises -log_alpha * (penalty - target_divergence).
The isotropic baseline (``iso``) is this file with F_n = I.

Critic: see :func:`fidec.agents.common.critic_loss`; the target action a' = clip(a_hat' + delta(s', a_hat'))
comes from the current actor.

Work per update: one batched Euler rollout serves the M Fisher samples of every state (the first
of which is the base action a_hat) and the base actions at s'; scores, target actions and the
Fisher metric are forward-only passes outside the differentiated loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fidec.agents import common
from fidec.agents.common import AgentState, Batch, Networks
from fidec.agents.config import AgentConfig
from fidec.fisher import (
    condition_number,
    fisher_from_scores,
    jacobian_square,
    perturbed_times,
    quadratic_penalty,
)
from fidec.flows import flow_matching_loss, score_at

PARTS = ("flow", "critic", "residual")
MODES = ("onestep", "best_of_n", "iterative")
USE_FISHER = True


def init(
    config: AgentConfig, key: jax.Array, obs_dim: int, action_dim: int, networks: Networks
) -> AgentState:
    init_key, state_key = jax.random.split(key)
    params = common.init_params(networks, init_key, obs_dim, action_dim, PARTS)
    params["log_alpha"] = jnp.log(jnp.asarray(config.alpha, jnp.float32))
    return common.new_state(config, params, state_key)


def refine(networks: Networks, residual_params, observations: jax.Array, base_actions: jax.Array):
    """T(a_hat) = clip(a_hat + delta_phi(s, a_hat), -1, 1); returns (refined action, delta)."""
    delta = networks.residual.apply(residual_params, observations, base_actions)
    return jnp.clip(base_actions + delta, -1.0, 1.0), delta


def fisher_metrics_for_batch(
    config: AgentConfig,
    networks: Networks,
    flow_params,
    observations: jax.Array,
    samples: jax.Array,
    key: jax.Array,
) -> jax.Array:
    """F_n(s) for each state from its M base samples (B, M, d); stop-gradient, (B, d, d)."""
    fc = config.fisher
    noise_key, time_key = jax.random.split(key)
    samples = jax.lax.stop_gradient(samples)
    noise = jax.random.normal(noise_key, samples.shape, samples.dtype)
    t = perturbed_times(time_key, samples.shape[:-1], fc, samples.dtype)
    v = common.velocity_fn(networks, jax.lax.stop_gradient(flow_params), observations, sample_axes=1)
    scores = score_at(v, samples, noise, t, fc.estimator)
    return fisher_from_scores(scores, fc.damping, fc.normalize, fc.norm_eps)


def rollouts(
    config: AgentConfig, networks: Networks, state: AgentState, batch: Batch, key: jax.Array, use_fisher: bool
):
    """One batched Euler rollout for (i) M samples per state s (sample 0 is a_hat) and (ii) a_hat' at s'.

    With ``fisher.source == "dataset"`` (or no Fisher metric) only a_hat and a_hat' are rolled out and
    the Fisher samples are the dataset actions (noised M times inside the score).
    """
    b, d = batch["actions"].shape
    m = config.fisher.num_samples if (use_fisher and config.fisher.source == "flow") else 1
    flow_params = jax.lax.stop_gradient(state.params["flow"])
    # s and s' are encoded once (before repeating and before the Euler steps).
    both = common.encode(
        networks.flow, flow_params, jnp.concatenate([batch["observations"], batch["next_observations"]])
    )
    features = jnp.concatenate([jnp.repeat(both[:b], m, axis=0), both[b:]], axis=0)
    noise = jax.random.normal(key, (b * m + b, d))
    out = common.sample_from_features(networks, flow_params, features, noise, config.flow_steps)
    samples = out[: b * m].reshape(b, m, d)
    next_base = out[b * m :]
    if use_fisher and config.fisher.source == "dataset":
        samples = jnp.repeat(batch["actions"][:, None, :], config.fisher.num_samples, axis=1)
        return out[:b], samples, next_base
    return samples[:, 0], samples, next_base


def penalty_terms(
    config: AgentConfig, networks: Networks, residual_params, obs, base_actions, delta, metric, key
) -> tuple[jax.Array, jax.Array]:
    """Per-state penalty delta^T F_n delta / d (+ w ||sym J||^2 / d, or w tr(J^2) / d, when jacobian_weight > 0,
    J = d delta / d a_hat; see ``jacobian_form``)."""
    quad = quadratic_penalty(delta, metric)
    if config.jacobian_weight == 0.0:
        return quad, jnp.zeros_like(quad)
    obs = common.encode(networks.residual, residual_params, obs)  # per-state Jacobians act on features

    def delta_single(o, a):
        return common.apply_head(networks.residual, residual_params, o, a)

    d = delta.shape[-1]
    probe_key = None if config.jacobian_probes == 0 else key
    jac = jax.vmap(
        lambda o, a, k: jacobian_square(
            lambda x: delta_single(o, x), a[None], k, max(config.jacobian_probes, 1), config.jacobian_form
        )[0],
        in_axes=(0, 0, None if probe_key is None else 0),
    )(obs, base_actions, None if probe_key is None else jax.random.split(probe_key, obs.shape[0]))
    return quad + config.jacobian_weight * jac / d, jac / d


def loss_fn(
    params,
    config: AgentConfig,
    networks: Networks,
    state: AgentState,
    batch: Batch,
    aux: dict,
    use_fisher: bool,
):
    """Total loss = critic loss + actor loss (+ Lagrange loss); each term reaches only its own parameters."""
    obs = batch["observations"]
    c_loss, c_info = common.critic_loss(
        networks, config, params["critic"], state.target_params["critic"], batch, aux["next_actions"]
    )

    flow_v = common.velocity_fn(networks, params["flow"], obs)
    bc_loss = flow_matching_loss(flow_v, batch["actions"], aux["bc_noise"], aux["bc_times"])

    base = jax.lax.stop_gradient(aux["base_actions"])
    actions, delta = refine(networks, params["residual"], obs, base)
    per_state_penalty, jac_term = penalty_terms(
        config, networks, params["residual"], obs, base, delta, aux["metric"], aux["jac_key"]
    )
    penalty = per_state_penalty.mean()
    q_loss, q = common.q_objective(networks, config, params["critic"], obs, actions)
    alpha = jax.lax.stop_gradient(jnp.exp(params["log_alpha"]))
    actor_loss = bc_loss + alpha * penalty + q_loss

    alpha_loss = jnp.zeros(())
    if config.lagrange:
        alpha_loss = -params["log_alpha"] * (jax.lax.stop_gradient(penalty) - config.target_divergence)

    info = {
        **c_info,
        "actor_loss": actor_loss,
        "bc_loss": bc_loss,
        "q_loss": q_loss,
        "penalty": penalty,
        "jacobian_term": jac_term.mean(),
        "alpha": alpha,
        "alpha_loss": alpha_loss,
        "delta_abs_mean": jnp.abs(delta).mean(),
        "delta_norm_mean": jnp.linalg.norm(delta, axis=-1).mean(),
        "actor_q_mean": q.mean(),
    }
    return c_loss + actor_loss + alpha_loss, info


def update(
    config: AgentConfig, networks: Networks, state: AgentState, batch: Batch, use_fisher: bool = USE_FISHER
):
    """One gradient step of FD (pure; jit it).  Returns (new state, metrics)."""
    state, batch = common.prepare_batch(config, state, batch)
    rng, roll_key, fisher_key, bc_key, t_key, jac_key = jax.random.split(state.rng, 6)
    b, d = batch["actions"].shape
    base, samples, next_base = rollouts(config, networks, state, batch, roll_key, use_fisher)
    next_actions, _ = refine(networks, state.params["residual"], batch["next_observations"], next_base)
    if use_fisher:
        metric = fisher_metrics_for_batch(
            config, networks, state.params["flow"], batch["observations"], samples, fisher_key
        )
    else:
        metric = None
    aux = {
        "base_actions": base,
        "next_actions": jax.lax.stop_gradient(next_actions),
        "metric": metric,
        "bc_noise": jax.random.normal(bc_key, (b, d)),
        "bc_times": jax.random.uniform(t_key, (b, 1)),
        "jac_key": jac_key,
    }
    grads, info = jax.grad(loss_fn, has_aux=True)(
        state.params, config, networks, state, batch, aux, use_fisher
    )
    if metric is not None:
        info["fisher_condition"] = condition_number(metric).mean()
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
    """Actions for a batch of states (B, obs_dim) or stacked frames (B, H, W, C k) -> (B, d).

    onestep: clip(a_hat + delta(s, a_hat)).  best_of_n: N base samples, refine each, keep the highest Q.
    iterative: a_{k+1} = clip(a_k + delta(s, a_k)) for k < refine_iterations, keep the iterate of highest Q.
    """
    params = state.params
    b = observations.shape[0]
    d = networks.action_dim
    if mode == "onestep":
        base = common.sample_base_actions(
            networks, params["flow"], observations, jax.random.normal(key, (b, d)), config.flow_steps
        )
        return refine(networks, params["residual"], observations, base)[0]
    if mode == "best_of_n":
        n = config.num_action_samples
        obs_n = jnp.repeat(observations, n, axis=0)
        base = common.sample_base_actions(
            networks, params["flow"], obs_n, jax.random.normal(key, (b * n, d)), config.flow_steps
        )
        actions = refine(networks, params["residual"], obs_n, base)[0]
        q = common.q_values(networks, params["critic"], obs_n, actions).reshape(b, n)
        return actions.reshape(b, n, d)[jnp.arange(b), jnp.argmax(q, axis=1)]
    if mode == "iterative":
        base = common.sample_base_actions(
            networks, params["flow"], observations, jax.random.normal(key, (b, d)), config.flow_steps
        )

        def step(a, _):
            a_next = refine(networks, params["residual"], observations, a)[0]
            return a_next, (a_next, common.q_values(networks, params["critic"], observations, a_next))

        _, (iterates, qs) = jax.lax.scan(step, base, None, length=config.refine_iterations)
        best = jnp.argmax(qs, axis=0)
        return iterates[best, jnp.arange(b)]
    raise ValueError(f"fd/iso: unknown action mode {mode!r}; choose one of {MODES}")
