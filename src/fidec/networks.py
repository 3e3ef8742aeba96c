"""Network modules shared by every agent (Flax linen).

- :class:`MLP`: hidden layers with a configurable activation and optional LayerNorm.
- :class:`VectorField`: the flow's velocity v_theta(s, x, t).
- :class:`Residual`: FD's displacement delta_phi(s, a_hat).
- :class:`OneStepPolicy`: FQL's mu(s, z).
- :class:`CriticEnsemble`: E independent Q_i(s, a) (vmapped parameters), output (E, B).
- :class:`StateValue`: V(s) (IQL's value network), output (B,).
- :class:`GaussianActor`: a Gaussian policy head (mean and log-std; IQL, ReBRAC).
- :class:`Encoded`: any of the above behind its own pixel encoder, head(encoder(s), ...).

Time embedding: the raw scalar t in [0, 1] is concatenated to the inputs by default (as in FQL,
which the official FD code builds on); ``"fourier"`` uses [t, sin(2 pi k t), cos(2 pi k t)] for
k = 1..8, which helps small networks resolve the fast change of v near t = 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from fidec.config import check_finite_fields

ACTIVATIONS = {"gelu": nn.gelu, "relu": nn.relu, "silu": nn.silu, "tanh": jnp.tanh, "elu": nn.elu}
TIME_EMBEDDINGS = ("raw", "fourier")


@dataclass(frozen=True)
class NetworkConfig:
    """Sizes and options of all networks (paper defaults: 4 x 512 GELU MLPs, LayerNorm in the critic).

    Attributes:
        actor_hidden: hidden widths of the flow, residual and one-step policy.
        critic_hidden: hidden widths of each critic.
        activation: the hidden layers' activation.
        actor_layer_norm: LayerNorm after every hidden layer's activation in the actor networks.
        critic_layer_norm: LayerNorm after every hidden layer's activation in the critics.
        num_critics: size of the Q ensemble.
        time_embedding: "raw" (t concatenated) or "fourier".
        residual_init_scale: scale of the residual's last layer at init; 1.0 is the official code's plain
            initialisation, a small value starts with delta ~ 0.
    """

    actor_hidden: tuple[int, ...] = (512, 512, 512, 512)
    critic_hidden: tuple[int, ...] = (512, 512, 512, 512)
    activation: Literal["gelu", "relu", "silu", "tanh", "elu"] = "gelu"
    actor_layer_norm: bool = False
    critic_layer_norm: bool = True
    num_critics: int = 2
    time_embedding: Literal["raw", "fourier"] = "raw"
    residual_init_scale: float = 1.0

    def __post_init__(self) -> None:
        check_finite_fields(self)
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"network.activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}"
            )
        if self.time_embedding not in TIME_EMBEDDINGS:
            raise ValueError(
                f"network.time_embedding must be one of {TIME_EMBEDDINGS}, got {self.time_embedding!r}"
            )
        if self.num_critics < 1:
            raise ValueError(f"network.num_critics must be >= 1, got {self.num_critics}")
        if not self.actor_hidden or not self.critic_hidden or min(self.actor_hidden + self.critic_hidden) < 1:
            raise ValueError("network hidden sizes must be non-empty tuples of positive ints")


def dense_init(variance: float = 1.0) -> nn.initializers.Initializer:
    """Kernel initialiser of every dense layer: variance_scaling(variance, fan_avg, uniform), zero bias (the
    FQL family's ``default_init``)."""
    return nn.initializers.variance_scaling(variance, "fan_avg", "uniform")


class MLP(nn.Module):
    """x -> [Dense -> act -> (LayerNorm)] * len(hidden) -> Dense(out_dim) (no output layer if out_dim == 0).

    LayerNorm follows the activation, as in FQL's and the official FD code's MLP.
    """

    hidden: Sequence[int]
    out_dim: int
    activation: str = "gelu"
    layer_norm: bool = False
    final_init_scale: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for width in self.hidden:
            x = act(nn.Dense(width, kernel_init=dense_init())(x))
            if self.layer_norm:
                x = nn.LayerNorm()(x)
        if self.out_dim == 0:
            return x
        return nn.Dense(self.out_dim, kernel_init=dense_init(self.final_init_scale**2))(x)


def embed_time(t: jax.Array, kind: str) -> jax.Array:
    """Time features: t itself ("raw"), or [t, sin(2 pi k t), cos(2 pi k t)]_{k=1..8} ("fourier")."""
    if kind == "raw":
        return t
    freqs = 2.0 * jnp.pi * jnp.arange(1, 9, dtype=t.dtype)
    return jnp.concatenate([t, jnp.sin(t * freqs), jnp.cos(t * freqs)], axis=-1)


def broadcast_state(obs: jax.Array, x: jax.Array) -> jax.Array:
    """Give the state the sample axes of x: obs (B, o) with x (B, M, d) -> (B, M, o).

    New sample axes go after the batch axes (never aligned from the right), so a state is never
    silently paired with another state's samples when B == M.
    """
    extra = x.ndim - obs.ndim
    if extra > 0:
        obs = obs.reshape(obs.shape[:-1] + (1,) * extra + obs.shape[-1:])
    return jnp.broadcast_to(obs, x.shape[:-1] + obs.shape[-1:])


class VectorField(nn.Module):
    """Flow velocity v_theta(s, x, t): MLP on [s, x, emb(t)] -> R^d."""

    hidden: Sequence[int]
    action_dim: int
    activation: str = "gelu"
    layer_norm: bool = False
    time_embedding: str = "raw"

    @nn.compact
    def __call__(self, obs: jax.Array, x: jax.Array, t: jax.Array) -> jax.Array:
        obs = broadcast_state(obs, x)
        t = broadcast_state(t, x)
        h = jnp.concatenate([obs, x, embed_time(t, self.time_embedding)], axis=-1)
        return MLP(self.hidden, self.action_dim, self.activation, self.layer_norm)(h)


class Residual(nn.Module):
    """FD's residual displacement delta_phi(s, a_hat): MLP on [s, a_hat] -> R^d (last layer scaled by init_scale)."""

    hidden: Sequence[int]
    action_dim: int
    activation: str = "gelu"
    layer_norm: bool = False
    init_scale: float = 1.0

    @nn.compact
    def __call__(self, obs: jax.Array, base_action: jax.Array) -> jax.Array:
        obs = broadcast_state(obs, base_action)
        h = jnp.concatenate([obs, base_action], axis=-1)
        return MLP(self.hidden, self.action_dim, self.activation, self.layer_norm, self.init_scale)(h)


class OneStepPolicy(nn.Module):
    """FQL's one-step policy mu(s, z): MLP on [s, z] -> R^d."""

    hidden: Sequence[int]
    action_dim: int
    activation: str = "gelu"
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array, z: jax.Array) -> jax.Array:
        obs = broadcast_state(obs, z)
        return MLP(self.hidden, self.action_dim, self.activation, self.layer_norm)(
            jnp.concatenate([obs, z], -1)
        )


