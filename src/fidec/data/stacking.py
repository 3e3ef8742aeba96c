"""Frame-stack indices: which stored frames make up the k-frame observation of each row.

The k-frame observation of a row whose newest frame is j is frames j - k + 1, ..., j (oldest first, on
the channel axis), with indices below the episode's first frame clamped to it, so a stack never mixes two
episodes (the first frame repeats at an episode start, as a fresh environment's stack does: see
:class:`fidec.envs.frame_stack.FrameStack`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def episode_first_frames(terminals: np.ndarray) -> np.ndarray:
    """For each file row, the row of its episode's first frame (``terminals`` flags each episode's last row)."""
    terminals = np.asarray(terminals).astype(bool)
    starts = np.zeros(len(terminals), dtype=bool)
    starts[0] = True
    starts[1:] = terminals[:-1]
    return np.maximum.accumulate(np.where(starts, np.arange(len(terminals)), 0)).astype(np.int32)


def stack_indices(frame: np.ndarray, first: np.ndarray, k: int) -> np.ndarray:
    """(N, k) frame indices of the k-stacks ending at ``frame``: frame - k + 1 .. frame, clamped to ``first``."""
    back = np.arange(k - 1, -1, -1, dtype=np.int64)
    return np.maximum(
        np.asarray(frame, np.int64)[:, None] - back, np.asarray(first, np.int64)[:, None]
    ).astype(np.int32)


def gather_stacks(frames: jax.Array, indices: jax.Array) -> jax.Array:
    """frames (F, H, W, C) gathered at (B, k) indices -> (B, H, W, C k), oldest frame first on channels."""
    stacked = jnp.take(frames, indices, axis=0)  # (B, k, H, W, C)
    b, k, h, w, c = stacked.shape
    return jnp.transpose(stacked, (0, 2, 3, 1, 4)).reshape(b, h, w, k * c)
