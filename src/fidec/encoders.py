"""Pixel encoders: uint8 frames (B, H, W, C * frame_stack) -> features (B, f), chosen by config.

- ``none``: no encoder; observations are state vectors and reach the MLPs unchanged.
- ``impala``: an IMPALA-style small ResNet (the FQL family's pixel encoder): per stage a 3x3 conv,
  a 3x3 max-pool with stride 2 and ``impala_blocks`` residual blocks x + conv(relu(conv(relu(x)))),
  then relu, flatten and an MLP (one 512-unit GELU layer, no LayerNorm: FQL's ``impala_small``).
- ``tiny``: two stride-2 3x3 convs and a small dense layer, for tests and smoke runs on a CPU.

Frames are cast to float32 and scaled to [0, 1] inside the encoder, so observations stay uint8 in
memory and on the device until this point.  Each network (flow, critic, residual, one-step policy)
owns its own encoder (see :class:`fidec.networks.Encoded`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from fidec.config import check_finite_fields

ENCODERS = ("none", "impala", "tiny")


@dataclass(frozen=True)
class EncoderConfig:
    """Pixel pipeline settings (ignored when ``name == "none"``).

    Attributes:
        name: the pixel encoder ("none": observations are state vectors).
        frame_stack: frames stacked on the channel axis, oldest first (never across an episode start).
        augment_prob: probability p that a batch is randomly shifted in an update (FQL's ``p_aug``).
        augment_per_sample: draw the shift-or-not coin per sample instead of once per batch (FQL's rule).
        shift_pad: the shift's reach: pad by this many edge pixels, crop back at a random offset (FQL: 3).
        impala_channels: output channels of the IMPALA stages.
        impala_blocks: residual blocks per stage.
        mlp_hidden: dense layers after the convolutions (the last width is the feature size).
        layer_norm: LayerNorm after the convolutions and after each dense layer's activation (FQL's
            ``impala_small`` has none).
        tiny_channels: the tiny CNN's conv channels.
        tiny_features: the tiny CNN's feature size.
    """

    name: Literal["none", "impala", "tiny"] = "none"
    frame_stack: int = 3
    augment_prob: float = 0.5
    augment_per_sample: bool = False
    shift_pad: int = 3
    impala_channels: tuple[int, ...] = (16, 32, 32)
    impala_blocks: int = 1
    mlp_hidden: tuple[int, ...] = (512,)
    layer_norm: bool = False
    tiny_channels: tuple[int, ...] = (8, 16)
    tiny_features: int = 32

    def __post_init__(self) -> None:
        check_finite_fields(self)
        checks = [
            (self.name in ENCODERS, f"encoder.name must be one of {ENCODERS}, got {self.name!r}"),
            (self.frame_stack >= 1, f"encoder.frame_stack must be >= 1, got {self.frame_stack}"),
            (
                0.0 <= self.augment_prob <= 1.0,
                f"encoder.augment_prob must lie in [0, 1], got {self.augment_prob}",
            ),
            (self.shift_pad >= 0, f"encoder.shift_pad must be >= 0, got {self.shift_pad}"),
            (self.impala_blocks >= 0, f"encoder.impala_blocks must be >= 0, got {self.impala_blocks}"),
            (
                len(self.impala_channels) >= 1 and min(self.impala_channels) >= 1,
                f"encoder.impala_channels must be positive ints, got {self.impala_channels}",
            ),
            (
                len(self.tiny_channels) >= 1 and min(self.tiny_channels) >= 1,
                f"encoder.tiny_channels must be positive ints, got {self.tiny_channels}",
            ),
            (not self.mlp_hidden or min(self.mlp_hidden) >= 1, "encoder.mlp_hidden must be positive ints"),
            (self.tiny_features >= 1, f"encoder.tiny_features must be >= 1, got {self.tiny_features}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def pixels(self) -> bool:
        return self.name != "none"


def to_unit_float(frames: jax.Array) -> jax.Array:
    """uint8 in [0, 255] (or floats on that scale) -> float32 in [0, 1]."""
    return frames.astype(jnp.float32) / 255.0


# FQL's ImpalaEncoder: Xavier-uniform convolutions; its MLP's variance-scaling(1, fan_avg, uniform) dense layers.
CONV_INIT = nn.initializers.xavier_uniform()
DENSE_INIT = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")


class ResidualBlock(nn.Module):
    """x + conv(relu(conv(relu(x)))), channel count unchanged."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        h = nn.Conv(channels, (3, 3), kernel_init=CONV_INIT)(nn.relu(x))
        h = nn.Conv(channels, (3, 3), kernel_init=CONV_INIT)(nn.relu(h))
        return x + h


class ImpalaEncoder(nn.Module):
    """IMPALA-style small ResNet + MLP: (..., H, W, C) uint8 -> (..., mlp_hidden[-1])."""

    channels: Sequence[int] = (16, 32, 32)
    blocks: int = 1
    mlp_hidden: Sequence[int] = (512,)
    layer_norm: bool = False

    @nn.compact
    def __call__(self, frames: jax.Array) -> jax.Array:
        batch_shape = frames.shape[:-3]
        x = to_unit_float(frames.reshape((-1, *frames.shape[-3:])))
        for width in self.channels:
            x = nn.Conv(width, (3, 3), kernel_init=CONV_INIT)(x)
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
            for _ in range(self.blocks):
                x = ResidualBlock()(x)
        x = nn.relu(x)
        if self.layer_norm:
            x = nn.LayerNorm()(x)
        x = x.reshape((x.shape[0], -1))
        for width in self.mlp_hidden:
            x = nn.gelu(nn.Dense(width, kernel_init=DENSE_INIT)(x))
            if self.layer_norm:
                x = nn.LayerNorm()(x)
        return x.reshape((*batch_shape, x.shape[-1]))


class TinyEncoder(nn.Module):
    """Two stride-2 3x3 convs (relu) and a dense layer: (..., H, W, C) uint8 -> (..., features)."""

    channels: Sequence[int] = (8, 16)
    features: int = 32

    @nn.compact
    def __call__(self, frames: jax.Array) -> jax.Array:
        batch_shape = frames.shape[:-3]
        x = to_unit_float(frames.reshape((-1, *frames.shape[-3:])))
        for width in self.channels:
            x = nn.relu(nn.Conv(width, (3, 3), strides=(2, 2))(x))
        x = nn.Dense(self.features)(x.reshape((x.shape[0], -1)))
        x = nn.LayerNorm()(x)
        return x.reshape((*batch_shape, self.features))


def make_encoder(config: EncoderConfig) -> nn.Module | None:
    """The encoder module named by ``config`` (None for ``"none"``)."""
    if config.name == "impala":
        return ImpalaEncoder(
            config.impala_channels, config.impala_blocks, config.mlp_hidden, config.layer_norm
        )
    if config.name == "tiny":
        return TinyEncoder(config.tiny_channels, config.tiny_features)
    return None
