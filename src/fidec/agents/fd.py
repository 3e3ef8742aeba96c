"""Fisher Decorator (FD): a BC flow policy refined by a residual under a Fisher-metric KL budget.

Actor (docs/method.md), with a_hat = Euler rollout of the flow (no gradient) and
a = clip(a_hat + delta_phi(s, a_hat), -1, 1):

    L_actor = L_bc(theta) + alpha * E_s[ delta^T F_n(s) delta / d ] - E_s[ Q(s, a) ]

F_n(s) is the trace-normalised Fisher metric of the behaviour flow at s (stop-gradient), estimated from M
flow samples per state noised to t_eps.  alpha is fixed or a Lagrange multiplier: log_alpha minimises
-log_alpha * (penalty - target_divergence).  The isotropic baseline (``iso``, DeFlow-style) is this file
with F_n = I (:class:`RefinementConfig` without a Fisher metric).

Critic: y = r + gamma mask Q_agg'(s', a'), a' = clip(a_hat' + delta(s', a_hat')) from the current actor.

One update draws (:func:`update_draws`): the flow-matching noise and times, the base-action noise at s and
at s', and for the Fisher metric the M sample noises, their x0 and (when t is drawn) their t.  One batched
Euler rollout serves a_hat, the Fisher samples and a_hat'; the scores, target actions and the metric are
forward-only passes outside the differentiated loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp

from fidec.agents import common
from fidec.agents.base import (
    AgentPresets,
    AgentSpec,
    CriticConfig,
    Draw,
    FlowConfig,
    Preset,
    Reference,
    ReferenceAction,
    ReferenceCase,
)
from fidec.agents.common import AgentState, Batch, Networks
from fidec.fisher import FisherConfig, condition_number, fisher_metric_at, jacobian_square, quadratic_penalty
from fidec.flows import flow_matching_loss

MODES = ("onestep", "best_of_n", "iterative")


@dataclass(frozen=True)
class RefinementConfig(CriticConfig, FlowConfig):
    """A flow policy refined by a residual under a divergence budget (FD; iso with F_n = I).

    Defaults are the official FD code's agent defaults (its ``get_config``).

    Attributes:
        grad_clip: global-norm clip of all gradients together (the official code's 5.0).
        q_agg: "mean" or "min" over the target ensemble.
        alpha: penalty weight (fixed) or the Lagrange multiplier's initial value.
        alpha_lr: Adam learning rate of log_alpha.
        lagrange: learn log_alpha so that the penalty tracks ``target_divergence``.
        target_divergence: the penalty's target when ``lagrange`` is on.
        normalize_q_loss: divide the actor's -Q by stop_gradient(max(mean |Q|, 1e-6)).
        jacobian_weight: weight w of the Jacobian term, penalty += w * tr((d delta/d a)^2) / d (0 = the paper's
            penalty; beyond the paper, see docs/method.md).
        jacobian_probes: Hutchinson probes for that term (0 = exact trace, d JVPs).
        jacobian_form: "sym" (default): ||sym J||_F^2, a non-negative upper bound; "trace": tr(J^2), the exact
            second-order term, which a residual can drive negative (see docs/diagnostics.md).
        action_mode: "onestep" (clip(a_hat + delta)), "best_of_n" or "iterative".
        num_action_samples: N for best-of-N.
        best_of_n_rank: best-of-N: "base" ranks the N base actions by Q and refines the winner (the official
            ``sample_actions_max_q``); "refined" refines all N and keeps the refined action of highest Q.
        refine_iterations: residual applications for iterative refinement (the base action and every iterate are
            candidates; the one of highest Q is taken).
    """

    grad_clip: float | None = 5.0
    q_agg: Literal["mean", "min"] = "mean"
    alpha: float = 10.0
    alpha_lr: float = 3e-4
    lagrange: bool = True
    target_divergence: float = 1e-3
    normalize_q_loss: bool = False
    jacobian_weight: float = 0.0
    jacobian_probes: int = 1
    jacobian_form: Literal["sym", "trace"] = "sym"
    action_mode: Literal["onestep", "best_of_n", "iterative"] = "onestep"
    num_action_samples: int = 10
    best_of_n_rank: Literal["base", "refined"] = "base"
    refine_iterations: int = 5

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (self.q_agg in ("mean", "min"), f"q_agg must be 'mean' or 'min', got {self.q_agg!r}"),
            (self.alpha > 0, f"alpha must be > 0 (log_alpha = log(alpha)), got {self.alpha}"),
            (self.alpha_lr > 0, f"alpha_lr must be > 0, got {self.alpha_lr}"),
            (self.target_divergence > 0, f"target_divergence must be > 0, got {self.target_divergence}"),
            (self.jacobian_weight >= 0, f"jacobian_weight must be >= 0, got {self.jacobian_weight}"),
            (self.jacobian_probes >= 0, f"jacobian_probes must be >= 0, got {self.jacobian_probes}"),
            (
                self.jacobian_form in ("sym", "trace"),
                f"jacobian_form must be 'sym' or 'trace', got {self.jacobian_form!r}",
            ),
            (self.action_mode in MODES, f"action_mode must be one of {MODES}, got {self.action_mode!r}"),
            (
                self.best_of_n_rank in ("base", "refined"),
                f"best_of_n_rank must be 'base' or 'refined', got {self.best_of_n_rank!r}",
            ),
            (self.num_action_samples >= 1, f"num_action_samples must be >= 1, got {self.num_action_samples}"),
            (self.refine_iterations >= 1, f"refine_iterations must be >= 1, got {self.refine_iterations}"),
        ]


@dataclass(frozen=True)
class FDConfig(RefinementConfig):
    """Fisher Decorator: the refinement penalty measured by the behaviour flow's Fisher metric.

    Attributes:
        fisher: how the per-state Fisher metric is estimated.
    """

    fisher: FisherConfig = field(default_factory=FisherConfig)


def metric_config(config: RefinementConfig) -> FisherConfig | None:
    """The Fisher metric's settings, or None for the isotropic penalty (F_n = I)."""
    return config.fisher if isinstance(config, FDConfig) else None


# -- networks and state -----------------------------------------------------------------------------------

PARTS = ("flow", "critic", "residual")


def build(config: RefinementConfig, action_dim: int) -> Networks:
    return common.make_networks(
        config,
        action_dim,
        {
            "flow": common.flow_network(config, action_dim),
            "critic": common.critic_network(config),
            "residual": common.residual_network(config, action_dim),
        },
    )


def init(
    config: RefinementConfig, networks: Networks, key: jax.Array, obs_dim, action_dim: int
) -> AgentState:
    init_key, state_key = jax.random.split(key)
    params = common.init_params(networks, init_key, obs_dim, action_dim, PARTS)
    params["log_alpha"] = jnp.log(jnp.asarray(config.alpha, jnp.float32))
    return common.new_state(config, params, state_key, targets=("critic",))


def refine(networks: Networks, residual_params, observations: jax.Array, base_actions: jax.Array):
    """T(a_hat) = clip(a_hat + delta_phi(s, a_hat), -1, 1); returns (refined action, delta)."""
    delta = networks.residual.apply(residual_params, observations, base_actions)
    return jnp.clip(base_actions + delta, -1.0, 1.0), delta


# -- the update -------------------------------------------------------------------------------------------


def fisher_sample_count(config: RefinementConfig) -> int:
    """Fresh flow samples per state for the Fisher metric (M, or M - 1 reusing a_hat; 0 without)."""
    fisher = metric_config(config)
    if fisher is None or fisher.source != "flow":
        return 0
    return fisher.num_samples - 1 if fisher.reuse_base_sample else fisher.num_samples


def update_draws(config: RefinementConfig, b: int, d: int) -> dict[str, Draw]:
    """The random numbers of one update, by name (see the module docstring)."""
    draws = {
        "bc_noise": Draw((b, d)),
        "bc_times": Draw((b, 1), "uniform"),
        "base_noise": Draw((b, d)),
        "next_noise": Draw((b, d)),
    }
    fisher = metric_config(config)
    if fisher is not None:
        if fisher_sample_count(config):
            draws["fisher_sample_noise"] = Draw((b, fisher_sample_count(config), d))
        draws["fisher_x0"] = Draw((b, fisher.num_samples, d))
        if fisher.t_eps_max is not None:
            draws["fisher_t"] = Draw((b, fisher.num_samples, 1), "uniform", fisher.t_eps, fisher.t_eps_max)
    if config.jacobian_weight > 0 and config.jacobian_probes > 0:
        draws["jacobian_probes"] = Draw((config.jacobian_probes, b, d), "rademacher")
    return draws


class UpdateInputs(NamedTuple):
    """What an update computes from its draws before it differentiates (no gradient flows through any of it)."""

    base_actions: jax.Array  # a_hat at s, (B, d)
    next_actions: jax.Array  # a' = clip(a_hat' + delta(s', a_hat')) at s', (B, d)
    metric: jax.Array | None  # F_n(s), (B, d, d); None for the isotropic penalty (F_n = I)
    bc_noise: jax.Array  # x0 of the flow-matching loss, (B, d)
    bc_times: jax.Array  # t of the flow-matching loss, (B, 1)
    jacobian_probes: jax.Array | None  # Rademacher probes of the optional Jacobian term, (P, B, d)


def critic_loss(config: RefinementConfig, networks: Networks, params, state: AgentState, batch, inputs):
    """L_Q = E[(Q_i(s, a) - y)^2], y = r + gamma mask Q_agg'(s', a') with a' from the current actor."""
    return common.td_critic_loss(
        networks,
        config,
        params["critic"],
        state.target_params["critic"],
        batch,
        inputs.next_actions,
        config.q_agg,
    )


def actor_loss(config: RefinementConfig, networks: Networks, params, batch: Batch, inputs: UpdateInputs):
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
        config, networks, params["residual"], obs, base, delta, inputs.metric, inputs.jacobian_probes
    )
    penalty = per_state_penalty.mean()
    q_loss, q = common.q_objective(networks, params["critic"], obs, actions, config.normalize_q_loss)
    alpha = jax.lax.stop_gradient(jnp.exp(params["log_alpha"]))
    loss = bc_loss + alpha * penalty + q_loss

    alpha_loss = jnp.zeros((), loss.dtype)
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


