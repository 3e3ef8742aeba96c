"""Pixel datasets: official visual ``.npz`` files, frames stored once, stacked on device at sampling time.

Layout on disk (OGBench's ``visual-<env>-<type>-v0.npz``): the state layout of :mod:`fidec.data.npz` with
``observations`` uint8 (T, 64, 64, 3).  A regular :class:`~fidec.data.Dataset` would hold
``observations`` and ``next_observations`` as two copies of almost the same frames; a 1M-row
64x64x3 dataset is 12.3 GB as uint8 (49 GB as float32), so :class:`VisualDataset` keeps each
frame once and describes transitions by frame indices:

- ``frames`` (F, H, W, C) uint8, F = rows of the file, optionally a read-only ``np.memmap`` of an
  ``.npy`` extracted once from the ``.npz`` (the file's compressed member is streamed in chunks, so
  extraction never holds the whole array in memory);
- row i (a transition, as in OGBench's loader: every file row but each episode's last):
  s_i = frame ``obs_frame[i]``, s'_i = frame ``obs_frame[i] + 1``;
- stacking: the k-frame observation of row i is frames j - k + 1, ..., j (oldest first, on the
  channel axis), with indices below the episode's first frame clamped to it, so a stack never mixes
  two episodes (the first frame repeats at an episode start, as a fresh environment's stack does).

:func:`sample_stacked_batch` draws the minibatch on device (inside the jitted training block): it
gathers B x k frames per observation key and returns uint8 (B, H, W, C k); nothing larger than a
batch is ever materialised.  Rewards and masks come from OGBench's own relabelling on ``qpos``
(``ogbench.relabel_utils.relabel_dataset``), run with the state twin of the task so that no frame
has to be rendered.

Generation: :func:`fidec.data.generate.generate` accepts ``visual-`` dataset names and renders the
observations of OGBench's oracle rollouts (the official route; see docs/pixels.md for its speed).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from fidec.data.npz import check_ogbench_layout
from fidec.data.paths import cache_dir, dataset_files
from fidec.data.validate import ActionPolicy, DatasetError, check_action_range, check_finite, file_read_error

INFO_KEYS: tuple[str, ...] = ("qpos", "qvel", "button_states")
EXTRACT_CHUNK_BYTES = 64 << 20


# ----------------------------------------------------------------------------------------- stacking


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


def sample_stacked_batch(arrays: Mapping[str, jax.Array], key: jax.Array, batch_size: int) -> dict:
    """Uniform minibatch of a visual dataset on device: rows i_1..i_B ~ U{0..N-1} from ``key`` alone.

    Observations are gathered as stacks of k frames (k = ``obs_stack.shape[1]``, static) and stay uint8.
    """
    size = arrays["actions"].shape[0]
    indices = jax.random.randint(key, (batch_size,), 0, size)
    batch = {k: jnp.take(arrays[k], indices, axis=0) for k in ("actions", "rewards", "masks", "terminals")}
    batch["observations"] = gather_stacks(arrays["frames"], jnp.take(arrays["obs_stack"], indices, axis=0))
    batch["next_observations"] = gather_stacks(
        arrays["frames"], jnp.take(arrays["next_stack"], indices, axis=0)
    )
    return batch


# ---------------------------------------------------------------------------------------- container


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
        lengths = {k: len(getattr(self, k)) for k in ("actions", "rewards", "masks", "terminals")}
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
        rows = sum(getattr(self, k).nbytes for k in ("actions", "rewards", "masks", "terminals"))
        return {"frames": int(self.frames.nbytes), "rows": int(rows + obs_stack_bytes)}

    def to_device(self) -> dict[str, jax.Array]:
        """Frames (uint8) and per-row arrays on the default device, for :func:`fidec.data.sample_batch`."""
        obs_stack, next_stack = self.stacks()
        out = {k: jnp.asarray(getattr(self, k)) for k in ("actions", "rewards", "masks", "terminals")}
        out["frames"] = jnp.asarray(np.asarray(self.frames))
        out["obs_stack"] = jnp.asarray(obs_stack)
        out["next_stack"] = jnp.asarray(next_stack)
        return out

    def validate(self, name: str = "visual dataset") -> VisualDataset:
        check_finite({"actions": self.actions, "rewards": self.rewards}, name)
        return self


# ---------------------------------------------------------------------------------- .npz and memmap


def _member_fingerprint(path: Path, key: str) -> str:
    stat = path.stat()
    words = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{key}"
    return hashlib.sha256(words.encode()).hexdigest()[:16]


def extract_npz_array(path: str | os.PathLike, key: str, out_path: str | os.PathLike) -> Path:
    """Stream member ``key`` of an ``.npz`` into a standalone ``.npy`` in chunks (atomic: tmp then rename)."""
    path, out_path = Path(path), Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = out_path.with_name(f".{out_path.name}.{os.getpid()}.partial")
    try:
        with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as stream:
            major, _ = np.lib.format.read_magic(stream)
            reader = (
                np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = reader(stream)
            if fortran:
                raise DatasetError(f"{path}: '{key}' is stored in Fortran order; re-save it in C order")
            out = np.lib.format.open_memmap(temporary, mode="w+", dtype=dtype, shape=shape)
            flat = out.reshape(-1).view(np.uint8) if out.size else np.zeros(0, np.uint8)
            done = 0
            while done < flat.size:
                chunk = stream.read(min(EXTRACT_CHUNK_BYTES, flat.size - done))
                if not chunk:
                    raise DatasetError(f"{path}: '{key}' is truncated ({done} of {flat.size} bytes)")
                flat[done : done + len(chunk)] = np.frombuffer(chunk, np.uint8)
                done += len(chunk)
            out.flush()
            del out, flat
        os.replace(temporary, out_path)
    except (zipfile.BadZipFile, KeyError, EOFError, OSError) as error:
        raise file_read_error(path, error) from error
    finally:
        temporary.unlink(missing_ok=True)
    return out_path


def frames_memmap(
    path: str | os.PathLike, key: str = "observations", directory: str | os.PathLike | None = None
):
    """A read-only memmap of the frames of an ``.npz`` (extracted once into the cache, reused after)."""
    path = Path(path)
    folder = Path(directory) if directory is not None else cache_dir() / "frames"
    npy = folder / f"{path.name[: -len('.npz')]}-{_member_fingerprint(path, key)}.npy"
    if not npy.exists():
        extract_npz_array(path, key, npy)
    return np.load(npy, mmap_mode="r")


# ------------------------------------------------------------------------------------------ loading


def state_twin(task_name: str) -> str:
    """'visual-cube-single-play-singletask-task1-v0' -> 'cube-single-play-singletask-task1-v0'."""
    return task_name.removeprefix("visual-")


def relabel(task_name: str, info: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(rewards, masks) per row by OGBench's ``relabel_dataset`` on qpos/button_states (no rendering)."""
    import ogbench
    from ogbench.relabel_utils import relabel_dataset

    twin = state_twin(task_name)
    env = ogbench.make_env_and_datasets(twin, env_only=True)
    splits = twin.split("-")
    pos = splits.index("singletask")
    env_name = "-".join(splits[: pos - 1] + splits[pos:])
    data = dict(info)
    relabel_dataset(env_name, env, data)
    env.close()
    return data["rewards"], data["masks"]


