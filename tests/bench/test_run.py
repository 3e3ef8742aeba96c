"""The benchmark suite: FLOP counting against hand counts, the pure helpers, a tiny smoke run, and the
command, which writes one result file where it is told and nothing else.

Nothing here asserts a speed: the smoke test only checks that a run writes valid JSON with the
expected layout.  The page rendered from results is tested in tests/test_benchmarks_page.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
import typer
from typer.testing import CliRunner

from fidec.agents import agent_names
from fidec.bench import RESULT_KEYS, commands, run_benchmarks, settings_for, write_result
from fidec.bench import run as bench_run
from fidec.bench.commands import bench_command
from fidec.bench.flops import matmul_flops
from fidec.bench.profile import fd_stages
from fidec.bench.run import default_result_name, headline, recorded_settings
from fidec.bench.settings import SECTIONS, BenchSettings
from fidec.bench.timing import interleaved_rates, measure_rate, spread, window_ratios
from fidec.bench.workloads import build
from fidec.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USER_ERROR
from fidec.files import WriteError
from fidec.flows import euler_sample
from fidec.networks import MLP

MACHINE_KEYS = {
    "cpu_model",
    "cpu_id",
    "usable_cores",
    "logical_cores",
    "jax",
    "backend",
    "device",
    "load_average",
}


# -- matmul FLOP counting ----------------------------------------------------------------------------


def _mlp(b: int, i: int, hidden: tuple[int, ...], o: int):
    net = MLP(hidden, o)
    x = jnp.ones((b, i))
    return net, net.init(jax.random.PRNGKey(0), x), x


def test_matmul_flops_of_mlp_forward_is_the_hand_count():
    b, i, h, o = 7, 3, 16, 4
    net, params, x = _mlp(b, i, (h, h), o)
    # 2 * rows * fan_in * fan_out per Dense layer: 3 -> 16 -> 16 -> 4.
    assert matmul_flops(net.apply, params, x) == 2 * b * (i * h + h * h + h * o) == 5152


def test_matmul_flops_of_parameter_gradient_is_the_hand_count():
    b, i, h, o = 7, 3, 16, 4
    net, params, x = _mlp(b, i, (h, h), o)
    layers = [(i, h), (h, h), (h, o)]
    forward = sum(2 * b * m * n for m, n in layers)
    weight_grads = sum(2 * b * m * n for m, n in layers)
    input_grads = sum(2 * b * m * n for m, n in layers[1:])  # no cotangent for the (constant) input x
    grad = jax.grad(lambda p, x: net.apply(p, x).sum())
    assert matmul_flops(grad, params, x) == forward + weight_grads + input_grads
    grad_both = jax.grad(lambda p, x: net.apply(p, x).sum(), argnums=(0, 1))
    assert matmul_flops(grad_both, params, x) == 3 * forward


def test_matmul_flops_multiply_a_scan_body_by_its_length():
    b, d, h, steps = 5, 3, 8, 10
    net = MLP((h,), d)
    params = net.init(jax.random.PRNGKey(0), jnp.ones((b, d + 1)))
    velocity = lambda x, t: net.apply(params, jnp.concatenate([x, t], axis=-1))
    per_step = 2 * b * ((d + 1) * h + h * d)
    noise = jnp.zeros((b, d))
    assert matmul_flops(lambda n: euler_sample(velocity, n, steps), noise) == steps * per_step


def test_matmul_flops_take_the_costlier_branch_of_a_cond():
    a = jnp.ones((4, 6))
    w_small, w_large = jnp.ones((6, 2)), jnp.ones((6, 9))
    fn = lambda flag, a: jax.lax.cond(flag, lambda a: (a @ w_small).sum(), lambda a: (a @ w_large).sum(), a)
    assert matmul_flops(fn, True, a) == 2 * 4 * 6 * 9


# -- pure helpers --------------------------------------------------------------------------------------


def test_measure_rate_calibrates_calls_and_takes_the_median_of_windows():
    calls: list[int] = []
    rate = measure_rate(calls.append, windows=3, window_seconds=1e-9)
    # One warm-up call, then 3 windows of the calibrated size (at least one call each).
    assert rate["calls_per_window"] >= 1
    assert calls == [1] + [rate["calls_per_window"]] * 3
    assert len(rate["windows"]) == 3
    assert rate["per_s"] == sorted(rate["windows"])[1]


def test_interleaved_rates_time_every_runner_in_turns_rotating_the_order():
    log: list[tuple[str, int]] = []
    runners = [lambda n, name=name: log.append((name, n)) for name in "abc"]
    rates = interleaved_rates(runners, windows=3, window_seconds=1e-9)
    na, nb, nc = (r["calls_per_window"] for r in rates)
    # Warm-up of each, then one window of every runner per round, the order rotated by one each round.
    assert log == [("a", 1), ("b", 1), ("c", 1)] + [
        ("a", na), ("b", nb), ("c", nc),
        ("b", nb), ("c", nc), ("a", na),
        ("c", nc), ("a", na), ("b", nb),
    ]  # fmt: skip
    assert all(len(r["windows"]) == 3 for r in rates)


def test_window_ratios_pair_the_windows_measured_together():
    r = window_ratios([2.0, 4.0, 9.0, 1.0], [1.0, 2.0, 3.0, 4.0])
    assert r["windows"] == [2.0, 2.0, 3.0, 0.25]
    assert r["ratio"] == pytest.approx(2.0)  # median of the pairs
    assert (r["window_min"], r["window_max"]) == (0.25, 3.0)
    assert r["ratio_of_medians"] == pytest.approx(3.0 / 2.5)


def test_spread_is_range_over_median():
    assert spread([1.0, 2.0, 3.0]) == pytest.approx(1.0)
    assert spread([5.0, 5.0]) == 0.0


def test_settings_reject_unknown_modes_and_sections():
    with pytest.raises(ValueError, match="mode"):
        settings_for("fast")
    with pytest.raises(ValueError, match="unknown benchmark sections"):
        settings_for("quick", ("updates", "gpu-magic"))
    with pytest.raises(ValueError, match="windows"):
        BenchSettings(mode="quick", windows=0)
    with pytest.raises(ValueError, match="--reference"):
        settings_for("quick", ("reference",))
    assert settings_for("quick", ("matmul",)).sections == ("matmul",)
    # Sections run in SECTIONS order whatever order they were asked in.
    assert settings_for("quick", ("scaling", "matmul")).sections == ("matmul", "scaling")


def test_the_reference_section_runs_only_with_a_checkout():
    assert "reference" not in settings_for("quick").sections
    with_reference = settings_for("quick", reference_dirs=("/some/fd", "/some/fql"))
    assert with_reference.sections == SECTIONS and with_reference.reference_dirs == ("/some/fd", "/some/fql")
    assert (
        with_reference.reference_scale.hidden == (512,) * 4
        and with_reference.reference_scale.batch_size == 256
    )
    assert recorded_settings(with_reference)["reference_dirs"] == ["fd", "fql"]  # names, not paths


def test_gpu_plan_is_the_quick_bench_with_paper_scale_blocks_and_seeds_and_a_budget():
    quick, gpu = settings_for("quick"), settings_for("gpu")
    assert gpu.sections == quick.sections and gpu.windows == quick.windows
    assert gpu.fused_blocks == (1, 10, 100, 1000) and gpu.fused_presets == ("paper-networks",)
    assert gpu.seed_counts == (1, 4, 8, 16) and gpu.seed_presets == ("paper-networks",)
    assert gpu.time_budget_s is not None and gpu.time_budget_s <= 8 * 60 - 30
    smallest = settings_for("gpu", smallest=True)
    # The same plan at 2 x 32 networks, without a budget (the smoke test must run every section).
    assert smallest.fused_blocks == gpu.fused_blocks and smallest.seed_counts == gpu.seed_counts
    assert smallest.fused_presets == ("tiny-networks",) and smallest.seed_presets == ("tiny-networks",)
    assert smallest.smallest and smallest.time_budget_s is None
    assert settings_for("tiny").smallest and not quick.smallest


def _fd_row(updates_per_s: float, gflop: float, roofline: float) -> dict:
    return {
        "agent": "fd",
        "preset": "paper-networks",
        "label": "fd",
        "updates_per_s": updates_per_s,
        "ms_per_update": 1e3 / updates_per_s,
        "gflop_per_update": gflop,
        "xla_gflop_per_update": None,
        "gflop_per_s": updates_per_s * gflop,
        "roofline_fraction": updates_per_s * gflop / roofline,
    }


def _reference_section(fidec: float, official: float, windows: tuple[list, list]) -> dict:
    row = lambda label, rate, gflop: {"label": label, "updates_per_s": rate, "gflop_per_update": gflop}
    ratio = window_ratios(*windows)
    fd = {
        "agent": "fd",
        "status": "timed",
        "rows": [
            {**row("fidec fd", fidec, 34.0), "vs_reference": ratio},
            {**row("reuse", fidec, 30.0), "vs_reference": ratio},
            {**row("official code", official, 39.0), "action_gflop": 4.5},
        ],
    }
    return {"agents": [{"agent": "fql", "status": "timed", "rows": []}, fd]}


def test_headline_compares_fd_with_the_official_code_only_where_measured():
    roofline = 100.0
    result = {"updates": [_fd_row(6.0, 15.0, roofline)], "matmul": {"roofline_gflop_per_s": roofline}}
    h = headline(result)
    assert h["reference"] is None  # not measured: no constant stands in for it
    assert h["reference_status"].startswith("not measured")
    assert h["roofline_fraction"] == pytest.approx(0.9)
    assert h["meets_roofline_target"] is True

    result["reference"] = _reference_section(6.0, 4.0, ([6.0, 5.0, 7.0], [4.0, 4.0, 5.0]))
    ref = headline(result)["reference"]
    assert ref["speedup"] == pytest.approx(1.4)  # median of 6 / 4, 5 / 4 and 7 / 5
    assert (ref["speedup_window_min"], ref["speedup_window_max"]) == pytest.approx((1.25, 1.5))
    assert ref["official_updates_per_s"] == 4.0 and ref["official_gflop_per_update"] == 39.0
    assert ref["fidec_reuse_base_sample_gflop_per_update"] == 30.0
    assert ref["official_sample_actions_gflop"] == 4.5  # the work of one official sample_actions call
    assert ref["meets_speed_target"] is True

    slow = headline({"updates": [_fd_row(5.0, 10.0, roofline)], "matmul": {"roofline_gflop_per_s": roofline}})
    assert slow["meets_roofline_target"] is False  # 50% < 85%
    assert headline({"updates": [], "matmul": None}) is None


def test_headline_prefers_the_profile_row_timed_with_the_matmul():
    shipped = {**_fd_row(4.0, 20.0, 100.0), "label": "fd (as shipped)"}
    result = {
        "updates": [_fd_row(1.0, 20.0, 100.0)],
        "profile": {"variants": [shipped], "matmul_same_windows": {"gflop_per_s": 90.0}},
        "matmul": {"roofline_gflop_per_s": 100.0},
    }
    h = headline(result)
    assert h["updates_per_s"] == 4.0 and "profile" in h["source"]
    assert h["roofline_fraction"] == pytest.approx(80.0 / 90.0)  # same-window matmul
    assert h["roofline_fraction_vs_best_matmul"] == pytest.approx(0.8)
    assert h["meets_roofline_target"] is True


# -- smoke runs ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_result() -> dict:
    """A tiny run of two sections: the matmul roofline and FD's update at 2 x 32 networks."""
    settings = replace(settings_for("tiny", ("matmul", "updates")), agents=("fd",))
    return run_benchmarks(settings, log=lambda line: None)