def total_loss(params, config: RefinementConfig, networks: Networks, state: AgentState, batch, inputs):
    """Critic loss + actor loss (+ Lagrange loss): the one function an update differentiates; each term
    reaches only its own parameters."""
    c_loss, c_info = critic_loss(config, networks, params, state, batch, inputs)
    a_loss, a_info = actor_loss(config, networks, params, batch, inputs)
    return c_loss + a_loss, {**c_info, **a_info}


def update_inputs(
    config: RefinementConfig, networks: Networks, state: AgentState, batch: Batch, draws: dict[str, jax.Array]
) -> UpdateInputs:
    """One batched Euler rollout for a_hat, the Fisher samples and a_hat', the refined target actions and the
    Fisher metric, from the update's draws."""
    base, samples, next_base = rollouts(config, networks, state, batch, draws)
    next_actions, _ = refine(networks, state.params["residual"], batch["next_observations"], next_base)
    metric = None
    fisher = metric_config(config)
    if fisher is not None:
        assert samples is not None and isinstance(config, FDConfig)
        metric = fisher_metrics(config, networks, state.params["flow"], batch["observations"], samples, draws)
    return UpdateInputs(
        base_actions=base,
        next_actions=jax.lax.stop_gradient(next_actions),
        metric=metric,
        bc_noise=draws["bc_noise"],
        bc_times=draws["bc_times"],
        jacobian_probes=draws.get("jacobian_probes"),
    )


