"""Pixel transitions with each frame stored once: the container behind OGBench's visual datasets.

A regular :class:`~fidec.data.Dataset` would hold ``observations`` and ``next_observations`` as two copies
of almost the same frames; a 1M-row 64x64x3 dataset is 12.3 GB as uint8 (49 GB as float32), so
:class:`VisualDataset` keeps each frame once and describes transitions by frame indices:

- ``frames`` (F, H, W, C) uint8, F = rows of the file, optionally a read-only ``np.memmap``
  (:mod:`fidec.data.frames`);
- row i (a transition, as in OGBench's loader: every file row but each episode's last):
  s_i = frame ``obs_frame[i]``, s'_i = frame ``obs_frame[i] + 1``;
- observations are stacks of ``frame_stack`` frames that never cross an episode start
  (:mod:`fidec.data.stacking`), gathered on device at sampling time
  (:func:`fidec.data.sampling.sample_stacked_batch`).

Loading from OGBench's files: :func:`fidec.data.ogbench_data.load_visual_ogbench`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import jax
import jax.numpy as jnp
import numpy as np

from fidec.data.errors import DatasetError
from fidec.data.stacking import episode_first_frames, stack_indices
from fidec.data.validate import check_finite

ROW_KEYS: tuple[str, ...] = ("actions", "rewards", "masks", "terminals")


@dataclass(frozen=True, eq=False)
class VisualDataset:
    """Pixel transitions with each frame stored once (see the module docstring).

    ``obs_dim`` is the shape (H, W, C) of one frame; agents built from it take ``frame_stack`` frames.
    """

    frames: np.ndarray
    obs_frame: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    masks: np.ndarray
    terminals: np.ndarray
    episode_first: np.ndarray
    frame_stack: int = 3
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.obs_frame)
        lengths = {k: len(getattr(self, k)) for k in ROW_KEYS}
        if any(v != n for v in lengths.values()) or len(self.episode_first) != len(self.frames):
            raise DatasetError(
                f"visual dataset: {n} rows but lengths {lengths} and {len(self.episode_first)} episode starts for "
                f"{len(self.frames)} frames; every per-row array needs one entry per transition"
            )
        if self.frames.dtype != np.uint8 or self.frames.ndim != 4:
            raise DatasetError(
                f"visual dataset: frames must be uint8 (F, H, W, C), got {self.frames.dtype} {self.frames.shape}"
            )
        if n and int(np.max(self.obs_frame)) + 1 >= len(self.frames):
            raise DatasetError("visual dataset: a transition's next frame lies past the last frame")
        if self.frame_stack < 1:
            raise ValueError(f"frame_stack must be >= 1, got {self.frame_stack}")

    @classmethod
    def from_episodes(
        cls,
        frames: np.ndarray,
        actions: np.ndarray,
        terminals: np.ndarray,
        rewards: np.ndarray | None = None,
        masks: np.ndarray | None = None,
        frame_stack: int = 3,
        extras: Mapping[str, np.ndarray] | None = None,
    ) -> VisualDataset:
        """From per-file-row arrays in OGBench's layout (each episode's last row flagged in ``terminals``).

        The transitions are every row but each episode's last; ``rewards``/``masks`` (per file row, e.g. from
        relabelling) default to 0 and 1; ``extras`` are per-file-row arrays, kept for the transition rows.
        """
        terminals = np.asarray(terminals).astype(bool)
        if len(terminals) and not terminals[-1]:
            terminals = terminals.copy()
            terminals[-1] = True  # a trailing open episode ends with the file
        valid = ~terminals
        rows = np.flatnonzero(valid).astype(np.int32)
        next_is_last = np.concatenate([terminals[1:], [True]])[valid]
        per_row = lambda x, fill: (
            np.full(len(rows), fill, np.float32) if x is None else np.asarray(x, np.float32)[valid]
        )
        return cls(
            frames=frames,
            obs_frame=rows,
            actions=np.asarray(actions, np.float32)[valid],
            rewards=per_row(rewards, 0.0),
            masks=per_row(masks, 1.0),
            terminals=next_is_last.astype(np.float32),
            episode_first=episode_first_frames(terminals),
            frame_stack=frame_stack,
            extras={k: np.asarray(v)[valid] for k, v in (extras or {}).items()},
        )

    @property
    def size(self) -> int:
        return len(self.obs_frame)

    @property
    def obs_dim(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.frames.shape[1:])  # type: ignore[return-value]

    @property
    def action_dim(self) -> int:
        return int(self.actions.shape[-1])

    @property
    def num_episodes(self) -> int:
        return int(self.terminals.sum())

    @property
    def next_frame(self) -> np.ndarray:
        return self.obs_frame + 1

    def arrays(self) -> dict[str, np.ndarray]:
        """The frame store and the per-row arrays (for summaries; observations are frame indices here)."""
        names = ("frames", "obs_frame", "actions", "rewards", "masks", "terminals")
        return {k: getattr(self, k) for k in names}

    def with_frame_stack(self, k: int) -> VisualDataset:
        return replace(self, frame_stack=int(k))

    def stacks(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, k) frame indices of every row's observation and next observation."""
        first = self.episode_first[self.obs_frame]
        return (
            stack_indices(self.obs_frame, first, self.frame_stack),
            stack_indices(self.next_frame, first, self.frame_stack),
        )

    def observations_at(self, rows: np.ndarray, next_: bool = False) -> np.ndarray:
        """Host-side stacked observations (len(rows), H, W, C k) of the given rows (for inspection and tests)."""
        obs_stack, next_stack = self.stacks()
        idx = (next_stack if next_ else obs_stack)[np.asarray(rows)]
        stacked = np.asarray(self.frames[idx.reshape(-1)]).reshape(idx.shape + self.frames.shape[1:])
        return np.transpose(stacked, (0, 2, 3, 1, 4)).reshape(len(idx), *self.frames.shape[1:3], -1)

    def memory_bytes(self) -> dict[str, int]:
        """Bytes of the frames and of the per-row arrays (what :meth:`to_device` places on the device)."""
        obs_stack_bytes = 2 * self.size * self.frame_stack * 4
        rows = sum(getattr(self, k).nbytes for k in ROW_KEYS)
        return {"frames": int(self.frames.nbytes), "rows": int(rows + obs_stack_bytes)}

    def to_device(self) -> dict[str, jax.Array]:
        """Frames (uint8) and per-row arrays on the default device, for :func:`fidec.data.sample_batch`."""
        obs_stack, next_stack = self.stacks()
        out = {k: jnp.asarray(getattr(self, k)) for k in ROW_KEYS}
        out["frames"] = jnp.asarray(np.asarray(self.frames))
        out["obs_stack"] = jnp.asarray(obs_stack)
        out["next_stack"] = jnp.asarray(next_stack)
        return out

    def validate(self, name: str = "visual dataset") -> VisualDataset:
        """Refuse NaN/inf in the per-row arrays (frames are uint8 and always finite)."""
        check_finite({k: getattr(self, k) for k in ROW_KEYS}, name)
        return self
