"""Implicit flow Q-learning (IFQL): IQL's value and critic with a BC flow policy, acting by rejection sampling
(the flow variant of IDQL), as the FQL code runs it.

    L_V  = E[ expectile_tau(min_i Q_target,i(s, a) - V(s)) ]
    L_Q  = sum_i E[ (Q_i(s, a) - r - gamma mask V(s'))^2 ]
    L_bc = E || v_theta(s, x_t, t) - (a - x0) ||^2 / d                                  (flow matching)
    a(s) = argmax_{a_1..a_N ~ flow(s)} min_i Q_i(s, a_n)                                 (N flow samples)

Reference: seohongpark/fql ``agents/ifql.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp

from fidec.agents import common, fql, iql
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
from fidec.flows import flow_matching_loss

MODES = ("best_of_n",)


@dataclass(frozen=True)
class IFQLConfig(CriticConfig, FlowConfig):
    """IFQL's settings; defaults are the FQL code's (``agents/ifql.py`` get_config).

    Attributes:
        expectile: tau of the value function's expectile regression.
        num_samples: N, flow samples per state among which the action of highest min_i Q_i is taken.
        action_mode: "best_of_n", IFQL's action (evaluation and online phase alike).
    """

    expectile: float = 0.9
    num_samples: int = 32
    action_mode: Literal["best_of_n"] = "best_of_n"

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (0.0 < self.expectile < 1.0, f"expectile must lie in (0, 1), got {self.expectile}"),
            (self.num_samples >= 1, f"num_samples must be >= 1, got {self.num_samples}"),
            (self.action_mode in MODES, f"action_mode must be 'best_of_n', got {self.action_mode!r}"),
        ]


PARTS = ("value", "critic", "flow")


def build(config: IFQLConfig, action_dim: int) -> Networks:
    return common.make_networks(
        config,
        action_dim,
        {
            "value": common.value_network(config),
            "critic": common.critic_network(config),
            "flow": common.flow_network(config, action_dim),
        },
    )


def init(config: IFQLConfig, networks: Networks, key: jax.Array, obs_dim, action_dim: int) -> AgentState:
    init_key, state_key = jax.random.split(key)
    params = common.init_params(networks, init_key, obs_dim, action_dim, PARTS)
    return common.new_state(config, params, state_key, targets=("critic",))


def update_draws(config: IFQLConfig, b: int, d: int) -> dict[str, Draw]:
    return {"bc_noise": Draw((b, d)), "bc_times": Draw((b, 1), "uniform")}


def total_loss(params, config: IFQLConfig, networks: Networks, state: AgentState, batch: Batch, draws):
    """L_V + L_Q (IQL's, :mod:`fidec.agents.iql`) + L_bc: the one function an update differentiates."""
    value, q = iql.value_and_q(networks, params, batch)
    v_loss, v_info = iql.value_loss(config, networks, state, batch, value)  # type: ignore[arg-type]
    c_loss, c_info = iql.critic_loss(config, networks, params, batch, q)  # type: ignore[arg-type]
    v = common.velocity_fn(networks, params["flow"], batch["observations"])
    bc_loss = flow_matching_loss(v, batch["actions"], draws["bc_noise"], draws["bc_times"])
    return v_loss + c_loss + bc_loss, {**v_info, **c_info, "bc_loss": bc_loss, "actor_loss": bc_loss}


def gradients(config: IFQLConfig, networks: Networks, state: AgentState, batch: Batch, draws):
    """(gradients, metrics) of one IFQL update from the given draws (pure)."""
    grads, info = jax.grad(total_loss, has_aux=True)(state.params, config, networks, state, batch, draws)
    info.update(common.grad_norms(grads))
    return grads, info


def action_draws(config: IFQLConfig, b: int, d: int, mode: str) -> dict[str, Draw]:
    return {"noise": Draw((b, config.num_samples, d))}


def act(
    config: IFQLConfig, networks: Networks, state: AgentState, observations, draws, mode: str
) -> jax.Array:
    """N clipped flow samples per state; the one of highest min_i Q_i(s, a_n)."""
    if mode != "best_of_n":
        raise ValueError(f"unknown action mode {mode!r}; choose one of {MODES}")
    b, d, n = observations.shape[0], networks.action_dim, config.num_samples
    obs_n = jnp.repeat(observations, n, axis=0)
    samples = common.sample_base_actions(
        config, networks, state.params["flow"], obs_n, draws["noise"].reshape(b * n, d)
    )
    q = common.q_values(networks, state.params["critic"], obs_n, samples, how="min").reshape(b, n)
    return common.best_by_q(samples.reshape(b, n, d), q)


# -- presets: the FQL paper's values (Appendix E.2, Tables 5-7): N = 32 everywhere but a few -------------

FAMILIES = {
    family: Preset({"num_samples": 32, "discount": fql.discount_of(family)}, iql.TABLE6)
    for family in (
        "antmaze-large-navigate",
        "antmaze-giant-navigate",
        "humanoidmaze-medium-navigate",
        "humanoidmaze-large-navigate",
        "cube-single-play",
        "cube-double-play",
        "scene-play",
        "puzzle-3x3-play",
        "puzzle-4x4-play",
        "visual-cube-single-play",
        "visual-cube-double-play",
        "visual-scene-play",
        "visual-puzzle-3x3-play",
        "visual-puzzle-4x4-play",
        "d4rl-antmaze",
        "d4rl-adroit",
    )
}
FAMILIES["antsoccer-arena-navigate"] = Preset(
    {"discount": 0.995},
    "FQL paper Table 5 (discount); its Table 6 antsoccer row was not available",
    "num_samples left at the code default (32)",
)
TASKS = {task: Preset({"num_samples": 128}, iql.TABLE6) for task in ("door-cloned-v1", "relocate-human-v1")}
ONLINE_FAMILIES = {"antsoccer-arena-navigate": Preset({"num_samples": 64}, iql.TABLE7)}
ONLINE_TASKS = {
    task: Preset({"num_samples": 128}, iql.TABLE7)
    for task in ("pen-cloned-v1", "door-cloned-v1", "hammer-cloned-v1", "relocate-cloned-v1")
}
OFFICIAL = Preset(
    {
        "target_update": "before",
        "grad_clip": None,
        "expectile": 0.9,
        "num_samples": 32,
        "clip_flow_actions": True,
    },
    "FQL agents/ifql.py:231-250 (get_config)",
    "the FQL code's IFQL defaults",
)

REFERENCE = Reference(
    repository=fql.FQL_REPOSITORY,
    agent_file="agents/ifql.py",
    agent_class="IFQLAgent",
    params=(*iql.VALUE_PARAMS, ("modules_actor_flow/mlp", "params/flow/params/MLP_0")),
    settings=lambda config: {
        **common.fql_family_settings(config),
        "expectile": config.expectile,
        "num_samples": config.num_samples,
    },
    fixed={**common.FQL_FAMILY_FIXED, "grad_clip": None, "clip_flow_actions": True},
    update_draws=lambda config: ("bc_noise", "bc_times"),
    metrics={**iql.VALUE_METRICS, "actor/actor_loss": "bc_loss"},
    actions={"best_of_n": ReferenceAction("sample_actions", per_state=True)},
    cases={"cube": ReferenceCase(fql.CUBE, ("official",), {"num_samples": 32}, f"{iql.TABLE6} (N = 32)")},
)

SPEC = AgentSpec(
    name="ifql",
    summary="implicit flow Q-learning: IQL's critic, a BC flow, the best of N flow samples by Q",
    config=IFQLConfig,
    parts=PARTS,
    targets=("critic",),
    batch_keys=common.TRANSITION_KEYS,
    modes=MODES,
    online_mode="best_of_n",
    has_critic=True,
    has_residual=False,
    build=build,
    init=init,
    update_draws=update_draws,
    gradients=gradients,
    action_draws=action_draws,
    act=act,
    presets=AgentPresets(
        families=FAMILIES,
        tasks=TASKS,
        online_families=ONLINE_FAMILIES,
        online_tasks=ONLINE_TASKS,
        named={"official": OFFICIAL},
    ),
    reference=REFERENCE,
)