def gradients(
    config: RefinementConfig, networks: Networks, state: AgentState, batch: Batch, draws: dict[str, jax.Array]
) -> tuple[dict, dict]:
    """(gradients, metrics) of one FD update (iso without a metric) from the given draws (pure)."""
    inputs = update_inputs(config, networks, state, batch, draws)
    grads, info = jax.grad(total_loss, has_aux=True)(state.params, config, networks, state, batch, inputs)
    if inputs.metric is not None:
        info["fisher_condition"] = condition_number(inputs.metric).mean()
    info.update(common.grad_norms(grads))
    return grads, info


def rollouts(config: RefinementConfig, networks: Networks, state: AgentState, batch: Batch, draws):
    """One batched Euler rollout for the base actions a_hat at s, the fresh Fisher samples of every state and
    a_hat' at s'.

    With ``fisher.reuse_base_sample`` a_hat is the first of a state's M samples; with ``fisher.source ==
    "dataset"`` the samples are the dataset action repeated M times (noised M times inside the score).
    Returns (a_hat (B, d), samples (B, M, d) or None, a_hat' (B, d)).
    """
    b, d = batch["actions"].shape
    fisher = metric_config(config)
    fresh = fisher_sample_count(config)
    per_state = 1 + fresh  # a_hat first, then the fresh Fisher samples
    flow_params = jax.lax.stop_gradient(state.params["flow"])
    # s and s' are encoded once (before repeating and before the Euler steps).
    both = common.encode(
        networks.flow, flow_params, jnp.concatenate([batch["observations"], batch["next_observations"]])
    )
    features = jnp.concatenate([jnp.repeat(both[:b], per_state, axis=0), both[b:]], axis=0)
    per_s_noise = draws["base_noise"][:, None]
    if fresh:
        per_s_noise = jnp.concatenate([per_s_noise, draws["fisher_sample_noise"]], axis=1)
    noise = jnp.concatenate([per_s_noise.reshape(b * per_state, d), draws["next_noise"]])
    out = common.sample_from_features(
        networks, flow_params, features, noise, config.flow_steps, config.clip_flow_actions
    )
    per_s = out[: b * per_state].reshape(b, per_state, d)
    base, next_base = per_s[:, 0], out[b * per_state :]
    if fisher is None:
        return base, None, next_base
    if fisher.source == "dataset":
        return base, jnp.repeat(batch["actions"][:, None, :], fisher.num_samples, axis=1), next_base
    return base, (per_s if fisher.reuse_base_sample else per_s[:, 1:]), next_base


