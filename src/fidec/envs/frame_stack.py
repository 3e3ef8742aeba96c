"""Frame stacking for pixel environments: observations are the last k frames on the channel axis.

The stacks are those of :class:`fidec.data.visual.VisualDataset` (oldest frame first; at an episode start
the first frame fills the stack), so a pixel agent is evaluated on the observations it was trained on.
"""

from __future__ import annotations

import gymnasium
import numpy as np


class FrameStack(gymnasium.Wrapper):
    """Observations as the last k frames on the channel axis, oldest first; a reset fills the stack with
    the first frame (the same stacks as :class:`~fidec.data.visual.VisualDataset` at an episode start)."""

    def __init__(self, env: gymnasium.Env, k: int):
        super().__init__(env)
        if k < 1:
            raise ValueError(f"frame stack must be >= 1, got {k}")
        self.k = k
        shape = env.observation_space.shape
        if shape is None or len(shape) != 3:
            raise ValueError(f"frame stacking needs (H, W, C) image observations, got shape {shape}")
        h, w, c = shape
        self.observation_space = gymnasium.spaces.Box(0, 255, (h, w, c * k), np.uint8)
        self._frames: list[np.ndarray] = []

    def reset(self, **kwargs):
        frame, info = self.env.reset(**kwargs)
        self._frames = [frame] * self.k
        return np.concatenate(self._frames, axis=-1), info

    def step(self, action):
        frame, reward, terminated, truncated, info = self.env.step(action)
        self._frames = [*self._frames[1:], frame]
        return np.concatenate(self._frames, axis=-1), reward, terminated, truncated, info


def stack_frames(envs: list[gymnasium.Env], k: int) -> list[gymnasium.Env]:
    """Wrap pixel environments with :class:`FrameStack` (k = 1 or state environments: unchanged)."""
    if k <= 1:
        return envs
    return [FrameStack(e, k) if e.observation_space.dtype == np.uint8 else e for e in envs]
