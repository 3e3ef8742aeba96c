"""``fidec data download`` against a local HTTP server on 127.0.0.1 serving files the tests generate.

Nothing here reaches another machine: the mirror is a folder served by ``http.server`` in a thread, and
the Minari remote is pointed at a closed local port.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from functools import partial
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from fidec.data import load_dataset
from fidec.data.commands import app
from fidec.data.d4rl import load_minari
from fidec.data.download import OGBENCH_URL_ENV, DownloadError, download, resolve
from fidec.data.generate import generate

TASK = "cube-single-play-singletask-task1-v0"
DATASET = "cube-single-play-v0"
FILES = (f"{DATASET}.npz", f"{DATASET}-val.npz")
runner = CliRunner()


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; ``/cut/<file>`` announces the whole file but sends half of it, then hangs up."""

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        if not self.path.startswith("/cut/"):
            return super().do_GET()
        path = Path(self.directory) / self.path.removeprefix("/cut/")
        if not path.is_file():
            return self.send_error(404)
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True


@pytest.fixture
def serve():
    """``serve(folder) -> base URL`` of a local HTTP server for ``folder`` (stopped after the test)."""
    servers = []

    def start(folder: Path) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    """A folder holding a real (tiny) cube-single dataset under OGBench's file names."""
    out = tmp_path_factory.mktemp("mirror")
    generate(DATASET, num_episodes=2, out_dir=out, max_episode_steps=15, progress=False)
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def test_names_resolve_to_ogbench_files_or_minari_ids():
    assert resolve(TASK) == ("ogbench", DATASET)
    assert resolve("visual-cube-single-play-v0") == ("ogbench", "visual-cube-single-play-v0")
    assert resolve("antmaze-umaze-v2") == ("minari", "D4RL/antmaze/umaze-v1")
    assert resolve("D4RL/pen/human-v2") == ("minari", "D4RL/pen/human-v2")
    with pytest.raises(ValueError, match="Cannot download 'cube-single-v0'"):
        resolve("cube-single-v0")


def test_ogbench_files_download_from_a_mirror_and_load(mirror, serve, tmp_path):
    url = serve(mirror)
    target = tmp_path / "data"
    result = download(TASK, dataset_dir=target, url=url, progress=False)
    assert result.paths == (target / FILES[0], target / FILES[1]) and not result.already_present
    for name in FILES:
        assert (target / name).read_bytes() == (mirror / name).read_bytes()
        assert result.sha256[name] == sha256(mirror / name)
    assert result.verified_by == "the CRC-32 of every array"  # the mirror has no SHA256SUMS
    assert leftovers(target) == sorted(FILES)  # no temporary left behind
    train, val = load_dataset(TASK, dataset_dir=target)
    assert train.size == 28 and val.size == 14
    again = download(TASK, dataset_dir=target, url=url, progress=False)
    assert again.already_present


def test_the_command_and_the_environment_variable(mirror, serve, tmp_path, monkeypatch):
    monkeypatch.setenv(OGBENCH_URL_ENV, serve(mirror))
    target = tmp_path / "data"
    result = runner.invoke(app, ["download", DATASET, "--dataset-dir", str(target)])
    assert result.exit_code == 0, result.output
    assert "Downloaded cube-single-play-v0" in result.output and sha256(mirror / FILES[0]) in result.output
    result = runner.invoke(app, ["download", DATASET, "--dataset-dir", str(target)])
    assert result.exit_code == 0 and "Already present" in result.output


