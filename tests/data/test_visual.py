"""Visual datasets: official .npz layout, frames stored once and memory-mapped, frame stacks that never
cross an episode start, on-device stacked sampling, generation (the environment wrapper that stacks the
same frames: tests/envs/test_frame_stack.py)."""

from __future__ import annotations

import zipfile

import jax
import numpy as np
import pytest

from fidec.data import DatasetError, DatasetNotFoundError, load_dataset, sample_batch
from fidec.data.frames import extract_npz_array, frames_memmap
from fidec.data.npz import write_npz_atomic
from fidec.data.ogbench_data import load_visual_file
from fidec.data.stacking import episode_first_frames, stack_indices
from fidec.data.visual import VisualDataset

TASK = "visual-cube-single-play-singletask-task1-v0"
STATE_TASK = "cube-single-play-singletask-task1-v0"


def labelled_frames(terminals: np.ndarray, size: int = 8) -> np.ndarray:
    """Frame r has pixel value (episode id, step within the episode, r) in its three channels."""
    episode = np.concatenate([[0], np.cumsum(terminals)[:-1]])
    first = episode_first_frames(terminals)
    step = np.arange(len(terminals)) - first
    out = np.zeros((len(terminals), size, size, 3), np.uint8)
    out[..., 0] = episode[:, None, None]
    out[..., 1] = step[:, None, None]
    out[..., 2] = np.arange(len(terminals))[:, None, None]
    return out


def episodes(lengths: list[int]) -> np.ndarray:
    terminals = np.zeros(sum(lengths), bool)
    terminals[np.cumsum(lengths) - 1] = True
    return terminals


def small_dataset(lengths=(5, 2, 6), k: int = 3) -> VisualDataset:
    terminals = episodes(list(lengths))
    actions = np.linspace(-1, 1, len(terminals) * 2, dtype=np.float32).reshape(-1, 2)
    return VisualDataset.from_episodes(labelled_frames(terminals), actions, terminals, frame_stack=k)


def official_visual_file(path, seed: int = 0, lengths=(6, 5), qpos_rows=None, compress=True):
    """A synthetic file in the official visual layout (uint8 frames, qpos, qvel, bool terminals)."""
    import ogbench

    rng = np.random.default_rng(seed)
    terminals = episodes(list(lengths))
    env = ogbench.make_env_and_datasets(STATE_TASK, env_only=True)
    env.reset(seed=0)
    nq, nv = env.unwrapped._model.nq, env.unwrapped._model.nv
    qpos = rng.normal(size=(len(terminals), nq)).astype(np.float32)
    # Put the cube on its target in some rows, so that rewards are not all equal.
    target = env.unwrapped._data.mocap_pos.copy()[0]
    for r in qpos_rows if qpos_rows is not None else (1, 2, 7):
        qpos[r, 14:17] = target
    arrays = {
        "observations": rng.integers(0, 256, (len(terminals), 64, 64, 3), dtype=np.uint8),
        "actions": rng.uniform(-1, 1, (len(terminals), 5)).astype(np.float32),
        "terminals": terminals,
        "qpos": qpos,
        "qvel": rng.normal(size=(len(terminals), nv)).astype(np.float32),
    }
    write_npz_atomic(path, arrays, compress=compress)
    return arrays


# ---------------------------------------------------------------------------------------- stacking


def test_stacks_never_mix_episodes_and_repeat_the_first_frame_at_a_start():
    ds = small_dataset((5, 2, 6), k=3)
    assert ds.size == 13 - 3 and ds.num_episodes == 3
    rows = np.arange(ds.size)
    obs = ds.observations_at(rows).reshape(ds.size, 8, 8, 3, 3)[:, 0, 0]  # (N, k, channel)
    nxt = ds.observations_at(rows, next_=True).reshape(ds.size, 8, 8, 3, 3)[:, 0, 0]
    for stacks in (obs, nxt):
        assert (stacks[:, :, 0] == stacks[:, -1:, 0]).all()  # one episode per stack
        steps = stacks[:, :, 1].astype(int)
        assert (np.diff(steps, axis=1) >= 0).all() and (np.diff(steps, axis=1) <= 1).all()
        # Frames before the start are the first frame repeated: step = max(step_t - j, 0).
        np.testing.assert_array_equal(steps, np.maximum(steps[:, -1:] - np.array([2, 1, 0]), 0))
    # s' is the frame after s, and the newest frame of s' stack is one step later than that of s.
    np.testing.assert_array_equal(nxt[:, -1, 2].astype(int), obs[:, -1, 2].astype(int) + 1)
    # The first transition of episode 2 (file row 7) is (f7, f7, f7) -> (f7, f7, f8).
    row = 4 + 1  # episodes keep 4 and 1 transitions
    np.testing.assert_array_equal(obs[row, :, 2], [7, 7, 7])
    np.testing.assert_array_equal(nxt[row, :, 2], [7, 7, 8])


