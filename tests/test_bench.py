"""The benchmark suite: FLOP counting against hand counts, the pure helpers, and a tiny smoke run.

Nothing here asserts a speed: the smoke test only checks that a run writes valid JSON with the
expected layout and that the renderer turns it into Markdown tables.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import jax
import jax.numpy as jnp
import pytest
import typer
from typer.testing import CliRunner

from fidec.bench import RESULT_KEYS, render_markdown, run_benchmarks, settings_for, write_result
from fidec.bench.commands import bench_command
from fidec.bench.flops import matmul_flops
from fidec.bench.render import fmt, load_results, pct, table
from fidec.bench.run import default_result_path, headline
from fidec.bench.settings import REFERENCE_FD, SECTIONS, BenchSettings
from fidec.bench.timing import interleaved_rates, measure_rate, spread
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


def test_interleaved_rates_time_every_runner_in_turns():
    log: list[tuple[str, int]] = []
    runners = [lambda n: log.append(("a", n)), lambda n: log.append(("b", n))]
    rates = interleaved_rates(runners, windows=2, window_seconds=1e-9)
    na, nb = (r["calls_per_window"] for r in rates)
    # Warm-up of each, then window 1 of a and b, then window 2 of a and b.
    assert log == [("a", 1), ("b", 1), ("a", na), ("b", nb), ("a", na), ("b", nb)]
    assert all(len(r["windows"]) == 2 for r in rates)


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
    assert settings_for("quick", ("matmul",)).sections == ("matmul",)


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


def test_headline_compares_fd_with_the_reference_and_the_targets():
    roofline = 100.0
    result = {"updates": [_fd_row(6.0, 15.0, roofline)], "matmul": {"roofline_gflop_per_s": roofline}}
    h = headline(result)
    assert h["speedup_vs_reference"] == pytest.approx(6.0 / REFERENCE_FD["updates_per_s"])
    assert h["meets_speed_target"] is True  # 6.0 >= 1.25 * 4.4
    assert h["roofline_fraction"] == pytest.approx(0.9)
    assert h["meets_roofline_target"] is True
    # The reference at its 90% efficiency on this run's 100 GFLOP/s: 90 / 39.5 updates/s.
    assert h["reference_scaled_to_this_run_updates_per_s"] == pytest.approx(0.9 * roofline / 39.5)

    slow = headline({"updates": [_fd_row(5.0, 10.0, roofline)], "matmul": {"roofline_gflop_per_s": roofline}})
    assert slow["meets_speed_target"] is False  # 5.0 < 5.5
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


def test_markdown_helpers():
    assert fmt(None) == "-"
    assert fmt(1234.56) == "1,235"
    assert fmt(0.012345) == "0.0123"
    assert fmt(True) == "yes"
    assert pct(0.853) == "85%"
    assert table(("a", "b"), [(1, 2)]).splitlines() == ["| a | b |", "|---|---|", "| 1 | 2 |"]


# -- smoke runs ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_result() -> dict:
    """A tiny run of two sections: the matmul roofline and FD's update at 2 x 32 networks."""
    settings = replace(settings_for("tiny", ("matmul", "updates")), agents=("fd",))
    return run_benchmarks(settings, log=lambda line: None)


@pytest.mark.slow
def test_tiny_run_writes_valid_json_that_renders_to_markdown_tables(tiny_result, tmp_path):
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

    markdown = render_markdown([data])
    assert "#### Gradient updates (one call per update)" in markdown
    assert "| agent | networks | updates/s |" in markdown
    assert "\n| fd | 2 x 32, batch 32 |" in markdown
    assert "#### Dense fp32 matmul throughput" in markdown
    assert data["machine"]["cpu_model"] in markdown


def test_a_failing_section_is_recorded_and_the_run_goes_on():
    settings = replace(settings_for("tiny", ("env",)), env_name="no-such-env-v0")
    result = run_benchmarks(settings, log=lambda line: None)
    assert result["env"] is None
    assert "env" in result["errors"] and "no-such-env-v0" in result["errors"]["env"]
    assert "#### Sections that failed" in render_markdown([{**result, "mode": "quick"}])


def _bare_result(load_start: list[float], load_end: list[float]) -> dict:
    machine = {
        "cpu_model": "Test CPU 9000",
        "cpu_id": "family 1, model 2, stepping 3",
        "cpu_flags": ["avx2"],
        "usable_cores": 2,
        "logical_cores": 2,
        "memory_gb": 8.0,
        "backend": "cpu",
        "device": "cpu",
        "device_count": 1,
        "jax": "0",
        "jaxlib": "0",
        "flax": "0",
        "optax": "0",
        "python": "3.11",
        "os": "Linux",
    }
    return {
        "mode": "quick",
        "created": "2026-01-01T00:00:00+00:00",
        "machine": machine,
        "load_average": {"start": load_start, "end": load_end},
        "seconds": {"total": 1.0},
    }


def test_loaded_machine_is_stated_in_the_docs():
    loaded = render_markdown([_bare_result([7.5, 5.0, 2.0], [6.0, 5.0, 2.0])])
    assert "Measured on a shared, loaded machine" in loaded
    assert "2 CPU cores (Test CPU 9000 (family 1, model 2, stepping 3))" in loaded
    assert "load average 7.5 at the start and 6.0 at the end" in loaded
    idle = render_markdown([_bare_result([0.1, 0.1, 0.1], [0.2, 0.1, 0.1])])
    assert "Measured on a shared, loaded machine" not in idle
    assert "_FD at the paper's settings was not measured in this run._" in idle


def test_bench_command_writes_json_and_renders_docs(tmp_path):
    app = typer.Typer()
    app.command()(bench_command)
    results_dir, docs = tmp_path / "results", tmp_path / "docs" / "benchmarks.md"
    (results_dir).mkdir()
    (results_dir / "unrelated.json").write_text('{"not": "a benchmark"}')
    out = results_dir / "cpu-tiny.json"
    args = [
        "--tiny",
        "--only",
        "matmul",
        "--out",
        str(out),
        "--docs",
        str(docs),
        "--results-dir",
        str(results_dir),
    ]
    outcome = CliRunner().invoke(app, args)
    assert outcome.exit_code == 0, outcome.output
    data = json.loads(out.read_text())
    assert data["mode"] == "tiny" and data["settings"]["sections"] == ["matmul"]
    assert load_results(results_dir) == []  # tiny runs and foreign JSON are not rendered from the folder...
    text = docs.read_text()
    assert "#### Dense fp32 matmul throughput" in text  # ...but this run's own result is
    assert "| product | GFLOP/s |" in text and "## How to rerun" in text

    bad = CliRunner().invoke(app, ["--tiny", "--only", "nonsense"])
    assert bad.exit_code != 0 and "unknown sections" in bad.output


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


def test_default_result_path_names_backend_mode_and_partial_sections(tmp_path):
    backend = jax.default_backend()
    assert default_result_path(tmp_path, "quick") == tmp_path / f"{backend}-quick.json"
    assert default_result_path(tmp_path, "full", SECTIONS) == tmp_path / f"{backend}-full.json"
    partial = default_result_path(tmp_path, "full", ("matmul", "profile"))
    assert partial == tmp_path / f"{backend}-full-matmul-profile.json"
