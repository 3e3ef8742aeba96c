"""Parts shared by every agent: the functional state, the networks, the critic, the optimiser.

The agent state is an immutable pytree, so ``jax.jit``, ``jax.vmap`` over seeds and checkpointing
need nothing special.  Every agent has one optimiser over its whole parameter tree: the losses of
the different networks are summed and differentiated once, and stop-gradients keep each loss on
its own parameters (tested).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from fidec.agents.config import AgentConfig
from fidec.augment import augment_batch
from fidec.encoders import make_encoder
from fidec.flows import euler_sample
from fidec.networks import CriticEnsemble, Encoded, OneStepPolicy, Residual, VectorField

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
BATCH_KEYS = ("observations", "actions", "rewards", "masks", "next_observations")


class AgentState(flax.struct.PyTreeNode):
    """Everything that changes during training.

    params: {"flow", "critic", "residual" | "onestep", "log_alpha"} (only those the agent uses).
    target_params: {"critic"} (Polyak-averaged copy).
    opt_state: optax state of the single optimiser over ``params``.
    rng: PRNG key for the update's noise.
    step: number of updates taken.
    """

    params: dict
    target_params: dict
    opt_state: Any
    rng: jax.Array
    step: jax.Array


@dataclass(frozen=True)
class Networks:
    """The Flax modules of an agent (static: no parameters inside).

    With a pixel encoder each module is an :class:`~fidec.networks.Encoded` (its own encoder + head).
    """

    flow: VectorField | Encoded
    critic: CriticEnsemble | Encoded
    residual: Residual | Encoded
    onestep: OneStepPolicy | Encoded
    action_dim: int = 0


def build_networks(config: AgentConfig, action_dim: int) -> Networks:
    net = config.network
    actor = dict(
        hidden=net.actor_hidden,
        action_dim=action_dim,
        activation=net.activation,
        layer_norm=net.actor_layer_norm,
    )
    heads: dict[str, Any] = dict(
        flow=VectorField(**actor, time_embedding=net.time_embedding),
        critic=CriticEnsemble(net.critic_hidden, net.num_critics, net.activation, net.critic_layer_norm),
        residual=Residual(**actor, init_scale=net.residual_init_scale),
        onestep=OneStepPolicy(**actor),
    )
    if config.encoder.pixels:  # one encoder per network, as in the FQL family
        heads = {k: Encoded(make_encoder(config.encoder), head) for k, head in heads.items()}
    return Networks(**heads, action_dim=action_dim)


def encode(module, params, observations: jax.Array) -> jax.Array:
    """The network's features of s: its encoder's output, or s itself for a network without one."""
    if isinstance(module, Encoded):
        return module.apply(params, observations, method=Encoded.encode)
    return observations


def apply_head(module, params, features: jax.Array, *inputs: jax.Array) -> jax.Array:
    """The network on already encoded features (= ``module.apply`` for a network without an encoder)."""
    if isinstance(module, Encoded):
        return module.apply(params, features, *inputs, method=Encoded.from_features)
    return module.apply(params, features, *inputs)


def observation_input(obs_dim: int | tuple[int, ...]) -> jax.Array:
    """A dummy batch of one observation: float32 (1, obs_dim) for states, uint8 (1, H, W, C) for pixels."""
    if isinstance(obs_dim, tuple):
        return jnp.zeros((1, *obs_dim), jnp.uint8)
    return jnp.zeros((1, obs_dim), jnp.float32)


def prepare_batch(config: AgentConfig, state: AgentState, batch: Batch) -> tuple[AgentState, Batch]:
    """Pixel agents: random-shift s and s' (same shift per sample; probability p per batch, or per sample
    with ``encoder.augment_per_sample``) with a key split from
    the agent's rng.  State agents: (state, batch) unchanged, so their random streams are untouched."""
    enc = config.encoder
    if not enc.pixels or enc.augment_prob == 0.0 or enc.shift_pad == 0:
        return state, batch
    rng, aug_key = jax.random.split(state.rng)
    return state.replace(rng=rng), augment_batch(
        aug_key, batch, enc.shift_pad, enc.augment_prob, enc.augment_per_sample
    )