def test_transitions_follow_ogbench_row_conventions():
    ds = small_dataset((4, 3))
    np.testing.assert_array_equal(ds.obs_frame, [0, 1, 2, 4, 5])
    np.testing.assert_array_equal(ds.terminals, [0, 0, 1, 0, 1])  # each episode's last transition
    np.testing.assert_array_equal(
        ds.actions[:, 0], np.linspace(-1, 1, 14, dtype=np.float32)[[0, 2, 4, 8, 10]]
    )
    assert ds.obs_dim == (8, 8, 3) and ds.action_dim == 2
    np.testing.assert_array_equal(stack_indices(np.array([5]), np.array([4]), 4), [[4, 4, 4, 5]])


def test_device_sampler_returns_uint8_stacks_identical_to_the_host_stacks():
    ds = small_dataset((5, 2, 6), k=3)
    data = ds.to_device()
    key = jax.random.PRNGKey(3)
    batch = sample_batch(data, key, 16)
    assert batch["observations"].dtype == np.uint8 and batch["observations"].shape == (16, 8, 8, 9)
    rows = np.asarray(jax.random.randint(key, (16,), 0, ds.size))
    np.testing.assert_array_equal(batch["observations"], ds.observations_at(rows))
    np.testing.assert_array_equal(batch["next_observations"], ds.observations_at(rows, next_=True))
    np.testing.assert_array_equal(batch["actions"], ds.actions[rows])
    jitted = jax.jit(sample_batch, static_argnums=2)(data, key, 16)
    np.testing.assert_array_equal(jitted["observations"], batch["observations"])
    # Frames are stored once: F frames, not 2 N observations.
    assert data["frames"].shape[0] == 13 and ds.memory_bytes()["frames"] == 13 * 8 * 8 * 3


def test_frame_stack_of_one_is_the_plain_frame():
    ds = small_dataset((4, 3), k=1)
    np.testing.assert_array_equal(ds.observations_at(np.arange(ds.size)), ds.frames[ds.obs_frame])


# ------------------------------------------------------------------------------------- .npz + memmap