def fisher_metrics(
    config: FDConfig, networks: Networks, flow_params, observations, samples, draws
) -> jax.Array:
    """F_n(s) of every state from its M samples (B, M, d), noised with the draws ``fisher_x0`` and ``fisher_t``
    (t_eps itself when t is not drawn) by :func:`fidec.fisher.fisher_metric_at`; stop-gradient, (B, d, d)."""
    fisher = config.fisher
    v = common.velocity_fn(networks, jax.lax.stop_gradient(flow_params), observations, 1)
    x0 = draws["fisher_x0"]
    t = draws.get("fisher_t")
    if t is None:
        t = jnp.full(x0.shape[:-1] + (1,), fisher.t_eps, x0.dtype)
    return fisher_metric_at(v, samples, x0, t, fisher)


def penalty_terms(
    config: RefinementConfig,
    networks: Networks,
    residual_params,
    obs,
    base_actions,
    delta,
    metric,
    probes=None,
) -> tuple[jax.Array, jax.Array]:
    """Per-state penalty delta^T F_n delta / d (+ w ||sym J||^2 / d, or w tr(J^2) / d, when jacobian_weight > 0,
    J = d delta / d a_hat, estimated with the Rademacher ``probes`` (P, B, d), exact without)."""
    quad = quadratic_penalty(delta, metric)
    if config.jacobian_weight == 0.0:
        return quad, jnp.zeros_like(quad)
    obs = common.encode(networks.residual, residual_params, obs)  # per-state Jacobians act on features

    def delta_single(o, a):
        return common.apply_head(networks.residual, residual_params, o, a)

    d = delta.shape[-1]

    def per_state(o, a, z):
        return jacobian_square(
            lambda x: delta_single(o, x),
            a[None],
            None,
            1,
            config.jacobian_form,
            None if z is None else z[:, None],
        )[0]

    if probes is None:
        jac = jax.vmap(lambda o, a: per_state(o, a, None))(obs, base_actions)
    else:
        jac = jax.vmap(per_state, in_axes=(0, 0, 1))(obs, base_actions, probes)
    return quad + config.jacobian_weight * jac / d, jac / d