def init_params(
    networks: Networks,
    key: jax.Array,
    obs_dim: int | tuple[int, ...],
    action_dim: int,
    parts: tuple[str, ...],
) -> dict:
    """Initialise the parameters of the named networks (plus ``log_alpha`` when listed)."""
    obs = observation_input(obs_dim)
    act = jnp.zeros((1, action_dim), jnp.float32)
    t = jnp.zeros((1, 1), jnp.float32)
    keys = dict(zip(("flow", "critic", "residual", "onestep"), jax.random.split(key, 4), strict=True))
    params = {}
    if "flow" in parts:
        params["flow"] = networks.flow.init(keys["flow"], obs, act, t)
    if "critic" in parts:
        params["critic"] = networks.critic.init(keys["critic"], obs, act)
    if "residual" in parts:
        params["residual"] = networks.residual.init(keys["residual"], obs, act)
    if "onestep" in parts:
        params["onestep"] = networks.onestep.init(keys["onestep"], obs, act)
    return params


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformation:
    """g <- g * min(1, c / (||g|| + 1e-6)), ||g|| the norm over all parameters (the official FD/DeFlow clip)."""

    def update(updates, state, params=None):
        del params
        scale = jnp.minimum(1.0, max_norm / (optax.tree.norm(updates) + 1e-6))
        return jax.tree.map(lambda g: g * scale, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(config: AgentConfig) -> optax.GradientTransformation:
    """[global-norm clip of all gradients at ``grad_clip``, when set] -> Adam(lr) on the networks and
    Adam(alpha_lr) on log_alpha (one Adam over everything, as in the official code, when alpha_lr == lr)."""

    def labels(params):
        return {
            k: jax.tree.map(lambda _, k=k: "alpha" if k == "log_alpha" else "net", v)
            for k, v in params.items()
        }

    adam = optax.multi_transform({"net": optax.adam(config.lr), "alpha": optax.adam(config.alpha_lr)}, labels)
    if config.grad_clip is None:
        return adam
    return optax.chain(clip_by_global_norm(config.grad_clip), adam)


def new_state(config: AgentConfig, params: dict, key: jax.Array) -> AgentState:
    target = {"critic": params["critic"]} if "critic" in params else {}
    opt_state = make_optimizer(config).init(params)
    return AgentState(
        params=params, target_params=target, opt_state=opt_state, rng=key, step=jnp.zeros((), jnp.int32)
    )


def apply_gradients(config: AgentConfig, state: AgentState, grads: dict, rng: jax.Array) -> AgentState:
    """One optimiser step, then the Polyak update of the target critic:  theta' <- tau theta + (1 - tau) theta'."""
    updates, opt_state = make_optimizer(config).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    target = state.target_params
    if "critic" in params:
        target = {"critic": polyak(params["critic"], state.target_params["critic"], config.tau)}
    return state.replace(
        params=params, target_params=target, opt_state=opt_state, rng=rng, step=state.step + 1
    )


def polyak(online, target, tau: float):
    """theta' <- tau theta + (1 - tau) theta'."""
    return jax.tree.map(lambda o, t: tau * o + (1.0 - tau) * t, online, target)


def velocity_fn(networks: Networks, flow_params, observations: jax.Array, sample_axes: int = 0) -> Callable:
    """v(x, t) of the flow for the given states (broadcast over any sample axes of x).

    s is encoded once here; the returned function reuses the features at every call (every Euler
    step).  ``sample_axes`` inserts that many singleton axes after the batch axis of the features.
    """
    features = encode(networks.flow, flow_params, observations)
    features = features.reshape(features.shape[:1] + (1,) * sample_axes + features.shape[1:])
    return lambda x, t: apply_head(networks.flow, flow_params, features, x, t)


def sample_from_features(
    networks: Networks, flow_params, features: jax.Array, noise: jax.Array, steps: int, clip: bool = True
):
    """Euler rollout of the flow from ``noise`` given the flow's features of s (no gradient), clipped to
    [-1, 1] when ``clip`` (the official ``compute_flow_actions``; ``agent.clip_flow_actions``)."""
    flow_params = jax.lax.stop_gradient(flow_params)
    x = euler_sample(lambda x, t: apply_head(networks.flow, flow_params, features, x, t), noise, steps)
    return jnp.clip(x, -1.0, 1.0) if clip else x


def sample_base_actions(
    networks: Networks, flow_params, observations: jax.Array, noise: jax.Array, steps: int, clip: bool = True
):
    """a_hat = Euler rollout of the flow from ``noise`` (no gradient: the flow is trained by L_bc only),
    clipped to [-1, 1] when ``clip``.  s is encoded once before the rollout, not at every Euler step."""
    flow_params = jax.lax.stop_gradient(flow_params)
    features = encode(networks.flow, flow_params, observations)
    return sample_from_features(networks, flow_params, features, noise, steps, clip)


def aggregate_q(qs: jax.Array, how: str) -> jax.Array:
    """Q_agg over the ensemble axis 0: mean (default) or min."""
    return qs.min(axis=0) if how == "min" else qs.mean(axis=0)


def critic_loss(
    networks: Networks,
    config: AgentConfig,
    critic_params,
    target_critic_params,
    batch: Batch,
    next_actions: jax.Array,
) -> tuple[jax.Array, Metrics]:
    """L_Q = E[(Q_i(s, a) - y)^2],  y = r + gamma * mask * Q_agg'(s', a'),  a' from the current actor.

    ``mask`` = 1 - done (0 at true terminations, 1 at time-outs); y carries no gradient.
    """
    next_q = aggregate_q(
        networks.critic.apply(target_critic_params, batch["next_observations"], next_actions), config.q_agg
    )
    target = jax.lax.stop_gradient(batch["rewards"] + config.discount * batch["masks"] * next_q)
    q = networks.critic.apply(critic_params, batch["observations"], batch["actions"])
    loss = jnp.mean((q - target) ** 2)
    return loss, {
        "critic_loss": loss,
        "q_mean": q.mean(),
        "q_max": q.max(),
        "q_min": q.min(),
        "target_q_mean": target.mean(),
    }


def q_objective(
    networks: Networks, config: AgentConfig, critic_params, observations: jax.Array, actions: jax.Array
):
    """Actor's Q term: -E[Q(s, a)] (ensemble mean), divided by stop_gradient(max(E|Q|, 1e-6)) if normalize_q_loss.

    The critic parameters are held fixed (stop-gradient): the actor loss trains only the actor.
    """
    qs = networks.critic.apply(jax.lax.stop_gradient(critic_params), observations, actions)
    q = qs.mean(axis=0)
    loss = -q.mean()
    if config.normalize_q_loss:
        loss = loss / jax.lax.stop_gradient(jnp.maximum(jnp.abs(q).mean(), 1e-6))
    return loss, q


def q_values(networks: Networks, critic_params, observations: jax.Array, actions: jax.Array) -> jax.Array:
    """Ensemble-mean Q(s, a), used to rank candidate actions."""
    return networks.critic.apply(critic_params, observations, actions).mean(axis=0)


def best_by_q(candidates: jax.Array, q: jax.Array) -> jax.Array:
    """The candidate of highest Q per state: candidates (B, N, d), q (B, N) -> (B, d)."""
    return candidates[jnp.arange(candidates.shape[0]), jnp.argmax(q, axis=1)]


def grad_norms(grads: dict) -> Metrics:
    """Global gradient norm of each parameter group."""
    return {f"grad_norm/{k}": optax.tree.norm(v) for k, v in grads.items()}


def check_batch(
    batch: Batch, obs_dim: int | tuple[int, ...] | None = None, action_dim: int | None = None
) -> None:
    """Fail early, with the expected layout, on a malformed batch (runs at trace time only)."""
    missing = [k for k in BATCH_KEYS if k not in batch]
    if missing:
        raise KeyError(f"batch is missing keys {missing}; an update needs {list(BATCH_KEYS)}")
    b = batch["observations"].shape[0]
    for k in BATCH_KEYS:
        if batch[k].shape[0] != b:
            raise ValueError(
                f"batch[{k!r}] has leading size {batch[k].shape[0]}, expected {b} (the batch size)"
            )
    if batch["rewards"].ndim != 1 or batch["masks"].ndim != 1:
        raise ValueError("batch['rewards'] and batch['masks'] must have shape (B,)")
    if action_dim is not None and batch["actions"].shape[-1] != action_dim:
        raise ValueError(
            f"batch['actions'] has {batch['actions'].shape[-1]} dims, the agent was built for {action_dim}"
        )
    if isinstance(obs_dim, tuple):
        if tuple(batch["observations"].shape[1:]) != obs_dim:
            raise ValueError(
                f"batch['observations'] has shape {tuple(batch['observations'].shape[1:])} per sample, the agent "
                f"was built for frames {obs_dim} (H, W, channels x frame_stack)"
            )
    elif obs_dim is not None and batch["observations"].shape[-1] != obs_dim:
        raise ValueError(
            f"batch['observations'] has {batch['observations'].shape[-1]} dims, the agent was built for {obs_dim}"
        )
