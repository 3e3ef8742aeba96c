"""The second fault campaign, through the real CLI: signals other than Ctrl-C, two commands at once, files
edited by hand, odd paths, a console that cannot be written.

Every refusal exits with its code and exactly one ``error:`` line naming the cause, without a traceback, and
leaves its inputs byte-identical; a run stopped by a signal, or one that shares its folder with another
command, ends equal to an uninterrupted one.  Runs are BC-flow with tiny networks on the toy task
(:mod:`toy_cli`): in-process runs share one set of compiled programs, processes share a compilation cache.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cli_checks import check_refusal, digest, fails, invoke, process_env, run_process, toy_command
from fidec.training import RunDir
from fidec.training.evaluation import evaluation_seed
from fidec.training.toy import toy_dataset
from toy_cli import TOY, TRAIN_ARGS, install

METRIC_FILES = ("metrics/train.jsonl", "metrics/train.csv", "metrics/eval.jsonl", "metrics/eval.csv")
LONG_NAME = "n" * 300  # over the 255 bytes a file name may have


@pytest.fixture(scope="module", autouse=True)
def toy_task():
    """``toy-point`` is a task of the CLI in this process for the whole module."""
    with pytest.MonkeyPatch.context() as patch:
        install(patch.setattr)
        yield


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
def jax_cache(work) -> Path:
    """The compilation cache every ``fidec`` process of this module shares."""
    return work / "jax-cache"


def _train(run_dir: Path, *extra: str) -> None:
    code, output = invoke([*TRAIN_ARGS, "--run-dir", str(run_dir), *extra])
    assert code == 0, output[-3000:]


@pytest.fixture(scope="module")
def base_run(work) -> Path:
    """A finished toy run of seeds 0 and 1 (100 steps; checkpoints at 50 and 100): cases copy it."""
    run = work / "base"
    _train(run, "--seeds", "0,1")
    return run


@pytest.fixture(scope="module")
def seed0_run(work) -> Path:
    """The uninterrupted run that interrupted ones must equal: seed 0, 100 steps."""
    run = work / "seed0"
    _train(run, "--seeds", "0")
    return run


def _copy(run: Path, tmp_path: Path, name: str = "copy") -> Path:
    target = tmp_path / name
    shutil.copytree(run, target, ignore=shutil.ignore_patterns(".lock"))
    return target


def _final_arrays(run: Path) -> tuple[str, dict[str, np.ndarray]]:
    folder = RunDir(run).checkpoints()[-1][1]
    with np.load(folder / "arrays.npz") as file:
        return folder.name, {k: file[k] for k in file.files}


def assert_same_results(run: Path, reference: Path) -> None:
    """The same metrics files, byte for byte, and the same final parameters as the reference run."""
    for name in METRIC_FILES:
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name
    name_a, arrays_a = _final_arrays(run)
    name_b, arrays_b = _final_arrays(reference)
    assert name_a == name_b and arrays_a.keys() == arrays_b.keys()
    for key in arrays_a:
        assert np.array_equal(arrays_a[key], arrays_b[key]), key


def _scores(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    return {"per_seed": summary["per_seed"], "aggregate": summary["aggregate"]}


@pytest.fixture
def signal_at_evaluation(monkeypatch):
    """``arm(step, signum, times)``: the evaluation at ``step`` (seed 0's) sends ``signum`` to this process
    ``times`` times, as ``kill`` / ``docker stop`` / a closing terminal would."""
    import fidec.training.evaluation as evaluation

    def arm(step: int, signum: int, times: int = 1) -> None:
        inner = evaluation.default_evaluator()
        sent = []

        def evaluator(policy, env_name, episodes, seed, **kwargs):
            if not sent and seed == evaluation_seed(0, step):
                sent.append(step)
                for _ in range(times):
                    os.kill(os.getpid(), signum)
            return inner(policy, env_name, episodes, seed, **kwargs)

        monkeypatch.setattr(evaluation, "default_evaluator", lambda: evaluator)

    return arm


@pytest.fixture
def signal_while_loading(monkeypatch):
    """``arm(signum)``: the dataset load sends ``signum`` to this process (before any update)."""
    import fidec.training.loop as loop

    def arm(signum: int) -> None:
        inner = loop.load_training_data

        def load(config):
            os.kill(os.getpid(), signum)
            return inner(config)

        monkeypatch.setattr(loop, "load_training_data", load)

    return arm


# -- 1, 15: stop signals --------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_from_outside_saves_and_the_resumed_run_equals_an_uninterrupted_one(tmp_path, jax_cache):
    """`kill PID` (docker stop, Slurm) while a run trains: exit 143 after a checkpoint, then the printed
    resume command completes a run equal to an uninterrupted one (trained in this process)."""
    env = process_env(jax_cache)
    args = ("--seeds", "0", "--steps", "2000", "--set", "log_interval=100", "--set", "save_interval=100")
    args += ("--set", "eval_interval=1000")
    reference, stopped = tmp_path / "reference", tmp_path / "stopped"
    process = subprocess.Popen(
        toy_command(*TRAIN_ARGS, *args, "--run-dir", str(stopped)),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not RunDir(stopped).checkpoints() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=240)
    line = check_refusal(process.returncode, out + err, "interrupted by SIGTERM at step", 143, "fidec train")
    assert "checkpoint saved" in line and f"fidec train --resume {stopped}" in line
    step = int(line.split("at step ")[1].split(";")[0])
    assert 0 < step < 2000 and RunDir(stopped).checkpoints()[-1][0] == step
    resumed = run_process(toy_command("train", "--resume", str(stopped)), env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _train(reference, *args)
    assert_same_results(stopped, reference)


def test_sighup_is_handled_like_the_first_ctrl_c(seed0_run, tmp_path, signal_at_evaluation):
    """The terminal closes (SIGHUP) during training: checkpoint, exit 129, and resume equals uninterrupted."""
    run = tmp_path / "run"
    signal_at_evaluation(50, signal.SIGHUP)
    line = fails(
        [*TRAIN_ARGS, "--seeds", "0", "--run-dir", str(run)], "interrupted by SIGHUP at step 50", 129
    )
    assert "checkpoint saved" in line and [s for s, _ in RunDir(run).checkpoints()] == [50]
    code, output = invoke(["train", "--resume", str(run)])
    assert code == 0, output[-3000:]
    assert_same_results(run, seed0_run)


def test_a_second_sigterm_stops_at_once_and_says_what_was_kept(tmp_path, signal_at_evaluation):
    run = tmp_path / "run"
    signal_at_evaluation(50, signal.SIGTERM, times=2)
    line = fails([*TRAIN_ARGS, "--seeds", "0", "--run-dir", str(run)], "stopped by a second SIGTERM", 143)
    assert f"fidec train --resume {run}" in line
    assert not RunDir(run).finished


@pytest.mark.parametrize(("signum", "name"), [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")])
def test_a_stop_while_the_dataset_loads_says_nothing_was_trained(
    tmp_path, signal_while_loading, signum, name
):
    """Not "aborted (second Ctrl-C)": the first signal while the data loads; the fresh folder goes away and the
    same command then runs."""
    run = tmp_path / "run"
    signal_while_loading(signum)
    line = fails([*TRAIN_ARGS, "--seeds", "0", "--run-dir", str(run)], f"{name}", 128 + signum)
    assert "before training began" in line and "run the same command again" in line
    assert "second" not in line and not run.exists()


@pytest.mark.slow
def test_sigterm_to_a_sweep_is_passed_on_to_its_trial_which_saves_and_resumes(tmp_path, jax_cache):
    """`kill` of `fidec sweep`: the trial in flight saves a checkpoint (it gets the stop as a Ctrl-C), the
    driver exits 143, and a rerun resumes it to the same result as an uninterrupted run."""
    pytest.importorskip("ray")
    dataset = tmp_path / "data.npz"
    _cube_transitions(dataset)
    env = process_env(jax_cache, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    train = (
        "steps = 20000\nlog_interval = 250\nsave_interval = 250\neval_interval = 10000\neval_episodes = 0\n"
        f'dataset = "{dataset}"\n'
    )
    spec = tmp_path / "spec.toml"
    out_dir = tmp_path / "sweep"
    spec.write_text(
        f'name = "stopped"\nagents = ["bcflow"]\ntasks = ["{CUBE}"]\nseeds = [0]\nscale = "tiny"\n'
        f'out_dir = "{out_dir}"\n[resources]\ncpus = 1\n[train]\n{train}'
    )
    command = [sys.executable, "-m", "fidec.cli", "sweep", str(spec), "--num-cpus", "1"]
    driver = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = out_dir / "runs" / f"bcflow__{CUBE}__s0"
    deadline = time.monotonic() + 400
    while not RunDir(run).checkpoints() and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.05)
    driver.send_signal(signal.SIGTERM)
    out, err = driver.communicate(timeout=240)
    check_refusal(driver.returncode, out + err, "interrupted by SIGTERM", 143, "fidec sweep")
    log = (out_dir / "logs" / f"bcflow__{CUBE}__s0.log").read_text()
    assert "checkpoint saved" in log
    record = json.loads((out_dir / "manifest.json").read_text())["trials"][f"bcflow__{CUBE}__s0"]
    assert record["state"] == "pending" and not RunDir(run).finished
    rerun = run_process(command, env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    reference = tmp_path / "reference"
    done = run_process(
        [sys.executable, "-m", "fidec.cli", "train", "--agent", "bcflow", "--env", CUBE, "--preset", "tiny"]
        + [
            "--seeds",
            "0",
            "--dataset",
            str(dataset),
            "--steps",
            "20000",
            "--eval-episodes",
            "0",
            "--no-progress",
        ]
        + ["--set", "log_interval=250", "--set", "save_interval=250", "--set", "eval_interval=10000"]
        + ["--run-dir", str(reference)],
        env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("metrics/train.jsonl", "metrics/train.csv"):
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name
    assert _final_arrays(run)[1].keys() == _final_arrays(reference)[1].keys()
    for key, value in _final_arrays(run)[1].items():
        assert np.array_equal(value, _final_arrays(reference)[1][key]), key


CUBE = "cube-single-play-singletask-task1-v0"


def _cube_transitions(path: Path, n: int = 400) -> None:
    """Ready transitions with the sizes of the cube task (28 observation numbers, 5 actions)."""
    rng = np.random.default_rng(0)
    observations = rng.normal(size=(n, 28)).astype(np.float32)
    np.savez(
        path,
        observations=observations,
        actions=rng.uniform(-1, 1, (n, 5)).astype(np.float32),
        rewards=-np.ones(n, np.float32),
        masks=np.ones(n, np.float32),
        terminals=(np.arange(n) % 100 == 99).astype(np.float32),
        next_observations=(observations + 0.01).astype(np.float32),
    )


# -- 2: a resume that extends a run -----------------------------------------------------------------------


def test_an_interrupted_extension_resumes_as_printed_and_is_never_reported_finished(
    base_run, tmp_path, signal_at_evaluation
):
    run = _copy(base_run, tmp_path)
    signal_at_evaluation(150, signal.SIGTERM)
    line = fails(["train", "--resume", str(run), "--steps", "300"], "interrupted by SIGTERM at step 150", 143)
    assert f"fidec train --resume {run}" in line
    # The new length was recorded when the resume started; the old summary is gone until the run ends.
    assert json.loads((run / "config.json").read_text())["config"]["steps"] == 300
    assert not (run / "summary.json").exists() and not RunDir(run).finished
    fails(["report", str(run), "--no-plots", "--no-html"], "no finished run")

    # Done the way fidec said; equal to the same extension uninterrupted.
    code, output = invoke(["train", "--resume", str(run)])
    assert code == 0, output[-3000:]
    reference = _copy(base_run, tmp_path, "reference")
    code, output = invoke(["train", "--resume", str(reference), "--steps", "300"])
    assert code == 0, output[-3000:]
    assert_same_results(run, reference)
    assert _scores(run) == _scores(reference)


def test_a_summary_older_than_the_newest_checkpoint_is_not_reported_as_finished(base_run, tmp_path):
    """A run extended by an older fidec (its old summary kept beside newer checkpoints)."""
    run = _copy(base_run, tmp_path)
    newest = RunDir(run).checkpoints()[-1][1]
    shutil.copytree(newest, newest.with_name("step_000000150"))
    before = digest(run)
    fails(["report", str(run), "--no-plots", "--no-html"], "no finished run")
    assert digest(run) == before


# -- 3: a run that failed before its first update --------------------------------------------------------


def _transitions(path: Path, actions_scale: float = 1.0) -> Path:
    """The toy task's dataset as a ``.npz`` of ready transitions (actions scaled by ``actions_scale``)."""
    data = toy_dataset(20)
    arrays = {k: np.asarray(v) for k, v in data.arrays().items()}
    arrays["actions"] = arrays["actions"] * actions_scale
    np.savez(path, **arrays)
    return path


def test_a_truncated_dataset_strands_nothing_and_the_fixed_command_runs(tmp_path):
    good = _transitions(tmp_path / "good.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:1000])
    run = tmp_path / "run"
    before = truncated.read_bytes()
    fails([*TRAIN_ARGS, "--seeds", "0", "--dataset", str(truncated), "--run-dir", str(run)], "truncated.npz")
    assert truncated.read_bytes() == before and not run.exists()
    _train(run, "--seeds", "0", "--dataset", str(good))
    assert RunDir(run).finished


def test_actions_out_of_range_then_the_fix_with_action_policy(tmp_path):
    """The error says what to set; the same command with it is not refused ("not empty; resume it")."""
    wide = _transitions(tmp_path / "wide.npz", actions_scale=3.0)
    run = tmp_path / "run"
    line = fails(
        [*TRAIN_ARGS, "--seeds", "0", "--dataset", str(wide), "--run-dir", str(run)], "action_policy=clip"
    )
    assert "actions must lie in [-1, 1]" in line and not run.exists()
    _train(run, "--seeds", "0", "--dataset", str(wide), "--set", "action_policy=clip")
    assert RunDir(run).finished


def test_a_run_directory_left_without_results_can_be_claimed_again_or_resumed_with_the_fix(tmp_path):
    """What a kill -9 while the data loaded leaves (config.json only): another command may claim it, and
    --resume may change what is not resumable, since nothing was computed."""
    from fidec.training import make_train_config

    wide = _transitions(tmp_path / "wide.npz", actions_scale=3.0)
    for name in ("reclaimed", "resumed"):
        config = make_train_config("bcflow", TOY, presets=["tiny"], overrides={"dataset": str(wide)})
        RunDir.claim(tmp_path / name, config)
    _train(tmp_path / "reclaimed", "--seeds", "0")
    assert json.loads((tmp_path / "reclaimed" / "config.json").read_text())["config"]["dataset"] is None
    code, output = invoke(["train", "--resume", str(tmp_path / "resumed"), "--set", "action_policy=clip"])
    assert code == 0, output[-3000:]
    assert RunDir(tmp_path / "reclaimed").finished and RunDir(tmp_path / "resumed").finished


# -- 4: integers out of range ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--seeds", "9223372036854775808"], "seeds: 9223372036854775808 is out of range"),
        (["--online-steps", "99999999999"], "online_steps: 99999999999 is out of range"),
        (["--set", "agent.batch_size=10000000000"], "agent.batch_size: 10000000000 is out of range"),
    ],
    ids=["seeds", "online-steps", "batch_size"],
)
def test_integers_out_of_range_are_refused_before_the_run_directory_is_claimed(tmp_path, args, expected):
    run = tmp_path / "run"
    fails([*TRAIN_ARGS, "--run-dir", str(run), *args], expected)
    assert not run.exists()


