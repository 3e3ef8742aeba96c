"""Local OGBench dataset generation: official layout, determinism, resumption, caching."""

from __future__ import annotations

import json

import numpy as np
import ogbench
import pytest

from fidec.data import load_dataset
from fidec.data.generate import _scene_episode_is_healthy, generate, generate_dataset, official_plan
from fidec.data.npz import read_npz
from fidec.envs.registry import UnknownTaskError
from fidec.files import OutputPathError

STEPS = 15  # rows per episode in tests (official: 1001)


def arrays_of(result) -> tuple[dict, dict]:
    return read_npz(result.train_path), read_npz(result.val_path)


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_official_settings():
    plan = official_plan("cube-single-play-v0")
    assert (plan.env_id, plan.num_episodes, plan.num_val_episodes, plan.max_episode_steps) == (
        "cube-single-v0",
        1000,
        100,
        1001,
    )
    assert (plan.noise, plan.noise_smoothing, plan.p_random_action) == (0.1, 0.5, 0.0)
    assert official_plan("puzzle-4x4-noisy-v0").p_random_action == 0.2
    assert official_plan("cube-triple-play-v0").num_episodes == 3000
    with pytest.raises(UnknownTaskError, match="manipulation"):
        official_plan("antmaze-large-navigate-v0")
    # Pixel datasets roll out the same oracles in the visual environment (rendered frames).
    visual = official_plan("visual-cube-single-play-v0")
    assert (visual.env_id, visual.num_episodes) == ("visual-cube-single-v0", 1000)


def test_cube_layout_loads_with_ogbench(tmp_path):
    result = generate(
        "cube-single-play-v0", num_episodes=2, out_dir=tmp_path, max_episode_steps=STEPS, progress=False
    )
    assert result.train_path.name == "cube-single-play-v0.npz"
    assert result.val_path.name == "cube-single-play-v0-val.npz"
    train, val = arrays_of(result)
    assert set(train) == {"observations", "actions", "terminals", "qpos", "qvel"}
    expected = {"observations": (28,), "actions": (5,), "terminals": (), "qpos": (21,), "qvel": (20,)}
    for key, shape in expected.items():
        assert train[key].shape == (2 * STEPS, *shape)
        assert train[key].dtype == (bool if key == "terminals" else np.float32)
    assert np.flatnonzero(train["terminals"]).tolist() == [STEPS - 1, 2 * STEPS - 1]
    assert len(val["terminals"]) == STEPS  # max(1, 2 // 10) validation episodes
    assert np.abs(train["actions"]).max() <= 1.0
    record = json.loads(result.train_path.with_name("cube-single-play-v0.generation.json").read_text())
    assert record["plan"]["max_episode_steps"] == STEPS and record["steps"] == 3 * STEPS

    # OGBench's own loader reads it and relabels single-task rewards.
    _, official_train, official_val = ogbench.make_env_and_datasets(
        "cube-single-play-singletask-task1-v0", dataset_path=str(result.train_path)
    )
    assert official_train["observations"].shape == (2 * (STEPS - 1), 28)
    assert {"rewards", "masks", "next_observations"} <= set(official_train)
    assert official_val["observations"].shape == (STEPS - 1, 28)

    dataset, val_dataset = load_dataset(
        "cube-single-play-singletask-task1-v0", dataset_path=result.train_path
    )
    assert dataset.size == 2 * (STEPS - 1) and val_dataset.size == STEPS - 1
    np.testing.assert_array_equal(dataset.rewards, official_train["rewards"])
    np.testing.assert_array_equal(dataset.masks, official_train["masks"])
    assert set(dataset.extras) == {"qpos", "qvel"}


def test_puzzle_layout_has_integer_button_states(tmp_path):
    path = generate_dataset(
        "puzzle-3x3-play-v0", num_episodes=1, out_dir=tmp_path, max_episode_steps=STEPS, progress=False
    )
    train = read_npz(path)
    assert train["button_states"].dtype == np.int64 and train["button_states"].shape == (STEPS, 9)
    assert set(np.unique(train["button_states"])) <= {0, 1}


