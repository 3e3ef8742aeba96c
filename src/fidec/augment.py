"""Random-shift augmentation of uint8 frames (DrQ-style), inside a jitted update.

With probability p the batch is shifted (FQL's ``Dataset.sample``: one coin per batch, then a random
offset per sample), or, ``per_sample=True``, each sample is shifted with probability p.  A shifted sample: its frames are padded by ``pad`` edge pixels on every side
and cropped back to (H, W) at an offset (dy, dx) ~ U{0..2 pad}^2, i.e. moved by (pad - dy, pad - dx)
pixels with the border pixels repeated.  A sample that is not shifted is returned unchanged (offset
(pad, pad)).  The shifts are a function of the key alone, and the observation s and next observation
s' of one transition receive the same shift.  Frames stay uint8.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def shift_offsets(key: jax.Array, batch: int, pad: int, prob: float, per_sample: bool = True) -> jax.Array:
    """(batch, 2) crop offsets in {0..2 pad}: uniform with probability ``prob``, else (pad, pad) (no shift).

    ``per_sample``: one coin per sample; otherwise one coin for the whole batch (FQL's).
    """
    offset_key, coin_key = jax.random.split(key)
    offsets = jax.random.randint(offset_key, (batch, 2), 0, 2 * pad + 1)
    apply = jax.random.uniform(coin_key, (batch, 1) if per_sample else (1, 1)) < prob
    return jnp.where(apply, offsets, pad).astype(jnp.int32)


def shift_frames(frames: jax.Array, offsets: jax.Array, pad: int) -> jax.Array:
    """Crop each (H, W, C) frame of (B, H, W, C) from its edge-padded copy at ``offsets[b]``."""
    if pad == 0:
        return frames
    _, h, w, c = frames.shape
    padded = jnp.pad(frames, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")

    def crop(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c))

    return jax.vmap(crop)(padded, offsets)


def random_shift(key: jax.Array, frames: jax.Array, pad: int = 4, prob: float = 0.5) -> jax.Array:
    """Shift each sample of (B, H, W, C) by up to ``pad`` pixels with probability ``prob``."""
    return shift_frames(frames, shift_offsets(key, frames.shape[0], pad, prob), pad)


def augment_batch(key: jax.Array, batch: dict, pad: int, prob: float, per_sample: bool = False) -> dict:
    """The batch with observations and next_observations shifted by the same per-sample offsets
    (with probability ``prob`` for the whole batch, FQL's rule, or per sample with ``per_sample``)."""
    offsets = shift_offsets(key, batch["observations"].shape[0], pad, prob, per_sample)
    out = dict(batch)
    for name in ("observations", "next_observations"):
        out[name] = shift_frames(batch[name], offsets, pad)
    return out
