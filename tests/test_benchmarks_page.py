"""docs/benchmarks.md is what ``benchmarks/render_page.py`` gives from the committed results, and the
renderer states what a result holds (its tables, the load of its machine, what did not run)."""

from __future__ import annotations

import json

import pytest

from benchmark_page import ROOT, render_page
from fidec.bench import RESULT_KEYS, SECTIONS, headline
from fidec.formatting import format_number, format_percent

RESULTS = sorted((ROOT / "benchmarks" / "results").glob("*.json"))


def bare_result(load_start: list[float], load_end: list[float], **sections: object) -> dict:
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
        "schema": 2,
        "mode": "quick",
        "created": "2026-01-01T00:00:00+00:00",
        "machine": machine,
        "load_average": {"start": load_start, "end": load_end},
        "seconds": {"total": 1.0},
        **sections,
    }


def test_the_committed_page_is_what_the_committed_results_give():
    assert RESULTS, "benchmarks/results/ holds no result"
    expected = render_page.render_page(render_page.load_results(ROOT / "benchmarks" / "results"))
    assert (ROOT / "docs" / "benchmarks.md").read_text() == expected, (
        "docs/benchmarks.md is stale: run python benchmarks/render_page.py"
    )


def test_the_check_option_says_whether_the_page_is_current(tmp_path, capsys):
    page = tmp_path / "benchmarks.md"
    assert render_page.main(["--page", str(page), "--check"]) == 1
    assert render_page.main(["--page", str(page)]) == 0
    assert render_page.main(["--page", str(page), "--check"]) == 0
    assert "up to date" in capsys.readouterr().out


@pytest.mark.parametrize("path", RESULTS, ids=[p.name for p in RESULTS])
def test_every_committed_result_renders_every_section_it_holds(path):
    result = json.loads(path.read_text())
    page = render_page.render_result(result)
    assert "could not be rendered" not in page
    for key in SECTIONS:
        if result.get(key):
            assert any(t.key == key for t in render_page.TABLES)


def test_every_section_has_a_table_on_the_page():
    assert {t.key for t in render_page.TABLES} == set(SECTIONS)
    assert set(SECTIONS) <= set(RESULT_KEYS)


def test_smoke_runs_and_foreign_files_are_not_rendered(tmp_path):
    (tmp_path / "unrelated.json").write_text('{"not": "a benchmark"}')
    tiny = {**bare_result([0.1] * 3, [0.1] * 3), "mode": "tiny"}
    (tmp_path / "cpu-tiny.json").write_text(json.dumps(tiny))
    (tmp_path / "cpu-quick.json").write_text(json.dumps(bare_result([0.1] * 3, [0.1] * 3)))
    assert [r["mode"] for r in render_page.load_results(tmp_path)] == ["quick"]


def test_a_loaded_machine_is_stated_on_the_page():
    loaded = render_page.render_page([bare_result([7.5, 5.0, 2.0], [6.0, 5.0, 2.0])])
    assert "Measured on a shared, loaded machine" in loaded
    assert "2 CPU cores (Test CPU 9000 (family 1, model 2, stepping 3))" in loaded
    assert "load average 7.5 at the start and 6.0 at the end" in loaded
    idle = render_page.render_page([bare_result([0.1, 0.1, 0.1], [0.2, 0.1, 0.1])])
    assert "Measured on a shared, loaded machine" not in idle
    assert "_FD at the paper's settings was not measured in this run._" in idle


def test_the_page_is_filled_completely():
    page = render_page.render_page([bare_result([0.1, 0.1, 0.1], [0.2, 0.1, 0.1])])
    assert "$" not in page  # every placeholder filled
    assert "## Against the reference code" in page and "## On a GPU" in page
    assert "bash benchmarks/gpu.sh" in page and "at least 85% of the" in page
    assert "#### Each agent against its reference code\n\nNot measured in this run" in page


def test_a_table_is_rendered_from_its_rows():
    rows = [{"agent": "fd", "preset": "p", "networks": "2 x 32, batch 32", "updates_per_call": 4}]
    fused = [
        {**rows[0], "updates_per_s": 9.0, "ms_per_update": 111.0, "speedup_vs_first": 1.5, "compile_s": 2.0}
    ]
    page = render_page.render_result(bare_result([0.1] * 3, [0.1] * 3, fused=fused))
    assert "#### Updates fused into one compiled call" in page
    assert "| 2 x 32, batch 32 | 4 | 9 | 111 | 1.5x | 2 |" in page


def test_what_failed_or_did_not_run_is_listed():
    result = bare_result(
        [0.1] * 3,
        [0.1] * 3,
        errors={"env": "ValueError: no-such-env-v0"},
        skipped={"scaling": "budget spent"},
    )
    page = render_page.render_result({**result, "interrupted": "memory"})
    assert "#### Sections that failed or did not run" in page
    assert "- `env`: ValueError: no-such-env-v0" in page and "- `scaling`: skipped, budget spent" in page
    assert "interrupted (Ctrl-C) in `memory`" in page


