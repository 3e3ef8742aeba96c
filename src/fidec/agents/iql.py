"""Implicit Q-learning (IQL) with an AWR (or DDPG+BC) Gaussian actor, as the FQL code runs it.

    L_V  = E[ |tau - 1(Q'(s, a) - V(s) < 0)| (Q'(s, a) - V(s))^2 ],    Q' = min_i Q_target,i   (expectile tau)
    L_Q  = sum_i E[ (Q_i(s, a) - r - gamma mask V(s'))^2 ]
    L_pi = -E[ min(exp(beta (min_i Q_i(s, a) - V(s))), 100) log pi(a | s) ]           (AWR, beta = inverse temp.)

V, the critics and the actor are trained together by one optimiser; each loss reaches only its own network
(the others enter as constants).  The actor is a Gaussian with a state-independent standard deviation of 1
(``const_std``); at evaluation it acts with its mean, in the online phase it samples.  Reference:
seohongpark/fql ``agents/iql.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp

from fidec.agents import common, fql
from fidec.agents.base import (
    AgentPresets,
    AgentSpec,
    CriticConfig,
    Draw,
    Preset,
    Reference,
    ReferenceAction,
    ReferenceCase,
)
from fidec.agents.common import AgentState, Batch, Networks

MODES = ("mean", "sample")


@dataclass(frozen=True)
class IQLConfig(CriticConfig):
    """IQL's settings; defaults are the FQL code's (``agents/iql.py`` get_config).

    Attributes:
        expectile: tau of the value function's expectile regression.
        actor_loss: "awr" (advantage-weighted regression) or "ddpgbc" (Q with a BC log-likelihood term).
        awr_inverse_temperature: beta of AWR, weights exp(beta * advantage) (the FQL code's ``alpha`` with
            ``actor_loss=awr``).
        awr_max_weight: AWR weights are clipped at this value.
        ddpgbc_bc_weight: weight of -log pi(a | s) in DDPG+BC (the FQL code's ``alpha`` with ``actor_loss=ddpgbc``).
        const_std: the actor's standard deviation is 1 (else a learned state-independent vector).
        action_mode: "mean" (the Gaussian's mean, clipped: the evaluation action) or "sample" (a clipped sample,
            the online phase's exploration).
    """

    expectile: float = 0.9
    actor_loss: Literal["awr", "ddpgbc"] = "awr"
    awr_inverse_temperature: float = 10.0
    awr_max_weight: float = 100.0
    ddpgbc_bc_weight: float = 10.0
    const_std: bool = True
    action_mode: Literal["mean", "sample"] = "mean"

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (0.0 < self.expectile < 1.0, f"expectile must lie in (0, 1), got {self.expectile}"),
            (
                self.actor_loss in ("awr", "ddpgbc"),
                f"actor_loss must be 'awr' or 'ddpgbc', got {self.actor_loss!r}",
            ),
            (self.awr_inverse_temperature >= 0, "awr_inverse_temperature must be >= 0"),
            (self.awr_max_weight > 0, "awr_max_weight must be > 0"),
            (self.action_mode in MODES, f"action_mode must be one of {MODES}, got {self.action_mode!r}"),
        ]


PARTS = ("value", "critic", "actor")


def build(config: IQLConfig, action_dim: int) -> Networks:
    return common.make_networks(
        config,
        action_dim,
        {
            "value": common.value_network(config),
            "critic": common.critic_network(config),
            "actor": common.gaussian_actor(config, action_dim, config.const_std, mean_init_variance=0.01),
        },
    )


def init(config: IQLConfig, networks: Networks, key: jax.Array, obs_dim, action_dim: int) -> AgentState:
    init_key, state_key = jax.random.split(key)
    params = common.init_params(networks, init_key, obs_dim, action_dim, PARTS)
    return common.new_state(config, params, state_key, targets=("critic",))


def update_draws(config: IQLConfig, b: int, d: int) -> dict[str, Draw]:
    """AWR draws nothing; DDPG+BC with a learned standard deviation samples its Q action."""
    if config.actor_loss == "ddpgbc" and not config.const_std:
        return {"actor_noise": Draw((b, d))}
    return {}


def value_and_q(networks: Networks, params, batch: Batch) -> tuple[jax.Array, jax.Array]:
    """(V(s), Q_i(s, a) of every critic) on the batch, with their gradients: computed once per update, for the
    value and critic losses and, held fixed, for AWR's advantage (the reference code evaluates them twice)."""
    v = networks.value.apply(params["value"], batch["observations"])
    q = networks.critic.apply(params["critic"], batch["observations"], batch["actions"])
    return v, q


def value_loss(config: IQLConfig, networks: Networks, state: AgentState, batch: Batch, v: jax.Array):
    """L_V = E[expectile_tau(min_i Q_target,i(s, a) - V(s))] for ``v`` = V(s) (the target critic held fixed)."""
    q = networks.critic.apply(state.target_params["critic"], batch["observations"], batch["actions"]).min(
        axis=0
    )
    loss = common.expectile_loss(q - v, config.expectile).mean()
    return loss, {"value_loss": loss, "v_mean": v.mean(), "v_max": v.max(), "v_min": v.min()}


def critic_loss(config: IQLConfig, networks: Networks, params, batch: Batch, q: jax.Array):
    """L_Q = sum_i E[(Q_i(s, a) - y)^2] for ``q`` = Q_i(s, a), y = r + gamma mask V(s') (V held fixed)."""
    next_v = networks.value.apply(jax.lax.stop_gradient(params["value"]), batch["next_observations"])
    target = batch["rewards"] + config.discount * batch["masks"] * next_v
    loss = ((q - target) ** 2).mean(axis=1).sum()
    return loss, {
        "critic_loss": loss,
        "q_mean": q.mean(),
        "q_max": q.max(),
        "q_min": q.min(),
        "target_q_mean": target.mean(),
    }


def actor_loss(
    config: IQLConfig, networks: Networks, params, batch: Batch, draws, v: jax.Array, q: jax.Array
):
    """AWR: -E[min(exp(beta A), w_max) log pi(a | s)], A = min_i Q_i(s, a) - V(s) from ``q`` and ``v`` held fixed;
    DDPG+BC: -E[Q(s, a_pi)] / stop_gradient(E|Q|) - w_bc E[log pi(a | s)] (critic fixed)."""
    obs, actions = batch["observations"], batch["actions"]
    mean, log_std = networks.actor.apply(params["actor"], obs)
    log_prob = common.gaussian_log_prob(actions, mean, log_std)
    info = {
        "bc_log_prob": log_prob.mean(),
        "mse": jnp.mean((mean - actions) ** 2),
        "std": jnp.exp(log_std).mean(),
    }
    if config.actor_loss == "awr":
        adv = jax.lax.stop_gradient(q).min(axis=0) - jax.lax.stop_gradient(v)
        weights = jnp.minimum(jnp.exp(adv * config.awr_inverse_temperature), config.awr_max_weight)
        loss = -(weights * log_prob).mean()
        return loss, {**info, "actor_loss": loss, "adv": adv.mean()}
    q_actions = mean if config.const_std else mean + jnp.exp(log_std) * draws["actor_noise"]
    q_pi = networks.critic.apply(jax.lax.stop_gradient(params["critic"]), obs, jnp.clip(q_actions, -1.0, 1.0))
    q_pi = q_pi.min(axis=0)
    q_loss = -q_pi.mean() / jax.lax.stop_gradient(jnp.abs(q_pi).mean())
    bc_loss = -(config.ddpgbc_bc_weight * log_prob).mean()
    loss = q_loss + bc_loss
    return loss, {
        **info,
        "actor_loss": loss,
        "q_loss": q_loss,
        "bc_loss": bc_loss,
        "actor_q_mean": q_pi.mean(),
    }


def total_loss(params, config: IQLConfig, networks: Networks, state: AgentState, batch: Batch, draws):
    """L_V + L_Q + L_pi: the one function an update differentiates."""
    v, q = value_and_q(networks, params, batch)
    v_loss, v_info = value_loss(config, networks, state, batch, v)
    c_loss, c_info = critic_loss(config, networks, params, batch, q)
    a_loss, a_info = actor_loss(config, networks, params, batch, draws, v, q)
    return v_loss + c_loss + a_loss, {**v_info, **c_info, **a_info}


def gradients(config: IQLConfig, networks: Networks, state: AgentState, batch: Batch, draws):
    """(gradients, metrics) of one IQL update from the given draws (pure)."""
    grads, info = jax.grad(total_loss, has_aux=True)(state.params, config, networks, state, batch, draws)
    info.update(common.grad_norms(grads))
    return grads, info


def action_draws(config: IQLConfig, b: int, d: int, mode: str) -> dict[str, Draw]:
    return {"noise": Draw((b, d))} if mode == "sample" else {}


def act(
    config: IQLConfig, networks: Networks, state: AgentState, observations, draws, mode: str
) -> jax.Array:
    """mean: clip(mu(s)) (the FQL code's evaluation, temperature 0); sample: clip(mu + sigma z) (temperature 1)."""
    mean, log_std = networks.actor.apply(state.params["actor"], observations)
    if mode == "mean":
        return jnp.clip(mean, -1.0, 1.0)
    if mode == "sample":
        return jnp.clip(mean + jnp.exp(log_std) * draws["noise"], -1.0, 1.0)
    raise ValueError(f"unknown action mode {mode!r}; choose one of {MODES}")


# -- presets: the FQL paper's tuned values (Appendix E.2, Tables 5-7) --------------------------------------

TABLE6 = "FQL paper (arXiv 2502.02538) Appendix E.2 Table 6"
TABLE7 = "FQL paper (arXiv 2502.02538) Appendix E.2 Table 7 (offline-to-online)"
MANIPULATION = ("cube-single-play", "cube-double-play", "scene-play", "puzzle-3x3-play", "puzzle-4x4-play")
# The paper: "IQL tends to overfit on state-based OGBench manipulation tasks, and thus [we] use smaller
# [256, 256, 256, 256]-sized MLPs for these state-based tasks (but not for pixel-based tasks)".
SMALL_NETWORKS: dict[str, Any] = {"network.actor_hidden": (256,) * 4, "network.critic_hidden": (256,) * 4}

_BETA = {
    "antmaze-large-navigate": 10.0,
    "antmaze-giant-navigate": 10.0,
    "humanoidmaze-medium-navigate": 10.0,
    "humanoidmaze-large-navigate": 10.0,
    "cube-single-play": 1.0,
    "cube-double-play": 0.3,
    "scene-play": 10.0,
    "puzzle-3x3-play": 10.0,
    "puzzle-4x4-play": 3.0,
    "visual-cube-single-play": 1.0,
    "visual-cube-double-play": 0.3,
    "visual-scene-play": 10.0,
    "visual-puzzle-3x3-play": 10.0,
    "visual-puzzle-4x4-play": 3.0,
}


def _family(family: str, beta: float) -> Preset:
    values: dict[str, Any] = {"awr_inverse_temperature": beta, "discount": fql.discount_of(family)}
    if family in MANIPULATION:
        values.update(SMALL_NETWORKS)
    return Preset(values, TABLE6)


FAMILIES = {family: _family(family, beta) for family, beta in _BETA.items()}
FAMILIES["antsoccer-arena-navigate"] = Preset(
    {"discount": 0.995},
    "FQL paper Table 5 (discount); its Table 6 antsoccer row was not available",
    "AWR temperature left at the code default (10): the paper's offline value for antsoccer is not known here",
)
ONLINE_FAMILIES = {
    "humanoidmaze-medium-navigate": Preset({"awr_inverse_temperature": 10.0}, TABLE7),
    "antsoccer-arena-navigate": Preset({"awr_inverse_temperature": 1.0}, TABLE7),
    "cube-double-play": Preset({"awr_inverse_temperature": 0.3}, TABLE7),
    "scene-play": Preset({"awr_inverse_temperature": 10.0}, TABLE7),
    "puzzle-4x4-play": Preset({"awr_inverse_temperature": 3.0}, TABLE7),
}

OFFICIAL = Preset(
    {"target_update": "before", "grad_clip": None, "actor_loss": "awr", "expectile": 0.9, "const_std": True},
    "FQL agents/iql.py:242-261 (get_config)",
    "the FQL code's IQL defaults (AWR, expectile 0.9, constant standard deviation)",
)

VALUE_METRICS = {
    "value/value_loss": "value_loss",
    "value/v_mean": "v_mean",
    "value/v_max": "v_max",
    "value/v_min": "v_min",
    "critic/critic_loss": "critic_loss",
    "critic/q_mean": "target_q_mean",  # the reference's critic "q" is the TD target r + gamma mask V(s')
}
VALUE_PARAMS = (
    ("modules_value/value_net", "params/value/params/MLP_0"),
    *common.critic_reference_params(),
)
GAUSSIAN_ACTIONS = {
    "mean": ReferenceAction("sample_actions", lambda config: {"temperature": 0.0}, draws=(None,)),
    "sample": ReferenceAction("sample_actions", lambda config: {"temperature": 1.0}),
}


def reference_settings(config: IQLConfig) -> dict:
    alpha = config.awr_inverse_temperature if config.actor_loss == "awr" else config.ddpgbc_bc_weight
    return {
        **common.fql_family_settings(config),
        "expectile": config.expectile,
        "actor_loss": config.actor_loss,
        "alpha": alpha,
        "const_std": config.const_std,
    }


REFERENCE = Reference(
    repository=fql.FQL_REPOSITORY,
    agent_file="agents/iql.py",
    agent_class="IQLAgent",
    params=(
        *VALUE_PARAMS,
        ("modules_actor/actor_net", "params/actor/params/MLP_0"),
        ("modules_actor/mean_net", "params/actor/params/Dense_0"),
        ("modules_actor/log_stds", "params/actor/params/log_std"),
    ),
    settings=reference_settings,
    fixed={**common.FQL_FAMILY_FIXED, "grad_clip": None, "awr_max_weight": 100.0},
    update_draws=lambda config: (
        ("actor_noise",) if config.actor_loss == "ddpgbc" and not config.const_std else ()
    ),
    metrics={
        **VALUE_METRICS,
        "actor/actor_loss": "actor_loss",
        "actor/adv": "adv",
        "actor/bc_log_prob": "bc_log_prob",
        "actor/mse": "mse",
        "actor/std": "std",
    },
    actions=GAUSSIAN_ACTIONS,
    cases={
        "cube": ReferenceCase(fql.CUBE, ("official",), {"alpha": 1.0}, f"{TABLE6} (cube-single: alpha 1)")
    },
)

SPEC = AgentSpec(
    name="iql",
    summary="implicit Q-learning: expectile value, clipped double Q, AWR Gaussian actor",
    config=IQLConfig,
    parts=PARTS,
    targets=("critic",),
    batch_keys=common.TRANSITION_KEYS,
    modes=MODES,
    online_mode="sample",
    has_critic=True,
    has_residual=False,
    build=build,
    init=init,
    update_draws=update_draws,
    gradients=gradients,
    action_draws=action_draws,
    act=act,
    presets=AgentPresets(families=FAMILIES, online_families=ONLINE_FAMILIES, named={"official": OFFICIAL}),
    reference=REFERENCE,
)