def test_checksums_from_the_mirror_are_verified(mirror, serve, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    for name in FILES:
        (served / name).write_bytes((mirror / name).read_bytes())
    sums = {name: sha256(served / name) for name in FILES}
    (served / "SHA256SUMS").write_text("".join(f"{d}  ./{n}\n" for n, d in sums.items()))
    url = serve(served)
    result = download(DATASET, dataset_dir=tmp_path / "good", url=url, progress=False)
    assert result.verified_by.startswith("SHA256SUMS") and result.sha256 == sums

    wrong = dict(sums, **{FILES[0]: "0" * 64})
    (served / "SHA256SUMS").write_text("".join(f"{d} *{n}\n" for n, d in wrong.items()))
    target = tmp_path / "bad"
    with pytest.raises(DownloadError, match=rf"{FILES[0]}: SHA-256 {sums[FILES[0]]} differs from 0{{64}}"):
        download(DATASET, dataset_dir=target, url=url, progress=False)
    assert FILES[0] not in leftovers(
        target
    )  # the validation file (fetched first) verified; the other did not
    assert [p for p in leftovers(target) if p.startswith(".")] == []

    (served / "SHA256SUMS").write_text(f"{sums[FILES[1]]}  {FILES[1]}\n")
    with pytest.raises(DownloadError, match=rf"lists no checksum for {FILES[0]}"):
        download(DATASET, dataset_dir=tmp_path / "unlisted", url=url, progress=False)


def test_damaged_cut_and_missing_transfers_save_nothing(mirror, serve, tmp_path):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in FILES:
        data = bytearray((mirror / name).read_bytes())
        for i in range(2000, 2100):  # inside the compressed arrays: the zip's CRC-32 no longer matches
            data[i] ^= 0xFF
        (damaged / name).write_bytes(bytes(data))
    target = tmp_path / "data"
    with pytest.raises(DownloadError, match=r"(CRC-32|not a readable \.npz).*nothing was saved"):
        download(DATASET, dataset_dir=target, url=serve(damaged), progress=False)
    assert leftovers(target) == []

    cut_base = serve(mirror) + "/cut"
    with pytest.raises(DownloadError, match=r"(broke off after|received) \d+ bytes"):
        download(DATASET, dataset_dir=target, url=cut_base, progress=False)
    assert leftovers(target) == []

    with pytest.raises(DownloadError, match=r"HTTP 404"):
        download("scene-play-v0", dataset_dir=target, url=serve(mirror), progress=False)
    result = runner.invoke(
        app, ["download", "scene-play-v0", "--dataset-dir", str(target), "--url", serve(mirror)]
    )
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("error: ")


def test_an_unreachable_source_is_one_clear_line(tmp_path):
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens there
    with pytest.raises(DownloadError, match=r"cannot reach http://127\.0\.0\.1:9/.*--url"):
        download(DATASET, dataset_dir=tmp_path, url=closed, progress=False)
    assert leftovers(tmp_path) == []


def write_minari_layout(folder: Path, steps: int = 4) -> dict[str, np.ndarray]:
    """One AntMaze-like episode in Minari's local layout (data/metadata.json, data/main_data.hdf5)."""
    rng = np.random.default_rng(0)
    episode = {
        "observations": rng.normal(size=(steps + 1, 29)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (steps, 8)).astype(np.float32),
        "rewards": np.zeros(steps, np.float32),
        "terminations": np.zeros(steps, bool),
        "truncations": np.eye(1, steps, steps - 1, dtype=bool)[0],
    }
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "metadata.json").write_text(json.dumps({"dataset_id": "D4RL/antmaze/umaze-v1"}))
    with h5py.File(folder / "data" / "main_data.hdf5", "w") as file:
        group = file.create_group("episode_0")
        for key, value in episode.items():
            group[key] = value
    return episode


def test_a_minari_dataset_downloads_from_a_plain_mirror(serve, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    served = tmp_path / "served"
    episode = write_minari_layout(served / "D4RL" / "antmaze" / "umaze-v1")
    result = download("antmaze-umaze-v2", url=serve(served), progress=False)
    folder = tmp_path / "minari" / "D4RL" / "antmaze" / "umaze-v1"
    assert result.paths == (folder,) and sorted(result.sha256) == [
        "D4RL/antmaze/umaze-v1/data/main_data.hdf5",
        "D4RL/antmaze/umaze-v1/data/metadata.json",
    ]
    dataset = load_minari("D4RL/antmaze/umaze-v1", task_name="antmaze-umaze-v2", use_minari=False)
    np.testing.assert_array_equal(dataset.observations, episode["observations"][:-1])
    np.testing.assert_array_equal(dataset.rewards, episode["rewards"] - 1.0)  # AntMaze: r - 1
    assert [p.name for p in folder.parent.iterdir()] == ["umaze-v1"]  # no staging folder left

    # A mirror that lacks the data file: nothing appears under Minari's root.
    (served / "D4RL" / "pen" / "human-v2" / "data").mkdir(parents=True)
    (served / "D4RL" / "pen" / "human-v2" / "data" / "metadata.json").write_text("{}")
    with pytest.raises(DownloadError, match=r"HTTP 404"):
        download("pen-human-v1", url=serve(served), progress=False)
    assert (
        not (tmp_path / "minari" / "D4RL" / "pen").exists()
        or leftovers(tmp_path / "minari" / "D4RL" / "pen") == []
    )


def test_a_failing_minari_remote_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("MINARI_REMOTE", "hf://fidec-tests-no-such-org")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # huggingface_hub, if installed, fails locally
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError, match=r"D4RL/antmaze/umaze-v1") as error:
        download("antmaze-umaze-v2", progress=False)
    assert "\n" not in str(error.value)
    assert leftovers(tmp_path / "minari") == []


def test_the_default_source_is_ogbenchs_own_url_and_is_not_asked_for_checksums(
    mirror, serve, tmp_path, monkeypatch
):
    import fidec.data.download as downloads

    served = tmp_path / "served"
    served.mkdir()
    for name in FILES:
        (served / name).write_bytes((mirror / name).read_bytes())
    (served / "SHA256SUMS").write_text("<html>a page, not a checksum list</html>\n")
    monkeypatch.setattr(downloads, "OGBENCH_DATASET_URL", serve(served))  # stands in for OGBench's server
    monkeypatch.delenv(OGBENCH_URL_ENV, raising=False)
    result = download(TASK, dataset_dir=tmp_path / "data", progress=False)
    assert result.verified_by == "the CRC-32 of every array"
    with pytest.raises(DownloadError, match=r"SHA256SUMS: line 1 is not '<sha256>  <file>'"):
        download(TASK, dataset_dir=tmp_path / "other", url=serve(served), progress=False)