# -- 5: checkpoint provenance -----------------------------------------------------------------------------


def _edit_config(run: Path, key: str, value) -> None:
    path = run / "config.json"
    record = json.loads(path.read_text())
    table = record["config"]
    *parents, last = key.split(".")
    for part in parents:
        table = table[part]
    table[last] = value
    path.write_text(json.dumps(record, indent=2))


@pytest.mark.parametrize(
    ("key", "value", "command"),
    [
        ("agent_name", "fql", "train"),
        ("agent_name", "fql", "eval"),
        ("agent.lr", 0.001, "train"),
        ("eval_interval", 25, "train"),
        ("seeds", [1, 0], "eval"),
    ],
    ids=["agent-resume", "agent-eval", "lr-resume", "eval-interval-resume", "seeds-eval"],
)
def test_a_hand_edited_config_is_refused_naming_the_key(base_run, tmp_path, key, value, command):
    run = _copy(base_run, tmp_path)
    _edit_config(run, key, value)
    before = digest(run)
    args = ["train", "--resume", str(run), "--steps", "150"] if command == "train" else ["eval", str(run)]
    line = fails(args, f"written with {key}=")
    assert "config.json" in line and "edited" in line
    assert digest(run) == before


def test_a_checkpoint_from_another_run_is_refused_by_eval_and_resume(base_run, tmp_path):
    other = tmp_path / "other"
    _train(other, "--seeds", "0,1", "--set", "agent.lr=0.001")
    run = _copy(base_run, tmp_path)
    shutil.rmtree(run / "checkpoints" / "step_000000100")
    shutil.copytree(other / "checkpoints" / "step_000000100", run / "checkpoints" / "step_000000100")
    before = digest(run)
    fails(["eval", str(run)], "written with agent.lr=0.001")
    fails(["train", "--resume", str(run), "--steps", "150"], "written with agent.lr=0.001")
    assert digest(run) == before


