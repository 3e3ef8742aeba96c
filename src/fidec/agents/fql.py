"""Flow Q-learning (FQL): a one-step policy distilled from the BC flow and pushed up the critic.

    L_actor = L_bc(theta) + alpha * E || mu_w(s, z) - flow_theta(s, z) ||^2 / d - E[ Q(s, clip(mu_w(s, z))) ]

with z ~ N(0, I), flow(s, z) the K-step Euler rollout from z (no gradient; clipped to [-1, 1] as in FQL's
``compute_flow_actions``), and -Q optionally divided by stop_gradient(E|Q|).  The critic's target action is
a' = clip(mu_w(s', z')) from the current one-step policy.  One Euler rollout per update (the distillation
target).  Reference: seohongpark/fql ``agents/fql.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
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
from fidec.flows import flow_matching_loss

MODES = ("onestep", "best_of_n")


@dataclass(frozen=True)
class FQLConfig(CriticConfig, FlowConfig):
    """FQL's settings; defaults are its code's (``agents/fql.py`` get_config).

    Attributes:
        q_agg: "mean" or "min" over the target ensemble (min: clipped double Q).
        alpha: weight of the distillation loss ||mu(s, z) - flow(s, z)||^2 / d (FQL's BC coefficient).
        normalize_q_loss: divide the actor's -Q by stop_gradient(mean |Q|) (off in FQL's paper runs).
        action_mode: "onestep" (clip(mu(s, z)), FQL's action) or "best_of_n" (N draws of z, highest Q).
        num_action_samples: N for best-of-N.
    """

    q_agg: Literal["mean", "min"] = "mean"
    alpha: float = 10.0
    normalize_q_loss: bool = False
    action_mode: Literal["onestep", "best_of_n"] = "onestep"
    num_action_samples: int = 10

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (self.q_agg in ("mean", "min"), f"q_agg must be 'mean' or 'min', got {self.q_agg!r}"),
            (self.alpha >= 0, f"alpha must be >= 0, got {self.alpha}"),
            (self.action_mode in MODES, f"action_mode must be one of {MODES}, got {self.action_mode!r}"),
            (self.num_action_samples >= 1, f"num_action_samples must be >= 1, got {self.num_action_samples}"),
        ]


PARTS = ("flow", "critic", "onestep")


def build(config: FQLConfig, action_dim: int) -> Networks:
    return common.make_networks(
        config,
        action_dim,
        {
            "flow": common.flow_network(config, action_dim),
            "critic": common.critic_network(config),
            "onestep": common.onestep_network(config, action_dim),
        },
    )


def init(config: FQLConfig, networks: Networks, key: jax.Array, obs_dim, action_dim: int) -> AgentState:
    init_key, state_key = jax.random.split(key)
    params = common.init_params(networks, init_key, obs_dim, action_dim, PARTS)
    return common.new_state(config, params, state_key, targets=("critic",))


def update_draws(config: FQLConfig, b: int, d: int) -> dict[str, Draw]:
    """z of the one-step policy and the distillation target, z' at s', the flow-matching noise and times."""
    return {
        "bc_noise": Draw((b, d)),
        "bc_times": Draw((b, 1), "uniform"),
        "z": Draw((b, d)),
        "next_z": Draw((b, d)),
    }


class UpdateInputs(NamedTuple):
    """What an update computes from its draws before it differentiates (no gradient flows through any of it)."""

    z: jax.Array  # noise of the one-step policy, (B, d)
    flow_actions: jax.Array  # the distillation target flow(s, z), (B, d)
    next_actions: jax.Array  # a' = clip(mu(s', z')) at s', (B, d)
    bc_noise: jax.Array  # x0 of the flow-matching loss, (B, d)
    bc_times: jax.Array  # t of the flow-matching loss, (B, 1)


def critic_loss(config: FQLConfig, networks: Networks, params, state: AgentState, batch: Batch, inputs):
    """L_Q = E[(Q_i(s, a) - y)^2], y = r + gamma mask Q_agg'(s', a') with a' = clip(mu(s', z'))."""
    return common.td_critic_loss(
        networks,
        config,
        params["critic"],
        state.target_params["critic"],
        batch,
        inputs.next_actions,
        config.q_agg,
    )


def actor_loss(config: FQLConfig, networks: Networks, params, batch: Batch, inputs: UpdateInputs):
    """L_bc(theta) + alpha * E||mu_w(s, z) - flow(s, z)||^2 / d - E[Q(s, clip(mu_w(s, z)))] (critic fixed)."""
    obs = batch["observations"]
    bc_loss = flow_matching_loss(
        common.velocity_fn(networks, params["flow"], obs), batch["actions"], inputs.bc_noise, inputs.bc_times
    )
    onestep = networks.onestep.apply(params["onestep"], obs, inputs.z)
    distill_loss = jnp.mean((onestep - jax.lax.stop_gradient(inputs.flow_actions)) ** 2)
    q_loss, q = common.q_objective(
        networks, params["critic"], obs, jnp.clip(onestep, -1.0, 1.0), config.normalize_q_loss
    )
    loss = bc_loss + config.alpha * distill_loss + q_loss
    info = {
        "actor_loss": loss,
        "bc_loss": bc_loss,
        "distill_loss": distill_loss,
        "q_loss": q_loss,
        "alpha": jnp.asarray(config.alpha, loss.dtype),
        "actor_q_mean": q.mean(),
        "delta_abs_mean": jnp.abs(onestep - inputs.flow_actions).mean(),
    }
    return loss, info


def total_loss(params, config: FQLConfig, networks: Networks, state: AgentState, batch: Batch, inputs):
    """Critic loss + actor loss: the one function an update differentiates."""
    c_loss, c_info = critic_loss(config, networks, params, state, batch, inputs)
    a_loss, a_info = actor_loss(config, networks, params, batch, inputs)
    return c_loss + a_loss, {**c_info, **a_info}


def update_inputs(
    config: FQLConfig, networks: Networks, state: AgentState, batch: Batch, draws
) -> UpdateInputs:
    """The distillation target (one Euler rollout from z) and the target actions, from the draws."""
    flow_actions = common.sample_base_actions(
        config, networks, state.params["flow"], batch["observations"], draws["z"]
    )
    next_actions = jnp.clip(
        networks.onestep.apply(state.params["onestep"], batch["next_observations"], draws["next_z"]),
        -1.0,
        1.0,
    )
    return UpdateInputs(
        z=draws["z"],
        flow_actions=flow_actions,
        next_actions=jax.lax.stop_gradient(next_actions),
        bc_noise=draws["bc_noise"],
        bc_times=draws["bc_times"],
    )


def gradients(config: FQLConfig, networks: Networks, state: AgentState, batch: Batch, draws):
    """(gradients, metrics) of one FQL update from the given draws (pure)."""
    inputs = update_inputs(config, networks, state, batch, draws)
    grads, info = jax.grad(total_loss, has_aux=True)(state.params, config, networks, state, batch, inputs)
    info.update(common.grad_norms(grads))
    return grads, info


def action_draws(config: FQLConfig, b: int, d: int, mode: str) -> dict[str, Draw]:
    if mode == "best_of_n":
        return {"noise": Draw((b, config.num_action_samples, d))}
    return {"noise": Draw((b, d))}


def act(
    config: FQLConfig, networks: Networks, state: AgentState, observations, draws, mode: str
) -> jax.Array:
    """onestep: clip(mu(s, z)).  best_of_n: N draws of z, keep the action of highest Q."""
    params = state.params
    b, d = observations.shape[0], networks.action_dim
    if mode == "onestep":
        return jnp.clip(networks.onestep.apply(params["onestep"], observations, draws["noise"]), -1.0, 1.0)
    if mode == "best_of_n":
        n = config.num_action_samples
        obs_n = jnp.repeat(observations, n, axis=0)
        actions = jnp.clip(
            networks.onestep.apply(params["onestep"], obs_n, draws["noise"].reshape(b * n, d)), -1.0, 1.0
        )
        q = common.q_values(networks, params["critic"], obs_n, actions).reshape(b, n)
        return common.best_by_q(actions.reshape(b, n, d), q)
    raise ValueError(f"unknown action mode {mode!r}; choose one of {MODES}")


# -- presets: FQL's README, "exact command-line flags" of its paper's runs ----------------------------------

README = "FQL README.md"
# The FQL paper's discount (its Table 5): 0.995 for antmaze-giant, humanoidmaze and antsoccer, 0.99 elsewhere;
# every agent of the FQL code family (fql, iql, rebrac, ifql) uses it.
DISCOUNT_995 = (
    "antmaze-giant-navigate",
    "humanoidmaze-medium-navigate",
    "humanoidmaze-large-navigate",
    "antsoccer-arena-navigate",
)

# family -> (alpha, q_agg, README line of the default task's command)
_STATE = {
    "antmaze-large-navigate": (10.0, "min", 86),
    "antmaze-giant-navigate": (10.0, "min", 88),
    "humanoidmaze-medium-navigate": (30.0, "mean", 90),
    "humanoidmaze-large-navigate": (30.0, "mean", 92),
    "antsoccer-arena-navigate": (10.0, "mean", 94),
    "cube-single-play": (300.0, "mean", 96),
    "cube-double-play": (300.0, "mean", 98),
    "scene-play": (300.0, "mean", 100),
    "puzzle-3x3-play": (1000.0, "mean", 102),
    "puzzle-4x4-play": (1000.0, "mean", 104),
    "visual-cube-single-play": (300.0, "mean", 176),
    "visual-cube-double-play": (100.0, "mean", 178),
    "visual-scene-play": (100.0, "mean", 180),
    "visual-puzzle-3x3-play": (300.0, "mean", 182),
    "visual-puzzle-4x4-play": (300.0, "mean", 184),
    "d4rl-antmaze": (10.0, "mean", 191),
    "d4rl-adroit": (10000.0, "min", 203),
}


def discount_of(family: str) -> float:
    return 0.995 if family in DISCOUNT_995 else 0.99


FAMILIES = {
    family: Preset({"alpha": alpha, "q_agg": q_agg, "discount": discount_of(family)}, f"{README}:{line}")
    for family, (alpha, q_agg, line) in _STATE.items()
}

# D4RL: alpha per dataset (README lines 191-225).
_D4RL = {
    "antmaze-umaze-v2": (10.0, 191),
    "antmaze-umaze-diverse-v2": (10.0, 193),
    "antmaze-medium-play-v2": (10.0, 195),
    "antmaze-medium-diverse-v2": (10.0, 197),
    "antmaze-large-play-v2": (3.0, 199),
    "antmaze-large-diverse-v2": (3.0, 201),
    "pen-human-v1": (10000.0, 203),
    "pen-cloned-v1": (10000.0, 205),
    "pen-expert-v1": (3000.0, 207),
    "door-human-v1": (30000.0, 209),
    "door-cloned-v1": (30000.0, 211),
    "door-expert-v1": (30000.0, 213),
    "hammer-human-v1": (30000.0, 215),
    "hammer-cloned-v1": (10000.0, 217),
    "hammer-expert-v1": (30000.0, 219),
    "relocate-human-v1": (10000.0, 221),
    "relocate-cloned-v1": (30000.0, 223),
    "relocate-expert-v1": (30000.0, 225),
}
TASKS = {task: Preset({"alpha": alpha}, f"{README}:{line}") for task, (alpha, line) in _D4RL.items()}

# Offline-to-online: README lines 251-279.
ONLINE_FAMILIES = {
    "humanoidmaze-medium-navigate": Preset({"alpha": 100.0}, f"{README}:251"),
    "antsoccer-arena-navigate": Preset({"alpha": 30.0}, f"{README}:253"),
    "cube-double-play": Preset({"alpha": 300.0}, f"{README}:255"),
    "scene-play": Preset({"alpha": 300.0}, f"{README}:257"),
    "puzzle-4x4-play": Preset({"alpha": 1000.0}, f"{README}:259"),
}
ONLINE_TASKS = {
    "antmaze-large-play-v2": Preset({"alpha": 3.0}, f"{README}:269"),
    "antmaze-large-diverse-v2": Preset({"alpha": 3.0}, f"{README}:271"),
    "pen-cloned-v1": Preset({"alpha": 1000.0}, f"{README}:273"),
    "door-cloned-v1": Preset({"alpha": 1000.0}, f"{README}:275"),
    "hammer-cloned-v1": Preset({"alpha": 1000.0}, f"{README}:277"),
    "relocate-cloned-v1": Preset({"alpha": 10000.0}, f"{README}:279"),
}

OFFICIAL = Preset(
    {"clip_flow_actions": True, "grad_clip": None, "target_update": "before", "normalize_q_loss": False},
    "FQL agents/fql.py:249-270 (get_config)",
    "FQL's code defaults (no gradient clipping, normalisation off)",
)

FQL_REPOSITORY = "https://github.com/seohongpark/fql"
CUBE = "cube-single-play-singletask-task1-v0"
PUZZLE = "puzzle-3x3-play-singletask-task1-v0"

REFERENCE = Reference(
    repository=FQL_REPOSITORY,
    agent_file="agents/fql.py",
    agent_class="FQLAgent",
    params=(
        *common.critic_reference_params(),
        ("modules_actor_bc_flow/mlp", "params/flow/params/MLP_0"),
        ("modules_actor_onestep_flow/mlp", "params/onestep/params/MLP_0"),
    ),
    settings=lambda config: {
        **common.fql_family_settings(config),
        "q_agg": config.q_agg,
        "alpha": config.alpha,
        "normalize_q_loss": config.normalize_q_loss,
    },
    fixed={**common.FQL_FAMILY_FIXED, "clip_flow_actions": True, "grad_clip": None},
    update_draws=lambda config: ("next_z", "bc_noise", "bc_times", "z", None),
    metrics={
        **common.CRITIC_METRICS,
        "actor/actor_loss": "actor_loss",
        "actor/bc_flow_loss": "bc_loss",
        "actor/distill_loss": "distill_loss",
        "actor/q_loss": "q_loss",
        "actor/q": "actor_q_mean",
    },
    actions={"onestep": ReferenceAction("sample_actions")},
    cases={
        "cube": ReferenceCase(CUBE, ("official",), {"alpha": 300.0}, f"{README}:96,140-145"),
        "puzzle": ReferenceCase(PUZZLE, ("official",), {"alpha": 1000.0}, f"{README}:102,158-163"),
    },
    differences=(
        "the reference draws one more action sample per update for its logging-only `mse` metric "
        "(agents/fql.py:82-83); fidec does not draw it (the check skips that draw)",
    ),
)

SPEC = AgentSpec(
    name="fql",
    summary="flow Q-learning: a one-step policy distilled from the BC flow, maximising Q",
    config=FQLConfig,
    parts=PARTS,
    targets=("critic",),
    batch_keys=common.TRANSITION_KEYS,
    modes=MODES,
    online_mode="onestep",
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
