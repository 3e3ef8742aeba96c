"""The seeds section: vmapped and sequential seeds with the training loop's programs, against separate runs."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fidec.bench.seeds import faster, seed_rows
from fidec.bench.settings import settings_for
from fidec.bench.timing import window_ratios
from fidec.training.seeds import vmap_by_default


def test_faster_names_a_mode_only_where_every_window_agrees():
    assert faster(window_ratios([2.0, 3.0], [1.0, 1.0])) == "vmapped"
    assert faster(window_ratios([1.0, 1.0], [2.0, 3.0])) == "sequential"
    assert faster(window_ratios([1.2, 0.9], [1.0, 1.0])) == "neither (within noise)"


@pytest.mark.slow
def test_seed_rows_measure_both_modes_and_the_rules_pick_against_separate_runs():
    settings = replace(settings_for("tiny"), seed_counts=(1, 2))
    rows = seed_rows("tiny-networks", settings, log=lambda line: None)
    assert [r["seeds"] for r in rows] == [1, 2]
    rule = "vmapped" if vmap_by_default() else "sequential"
    for r in rows:
        assert r["rule"] == rule and r["updates_per_call"] == settings.seed_block
        picked = r[f"{rule}_updates_per_s"]
        # The rule's column against separate runs, window by window, from the same measurements.
        rule_vs_separate = r["rule_vs_separate_runs"]["ratio_of_medians"]
        assert rule_vs_separate == pytest.approx(picked / r["separate_runs_updates_per_s"])
        vmapped_vs_sequential = r["vmapped_vs_sequential"]["ratio_of_medians"]
        assert vmapped_vs_sequential == pytest.approx(
            r["vmapped_updates_per_s"] / r["sequential_updates_per_s"]
        )
        assert len(r["rule_vs_separate_runs"]["windows"]) == settings.seed_windows
        assert r["vmapped_first_call_s"] > 0 and r["faster"] in (
            "vmapped",
            "sequential",
            "neither (within noise)",
        )
