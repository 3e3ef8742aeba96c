"""Fisher Decorator (FD): a BC flow policy refined by a residual under a Fisher-metric KL budget.

Actor (METHOD.md section 5), with a_hat = Euler rollout of the flow (no gradient) and
a = clip(a_hat + delta_phi(s, a_hat), -1, 1):

    L_actor = L_bc(theta) + alpha * E_s[ delta^T F_n(s) delta / d ] - E_s[ Q(s, a) ]

F_n(s) is the trace-normalised Fisher metric of the behaviour flow at s (stop-gradient).  alpha is
fixed or a Lagrange multiplier: log_alpha minimises -log_alpha * (penalty - target_divergence).
The isotropic baseline (``iso``) is this file with F_n = I.

Critic: see :func:`fidec.agents.common.critic_loss`; the target action a' = clip(a_hat' + delta(s', a_hat'))
comes from the current actor.

Work per update: one batched Euler rollout serves the base actions a_hat at s, the M Fisher samples
of every state and the base actions at s' (B (M + 2) rows; B (M + 1) with ``fisher.reuse_base_sample``,
where a_hat is the first Fisher sample); Euler samples are clipped to [-1, 1] as in the official code.
Scores, target actions and the Fisher metric are forward-only passes outside the differentiated loss.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from fidec.agents import common
from fidec.agents.common import AgentState, Batch, Networks
from fidec.agents.config import AgentConfig
from fidec.fisher import condition_number, fisher_metric, jacobian_square, quadratic_penalty
from fidec.flows import flow_matching_loss

PARTS = ("flow", "critic", "residual")
MODES = ("onestep", "best_of_n", "iterative")


class UpdateInputs(NamedTuple):
    """What an update draws before it differentiates (no gradient flows through any of it)."""

    base_actions: jax.Array  # a_hat at s, (B, d)
    next_actions: jax.Array  # a' = clip(a_hat' + delta(s', a_hat')) at s', (B, d)
    metric: jax.Array | None  # F_n(s), (B, d, d); None for the isotropic penalty (F_n = I)
    bc_noise: jax.Array  # x0 of the flow-matching loss, (B, d)
    bc_times: jax.Array  # t of the flow-matching loss, (B, 1)
    jacobian_key: jax.Array  # probes of the optional Jacobian term


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


def critic_loss(
    config: AgentConfig, networks: Networks, params, state: AgentState, batch: Batch, inputs: UpdateInputs
):
    """L_Q = E[(Q_i(s, a) - y)^2], y = r + gamma mask Q_agg'(s', a') with a' from the current actor."""
    return common.critic_loss(
        networks, config, params["critic"], state.target_params["critic"], batch, inputs.next_actions
    )


def actor_loss(config: AgentConfig, networks: Networks, params, batch: Batch, inputs: UpdateInputs):
    """L_actor = L_bc(theta) + alpha * E_s[delta^T F_n delta / d] - E_s[Q(s, clip(a_hat + delta))], plus the
    Lagrange loss -log_alpha * (penalty - target_divergence) when ``lagrange``.

    a_hat is held fixed, alpha enters L_actor as a constant (stop-gradient) and the critic is held fixed, so
    L_bc trains the flow, the penalty and Q terms train the residual, and the Lagrange loss trains log_alpha.
    """
    obs = batch["observations"]
    flow_v = common.velocity_fn(networks, params["flow"], obs)
    bc_loss = flow_matching_loss(flow_v, batch["actions"], inputs.bc_noise, inputs.bc_times)

    base = jax.lax.stop_gradient(inputs.base_actions)
    actions, delta = refine(networks, params["residual"], obs, base)
    per_state_penalty, jac_term = penalty_terms(
        config, networks, params["residual"], obs, base, delta, inputs.metric, inputs.jacobian_key
    )
    penalty = per_state_penalty.mean()
    q_loss, q = common.q_objective(networks, config, params["critic"], obs, actions)
    alpha = jax.lax.stop_gradient(jnp.exp(params["log_alpha"]))
    loss = bc_loss + alpha * penalty + q_loss

    alpha_loss = jnp.zeros(())
    if config.lagrange:
        alpha_loss = -params["log_alpha"] * (jax.lax.stop_gradient(penalty) - config.target_divergence)

    info = {
        "actor_loss": loss,
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
    return loss + alpha_loss, info


def total_loss(
    params, config: AgentConfig, networks: Networks, state: AgentState, batch: Batch, inputs: UpdateInputs
):
    """Critic loss + actor loss (+ Lagrange loss): the one function an update differentiates; each term
    reaches only its own parameters."""
    c_loss, c_info = critic_loss(config, networks, params, state, batch, inputs)
    a_loss, a_info = actor_loss(config, networks, params, batch, inputs)
    return c_loss + a_loss, {**c_info, **a_info}


def draw_inputs(
    config: AgentConfig, networks: Networks, state: AgentState, batch: Batch, use_fisher: bool
) -> tuple[jax.Array, UpdateInputs]:
    """(the state's next rng, the update's :class:`UpdateInputs`): one batched Euler rollout for a_hat, the
    Fisher samples and a_hat', the refined target actions, the Fisher metric and the flow-matching noise."""
    rng, roll_key, fisher_key, bc_key, t_key, jac_key = jax.random.split(state.rng, 6)
    b, d = batch["actions"].shape
    base, samples, next_base = rollouts(config, networks, state, batch, roll_key, use_fisher)
    next_actions, _ = refine(networks, state.params["residual"], batch["next_observations"], next_base)
    metric = None
    if use_fisher:
        metric = fisher_metrics_for_batch(
            config, networks, state.params["flow"], batch["observations"], samples, fisher_key
        )
    inputs = UpdateInputs(
        base_actions=base,
        next_actions=jax.lax.stop_gradient(next_actions),
        metric=metric,
        bc_noise=jax.random.normal(bc_key, (b, d)),
        bc_times=jax.random.uniform(t_key, (b, 1)),
        jacobian_key=jac_key,
    )
    return rng, inputs