def load_visual_file(
    path: str | os.PathLike,
    task_name: str,
    frame_stack: int = 3,
    memmap: bool = True,
    action_policy: ActionPolicy = "refuse",
    frames_dir: str | os.PathLike | None = None,
) -> VisualDataset:
    """One visual ``.npz`` in the official layout -> :class:`VisualDataset` (rewards from OGBench's relabelling)."""
    path = Path(path)
    headers = check_ogbench_layout(path)
    shape, dtype = headers["observations"]
    if dtype != np.uint8 or len(shape) != 4:
        raise DatasetError(
            f"{path}: 'observations' is {dtype} {shape}; a visual dataset holds uint8 frames (T, H, W, C). "
            "Use the official visual-*.npz file or one written by `fidec data generate --env visual-...`."
        )
    missing = [k for k in ("qpos",) if k not in headers]
    if missing:
        raise DatasetError(
            f"{path}: missing {missing}, which OGBench needs to relabel rewards for single-task names"
        )
    try:
        with np.load(path, allow_pickle=False) as file:
            small = {k: file[k] for k in ("actions", "terminals", *INFO_KEYS) if k in file.files}
            frames = None if memmap else file["observations"]
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as error:
        raise file_read_error(path, error) from error
    if memmap:
        frames = frames_memmap(path, directory=frames_dir)
    terminals = small["terminals"].astype(bool)
    valid = ~terminals
    info = {k: small[k][valid] for k in INFO_KEYS if k in small}
    rewards, masks = relabel(task_name, info)
    actions = check_action_range(small["actions"].astype(np.float32), str(path), policy=action_policy)
    check_finite({"actions": actions}, str(path))
    full = lambda x: _scatter(x, valid)
    return VisualDataset.from_episodes(
        frames,
        actions,
        terminals,
        rewards=full(rewards),
        masks=full(masks),
        frame_stack=frame_stack,
        extras={k: small[k] for k in INFO_KEYS if k in small},
    ).validate(str(path))