def test_a_section_written_by_another_version_is_named_not_fatal():
    old = bare_result([0.1] * 3, [0.1] * 3, seeds=[{"seeds": 4, "vmapped_speedup": 0.6}])
    page = render_page.render_page([old])
    assert "_The seeds section of this result could not be rendered (KeyError" in page
    assert "| machine |  |" in page  # the rest of the result is still there


def test_the_work_against_the_official_code_is_compared_with_the_speed_ups_measured():
    ratio = lambda r, low, high: {"ratio": r, "window_min": low, "window_max": high}
    row = lambda label, gflop: {"label": label, "updates_per_s": 1.0, "gflop_per_update": gflop}
    rows = [
        {**row("fidec fd", 30.0), "vs_reference": ratio(1.2, 0.9, 1.3)},
        {**row("reuse", 25.0), "vs_reference": ratio(1.4, 1.3, 1.5)},
        {**row("official code", 36.0), "action_gflop": 6.0},
    ]
    reference = {"agents": [{"agent": "fd", "status": "timed", "rows": rows}], "batch_size": 256}
    fd = {"agent": "fd", "preset": "paper-networks", "updates_per_s": 1.0, "ms_per_update": 1e3}
    fd |= {"gflop_per_update": 30.0, "xla_gflop_per_update": None, "gflop_per_s": 30.0}
    result = bare_result([0.1] * 3, [0.1] * 3, updates=[fd], matmul={"roofline_gflop_per_s": 40.0})
    words = lambda: " ".join(render_page.headline_part({**result, "reference": reference}).split())
    page = words()
    assert "(single windows 0.9x to 1.3x, a range that includes 1x: within this run's noise)" in page
    assert "36 / 30 = 1.2x and 36 / 25 = 1.44x lie within the window ranges" in page
    assert "`sample_actions` on the batch's 256 states counts 6 GFLOP (16.7% of its update)" in page
    assert "36 - 6 = 30 GFLOP, against fidec's 30" in page
    rows[0]["vs_reference"] = ratio(1.05, 1.02, 1.1)  # the work ratio 1.2x outside the range measured
    page = words()
    assert (
        "are not within the window ranges" in page
        and "1.05x** fidec / official (single windows 1.02x to 1.1x);" in page
    )


def h_agent(result: dict) -> str:
    """The agent of the result's headline (FD)."""
    return result["settings"]["agent"]


def test_the_readmes_speed_section_quotes_the_committed_quick_result():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Speed\n") :]
    section = section[: section.index("\n## ")]
    result = json.loads((ROOT / "benchmarks" / "results" / "cpu-quick.json").read_text())
    h = headline(result)
    ref, fisher = h["reference"], result["fisher"]["speed"]
    fidec, official = ref["fidec_gflop_per_update"], ref["official_gflop_per_update"]
    reuse, sample = ref["fidec_reuse_base_sample_gflop_per_update"], ref["official_sample_actions_gflop"]
    times, number = render_page.times, format_number
    quoted = {
        "load average at the start": number(result["load_average"]["start"][0]),
        "load average at the end": number(result["load_average"]["end"][0]),
        "fidec's work": f"{number(fidec)} GFLOP",
        "the official work": f"official code's {number(official)}",
        "the roofline fraction": f"runs at {format_percent(h['roofline_fraction'])} of the matmul throughput",
        "the speed-up": f"fidec does {times(ref['speedup'])} the official code's",
        "its windows": f"from {times(ref['speedup_window_min'])} to {times(ref['speedup_window_max'])}",
        "the work ratio": f"{number(official)} / {number(fidec)} = {times(official / fidec)}",
        "the speed-up with reuse": f"{times(ref['speedup_reuse_base_sample'])} (windows "
        f"{times(ref['speedup_reuse_base_sample_window_min'])} to "
        f"{times(ref['speedup_reuse_base_sample_window_max'])}",
        "the work ratio with reuse": f"{number(official)} / {number(reuse)} = {times(official / reuse)}",
        "the logged sample's work": f"{number(sample)} GFLOP ({format_percent(sample / official, 1)} of its update",
        "the dataset estimator": f"{number(fisher['dataset_gflop_per_update'])} GFLOP; "
        f"{times(fisher['speedup'])} the updates/s",
    }
    for entry in result["reference"]["agents"]:  # every other agent against its reference code
        if entry["agent"] != h_agent(result) and entry["status"] == "timed":
            r = entry["rows"][0]["vs_reference"]
            quoted[f"{entry['agent']} against its reference"] = (
                f"{entry['agent']} {times(r['ratio'])} (windows {times(r['window_min'])} to "
                f"{times(r['window_max'])}"
            )
    missing = {what: text for what, text in quoted.items() if text not in " ".join(section.split())}
    assert not missing, f"README's Speed section does not quote cpu-quick.json: {missing}"
    within_noise = ref["speedup_window_min"] <= 1.0 <= ref["speedup_window_max"]
    assert ("which includes 1x" in section) == within_noise