def test_a_checkpoint_of_another_seed_is_not_evaluated_as_seed_0(base_run, tmp_path):
    single = tmp_path / "seed1"
    _train(single, "--seeds", "1")
    run = tmp_path / "seed0"
    _train(run, "--seeds", "0")
    shutil.rmtree(run / "checkpoints" / "step_000000100")
    shutil.copytree(single / "checkpoints" / "step_000000100", run / "checkpoints" / "step_000000100")
    fails(["eval", str(run)], "written with seeds=[1]")


def test_a_checkpoint_folder_renamed_to_another_step_is_refused(base_run, tmp_path):
    run = _copy(base_run, tmp_path)
    checkpoints = run / "checkpoints"
    (checkpoints / "step_000000050").rename(checkpoints / "step_000000150")
    fails(["eval", str(run)], "holds the checkpoint of step 50")


# -- 6: a torn metrics line ----------------------------------------------------------------------------------


def test_a_torn_metrics_line_is_rebuilt_from_the_other_copy(base_run, tmp_path):
    """`truncate -s -7 R/metrics/eval.jsonl; fidec train --resume R`: the row comes back from eval.csv, one
    note says so, and neither the files nor the scores change."""
    run = _copy(base_run, tmp_path)
    eval_jsonl = run / "metrics" / "eval.jsonl"
    intact = eval_jsonl.read_bytes()
    eval_jsonl.write_bytes(intact[:-7])
    code, output = invoke(["train", "--resume", str(run)])
    assert code == 0, output[-3000:]
    notes = [line for line in output.splitlines() if "rebuilt it from eval.csv" in line]
    assert len(notes) == 1 and "step 100 seed 1" in notes[0], output[-3000:]
    assert eval_jsonl.read_bytes() == intact
    for name in METRIC_FILES:
        assert (run / name).read_bytes() == (base_run / name).read_bytes(), name
    assert _scores(run) == _scores(base_run)


