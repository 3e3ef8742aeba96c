"""``fidec data info`` / ``fidec data generate`` and the summaries behind them."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from fidec.data.commands import app
from fidec.data.info import dataset_info, episode_lengths

runner = CliRunner()


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("generated")
    # The form README and docs/sweeps.md use: the dataset name as an argument.
    result = runner.invoke(
        app,
        [
            "generate",
            "cube-single-play-v0",
            "--episodes",
            "2",
            "--max-episode-steps",
            "15",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "transitions/s" in result.output
    return out


@pytest.mark.parametrize(
    "how",
    [["--env", "cube-single-play-v0"], ["cube-single-play-singletask-task3-v0"]],
    ids=["--env", "task name"],
)
def test_generate_by_option_or_task_name_reaches_the_same_dataset(generated, how):
    result = runner.invoke(
        app, ["generate", *how, "--episodes", "2", "--max-episode-steps", "15", "--out", str(generated)]
    )
    assert result.exit_code == 0 and "Already generated" in result.output


def test_generate_into_an_existing_file_is_one_line_before_any_work(tmp_path):
    blocker = tmp_path / "data.npz"
    blocker.write_bytes(b"not a folder")
    result = runner.invoke(app, ["generate", "cube-single-play-v0", "--episodes", "1", "--out", str(blocker)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: --out {blocker} is a file; give a folder (it is created if missing)"
    ]
    assert blocker.read_bytes() == b"not a folder" and sorted(tmp_path.iterdir()) == [blocker]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["generate", "antmaze-large-navigate-v0"], "fidec generates OGBench manipulation datasets only"),
        (["generate", "cube-single-play-v0", "--episodes", "0"], "--episodes must be >= 1"),
        (["generate", "cube-single-play-v0", "--env", "scene-play-v0"], "two datasets given"),
        (["info", "no-such-task-v0"], "Unknown task 'no-such-task-v0'"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(args, says):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0]


def test_info_refuses_an_ogbench_file_without_actions(generated, tmp_path):
    with np.load(generated / "cube-single-play-v0.npz") as file:
        arrays = {k: file[k] for k in file.files if k != "actions"}
    path = tmp_path / "cube-single-play-v0.npz"
    np.savez(path, **arrays)
    info = dataset_info(str(path))
    assert "missing key(s) ['actions']" in info["load_error"] and info["file"]["rows"] == 30
    result = runner.invoke(app, ["info", str(path)])
    assert result.exit_code == 2
    assert "(30, 28)" in result.output  # the stored arrays are still shown
    assert "error: cannot be loaded as a dataset" in result.output and "['actions']" in result.output


def test_info_on_a_raw_ogbench_file(generated):
    info = dataset_info(str(generated / "cube-single-play-v0.npz"))
    summary = info["file"]
    assert summary["rows"] == 30 and summary["episodes"] == 2
    assert summary["episode_length"]["min"] == summary["episode_length"]["max"] == 15
    assert -1.0 <= summary["action_min"] and summary["action_max"] <= 1.0
    assert {row["key"]: row["dtype"] for row in summary["arrays"]}["terminals"] == "bool"
    assert "train" not in info and "computed per task" in info["note"]
    result = runner.invoke(app, ["info", str(generated / "cube-single-play-v0.npz")])
    assert result.exit_code == 0, result.output
    assert "observations" in result.output and "(30, 28)" in result.output


def test_info_by_task_name(generated, monkeypatch):
    monkeypatch.setenv("FIDEC_DATA_DIR", str(generated))
    info = dataset_info("cube-single-play-singletask-task1-v0")
    train = info["train"]
    assert train["transitions"] == 28 and train["episodes"] == 2 and train["obs_shape"] == (28,)
    assert train["reward"]["max"] <= 0.0  # OGBench single-task rewards are (#achieved - #subgoals) <= 0
    assert info["val"]["transitions"] == 14
    result = runner.invoke(app, ["info", "cube-single-play-singletask-task1-v0"])
    assert result.exit_code == 0, result.output
    assert "train transitions" in result.output and "val transitions" in result.output


def test_info_reports_nan_values(tmp_path):
    path = tmp_path / "antmaze-umaze-v2.hdf5"
    observations = np.zeros((6, 29))
    observations[2, 3] = np.nan
    with h5py.File(path, "w") as file:
        file["observations"] = observations
        file["actions"] = np.zeros((6, 8))
        file["rewards"] = np.zeros(6)
        file["terminals"] = np.zeros(6, bool)
        file["timeouts"] = np.array([0, 0, 1, 0, 0, 0], bool)
    info = dataset_info(str(path))
    rows = {row["key"]: row for row in info["file"]["arrays"]}
    assert rows["observations"]["non_finite"] == 1 and rows["actions"]["non_finite"] == 0
    assert info["file"]["episodes"] == 2  # a timeout closes the first episode
    assert "NaN/inf" in info["load_error"] and "train" not in info
    result = runner.invoke(app, ["info", str(path)])
    assert result.exit_code == 2 and "cannot be loaded as a dataset" in result.output


def test_episode_lengths():
    np.testing.assert_array_equal(episode_lengths(np.array([0, 1, 0, 0, 1, 0])), [2, 3, 1])