def update(config: AgentConfig, networks: Networks, state: AgentState, batch: Batch, use_fisher: bool = True):
    """One gradient step of FD (pure; jit it).  Returns (new state, metrics).  ``use_fisher=False`` is iso."""
    state, batch = common.prepare_batch(config, state, batch)
    rng, inputs = draw_inputs(config, networks, state, batch, use_fisher)
    grads, info = jax.grad(total_loss, has_aux=True)(state.params, config, networks, state, batch, inputs)
    if inputs.metric is not None:
        info["fisher_condition"] = condition_number(inputs.metric).mean()
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

    onestep: clip(a_hat + delta(s, a_hat)).
    best_of_n: N base samples; ``best_of_n_rank="base"`` keeps the base action of highest Q and refines it
        (the official code), ``"refined"`` refines all N and keeps the refined action of highest Q.
    iterative: a_0 = a_hat, a_{k+1} = clip(a_k + delta(s, a_k)) for k < refine_iterations; the a_k of
        highest Q (a_0 included, as in the official code).
    """
    params = state.params
    b = observations.shape[0]
    d = networks.action_dim

    def base_actions(obs, noise_key):
        noise = jax.random.normal(noise_key, (obs.shape[0], d))
        return common.sample_base_actions(
            networks, params["flow"], obs, noise, config.flow_steps, config.clip_flow_actions
        )

    if mode == "onestep":
        return refine(networks, params["residual"], observations, base_actions(observations, key))[0]
    if mode == "best_of_n":
        n = config.num_action_samples
        obs_n = jnp.repeat(observations, n, axis=0)
        base = base_actions(obs_n, key)
        if config.best_of_n_rank == "base":
            q = common.q_values(networks, params["critic"], obs_n, base).reshape(b, n)
            best = common.best_by_q(base.reshape(b, n, d), q)
            return refine(networks, params["residual"], observations, best)[0]
        actions = refine(networks, params["residual"], obs_n, base)[0]
        q = common.q_values(networks, params["critic"], obs_n, actions).reshape(b, n)
        return common.best_by_q(actions.reshape(b, n, d), q)
    if mode == "iterative":

        def step(a, _):
            a_next = refine(networks, params["residual"], observations, a)[0]
            return a_next, a_next

        base = base_actions(observations, key)
        _, iterates = jax.lax.scan(step, base, None, length=config.refine_iterations)
        candidates = jnp.concatenate([base[None], iterates], axis=0).swapaxes(0, 1)  # (B, K + 1, d)
        k = candidates.shape[1]
        q = common.q_values(
            networks, params["critic"], jnp.repeat(observations, k, axis=0), candidates.reshape(b * k, d)
        ).reshape(b, k)
        return common.best_by_q(candidates, q)
    raise ValueError(f"fd/iso: unknown action mode {mode!r}; choose one of {MODES}")


# -- the pieces of an update --------------------------------------------------------------------------


def rollouts(
    config: AgentConfig, networks: Networks, state: AgentState, batch: Batch, key: jax.Array, use_fisher: bool
):
    """One batched Euler rollout for the base actions a_hat at s, the M Fisher samples per state and a_hat' at s'.

    The M Fisher samples are fresh draws (the official code's), or with ``fisher.reuse_base_sample`` a_hat
    and M - 1 fresh draws.  With ``fisher.source == "dataset"`` (or no Fisher metric) only a_hat and a_hat'
    are rolled out and the Fisher samples are the dataset actions (noised M times inside the score).
    Returns (a_hat (B, d), samples (B, M, d) or None, a_hat' (B, d)).
    """
    b, d = batch["actions"].shape
    fc = config.fisher
    from_flow = use_fisher and fc.source == "flow"
    fresh = (fc.num_samples - 1 if fc.reuse_base_sample else fc.num_samples) if from_flow else 0
    per_state = 1 + fresh  # a_hat first, then the fresh Fisher samples
    flow_params = jax.lax.stop_gradient(state.params["flow"])
    # s and s' are encoded once (before repeating and before the Euler steps).
    both = common.encode(
        networks.flow, flow_params, jnp.concatenate([batch["observations"], batch["next_observations"]])
    )
    features = jnp.concatenate([jnp.repeat(both[:b], per_state, axis=0), both[b:]], axis=0)
    noise = jax.random.normal(key, (b * per_state + b, d))
    out = common.sample_from_features(
        networks, flow_params, features, noise, config.flow_steps, config.clip_flow_actions
    )
    per_s = out[: b * per_state].reshape(b, per_state, d)
    base, next_base = per_s[:, 0], out[b * per_state :]
    if not use_fisher:
        return base, None, next_base
    if fc.source == "dataset":
        return base, jnp.repeat(batch["actions"][:, None, :], fc.num_samples, axis=1), next_base
    return base, (per_s if fc.reuse_base_sample else per_s[:, 1:]), next_base


def fisher_metrics_for_batch(
    config: AgentConfig,
    networks: Networks,
    flow_params,
    observations: jax.Array,
    samples: jax.Array,
    key: jax.Array,
) -> jax.Array:
    """F_n(s) for each state from its M base samples (B, M, d) by :func:`fidec.fisher.fisher_metric`;
    stop-gradient, (B, d, d)."""
    v = common.velocity_fn(networks, jax.lax.stop_gradient(flow_params), observations, sample_axes=1)
    return fisher_metric(v, samples, key, config.fisher)


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