# -- 7: two dataset generations into one folder ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.env
def test_two_generations_into_one_folder_wait_for_each_other_and_agree(tmp_path, jax_cache):
    env = process_env(jax_cache, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    args = ["data", "generate", "cube-single-play-v0", "--episodes", "2", "--max-episode-steps", "30"]
    command = [sys.executable, "-m", "fidec.cli", *args]
    shared, alone = tmp_path / "shared", tmp_path / "alone"
    first = subprocess.Popen(
        [*command, "--out", str(shared)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    second = subprocess.Popen(
        [*command, "--out", str(shared)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    outputs = [p.communicate(timeout=300) for p in (first, second)]
    for process, (out, err) in zip((first, second), outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
        assert "error" not in (out + err).lower() and "Traceback" not in err
    said = [out for out, _ in outputs]
    assert sum("Wrote" in out for out in said) == 1 and sum("Already generated" in out for out in said) == 1
    assert sorted(p.name for p in shared.iterdir() if not p.name.startswith(".")) == [
        "cube-single-play-v0-val.npz",
        "cube-single-play-v0.generation.json",
        "cube-single-play-v0.npz",
    ]
    assert not [p for p in shared.iterdir() if ".parts-" in p.name]  # no hidden parts folder left behind
    done = run_process([*command, "--out", str(alone)], env)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("cube-single-play-v0.npz", "cube-single-play-v0-val.npz"):
        with np.load(shared / name) as a, np.load(alone / name) as b:
            assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files), name


# -- 8: a console that cannot be written -----------------------------------------------------------------


def test_training_goes_on_when_its_console_fails(seed0_run, tmp_path, jax_cache):
    """`fidec train ... 2>&1 | head -n 2`, then stderr on a full device: each run finishes equal to an
    uninterrupted one, and train.log holds every line.  (One after the other: the second reuses the first's
    compiled programs.)"""
    piped, full_device = tmp_path / "piped", tmp_path / "full-device"
    env = process_env(jax_cache)
    to_head = subprocess.Popen(
        toy_command(*TRAIN_ARGS, "--seeds", "0", "--run-dir", str(piped)),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert to_head.stdout is not None
    head = [to_head.stdout.readline() for _ in range(2)]
    to_head.stdout.close()  # `head` exits
    assert to_head.wait(timeout=300) == 0 and head[0]
    with open("/dev/full", "w") as full:
        to_full = subprocess.run(
            toy_command(*TRAIN_ARGS, "--seeds", "0", "--run-dir", str(full_device)),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=full,
            timeout=300,
        )
    assert to_full.returncode == 0
    for run in (piped, full_device):
        assert_same_results(run, seed0_run)
        log = (run / "train.log").read_text()
        assert "eval at step 100" in log and "Done: trained bcflow" in log


OUTPUT_COMMANDS = {"presets": ["presets"], "show-config": ["train", "--show-config"], "eval": ["eval", "RUN"]}


@pytest.mark.parametrize("name", list(OUTPUT_COMMANDS))
def test_a_command_whose_result_is_its_output_says_when_stdout_is_full(full_stdout_results, name):
    code, stderr, run = full_stdout_results[name]
    check_refusal(code, stderr, "cannot write the output to stdout", 2, name)
    assert "No space left on device" in stderr
    if name == "eval":  # the result itself was kept
        assert RunDir(run).eval_records()


@pytest.fixture(scope="module")
def full_stdout_results(base_run, work, jax_cache) -> dict[str, tuple[int, str, Path]]:
    """{name: (exit code, stderr, run)} of each output command with stdout on a full device (run at once)."""
    run = _copy(base_run, work, "stdout-full")
    processes = {}
    with open("/dev/full", "w") as full:
        for name, args in OUTPUT_COMMANDS.items():
            command = toy_command(*[str(run) if a == "RUN" else a for a in args])
            processes[name] = subprocess.Popen(
                command, env=process_env(jax_cache), stdout=full, stderr=subprocess.PIPE, text=True
            )
    stderrs = {name: p.communicate(timeout=300)[1] for name, p in processes.items()}
    return {name: (p.returncode, stderrs[name], run) for name, p in processes.items()}


# -- 9: read-only run directories ----------------------------------------------------------------------------


def _make_read_only(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    folder.chmod(0o555)


@pytest.fixture
def read_only(monkeypatch):
    """``make(folder)``: the folder and everything in it read-only.  Root may write anything, so for root the
    permission check answers from the mode bits, as it would for the folder's owner."""
    made: list[Path] = []
    if os.geteuid() == 0:
        real_access = os.access

        def access(path, mode, *args, **kwargs):
            if mode & os.W_OK and not os.stat(path).st_mode & stat.S_IWUSR:
                return False
            return real_access(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)

    def make(folder: Path) -> None:
        _make_read_only(folder)
        made.append(folder)

    yield make
    for folder in made:
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_a_read_only_run_is_evaluated_with_out_and_refuses_to_resume(base_run, tmp_path, read_only):
    run = _copy(base_run, tmp_path)
    read_only(run)
    before = digest(run)
    line = fails(["eval", str(run), "--episodes", "1"], "--out DIR")
    assert "is not writable" in line
    out = tmp_path / "results"
    code, output = invoke(["eval", str(run), "--episodes", "1", "--out", str(out)])
    assert code == 0, output[-3000:]
    assert [p.name for p in out.iterdir()] == [RunDir.eval_record_name(100, "onestep", 1)]
    fails(["train", "--resume", str(run), "--steps", "150"], f"{run} is not writable")
    assert digest(run) == before


# -- 10: names over the file system's limits ------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        [*TRAIN_ARGS, "--run-dir", "TMP/" + LONG_NAME],
        ["eval", "TMP/" + LONG_NAME],
        ["data", "generate", "cube-single-play-v0", "--episodes", "1", "--out", "TMP/" + LONG_NAME],
        ["data", "info", "TMP/" + LONG_NAME + ".npz"],
        ["report", "TMP/" + LONG_NAME],
    ],
    ids=["train", "eval", "data-generate", "data-info", "report"],
)
def test_a_name_over_255_bytes_is_one_line(tmp_path, args):
    args = [a.replace("TMP", str(tmp_path)) for a in args]
    fails(args, "file name too long")
    assert list(tmp_path.iterdir()) == []


# -- 11: a FIFO as a dataset --------------------------------------------------------------------------------


@pytest.fixture
def fifo(tmp_path):
    """A named pipe called like a dataset; a writer opens and closes it after 10 s, so a reader that blocked
    on it gets an empty file instead of hanging the suite."""
    path = tmp_path / "pipe.npz"
    os.mkfifo(path)
    stop = threading.Event()

    def unblock():
        if not stop.wait(10):
            with contextlib.suppress(OSError):
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                os.close(fd)

    thread = threading.Thread(target=unblock, daemon=True)
    thread.start()
    yield path
    stop.set()
    thread.join()


@pytest.mark.parametrize("command", ["info", "train"])
def test_a_fifo_is_refused_at_once(fifo, tmp_path, command):
    start = time.monotonic()
    if command == "info":
        fails(["data", "info", str(fifo)], "is a FIFO")
    else:
        fails([*TRAIN_ARGS, "--dataset", str(fifo), "--run-dir", str(tmp_path / "run")], "is a FIFO")
    assert time.monotonic() - start < 10 and stat.S_ISFIFO(fifo.stat().st_mode)


# -- 12: one validation for `data info` and `train` --------------------------------------------------------


def _ogbench_file(path: Path, rows: int = 40, actions: float = 0.5) -> Path:
    """An OGBench-layout file (what `fidec data generate` writes), episodes of 10 rows."""
    rng = np.random.default_rng(0)
    np.savez(
        path,
        observations=rng.normal(size=(rows, 28)).astype(np.float32),
        actions=np.full((rows, 5), actions, np.float32),
        terminals=(np.arange(rows) % 10 == 9),
        qpos=np.zeros((rows, 3), np.float32),
        qvel=np.zeros((rows, 3), np.float32),
    )
    return path


def test_data_info_refuses_the_actions_train_refuses(tmp_path):
    path = _ogbench_file(tmp_path / "cube-single-play-v0.npz", actions=3.0)
    before = path.read_bytes()
    fails(["data", "info", str(path)], "actions must lie in [-1, 1]")
    assert path.read_bytes() == before


@pytest.mark.parametrize("layout", ["ogbench", "transitions"])
def test_data_info_on_zero_length_arrays_is_one_line(tmp_path, layout):
    path = tmp_path / f"{layout}.npz"
    if layout == "ogbench":
        _ogbench_file(path, rows=0)
    else:
        empty = {k: np.zeros((0, *np.shape(v)[1:]), np.float32) for k, v in toy_dataset(1).arrays().items()}
        np.savez(path, **empty)
    fails(["data", "info", str(path)], "empty")


# -- 13: `fidec eval` count options -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [("--episodes", "0"), ("--episodes", "-3"), ("--num-envs", "0"), ("--checkpoint", "-1")],
)
def test_eval_count_options_are_checked_each_with_its_own_message(base_run, option, value):
    before = digest(base_run)
    fails(["eval", str(base_run), option, value], f"{option} must be a whole number")
    assert digest(base_run) == before


# -- 14: malformed sweep manifests ----------------------------------------------------------------------------


def _sweep_with(tmp_path: Path, change) -> tuple[Path, Path]:
    """A sweep folder (spec and manifest as `fidec sweep` writes them) whose trial record ``change`` damages."""
    from fidec.sweeps.manifest import Manifest
    from fidec.sweeps.spec import load_spec

    spec_path = tmp_path / "spec.toml"
    out_dir = tmp_path / "sweep"
    spec_path.write_text(
        f'name = "x"\nagents = ["fd"]\ntasks = ["{CUBE}"]\nseeds = [0]\nscale = "tiny"\nout_dir = "{out_dir}"\n'
    )
    Manifest.open(load_spec(spec_path))
    path = out_dir / "manifest.json"
    data = json.loads(path.read_text())
    change(next(iter(data["trials"].values())))
    path.write_text(json.dumps(data))
    return spec_path, out_dir


def test_a_trial_record_without_run_dir_is_named_by_report(tmp_path):
    _, out_dir = _sweep_with(tmp_path, lambda record: record.pop("run_dir"))
    before = digest(out_dir)
    fails(
        ["report", str(out_dir), "--no-plots", "--no-html"],
        f"trial 'fd__{CUBE}__s0': field 'run_dir' is missing",
    )
    assert digest(out_dir) == before


def test_attempts_null_is_named_by_the_sweep_rerun(tmp_path):
    pytest.importorskip("ray")
    spec, out_dir = _sweep_with(tmp_path, lambda record: record.update(attempts=None))
    before = digest(out_dir)
    fails(["sweep", str(spec)], "field 'attempts' is null")
    assert {k: v for k, v in digest(out_dir).items() if k != ".sweep.lock"} == before


# -- fidec parity: every refusal before any work, in one line ----------------------------------------------


@pytest.fixture(scope="module")
def fql_checkout_stub(work) -> Path:
    """A folder that holds seohongpark/fql's agent files by name (enough for planning; nothing is imported)."""
    root = work / "fql-stub"
    (root / "agents").mkdir(parents=True)
    for name in ("fql", "iql", "rebrac", "ifql"):
        (root / "agents" / f"{name}.py").write_text("# stub\n")
    return root


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--reference", "{work}/missing"], "no such folder"),
        (["--reference", "{work}/empty"], "nothing to compare: fd: no checkout holds agents/fidec.py"),
        (["--reference", "{stub}", "--agent", "fd"], "pass it with --reference"),
        (["--reference", "{stub}", "--agent", "nosuch"], "unknown agent 'nosuch'"),
        (["--reference", "{stub}", "--agent", "bcflow"], "agent 'bcflow' has no reference code"),
        (["--reference", "{stub}", "--precision", "float16"], "unknown precision 'float16'"),
        (["--reference", "{stub}", "--scale", "huge"], "unknown scale 'huge'"),
        (["--reference", "{stub}", "--case", "nosuch"], "none of the cases ['nosuch']"),
        (["--reference", "{stub}", "--out", "{work}/a-file"], "is a file"),
    ],
    ids=[
        "missing",
        "empty",
        "no-checkout",
        "agent",
        "no-reference",
        "precision",
        "scale",
        "case",
        "out-file",
    ],
)
def test_parity_refuses_what_it_cannot_compare_in_one_line_before_any_work(
    work, fql_checkout_stub, extra, expected
):
    (work / "empty").mkdir(exist_ok=True)
    (work / "a-file").write_text("not a folder\n")
    before = digest(fql_checkout_stub)
    args = [a.format(work=work, stub=fql_checkout_stub) for a in extra]
    fails(
        ["parity", *args, "--out", str(work / "parity-out")] if "--out" not in args else ["parity", *args],
        expected,
    )
    assert digest(fql_checkout_stub) == before and not (work / "parity-out").exists()