def _scatter(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = np.zeros(len(valid), np.float32)
    out[valid] = values
    return out


def load_visual_ogbench(
    task_name: str,
    dataset_dir: str | os.PathLike | None = None,
    dataset_path: str | os.PathLike | None = None,
    frame_stack: int = 3,
    memmap: bool = True,
    action_policy: ActionPolicy = "refuse",
) -> tuple[VisualDataset, VisualDataset]:
    """(train, val) of a ``visual-`` single-task name from ``<dataset_dir>/<dataset>.npz`` (+ ``-val.npz``)."""
    from fidec.data.ogbench_data import DatasetNotFoundError
    from fidec.envs.registry import parse_task

    spec = parse_task(task_name)
    if not spec.visual:
        raise ValueError(f"{task_name!r} is not a visual task (its name has no 'visual-' prefix)")
    train_path, val_path = dataset_files(spec.dataset_name, dataset_dir, dataset_path)
    if not (train_path.exists() and val_path.exists()):
        missing = [str(p) for p in (train_path, val_path) if not p.exists()]
        raise DatasetNotFoundError(
            f"visual OGBench dataset for {task_name!r} not found: missing {', '.join(missing)}. Copy the official "
            f"files ({train_path.name}, {val_path.name}) into {train_path.parent} (or set --dataset-dir / "
            f"$FIDEC_DATA_DIR), or render a small one locally: `MUJOCO_GL=egl fidec data generate --env "
            f"{spec.dataset_name} --episodes 2 --max-episode-steps 101 --out DIR` and pass --dataset "
            f"DIR/{spec.dataset_name}.npz (rendering runs at a few frames per second on a CPU)."
        )
    load = lambda p: load_visual_file(p, task_name, frame_stack, memmap, action_policy)
    return load(train_path), load(val_path)


# ------------------------------------------------------------------------------------- environments


class FrameStack(gymnasium.Wrapper):
    """Observations as the last k frames on the channel axis, oldest first; a reset fills the stack with
    the first frame (the same stacks as :class:`VisualDataset` at an episode start)."""

    def __init__(self, env: gymnasium.Env, k: int):
        super().__init__(env)
        if k < 1:
            raise ValueError(f"frame stack must be >= 1, got {k}")
        self.k = k
        h, w, c = env.observation_space.shape
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
