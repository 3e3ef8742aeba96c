"""Parts shared by the agents: the functional state, networks, optimiser, target update, critic pieces.

The agent state is an immutable pytree, so ``jax.jit``, ``jax.vmap`` over seeds and checkpointing need
nothing special.  Every agent has one optimiser over its whole parameter tree: the losses of the different
networks are summed and differentiated once, and stop-gradients keep each loss on its own parameters
(tested).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from fidec.agents.base import AgentConfig, CriticConfig, FlowConfig
from fidec.augment import augment_batch
from fidec.encoders import make_encoder
from fidec.flows import euler_sample
from fidec.networks import (
    CriticEnsemble,
    Encoded,
    GaussianActor,
    OneStepPolicy,
    Residual,
    StateValue,
    VectorField,
)

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
# What a transition batch holds (an agent may ask for more, e.g. ``next_actions``).
TRANSITION_KEYS = ("observations", "actions", "rewards", "masks", "next_observations")


class AgentState(flax.struct.PyTreeNode):
    """Everything that changes during training.

    params: the agent's parameter groups (``flow``, ``critic``, ``residual``, ``value``, ``log_alpha``, ...).
    target_params: Polyak-averaged copies of the groups the agent declares as targets.
    opt_state: optax state of the single optimiser over ``params``.
    rng: PRNG key of the update's draws.
    step: number of updates taken.
    """

    params: dict
    target_params: dict
    opt_state: Any
    rng: jax.Array
    step: jax.Array


@dataclass(frozen=True)
class Networks:
    """An agent's Flax modules by parameter group (static: no parameters inside); ``networks.flow`` etc.

    With a pixel encoder each module is an :class:`~fidec.networks.Encoded` (its own encoder + head).
    """

    modules: Mapping[str, nn.Module]
    action_dim: int

    def __getattr__(self, name: str) -> nn.Module:
        modules = self.__dict__.get("modules", {})
        if name in modules:
            return modules[name]
        raise AttributeError(f"this agent has no {name!r} network (it has {sorted(modules)})")


# -- networks -----------------------------------------------------------------------------------------------


def actor_kwargs(config: AgentConfig, action_dim: int) -> dict[str, Any]:
    """Sizes of an actor-side network (flow, residual, one-step policy): the config's actor MLP."""
    net = config.network
    return dict(
        hidden=net.actor_hidden,
        action_dim=action_dim,
        activation=net.activation,
        layer_norm=net.actor_layer_norm,
    )


def flow_network(config: AgentConfig, action_dim: int) -> VectorField:
    return VectorField(**actor_kwargs(config, action_dim), time_embedding=config.network.time_embedding)


def critic_network(config: AgentConfig) -> CriticEnsemble:
    net = config.network
    return CriticEnsemble(net.critic_hidden, net.num_critics, net.activation, net.critic_layer_norm)


def value_network(config: AgentConfig) -> StateValue:
    net = config.network
    return StateValue(net.critic_hidden, net.activation, net.critic_layer_norm)


def residual_network(config: AgentConfig, action_dim: int) -> Residual:
    return Residual(**actor_kwargs(config, action_dim), init_scale=config.network.residual_init_scale)


def onestep_network(config: AgentConfig, action_dim: int) -> OneStepPolicy:
    return OneStepPolicy(**actor_kwargs(config, action_dim))


def gaussian_actor(config: AgentConfig, action_dim: int, const_std: bool, mean_init_variance: float):
    return GaussianActor(
        **actor_kwargs(config, action_dim), const_std=const_std, mean_init_variance=mean_init_variance
    )


def make_networks(config: AgentConfig, action_dim: int, modules: Mapping[str, nn.Module]) -> Networks:
    """The agent's networks; with a pixel encoder each gets its own encoder, as in the FQL family."""
    if config.encoder.pixels:
        modules = {k: Encoded(make_encoder(config.encoder), head) for k, head in modules.items()}
    return Networks(dict(modules), action_dim)


def _head(module: nn.Module) -> nn.Module:
    return module.head if isinstance(module, Encoded) else module


def example_inputs(module: nn.Module, obs: jax.Array, act: jax.Array) -> tuple[jax.Array, ...]:
    """The arguments ``module.init`` needs: (s, x, t) for a flow, (s,) for V and policies of s, else (s, a)."""
    head = _head(module)
    if isinstance(head, VectorField):
        return obs, act, jnp.zeros((obs.shape[0], 1), jnp.float32)
    if isinstance(head, StateValue | GaussianActor):
        return (obs,)
    return obs, act