def test_extraction_streams_an_npz_member_to_an_identical_npy(tmp_path):
    arrays = {"observations": np.random.default_rng(0).integers(0, 256, (7, 5, 4, 3), dtype=np.uint8)}
    write_npz_atomic(tmp_path / "x.npz", arrays, compress=True)
    out = extract_npz_array(tmp_path / "x.npz", "observations", tmp_path / "x.npy")
    np.testing.assert_array_equal(np.load(out), arrays["observations"])
    first = frames_memmap(tmp_path / "x.npz", directory=tmp_path / "cache")
    assert isinstance(first, np.memmap) and not first.flags.writeable
    np.testing.assert_array_equal(first, arrays["observations"])
    cached = list((tmp_path / "cache").glob("*.npy"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns
    frames_memmap(tmp_path / "x.npz", directory=tmp_path / "cache")  # reused, not extracted again
    assert cached[0].stat().st_mtime_ns == mtime and not list((tmp_path / "cache").glob(".*"))


def test_a_damaged_archive_fails_with_a_dataset_error(tmp_path):
    path = tmp_path / "bad.npz"
    write_npz_atomic(path, {"observations": np.zeros((50, 8, 8, 3), np.uint8)}, compress=False)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DatasetError):
        extract_npz_array(path, "observations", tmp_path / "out.npy")
    assert not (tmp_path / "out.npy").exists()


def test_official_visual_file_loads_like_ogbenchs_own_loader(tmp_path):
    """Same transitions, rewards, masks and terminals as ogbench.make_env_and_datasets, frames memory-mapped."""
    import ogbench

    path = tmp_path / "visual-cube-single-play-v0.npz"
    official_visual_file(path)
    official_visual_file(
        tmp_path / "visual-cube-single-play-v0-val.npz", seed=1, lengths=(4,), qpos_rows=(0,)
    )
    train, val = load_dataset(TASK, dataset_path=path)
    assert isinstance(train, VisualDataset) and isinstance(train.frames, np.memmap)
    assert (train.size, val.size, train.frame_stack) == (9, 3, 3)
    env = ogbench.make_env_and_datasets(STATE_TASK, env_only=True)
    ref, _ = ogbench.make_env_and_datasets(TASK, dataset_path=str(path), dataset_only=True, cur_env=env)
    single = train.with_frame_stack(1)
    rows = np.arange(train.size)
    np.testing.assert_array_equal(single.observations_at(rows), ref["observations"])
    np.testing.assert_array_equal(single.observations_at(rows, next_=True), ref["next_observations"])
    for key in ("actions", "rewards", "masks", "terminals"):
        np.testing.assert_array_equal(getattr(train, key), ref[key])
    assert set(np.unique(train.rewards)) == {-1.0, 0.0}  # relabelling saw the cube on its target


def test_in_memory_loading_matches_the_memmap(tmp_path):
    path = tmp_path / "v.npz"
    official_visual_file(path, lengths=(3, 3), qpos_rows=(1,))
    mapped = load_visual_file(path, TASK, frames_dir=tmp_path / "frames")
    loaded = load_visual_file(path, TASK, memmap=False)
    assert not isinstance(loaded.frames, np.memmap)
    np.testing.assert_array_equal(mapped.frames, loaded.frames)
    np.testing.assert_array_equal(mapped.rewards, loaded.rewards)


def test_missing_and_wrong_visual_files_explain_what_to_do(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="fidec data generate visual-cube-single-play-v0"):
        load_dataset(TASK, dataset_dir=tmp_path)
    path = tmp_path / "s.npz"
    write_npz_atomic(
        path,
        {
            "observations": np.zeros((4, 28), np.float32),
            "actions": np.zeros((4, 5), np.float32),
            "terminals": np.array([0, 0, 0, 1], bool),
            "qpos": np.zeros((4, 21), np.float32),
        },
    )
    with pytest.raises(DatasetError, match=r"visual dataset holds uint8 frames \(T, H, W, C\)"):
        load_visual_file(path, TASK)


def test_container_refuses_inconsistent_arrays():
    ds = small_dataset((3, 3))
    with pytest.raises(DatasetError, match="uint8"):
        VisualDataset.from_episodes(ds.frames.astype(np.float32), np.zeros((6, 2)), episodes([3, 3]))
    with pytest.raises(DatasetError, match="one entry per transition"):
        VisualDataset(
            ds.frames, ds.obs_frame, ds.actions[:-1], ds.rewards, ds.masks, ds.terminals, ds.episode_first
        )


# ---------------------------------------------------------------------------------------- generation


@pytest.mark.slow
def test_visual_generation_renders_the_state_generations_rollouts(tmp_path, monkeypatch):
    """Same seed, same oracle actions and states; observations are 64x64x3 uint8 frames (12 renders)."""
    monkeypatch.setenv("MUJOCO_GL", "egl")
    from fidec.data.generate import generate

    kwargs = dict(num_episodes=1, max_episode_steps=6, progress=False)
    visual = generate("visual-cube-single-play-v0", out_dir=tmp_path / "v", **kwargs)
    state = generate("cube-single-play-v0", out_dir=tmp_path / "s", **kwargs)
    with np.load(visual.train_path) as v, np.load(state.train_path) as s:
        assert v["observations"].dtype == np.uint8 and v["observations"].shape == (6, 64, 64, 3)
        np.testing.assert_array_equal(v["actions"], s["actions"])
        np.testing.assert_array_equal(v["qpos"], s["qpos"])
        assert v["observations"].std() > 5  # a rendered scene, not a blank frame
    with zipfile.ZipFile(visual.train_path) as archive:
        assert archive.getinfo("observations.npy").compress_type == zipfile.ZIP_DEFLATED
    train, _ = load_dataset(TASK, dataset_path=visual.train_path)
    assert train.size == 5 and train.obs_dim == (64, 64, 3)