@pytest.mark.slow
def test_tiny_run_writes_valid_json(tiny_result, tmp_path):
    path = write_result(tiny_result, tmp_path / "cpu-tiny.json")
    data = json.loads(path.read_text())
    assert tuple(data) == RESULT_KEYS
    assert data["errors"] == {}
    assert MACHINE_KEYS <= set(data["machine"])
    assert data["machine"]["backend"] == jax.default_backend()
    assert len(data["load_average"]["start"]) == 3 and len(data["load_average"]["end"]) == 3

    roofline = data["matmul"]["roofline_gflop_per_s"]
    assert roofline > 0
    (row,) = data["updates"]
    assert row["agent"] == "fd" and row["updates_per_s"] > 0 and row["gflop_per_update"] > 0
    assert row["roofline_fraction"] == pytest.approx(row["gflop_per_s"] / roofline)
    assert data["fisher"] is None and data["settings"]["sections"] == ["matmul", "updates"]
    assert data["headline"] is None  # the paper's networks were not measured


def test_a_failing_section_is_recorded_and_the_run_goes_on():
    settings = replace(settings_for("tiny", ("env",)), env_name="no-such-env-v0")
    result = run_benchmarks(settings, log=lambda line: None)
    assert result["env"] is None
    assert "env" in result["errors"] and "no-such-env-v0" in result["errors"]["env"]