def observation_input(obs_dim: int | tuple[int, ...]) -> jax.Array:
    """A dummy batch of one observation: float32 (1, obs_dim) for states, uint8 (1, H, W, C) for pixels."""
    if isinstance(obs_dim, tuple):
        return jnp.zeros((1, *obs_dim), jnp.uint8)
    return jnp.zeros((1, obs_dim), jnp.float32)


def init_params(
    networks: Networks,
    key: jax.Array,
    obs_dim: int | tuple[int, ...],
    action_dim: int,
    parts: tuple[str, ...],
) -> dict:
    """Parameters of the named networks, one key split from ``key`` each (in the order of ``parts``)."""
    obs = observation_input(obs_dim)
    act = jnp.zeros((1, action_dim), jnp.float32)
    params = {}
    for part, part_key in zip(parts, jax.random.split(key, len(parts)), strict=True):
        module = networks.modules[part]
        params[part] = module.init(part_key, *example_inputs(module, obs, act))
    return params


def encode(module, params, observations: jax.Array) -> jax.Array:
    """The network's features of s: its encoder's output, or s itself for a network without one."""
    if isinstance(module, Encoded):
        return module.apply(params, observations, method=Encoded.encode)
    return observations


def apply_head(module, params, features: jax.Array, *inputs: jax.Array) -> Any:
    """The network on already encoded features (= ``module.apply`` for a network without an encoder)."""
    if isinstance(module, Encoded):
        return module.apply(params, features, *inputs, method=Encoded.from_features)
    return module.apply(params, features, *inputs)


def prepare_batch(config: AgentConfig, state: AgentState, batch: Batch) -> tuple[AgentState, Batch]:
    """Pixel agents: random-shift s and s' (same shift per sample; probability p per batch, or per sample
    with ``encoder.augment_per_sample``) with a key split from the agent's rng.  State agents: (state, batch)
    unchanged, so their random streams are untouched."""
    enc = config.encoder
    if not enc.pixels or enc.augment_prob == 0.0 or enc.shift_pad == 0:
        return state, batch
    rng, aug_key = jax.random.split(state.rng)
    return state.replace(rng=rng), augment_batch(
        aug_key, batch, enc.shift_pad, enc.augment_prob, enc.augment_per_sample
    )