def test_deterministic_resumable_and_cached(tmp_path):
    reference = generate(
        "cube-single-play-v0",
        num_episodes=3,
        out_dir=tmp_path / "a",
        max_episode_steps=STEPS,
        chunk_episodes=3,
        progress=False,
    )

    # A run killed after its first chunk leaves a finished shard and no file under the final name.
    calls = []

    def die_after_first_chunk(episodes, steps):
        calls.append(episodes)
        raise KeyboardInterrupt

    kwargs = dict(num_episodes=3, out_dir=tmp_path / "b", max_episode_steps=STEPS, chunk_episodes=1)
    with pytest.raises(KeyboardInterrupt):
        generate("cube-single-play-v0", progress=die_after_first_chunk, **kwargs)
    assert not (tmp_path / "b" / "cube-single-play-v0.npz").exists()
    shards = list((tmp_path / "b").glob(".cube-single-play-v0.parts-*/*.npz"))
    assert len(shards) == 1
    resumed_steps = []
    resumed = generate("cube-single-play-v0", progress=lambda e, s: resumed_steps.append(e), **kwargs)
    assert len(resumed_steps) == 3  # 4 chunks (3 train + 1 val), one already done
    # Same data whatever the chunking and the interruption.
    for a, b in zip(arrays_of(reference), arrays_of(resumed), strict=True):
        assert_same(a, b)
    assert not list((tmp_path / "b").glob(".cube-single-play-v0.parts-*"))

    # A finished dataset is reused; other settings in the same folder are refused.
    again = generate("cube-single-play-v0", progress=False, **kwargs)
    assert again.cached
    with pytest.raises(FileExistsError, match="overwrite"):
        generate("cube-single-play-v0", seed=1, progress=False, **{**kwargs, "chunk_episodes": 1})
    other_seed = generate("cube-single-play-v0", seed=1, progress=False, overwrite=True, **kwargs)
    assert not np.array_equal(arrays_of(other_seed)[0]["actions"], arrays_of(reference)[0]["actions"])


@pytest.mark.slow
def test_parallel_workers_give_the_same_data(tmp_path):
    kwargs = dict(num_episodes=2, max_episode_steps=STEPS, chunk_episodes=1, progress=False)
    serial = generate("cube-single-play-v0", out_dir=tmp_path / "serial", workers=1, **kwargs)
    parallel = generate("cube-single-play-v0", out_dir=tmp_path / "parallel", workers=2, **kwargs)
    for a, b in zip(arrays_of(serial), arrays_of(parallel), strict=True):
        assert_same(a, b)


@pytest.mark.slow
def test_load_dataset_generates_into_the_cache_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("FIDEC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FIDEC_DATA_DIR", str(tmp_path / "official"))
    task = "cube-single-play-singletask-task2-v0"
    train, val = load_dataset(task, generate_if_missing=True, episodes=1, seed=5)
    assert train.size == 1000 and val.size == 1000  # official episode length: 1001 rows -> 1000 transitions
    folder = tmp_path / "cache" / "datasets" / "ogbench" / "cube-single-play-v0" / "episodes1-seed5"
    assert (folder / "cube-single-play-v0.npz").exists() and (folder / "cube-single-play-v0-val.npz").exists()
    cached, _ = load_dataset(task, generate_if_missing=True, episodes=1, seed=5)
    np.testing.assert_array_equal(cached.observations, train.observations)


def test_scene_health_check():
    qpos = np.zeros((4, 30))
    qpos[:, 14:17] = [0.4, 0.0, 0.02]
    assert _scene_episode_is_healthy(qpos)
    qpos[2, 15] = 0.3  # too far right
    assert not _scene_episode_is_healthy(qpos)
    qpos[2, 15:17] = [-0.31, 0.07]  # far left but inside the drawer band
    assert _scene_episode_is_healthy(qpos)
    qpos[2, 16] = 0.02  # far left on the table
    assert not _scene_episode_is_healthy(qpos)