class CriticEnsemble(nn.Module):
    """E independent critics Q_i(s, a) with separate parameters; returns shape (E, ...)."""

    hidden: Sequence[int]
    num_critics: int = 2
    activation: str = "gelu"
    layer_norm: bool = True

    @nn.compact
    def __call__(self, obs: jax.Array, actions: jax.Array) -> jax.Array:
        ensemble = nn.vmap(
            MLP,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_critics,
        )
        obs = broadcast_state(obs, actions)
        q = ensemble(self.hidden, 1, self.activation, self.layer_norm)(jnp.concatenate([obs, actions], -1))
        return q[..., 0]


class StateValue(nn.Module):
    """V(s): MLP on s -> R, output shape (B,) (IQL's value network, LayerNorm like the critic's)."""

    hidden: Sequence[int]
    activation: str = "gelu"
    layer_norm: bool = True

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return MLP(self.hidden, 1, self.activation, self.layer_norm)(obs)[..., 0]


class GaussianActor(nn.Module):
    """A Gaussian policy head: (mean, log_std) of pi(a | s), each (B, d).

    The trunk is ``hidden`` activated layers; the mean is a Dense layer initialised with variance
    ``mean_init_variance`` (the FQL family's ``final_fc_init_scale``, 0.01); the log-std is 0 (``const_std``,
    standard deviation 1) or a learned state-independent vector, clipped to [-5, 2].  A tanh-squashed policy
    (ReBRAC) applies tanh to samples and to the mean itself; that is the caller's choice.
    """

    hidden: Sequence[int]
    action_dim: int
    activation: str = "gelu"
    layer_norm: bool = False
    const_std: bool = True
    mean_init_variance: float = 0.01

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        features = MLP(self.hidden, 0, self.activation, self.layer_norm)(obs)
        mean = nn.Dense(self.action_dim, kernel_init=dense_init(self.mean_init_variance))(features)
        if self.const_std:
            log_std = jnp.zeros_like(mean)
        else:
            log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
            log_std = jnp.broadcast_to(log_std, mean.shape)
        return mean, jnp.clip(log_std, -5.0, 2.0)


class Encoded(nn.Module):
    """A network with its own observation encoder: f(s, ...) = head(encoder(s), ...).

    ``encode`` and ``from_features`` split the two, so that a caller can encode s once and reuse the
    features (e.g. at every step of the flow's Euler rollout).  Parameters: {"encoder", "head"}.
    """

    encoder: nn.Module
    head: nn.Module

    def __call__(self, obs: jax.Array, *inputs: jax.Array) -> jax.Array:
        return self.head(self.encoder(obs), *inputs)

    def encode(self, obs: jax.Array) -> jax.Array:
        return self.encoder(obs)

    def from_features(self, features: jax.Array, *inputs: jax.Array) -> jax.Array:
        return self.head(features, *inputs)
