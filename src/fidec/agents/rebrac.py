"""ReBRAC: TD3+BC with LayerNorm critics and separate actor and critic behaviour penalties, as the FQL code
runs it.

    y    = r + gamma mask [ min_i Q'_i(s', a~') - alpha_critic ||a~' - a'_data||^2 ],
           a~' = clip(pi'(s') + clip(sigma eps, -c, c), -1, 1)                      (target policy smoothing)
    L_Q  = E[ (Q_i(s, a) - y)^2 ]                                                   (mean over members)
    L_pi = -E[ min_i Q_i(s, pi(s)) ] / stop_gradient(E|Q|) + alpha_actor E[ ||pi(s) - a||^2 ]

pi(s) = tanh(mu(s)) is the deterministic (mode) action of a tanh-squashed Gaussian head.  The actor and the
targets are updated every ``actor_freq`` updates only (update i, counted from 1, with i % actor_freq == 0);
the other updates train the critic alone (one optimiser over everything, as in the reference, so the actor
still moves by Adam's momentum on those steps).  ``a'_data`` is the dataset's next action (``next_actions``).
Reference: seohongpark/fql ``agents/rebrac.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp

from fidec.agents import common, fql, iql
from fidec.agents.base import AgentPresets, AgentSpec, CriticConfig, Draw, Preset, Reference, ReferenceCase
from fidec.agents.common import AgentState, Batch, Networks

MODES = ("mean", "sample")


@dataclass(frozen=True)
class ReBRACConfig(CriticConfig):
    """ReBRAC's settings; defaults are the FQL code's (``agents/rebrac.py`` get_config).

    Attributes:
        tanh_squash: squash the actor's output with tanh.
        actor_fc_scale: variance scale of the actor's output layer at initialisation.
        alpha_actor: weight of the actor's behaviour penalty ||pi(s) - a||^2.
        alpha_critic: weight of the critic target's behaviour penalty ||a~' - a'_data||^2.
        actor_freq: the actor and the targets are updated every ``actor_freq`` updates.
        actor_noise: sigma of the target policy smoothing noise (and of exploration).
        actor_noise_clip: c, the smoothing noise is clipped to [-c, c].
        action_mode: "mean" (pi(s), clipped: the evaluation action) or "sample" (pi(s) plus clipped noise, the
            online phase's exploration).
    """

    tanh_squash: bool = True
    actor_fc_scale: float = 0.01
    alpha_actor: float = 0.0
    alpha_critic: float = 0.0
    actor_freq: int = 2
    actor_noise: float = 0.2
    actor_noise_clip: float = 0.5
    action_mode: Literal["mean", "sample"] = "mean"

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (self.actor_fc_scale > 0, f"actor_fc_scale must be > 0, got {self.actor_fc_scale}"),
            (self.alpha_actor >= 0, f"alpha_actor must be >= 0, got {self.alpha_actor}"),
            (self.alpha_critic >= 0, f"alpha_critic must be >= 0, got {self.alpha_critic}"),
            (self.actor_freq >= 1, f"actor_freq must be >= 1, got {self.actor_freq}"),
            (self.actor_noise >= 0, f"actor_noise must be >= 0, got {self.actor_noise}"),
            (self.actor_noise_clip >= 0, f"actor_noise_clip must be >= 0, got {self.actor_noise_clip}"),
            (self.action_mode in MODES, f"action_mode must be one of {MODES}, got {self.action_mode!r}"),
        ]


PARTS = ("critic", "actor")
BATCH_KEYS = (*common.TRANSITION_KEYS, "next_actions")


def build(config: ReBRACConfig, action_dim: int) -> Networks:
    actor = common.gaussian_actor(
        config, action_dim, const_std=True, mean_init_variance=config.actor_fc_scale
    )
    return common.make_networks(config, action_dim, {"critic": common.critic_network(config), "actor": actor})


def init(config: ReBRACConfig, networks: Networks, key: jax.Array, obs_dim, action_dim: int) -> AgentState:
    init_key, state_key = jax.random.split(key)
    params = common.init_params(networks, init_key, obs_dim, action_dim, PARTS)
    return common.new_state(config, params, state_key, targets=("critic", "actor"))


def policy(
    config: ReBRACConfig, networks: Networks, actor_params, observations
) -> tuple[jax.Array, jax.Array]:
    """(pi(s), the Gaussian's standard deviation): pi(s) = tanh(mu(s)) with ``tanh_squash`` (the mode)."""
    mean, log_std = networks.actor.apply(actor_params, observations)
    return (jnp.tanh(mean) if config.tanh_squash else mean), jnp.exp(log_std)


def update_draws(config: ReBRACConfig, b: int, d: int) -> dict[str, Draw]:
    """eps of the target policy smoothing."""
    return {"target_noise": Draw((b, d))}


def critic_loss(config: ReBRACConfig, networks: Networks, params, state: AgentState, batch: Batch, draws):
    """L_Q = E[(Q_i(s, a) - y)^2] with the penalised, smoothed target y of the module docstring."""
    next_mode, _ = policy(config, networks, state.target_params["actor"], batch["next_observations"])
    noise = jnp.clip(
        draws["target_noise"] * config.actor_noise, -config.actor_noise_clip, config.actor_noise_clip
    )
    next_actions = jnp.clip(next_mode + noise, -1.0, 1.0)
    next_q = networks.critic.apply(
        state.target_params["critic"], batch["next_observations"], next_actions
    ).min(0)
    next_q = next_q - config.alpha_critic * jnp.sum((next_actions - batch["next_actions"]) ** 2, axis=-1)
    target = jax.lax.stop_gradient(batch["rewards"] + config.discount * batch["masks"] * next_q)
    q = networks.critic.apply(params["critic"], batch["observations"], batch["actions"])
    loss = jnp.mean((q - target) ** 2)
    return loss, {
        "critic_loss": loss,
        "q_mean": q.mean(),
        "q_max": q.max(),
        "q_min": q.min(),
        "target_q_mean": target.mean(),
    }


def actor_loss(config: ReBRACConfig, networks: Networks, params, batch: Batch):
    """-E[min_i Q_i(s, pi(s))] / stop_gradient(E|Q|) + alpha_actor E||pi(s) - a||^2 (critic fixed)."""
    obs = batch["observations"]
    actions, std = policy(config, networks, params["actor"], obs)
    q = networks.critic.apply(jax.lax.stop_gradient(params["critic"]), obs, actions).min(axis=0)
    mse = jnp.sum((actions - batch["actions"]) ** 2, axis=-1)
    q_loss = -(q / jax.lax.stop_gradient(jnp.abs(q).mean())).mean()
    bc_loss = (config.alpha_actor * mse).mean()
    return q_loss + bc_loss, {
        "actor_loss": q_loss + bc_loss,
        "q_loss": q_loss,
        "bc_loss": bc_loss,
        "actor_q_mean": q.mean(),
        "mse": mse.mean(),
        "std": std.mean(),
    }


def full_update_due(config: ReBRACConfig, step: jax.Array) -> jax.Array:
    """Whether update number step + 1 (counted from 1, as the FQL training loop counts) trains the actor."""
    return (step + 1) % config.actor_freq == 0


def gradients(config: ReBRACConfig, networks: Networks, state: AgentState, batch: Batch, draws):
    """(gradients, metrics): the critic's every update; critic and actor together when :func:`full_update_due`
    (the actor's metrics are 0 on critic-only updates; ``actor_updated`` says which it was)."""

    def critic_only(params):
        return critic_loss(config, networks, params, state, batch, draws)

    def full(params):
        c_loss, c_info = critic_loss(config, networks, params, state, batch, draws)
        a_loss, a_info = actor_loss(config, networks, params, batch)
        return c_loss + a_loss, {**c_info, **a_info}

    full_update = full_update_due(config, state.step)
    shapes = jax.eval_shape(lambda: full(state.params)[1])

    def with_actor(_):
        return jax.grad(full, has_aux=True)(state.params)

    def without_actor(_):
        grads, info = jax.grad(critic_only, has_aux=True)(state.params)
        zeros = {k: jnp.zeros(v.shape, v.dtype) for k, v in shapes.items() if k not in info}
        return grads, {**info, **zeros}

    grads, info = jax.lax.cond(full_update, with_actor, without_actor, None)
    info["actor_updated"] = full_update.astype(info["critic_loss"].dtype)
    info.update(common.grad_norms(grads))
    return grads, info


def action_draws(config: ReBRACConfig, b: int, d: int, mode: str) -> dict[str, Draw]:
    return {"noise": Draw((b, d))} if mode == "sample" else {}


def act(
    config: ReBRACConfig, networks: Networks, state: AgentState, observations, draws, mode: str
) -> jax.Array:
    """mean: clip(pi(s)) (the FQL code's evaluation, temperature 0); sample: clip(pi(s) + clip(sigma eps, -c, c))."""
    actions, _ = policy(config, networks, state.params["actor"], observations)
    if mode == "mean":
        return jnp.clip(actions, -1.0, 1.0)
    if mode == "sample":
        noise = jnp.clip(
            draws["noise"] * config.actor_noise, -config.actor_noise_clip, config.actor_noise_clip
        )
        return jnp.clip(actions + noise, -1.0, 1.0)
    raise ValueError(f"unknown action mode {mode!r}; choose one of {MODES}")


# -- presets: the FQL paper's tuned values (Appendix E.2, Tables 5-7) --------------------------------------

_ALPHAS = {
    "antmaze-large-navigate": (0.003, 0.01),
    "antmaze-giant-navigate": (0.003, 0.01),
    "humanoidmaze-medium-navigate": (0.01, 0.01),
    "humanoidmaze-large-navigate": (0.01, 0.01),
    "cube-single-play": (1.0, 0.0),
    "cube-double-play": (0.1, 0.0),
    "scene-play": (0.1, 0.01),
    "puzzle-3x3-play": (0.3, 0.01),
    "puzzle-4x4-play": (0.3, 0.01),
    "visual-cube-single-play": (1.0, 0.0),
    "visual-cube-double-play": (0.1, 0.0),
    "visual-scene-play": (0.1, 0.01),
    "visual-puzzle-3x3-play": (0.3, 0.01),
    "visual-puzzle-4x4-play": (0.3, 0.01),
}
FAMILIES = {
    family: Preset({"alpha_actor": a, "alpha_critic": c, "discount": fql.discount_of(family)}, iql.TABLE6)
    for family, (a, c) in _ALPHAS.items()
}
FAMILIES["antsoccer-arena-navigate"] = Preset(
    {"discount": 0.995},
    "FQL paper Table 5 (discount); its Table 6 antsoccer row was not available",
    "alpha_actor / alpha_critic left at the code defaults (0): the paper's offline values are not known here",
)
ONLINE_FAMILIES = {
    family: Preset({"alpha_actor": a, "alpha_critic": c}, iql.TABLE7)
    for family, (a, c) in {
        "humanoidmaze-medium-navigate": (0.01, 0.01),
        "antsoccer-arena-navigate": (0.01, 0.01),
        "cube-double-play": (0.1, 0.0),
        "scene-play": (0.1, 0.01),
        "puzzle-4x4-play": (0.3, 0.01),
    }.items()
}
OFFICIAL = Preset(
    {
        "target_update": "before",
        "grad_clip": None,
        "actor_freq": 2,
        "actor_noise": 0.2,
        "actor_noise_clip": 0.5,
    },
    "FQL agents/rebrac.py:222-244 (get_config)",
    "the FQL code's ReBRAC defaults",
)

REFERENCE = Reference(
    repository=fql.FQL_REPOSITORY,
    agent_file="agents/rebrac.py",
    agent_class="ReBRACAgent",
    params=(
        *common.critic_reference_params(),
        ("modules_actor/actor_net", "params/actor/params/MLP_0"),
        ("modules_actor/mean_net", "params/actor/params/Dense_0"),
        ("modules_target_actor/actor_net", "target_params/actor/params/MLP_0"),
        ("modules_target_actor/mean_net", "target_params/actor/params/Dense_0"),
    ),
    settings=lambda config: {
        **common.fql_family_settings(config),
        "tanh_squash": config.tanh_squash,
        "actor_fc_scale": config.actor_fc_scale,
        "alpha_actor": config.alpha_actor,
        "alpha_critic": config.alpha_critic,
        "actor_freq": config.actor_freq,
        "actor_noise": config.actor_noise,
        "actor_noise_clip": config.actor_noise_clip,
    },
    fixed={**common.FQL_FAMILY_FIXED, "grad_clip": None},
    update_draws=lambda config: ("target_noise",),
    metrics={
        **common.CRITIC_METRICS,
        "actor/total_loss": "actor_loss",
        "actor/actor_loss": "q_loss",
        "actor/bc_loss": "bc_loss",
        "actor/mse": "mse",
        "actor/std": "std",
    },
    actions=iql.GAUSSIAN_ACTIONS,
    cases={
        "cube": ReferenceCase(
            fql.CUBE,
            ("official",),
            {"alpha_actor": 1.0, "alpha_critic": 0.0},
            f"{iql.TABLE6} (cube-single: 1, 0)",
        )
    },
    # The FQL training loop (main.py) calls update(batch, full_update=(i % actor_freq == 0)) for update i >= 1.
    update_kwargs=lambda config, step: {"full_update": step % config.actor_freq == 0},
)

SPEC = AgentSpec(
    name="rebrac",
    summary="ReBRAC: TD3+BC with LayerNorm critics and actor / critic behaviour penalties",
    config=ReBRACConfig,
    parts=PARTS,
    targets=("critic", "actor"),
    batch_keys=BATCH_KEYS,
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
    targets_due=full_update_due,
    reference=REFERENCE,
)