def test_noisy_datasets_are_reproducible(tmp_path):
    """Random actions (p = 0.1 per step in cube noisy data) come from a seeded generator, not OS entropy."""
    kwargs = dict(num_episodes=2, max_episode_steps=40, progress=False)
    first = generate("cube-single-noisy-v0", out_dir=tmp_path / "a", **kwargs)
    second = generate("cube-single-noisy-v0", out_dir=tmp_path / "b", **kwargs)
    for a, b in zip(arrays_of(first), arrays_of(second), strict=True):
        assert_same(a, b)
    other = generate("cube-single-noisy-v0", out_dir=tmp_path / "c", seed=1, **kwargs)
    assert not np.array_equal(arrays_of(other)[0]["actions"], arrays_of(first)[0]["actions"])


def episodes_of(arrays: dict) -> list[np.ndarray]:
    """The qpos rows of each episode (the simulator state identifies an episode)."""
    ends = np.flatnonzero(arrays["terminals"]) + 1
    return np.split(arrays["qpos"], ends[:-1])


def test_validation_episodes_come_from_their_own_stream(tmp_path):
    """The validation set of a small dataset is never inside the training set of a larger one (same seed);
    training episodes (and validation episodes) of both sizes agree where they share indices."""
    kwargs = dict(max_episode_steps=STEPS, progress=False)
    small = arrays_of(generate("cube-single-play-v0", num_episodes=2, out_dir=tmp_path / "s", **kwargs))
    large = arrays_of(generate("cube-single-play-v0", num_episodes=3, out_dir=tmp_path / "l", **kwargs))
    small_train, small_val = map(episodes_of, small)
    large_train, large_val = map(episodes_of, large)
    assert len(small_val) == len(large_val) == 1 and len(large_train) == 3
    for val_episode in small_val:
        assert not any(np.array_equal(val_episode, train_episode) for train_episode in large_train)
    for a, b in zip(small_train, large_train[:2], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(small_val[0], large_val[0])


def test_a_stale_cache_is_regenerated_and_a_stale_out_folder_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("FIDEC_CACHE_DIR", str(tmp_path / "cache"))
    kwargs = dict(num_episodes=1, max_episode_steps=STEPS, progress=False)
    fresh = generate("cube-single-play-v0", **kwargs)
    sidecar = fresh.train_path.with_name("cube-single-play-v0.generation.json")
    record = json.loads(sidecar.read_text())
    # What a dataset from an older generator looks like: another fingerprint in its record.
    sidecar.write_text(json.dumps({**record, "fingerprint": "written-by-format-1"}))
    again = generate("cube-single-play-v0", **kwargs)
    assert not again.cached and again.train_path == fresh.train_path
    assert json.loads(sidecar.read_text())["fingerprint"] == record["fingerprint"]
    assert generate("cube-single-play-v0", **kwargs).cached
    # A folder the user chose is never replaced without --overwrite.
    out = fresh.train_path.parent
    sidecar.write_text(json.dumps({**record, "fingerprint": "written-by-format-1"}))
    with pytest.raises(FileExistsError, match="--overwrite"):
        generate("cube-single-play-v0", out_dir=out, **kwargs)


def test_the_fingerprint_includes_the_format_version(monkeypatch):
    import fidec.data.generate as generation

    plan = official_plan("cube-single-play-v0")
    before = plan.fingerprint()
    monkeypatch.setattr(generation, "GENERATION_FORMAT_VERSION", generation.GENERATION_FORMAT_VERSION + 1)
    assert plan.fingerprint() != before


def test_an_existing_file_as_output_folder_is_refused_before_generation(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("keep me")
    calls = []
    with pytest.raises(OutputPathError, match="not-a-folder is a file"):
        generate("cube-single-play-v0", num_episodes=1, out_dir=blocker, progress=lambda *a: calls.append(a))
    assert calls == [] and blocker.read_text() == "keep me"