# -- optimiser, state, target -------------------------------------------------------------------------------


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformation:
    """g <- g * min(1, c / (||g|| + 1e-6)), ||g|| the norm over all parameters (the official FD/DeFlow clip)."""

    def update(updates, state, params=None):
        del params
        scale = jnp.minimum(1.0, max_norm / (optax.tree.norm(updates) + 1e-6))
        return jax.tree.map(lambda g: g * scale, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(config: AgentConfig) -> optax.GradientTransformation:
    """[global-norm clip of all gradients at ``grad_clip``] -> Adam(lr); a config with ``alpha_lr`` trains
    ``log_alpha`` with its own Adam(alpha_lr) (elementwise the same as one Adam when alpha_lr == lr)."""
    alpha_lr = getattr(config, "alpha_lr", None)
    tx: optax.GradientTransformation = optax.adam(config.lr)
    if alpha_lr is not None:

        def labels(params):
            return {
                k: jax.tree.map(lambda _, k=k: "alpha" if k == "log_alpha" else "net", v)
                for k, v in params.items()
            }

        tx = optax.multi_transform({"net": optax.adam(config.lr), "alpha": optax.adam(alpha_lr)}, labels)
    if config.grad_clip is None:
        return tx
    return optax.chain(clip_by_global_norm(config.grad_clip), tx)


def new_state(config: AgentConfig, params: dict, key: jax.Array, targets: tuple[str, ...]) -> AgentState:
    """Step 0: the given parameters, targets equal to their online groups, a fresh optimiser state."""
    return AgentState(
        params=params,
        target_params={k: params[k] for k in targets},
        opt_state=make_optimizer(config).init(params),
        rng=key,
        step=jnp.zeros((), jnp.int32),
    )


def polyak(online, target, tau: float):
    """theta' <- tau theta + (1 - tau) theta'."""
    return jax.tree.map(lambda o, t: tau * o + (1.0 - tau) * t, online, target)


def apply_gradients(
    config: AgentConfig, state: AgentState, grads: dict, update_targets: jax.Array | bool = True
) -> AgentState:
    """One optimiser step, then the Polyak update of every target group towards the online parameters from
    before the step (``target_update="before"``, the FQL family's code) or after it; with
    ``update_targets`` False (a traced bool may be given) the targets stay as they are."""
    updates, opt_state = make_optimizer(config).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    targets = state.target_params
    if targets:
        assert isinstance(config, CriticConfig)
        source = state.params if config.target_update == "before" else params
        moved = {k: polyak(source[k], targets[k], config.tau) for k in targets}
        if update_targets is True:
            targets = moved
        else:
            targets = jax.tree.map(lambda new, old: jnp.where(update_targets, new, old), moved, targets)
    return state.replace(params=params, target_params=targets, opt_state=opt_state, step=state.step + 1)


def adam_moments(opt_state: Any, params: dict) -> tuple[jax.Array, dict, dict]:
    """(count, first moments, second moments) of the Adam state(s) in ``opt_state``, the moments as trees
    shaped like ``params`` (several Adams, e.g. a separate one for log_alpha, are merged)."""
    found = [
        s
        for s in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
        if isinstance(s, optax.ScaleByAdamState)
    ]
    if not found:
        raise ValueError("the optimiser state holds no Adam state")

    def merged(field: str) -> dict:
        def pick(*leaves):
            real = [x for x in leaves if not isinstance(x, optax.MaskedNode)]
            return real[0]

        trees = [getattr(s, field) for s in found]
        return jax.tree.map(pick, *trees, is_leaf=lambda x: isinstance(x, optax.MaskedNode))

    return found[0].count, merged("mu"), merged("nu")


def grad_norms(grads: dict) -> Metrics:
    """Global gradient norm of each parameter group."""
    return {f"grad_norm/{k}": optax.tree.norm(v) for k, v in grads.items()}


# -- flows ------------------------------------------------------------------------------------------------


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
    [-1, 1] when ``clip`` (the FQL family's ``compute_flow_actions``; ``agent.clip_flow_actions``)."""
    flow_params = jax.lax.stop_gradient(flow_params)
    x = euler_sample(lambda x, t: apply_head(networks.flow, flow_params, features, x, t), noise, steps)
    return jnp.clip(x, -1.0, 1.0) if clip else x


def sample_base_actions(
    config: FlowConfig, networks: Networks, flow_params, observations, noise
) -> jax.Array:
    """a_hat = Euler rollout of the flow from ``noise`` (no gradient: the flow is trained by L_bc only),
    clipped to [-1, 1] when ``clip_flow_actions``.  s is encoded once before the rollout."""
    flow_params = jax.lax.stop_gradient(flow_params)
    features = encode(networks.flow, flow_params, observations)
    return sample_from_features(
        networks, flow_params, features, noise, config.flow_steps, config.clip_flow_actions
    )


# -- critics ----------------------------------------------------------------------------------------------


def aggregate_q(qs: jax.Array, how: str) -> jax.Array:
    """Q_agg over the ensemble axis 0: mean or min."""
    return qs.min(axis=0) if how == "min" else qs.mean(axis=0)


def td_critic_loss(
    networks: Networks,
    config: CriticConfig,
    critic_params,
    target_critic_params,
    batch: Batch,
    next_actions: jax.Array,
    q_agg: str,
) -> tuple[jax.Array, Metrics]:
    """L_Q = mean over members and batch of (Q_i(s, a) - y)^2,  y = r + gamma mask Q_agg'(s', a') (no gradient).

    ``mask`` = 1 - done (0 at true terminations, 1 at time-outs); ``next_actions`` come from the agent's
    current policy.
    """
    next_q = aggregate_q(
        networks.critic.apply(target_critic_params, batch["next_observations"], next_actions), q_agg
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


def q_objective(networks: Networks, critic_params, observations, actions, normalize: bool):
    """Actor's Q term: -E[Q(s, a)] (ensemble mean), divided by stop_gradient(max(E|Q|, 1e-6)) if ``normalize``.

    The critic parameters are held fixed (stop-gradient): the actor loss trains only the actor.
    Returns (loss, Q(s, a)).
    """
    qs = networks.critic.apply(jax.lax.stop_gradient(critic_params), observations, actions)
    q = qs.mean(axis=0)
    loss = -q.mean()
    if normalize:
        loss = loss / jax.lax.stop_gradient(jnp.maximum(jnp.abs(q).mean(), 1e-6))
    return loss, q


def q_values(
    networks: Networks, critic_params, observations: jax.Array, actions: jax.Array, how: str = "mean"
):
    """Q_agg(s, a) over the ensemble (mean or min), used to rank candidate actions."""
    return aggregate_q(networks.critic.apply(critic_params, observations, actions), how)


def best_by_q(candidates: jax.Array, q: jax.Array) -> jax.Array:
    """The candidate of highest Q per state: candidates (B, N, d), q (B, N) -> (B, d)."""
    return candidates[jnp.arange(candidates.shape[0]), jnp.argmax(q, axis=1)]


def expectile_loss(diff: jax.Array, expectile: float) -> jax.Array:
    """|tau - 1(diff < 0)| diff^2 per element: the asymmetric squared loss of expectile regression (IQL)."""
    weight = jnp.where(diff >= 0, expectile, 1.0 - expectile)
    return weight * diff**2


def gaussian_log_prob(x: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """log N(x; mean, diag(exp(log_std)^2)), summed over the last axis:
    sum_i -((x_i - mu_i) / sigma_i)^2 / 2 - log sigma_i - log(2 pi) / 2."""
    z = (x - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2.0 * jnp.pi), axis=-1)


# -- reference code -----------------------------------------------------------------------------------------

# What every agent of the FQL code family hard-wires (its networks and training loop).
FQL_FAMILY_FIXED = {
    "network.activation": "gelu",
    "network.num_critics": 2,
    "network.time_embedding": "raw",
    "encoder.name": "none",
    "target_update": "before",
}


def fql_family_settings(config: AgentConfig) -> dict[str, Any]:
    """The settings every agent of the FQL code family names in its config: sizes, learning rate, LayerNorm,
    and, for an agent with a critic, discount and tau."""
    net = config.network
    settings: dict[str, Any] = {
        "lr": config.lr,
        "batch_size": config.batch_size,
        "actor_hidden_dims": tuple(net.actor_hidden),
        "value_hidden_dims": tuple(net.critic_hidden),
        "layer_norm": net.critic_layer_norm,
        "actor_layer_norm": net.actor_layer_norm,
    }
    if isinstance(config, CriticConfig):
        settings.update(discount=config.discount, tau=config.tau)
    if isinstance(config, FlowConfig):
        settings.update(flow_steps=config.flow_steps)
    return settings


def critic_reference_params(prefix: str = "critic") -> tuple[tuple[str, str], ...]:
    """The FQL family's critic and target critic (``Value``, an ensemble of MLPs) in fidec's tree."""
    return (
        ("modules_critic/value_net", f"params/{prefix}/params/VmapMLP_0"),
        ("modules_target_critic/value_net", f"target_params/{prefix}/params/VmapMLP_0"),
    )


CRITIC_METRICS: dict[str, str | tuple[str, ...]] = {
    "critic/critic_loss": "critic_loss",
    "critic/q_mean": "q_mean",
    "critic/q_max": "q_max",
    "critic/q_min": "q_min",
}


# -- batches ----------------------------------------------------------------------------------------------


def check_batch(
    batch: Batch,
    keys: tuple[str, ...] = TRANSITION_KEYS,
    obs_dim: int | tuple[int, ...] | None = None,
    action_dim: int | None = None,
) -> None:
    """Fail early, with the expected layout, on a malformed batch (runs at trace time only)."""
    missing = [k for k in keys if k not in batch]
    if missing:
        raise KeyError(f"batch is missing keys {missing}; an update of this agent needs {list(keys)}")
    b = batch["observations"].shape[0]
    for k in keys:
        if batch[k].shape[0] != b:
            raise ValueError(
                f"batch[{k!r}] has leading size {batch[k].shape[0]}, expected {b} (the batch size)"
            )
    if batch["rewards"].ndim != 1 or batch["masks"].ndim != 1:
        raise ValueError("batch['rewards'] and batch['masks'] must have shape (B,)")
    for k in ("actions", "next_actions"):
        if k in keys and action_dim is not None and batch[k].shape[-1] != action_dim:
            raise ValueError(
                f"batch[{k!r}] has {batch[k].shape[-1]} dims, the agent was built for {action_dim}"
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