# -- acting -----------------------------------------------------------------------------------------------


def action_draws(config: RefinementConfig, b: int, d: int, mode: str) -> dict[str, Draw]:
    """onestep and iterative: one base-action noise per state; best-of-N: N per state."""
    if mode == "best_of_n":
        return {"noise": Draw((b, config.num_action_samples, d))}
    return {"noise": Draw((b, d))}


def act(
    config: RefinementConfig,
    networks: Networks,
    state: AgentState,
    observations: jax.Array,
    draws: dict[str, jax.Array],
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

    def base_actions(obs, noise):
        return common.sample_base_actions(config, networks, params["flow"], obs, noise)

    if mode == "onestep":
        return refine(networks, params["residual"], observations, base_actions(observations, draws["noise"]))[
            0
        ]
    if mode == "best_of_n":
        n = config.num_action_samples
        obs_n = jnp.repeat(observations, n, axis=0)
        base = base_actions(obs_n, draws["noise"].reshape(b * n, d))
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

        base = base_actions(observations, draws["noise"])
        _, iterates = jax.lax.scan(step, base, None, length=config.refine_iterations)
        candidates = jnp.concatenate([base[None], iterates], axis=0).swapaxes(0, 1)  # (B, K + 1, d)
        k = candidates.shape[1]
        q = common.q_values(
            networks, params["critic"], jnp.repeat(observations, k, axis=0), candidates.reshape(b * k, d)
        ).reshape(b, k)
        return common.best_by_q(candidates, q)
    raise ValueError(f"unknown action mode {mode!r}; choose one of {MODES}")


# -- presets: the official FD code's per-task flags -------------------------------------------------------

REGISTRY_SH = "official FD scripts/fql_scope_registry.sh"
GRID_SH = "official FD scripts/run_fqlscope_offline_grid_2x4090.sh"
STATE5_SH = "official FD scripts/run_ogbench_state5_baseline_variant.sh"
FLAGS_SH = "official FD scripts/ogbench_env_flags.sh"

# The per-task flags the paper's grid runs passed (fql_scope_registry.sh get_env_flags_and_steps): family ->
# (discount, q_agg, target_divergence, registry lines).  normalize_q_loss is not among them (the grid passed
# false, see OFFICIAL_GRID).
_FAMILIES = {
    "antmaze-large-navigate": (0.99, "min", 0.01, "95-96"),
    "antmaze-giant-navigate": (0.995, "min", 0.01, "98-99"),
    "humanoidmaze-medium-navigate": (0.995, "mean", 0.001, "101-102"),
    "humanoidmaze-large-navigate": (0.995, "mean", 0.001, "104-105"),
    "antsoccer-arena-navigate": (0.995, "mean", 0.01, "107-108"),
    "cube-single-play": (0.99, "mean", 0.001, "110-111"),
    "cube-double-play": (0.99, "mean", 0.001, "110-111"),
    "scene-play": (0.99, "mean", 0.001, "110-111"),
    "puzzle-3x3-play": (0.99, "mean", 0.005, "113-114"),
    "puzzle-4x4-play": (0.99, "mean", 0.005, "113-114"),
    "visual-cube-single-play": (0.99, "mean", 0.001, "117-122"),
    "visual-cube-double-play": (0.99, "mean", 0.001, "117-122"),
    "visual-scene-play": (0.99, "mean", 0.001, "117-122"),
    "visual-puzzle-3x3-play": (0.99, "mean", 0.005, "124-129"),
    "visual-puzzle-4x4-play": (0.99, "mean", 0.005, "124-129"),
    "d4rl-antmaze": (0.99, "mean", 0.001, "132-137"),
    "d4rl-adroit": (0.99, "min", 0.001, "140-145"),
}
FAMILY_PRESETS = {
    family: Preset(
        {"discount": discount, "q_agg": q_agg, "target_divergence": target}, f"{REGISTRY_SH}:{lines}"
    )
    for family, (discount, q_agg, target, lines) in _FAMILIES.items()
}

OFFICIAL = Preset(
    {
        "fisher.estimator": "velocity",
        "fisher.t_eps": 0.95,
        "fisher.t_eps_max": None,
        "fisher.num_samples": 4,
        "fisher.damping": 1e-3,
        "fisher.reuse_base_sample": False,
        "clip_flow_actions": True,
        "grad_clip": 5.0,
        "target_update": "before",
    },
    "official FD agents/fidec.py:437-469 (get_config)",
    "the official FD agent's defaults: v/(1-t) score at t = 0.95, M = 4 fresh samples, damping 1e-3",
)
OFFICIAL_GRID = Preset(
    {
        **OFFICIAL.values,
        "fisher.t_eps": 0.85,
        "fisher.t_eps_max": 0.90,
        "fisher.num_samples": 8,
        "normalize_q_loss": False,
    },
    f"{GRID_SH}:21-24,40-43,124-126 (fisher_t 0.90, width 0.05, 8 samples, damping 1e-3, normalize_q_loss false)",
    "what the paper's grid runs used: v/(1-t), t ~ U[0.85, 0.90] per sample, M = 8, normalize_q_loss off",
)
OFFICIAL_STATE5 = Preset(
    {**OFFICIAL_GRID.values, "normalize_q_loss": True},
    f"{STATE5_SH}:26,86,110 with {FLAGS_SH}:5 (the grid's Fisher settings, normalize_q_loss true)",
    "the official state-5 script: the grid's Fisher settings with normalize_q_loss on",
)

PRESETS = AgentPresets(
    families=FAMILY_PRESETS,
    named={"official": OFFICIAL, "official-grid": OFFICIAL_GRID, "official-state5": OFFICIAL_STATE5},
)


# -- the reference: the official FD code ----------------------------------------------------------------


def refinement_settings(config: RefinementConfig) -> dict:
    """fidec's refinement settings in the official FD / DeFlow config's keys."""
    return {
        **common.fql_family_settings(config),
        "grad_clip": config.grad_clip,
        "q_agg": config.q_agg,
        "alpha": config.alpha,
        "use_lagrange": config.lagrange,
        "target_divergence": config.target_divergence,
        "normalize_q_loss": config.normalize_q_loss,
    }


def reference_settings(config: FDConfig) -> dict:
    """fidec's FD settings in the official ``agents/fidec.py`` config keys (t ~ U[fisher_t - width, fisher_t])."""
    fisher = config.fisher
    top = fisher.t_eps if fisher.t_eps_max is None else fisher.t_eps_max
    return {
        **refinement_settings(config),
        "num_fisher_samples": fisher.num_samples,
        "fisher_t": top,
        "fisher_t_width": top - fisher.t_eps,
        "fisher_damping": fisher.damping,
        "fisher_trace_eps": fisher.norm_eps,
    }


REFINEMENT_FIXED = {
    **common.FQL_FAMILY_FIXED,
    "clip_flow_actions": True,
    "network.residual_init_scale": 1.0,
    "alpha_lr": 3e-4,
    "jacobian_weight": 0.0,
    "best_of_n_rank": "base",
}
REFINEMENT_PARAMS = (
    *common.critic_reference_params(),
    ("modules_actor_bc_flow/mlp", "params/flow/params/MLP_0"),
    ("modules_refine_onestep_flow/mlp", "params/residual/params/MLP_0"),
    ("modules_log_alpha/value", "params/log_alpha"),
)
REFINEMENT_METRICS: dict[str, str | tuple[str, ...]] = {
    **common.CRITIC_METRICS,
    "actor/actor_loss": ("actor_loss", "alpha_loss"),
    "actor/bc_flow_loss": "bc_loss",
    "actor/distill_loss": "penalty",
    "actor/q_loss": "q_loss",
    "actor/q": "actor_q_mean",
    "actor/alpha_loss": "alpha_loss",
    "actor/alpha_value": "alpha",
}
REFINEMENT_ACTIONS = {
    "onestep": ReferenceAction("sample_actions"),
    "best_of_n": ReferenceAction(
        "sample_actions_max_q", lambda config: {"num_samples": config.num_action_samples}, per_state=True
    ),
    "iterative": ReferenceAction(
        "sample_actions_iterative_refinement",
        lambda config: {"num_refine_steps": config.refine_iterations},
        per_state=True,
    ),
}
LOGGING_SAMPLE = (
    "the reference draws one more action sample per update for its logging-only `mse` metric "
    "(agents/{file}:{lines}); fidec does not draw it (the check skips that draw)"
)
CUBE = "cube-single-play-singletask-task1-v0"

REFERENCE = Reference(
    repository="https://github.com/ARC0127/Fisher-Decorator",
    agent_file="agents/fidec.py",
    agent_class="FiDecAgent",
    params=REFINEMENT_PARAMS,
    settings=reference_settings,
    fixed={
        **REFINEMENT_FIXED,
        "fisher.estimator": "velocity",
        "fisher.reuse_base_sample": False,
        "fisher.source": "flow",
        "fisher.normalize": True,
    },
    update_draws=lambda config: (
        "next_noise",
        "bc_noise",
        "bc_times",
        "base_noise",
        "fisher_sample_noise",
        "fisher_x0",
        *(("fisher_t",) if config.fisher.t_eps_max is not None else ()),
        None,
    ),
    metrics=REFINEMENT_METRICS,
    actions=REFINEMENT_ACTIONS,
    cases={
        "official": ReferenceCase(
            CUBE, ("official",), {"target_divergence": 0.001}, f"{OFFICIAL.source}; {REGISTRY_SH}:110-111"
        ),
        "official-grid": ReferenceCase(
            CUBE,
            ("official-grid",),
            {
                "fisher_t": 0.90,
                "fisher_t_width": 0.05,
                "num_fisher_samples": 8,
                "fisher_damping": 1e-3,
                "normalize_q_loss": False,
                "target_divergence": 0.001,
            },
            f"{GRID_SH}:124-126; {REGISTRY_SH}:110-111",
        ),
    },
    differences=(LOGGING_SAMPLE.format(file="fidec.py", lines="172-173"),),
    speed_variants=({"fisher.reuse_base_sample": True},),
)

SPEC = AgentSpec(
    name="fd",
    summary="Fisher Decorator: BC flow + residual refinement under the Fisher-metric KL penalty",
    config=FDConfig,
    parts=(*PARTS, "log_alpha"),
    targets=("critic",),
    batch_keys=common.TRANSITION_KEYS,
    modes=MODES,
    online_mode="onestep",
    has_critic=True,
    has_residual=True,
    build=build,
    init=init,
    update_draws=update_draws,
    gradients=gradients,
    action_draws=action_draws,
    act=act,
    presets=PRESETS,
    reference=REFERENCE,
)