def test_every_section_is_run_by_the_run_and_kept_in_the_result():
    sections = bench_run._sections(settings_for("tiny"), {}, print, None)
    assert tuple(sections) == SECTIONS
    assert set(SECTIONS) <= set(RESULT_KEYS)


def test_the_benchmarked_agents_are_the_registered_ones():
    assert settings_for("quick").agents == tuple(agent_names())
    assert settings_for("quick").agent in agent_names()


def test_every_agents_bench_batch_holds_the_keys_its_update_needs():
    for name in agent_names():  # e.g. ReBRAC's update reads the dataset's next actions
        built = build(name, "tiny-networks", 28, 5)
        assert set(built.agent.spec.batch_keys) <= set(built.batch), name


def test_peak_rss_of_a_fresh_process_is_its_own_and_grows_with_allocations():
    # In a child process: the peak before and after touching 300 MiB.  A peak inherited from this
    # (larger) test process across exec would hide the growth.
    code = (
        "import numpy as np; from fidec.bench.memory import peak_rss_mb; before = peak_rss_mb(); "
        "x = np.ones(300 * 2**20 // 8); print(before, peak_rss_mb())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    before, after = map(float, out.stdout.split())
    assert after - before >= 280


def test_default_result_name_names_backend_mode_and_partial_sections():
    backend = jax.default_backend()
    assert default_result_name("quick") == f"{backend}-quick.json"
    assert default_result_name("full", SECTIONS) == f"{backend}-full.json"
    assert default_result_name("full", ("matmul", "profile")) == f"{backend}-full-matmul-profile.json"
    assert default_result_name("gpu") == f"{backend}-paper-scale.json"


# -- the command: one result file, where it is told, checked first, never lost ------------------------------


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(bench_command)
    return app


TINY_MATMUL = ["--tiny", "--only", "matmul"]


def _git(repo: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=test", "-c", "user.email=test@example.org", *args]
    return subprocess.run(command, cwd=repo, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    """A git checkout with the project's page and results committed, as the current directory."""
    root = Path(__file__).resolve().parents[2]
    repo = tmp_path / "checkout"
    for name in (
        "docs/benchmarks.md",
        *(str(p.relative_to(root)) for p in root.glob("benchmarks/results/*.json")),
    ):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_bytes((root / name).read_bytes())
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "the page and its results")
    monkeypatch.chdir(repo)
    return repo


def test_a_run_in_a_checkout_changes_nothing_but_its_out_folder(checkout):
    outcome = CliRunner().invoke(_app(), [*TINY_MATMUL, "--out", "mine"])
    assert outcome.exit_code == 0, outcome.output
    assert _git(checkout, "status", "--porcelain", "--untracked-files=all").splitlines() == [
        f"?? mine/{jax.default_backend()}-tiny-matmul.json"
    ]
    assert json.loads((checkout / "mine" / f"{jax.default_backend()}-tiny-matmul.json").read_text())["matmul"]


def test_without_out_a_run_writes_a_new_folder_here_and_names_it(checkout):
    outcome = CliRunner().invoke(_app(), TINY_MATMUL)
    assert outcome.exit_code == 0, outcome.output
    (status,) = _git(checkout, "status", "--porcelain", "--untracked-files=all").splitlines()
    written = status.removeprefix("?? ")
    assert written.startswith("fidec-bench-") and written.endswith(
        f"/{jax.default_backend()}-tiny-matmul.json"
    )
    assert f"the result goes to {written}" in outcome.output and f"wrote {written}" in outcome.output


def test_an_out_ending_in_json_is_the_file_and_another_is_a_folder(tmp_path):
    file = tmp_path / "deep" / "result.json"
    outcome = CliRunner().invoke(_app(), [*TINY_MATMUL, "--out", str(file)])
    assert outcome.exit_code == 0, outcome.output
    assert json.loads(file.read_text())["matmul"]["roofline_gflop_per_s"] > 0
    folder = tmp_path / "new" / "folder"
    outcome = CliRunner().invoke(_app(), [*TINY_MATMUL, "--out", str(folder)])
    assert outcome.exit_code == 0, outcome.output
    written = folder / f"{jax.default_backend()}-tiny-matmul.json"
    assert f"wrote {written}" in outcome.output and written.is_file()


def test_an_out_that_cannot_be_written_is_refused_before_the_run(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    outcome = CliRunner().invoke(_app(), [*TINY_MATMUL, "--out", str(blocker / "result.json")])
    assert outcome.exit_code == EXIT_USER_ERROR
    assert "[matmul]" not in outcome.output  # refused before any benchmark ran
    (line,) = outcome.output.strip().splitlines()
    assert line.startswith("error: cannot write") and "is a file, not a folder" in line

    bad = CliRunner().invoke(_app(), ["--tiny", "--only", "nonsense"])
    assert bad.exit_code != 0 and "unknown sections" in bad.output


def test_ctrl_c_keeps_the_sections_measured_so_far(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench_run, "updates_section", interrupted)
    out = tmp_path / "result.json"
    args = ["--tiny", "--only", "matmul", "--only", "updates", "--only", "scaling", "--out", str(out)]
    outcome = CliRunner().invoke(_app(), args)
    assert outcome.exit_code == EXIT_INTERRUPTED
    data = json.loads(out.read_text())
    assert data["interrupted"] == "updates" and data["matmul"]["roofline_gflop_per_s"] > 0
    assert data["updates"] is None and "scaling" not in data["seconds"]  # nothing ran after Ctrl-C


def test_a_spent_time_budget_skips_the_remaining_sections():
    settings = replace(settings_for("tiny", ("matmul", "updates")), time_budget_s=0.0)
    result = run_benchmarks(settings, log=lambda line: None)
    assert set(result["skipped"]) == {"matmul", "updates"} and result["errors"] == {}
    assert result["matmul"] is None


def test_a_result_that_cannot_be_written_goes_to_a_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "result.json"
    real_write = commands.write_result

    def disk_full_at_target(result, path):
        if Path(path) == target:
            raise WriteError(f"cannot write {path}: the disk is full")
        return real_write(result, path)

    monkeypatch.setattr(commands, "write_result", disk_full_at_target)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    outcome = CliRunner().invoke(_app(), [*TINY_MATMUL, "--out", str(target)])
    assert outcome.exit_code == EXIT_FAILURE
    line = outcome.output.strip().splitlines()[-1]
    assert line.startswith("error: cannot write") and "the result was written to" in line
    (saved,) = (tmp_path / "tmp").glob("fidec-bench-*.json")
    assert json.loads(saved.read_text())["matmul"]["roofline_gflop_per_s"] > 0


@pytest.mark.slow
@pytest.mark.env
def test_the_gpu_plan_runs_on_the_cpu_at_its_smallest(tmp_path):
    """benchmarks/gpu.sh --smoke: the GPU plan (fused K up to 1000, 16 seeds) at 2 x 32 networks."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.sh"
    out = tmp_path / "results"
    proc = subprocess.run(
        ["bash", str(script), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=3000,
        env={**os.environ, "PYTHON": sys.executable},
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (written,) = out.glob("*.json")
    data = json.loads(written.read_text())
    assert data["mode"] == "gpu" and data["settings"]["smallest"] is True
    assert data["errors"] == {} and data["skipped"] == {}
    assert [r["updates_per_call"] for r in data["fused"]] == [1, 10, 100, 1000]
    assert [r["seeds"] for r in data["seeds"]] == [1, 4, 8, 16]


@pytest.mark.slow
def test_the_profile_times_every_stage_of_the_current_fd_update():
    """The profile calls FD's own functions; a change of their signatures must show here."""
    stages = fd_stages(settings_for("tiny"), log=lambda line: None)
    names = [s["stage"] for s in stages]
    assert names[0].startswith("Euler rollout") and any(n.startswith("loss + gradient") for n in names)
    assert all(s["ms"] > 0 for s in stages)
    # The rollout is the update's largest matmul stage at M = 4 Fisher samples and K = 10 Euler steps.
    rollout, fisher = stages[0], stages[1]
    assert rollout["gflop"] > fisher["gflop"] > 0
    # The critic's and the actor's loss are the whole gradient: their work adds up to it.
    by_name = {s["stage"].split(" (")[0].strip(): s for s in stages}
    critic, actor = by_name["of which: critic loss fwd/bwd"], by_name["of which: actor loss fwd/bwd"]
    assert critic["gflop"] + actor["gflop"] == pytest.approx(by_name["loss + gradient"]["gflop"])
