"""The one dataset container every agent trains on (its sampler: :mod:`fidec.data.sampling`).

Conventions (those of OGBench's loader and the FQL code family):

- Row i is the transition (s_i, a_i, r_i, s'_i): ``observations[i]``, ``actions[i]``, ``rewards[i]``,
  ``next_observations[i]``.
- ``masks[i] = 1 - done_i`` where ``done_i`` is a *true* environment termination (goal reached in OGBench
  single-task data, a D4RL ``terminals`` flag). A time-limit cut is not a termination: the critic still
  bootstraps there (mask 1). Bootstrapped target: ``y = r + gamma * masks * Q'(s', a')``.
- ``terminals[i] = 1`` marks the last transition of a trajectory in the file (a boundary, whatever its
  cause); it is what splits the data into episodes, never what stops bootstrapping.
- All arrays are float32, except pixel observations, which stay uint8 (a float32 copy of a 1M-frame
  64x64x3 dataset would need 49 GB); ``extras`` holds optional per-row arrays (e.g. ``qpos``/``qvel``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import jax
import jax.numpy as jnp
import numpy as np

from fidec.data.errors import DatasetError
from fidec.data.validate import (
    as_float32,
    check_action_range,
    check_binary,
    check_finite,
    check_lengths,
    require_keys,
)

CORE_KEYS: tuple[str, ...] = ("observations", "actions", "rewards", "masks", "terminals", "next_observations")
OBSERVATION_KEYS: tuple[str, ...] = ("observations", "next_observations")
BATCH_KEYS: tuple[str, ...] = (
    "observations",
    "actions",
    "rewards",
    "masks",
    "terminals",
    "next_observations",
)


@dataclass(frozen=True, eq=False)
class Dataset:
    """Offline transitions as NumPy float32 arrays of equal length (see the module docstring)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    masks: np.ndarray
    terminals: np.ndarray
    next_observations: np.ndarray
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], extra_keys: tuple[str, ...] = ()) -> Dataset:
        """Build from a dict holding :data:`CORE_KEYS` (cast to float32; uint8 pixels kept) and ``extra_keys``."""
        require_keys(arrays, CORE_KEYS, source="arrays")
        core = {k: as_float32(k, arrays[k], source="arrays") for k in CORE_KEYS}
        for key in OBSERVATION_KEYS:
            if np.asarray(arrays[key]).dtype == np.uint8:
                core[key] = np.asarray(arrays[key])
        extras = {k: np.asarray(arrays[k]) for k in extra_keys if k in arrays}
        return cls(**core, extras=extras)

    @property
    def size(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def obs_dim(self) -> int:
        return int(np.prod(self.observations.shape[1:]))

    @property
    def action_dim(self) -> int:
        return int(self.actions.shape[-1])

    @property
    def num_episodes(self) -> int:
        return int(self.terminals.sum())

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in CORE_KEYS}

    def validate(self, name: str = "dataset") -> Dataset:
        """Check keys, lengths, dtypes, finiteness and the action range; return self or raise DatasetError."""
        validate_transitions(self.arrays(), source=name)
        return self

    def to_device(self) -> dict[str, jax.Array]:
        """The :data:`BATCH_KEYS` arrays on the default JAX device, for :func:`fidec.data.sample_batch`."""
        return {k: jnp.asarray(getattr(self, k)) for k in BATCH_KEYS}

    def take(self, indices: np.ndarray) -> Dataset:
        """Rows ``indices`` (extras too)."""
        core = {k: getattr(self, k)[indices] for k in CORE_KEYS}
        return replace(self, **core, extras={k: v[indices] for k, v in self.extras.items()})

    def episode_bounds(self) -> np.ndarray:
        """(num_episodes, 2) array of [start, end) row ranges, from ``terminals`` (a trailing open episode counts)."""
        ends = np.flatnonzero(self.terminals > 0.5) + 1
        if ends.size == 0 or ends[-1] != self.size:
            ends = np.append(ends, self.size)
        starts = np.concatenate([[0], ends[:-1]])
        return np.stack([starts, ends], axis=1)

    def split(self, val_fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
        """Split by whole episodes (no trajectory straddles the two): a random ``val_fraction`` of episodes
        goes to the validation set, at least one episode to each side."""
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")
        bounds = self.episode_bounds()
        if len(bounds) < 2:
            raise ValueError(
                "Cannot split a dataset with fewer than 2 episodes into train and validation sets."
            )
        num_val = min(max(1, round(val_fraction * len(bounds))), len(bounds) - 1)
        order = np.random.default_rng(seed).permutation(len(bounds))
        is_val = np.zeros(len(bounds), dtype=bool)
        is_val[order[:num_val]] = True
        rows = lambda chosen: np.concatenate([np.arange(s, e) for s, e in bounds[chosen]])
        return self.take(rows(~is_val)), self.take(rows(is_val))


def clip_actions(dataset, eps: float):
    """The dataset (any container with an ``actions`` field) with actions clipped to [-1 + eps, 1 - eps]:
    the official FD and FQL code's ``action_clip_eps`` (keeps arctanh-style maps and the flow's targets finite)."""
    bound = 1.0 - eps
    return replace(dataset, actions=np.clip(dataset.actions, -bound, bound).astype(np.float32))


def validate_transitions(arrays: Mapping[str, np.ndarray], source: str) -> None:
    """Checks for a finished transition set (the :class:`Dataset` arrays)."""
    require_keys(arrays, CORE_KEYS, source)
    for key in CORE_KEYS:
        dtype = np.asarray(arrays[key]).dtype
        if dtype != np.float32 and not (dtype == np.uint8 and key in OBSERVATION_KEYS):
            raise DatasetError(
                f"{source}: '{key}' has dtype {dtype}; the Dataset container holds float32 arrays (uint8 for "
                "pixel observations). Build it with Dataset.from_arrays, which casts numeric arrays."
            )
    check_lengths({k: arrays[k] for k in CORE_KEYS}, source)
    if np.shape(arrays["observations"]) != np.shape(arrays["next_observations"]):
        raise DatasetError(
            f"{source}: observations {np.shape(arrays['observations'])} and next_observations "
            f"{np.shape(arrays['next_observations'])} differ in shape."
        )
    if np.ndim(arrays["actions"]) != 2:
        raise DatasetError(
            f"{source}: actions must be 2-D (N, action_dim), got shape {np.shape(arrays['actions'])}."
        )
    check_finite(arrays, source, keys=CORE_KEYS)
    check_binary(arrays, ("masks", "terminals"), source)
    check_action_range(arrays["actions"], source, policy="refuse")
