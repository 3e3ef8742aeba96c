"""Report aggregation against tables computed by hand from synthetic run directories."""

from __future__ import annotations

import json

import pytest

from fidec.reports.aggregate import (
    collect_runs,
    displacement_stats,
    family_average,
    group_scores,
    iqm_results,
)
from fidec.reports.tables import (
    aggregate_csv,
    bold_flags,
    family_table,
    iqm_table,
    scores_csv,
    task_table,
    to_latex,
    to_markdown,
)
from report_runs import LABELS, SCORES, STEPS, T1, T2, UMAZE, write_run  # noqa: F401


def test_per_task_table_matches_the_hand_computed_numbers(runs):
    groups, notes = group_scores(collect_runs([runs]).runs, ["last3", "final", "best"])
    assert not notes
    by = {(g.label, g.task): g for g in groups}
    # fd on T1, last3 per seed: 0.6, 0.4, 0.5 -> 0.5 +- 0.1; final: 0.8, 0.6, 0.5 -> 0.6333 +- 0.1528
    fd1 = by[("fd", T1)]
    assert fd1.seeds == (0, 1, 2)
    assert fd1.stat("last3").values == pytest.approx((0.6, 0.4, 0.5))
    assert (fd1.stat("last3").mean, fd1.stat("last3").std) == pytest.approx((0.5, 0.1))
    assert (fd1.stat("final").mean, fd1.stat("final").std) == pytest.approx((0.63333, 0.15275), abs=1e-5)
    assert fd1.stat("best").mean == pytest.approx(0.63333, abs=1e-5)
    assert fd1.last3_steps == (300, 400, 500)
    # iso on T1: last3 = final = 0.2, 0.4 -> 0.3 +- 0.1414
    assert (by[("iso", T1)].stat("last3").mean, by[("iso", T1)].stat("last3").std) == pytest.approx(
        (0.3, 0.141421), abs=1e-6
    )
    # fd on U-maze (normalised score): last3 90, 70, 70 -> 76.667 +- 11.547; final 100, 60, 80 -> 80 +- 20
    umaze = by[("fd", UMAZE)]
    assert (umaze.stat("last3").mean, umaze.stat("last3").std) == pytest.approx((76.6667, 11.547), abs=1e-3)
    assert (umaze.stat("final").mean, umaze.stat("final").std) == pytest.approx((80.0, 20.0))

    table = to_markdown(task_table(groups, "last3", LABELS))
    assert "| task | fd | iso | bc |" in table
    # success in %; bold: the highest mean and each label whose mean ± std interval overlaps it: on T1 fd's
    # [40.0, 60.0] and iso's [15.9, 44.1] overlap, bc's [-1.4, 8.0] does not
    assert f"| {T1} | **50.0 ± 10.0 (n=3)** | **30.0 ± 14.1 (n=2)** | 3.3 ± 4.7 (n=2) |" in table
    assert f"| {T2} | **90.0 ± 10.0 (n=3)** | **93.0 ± 4.2 (n=2)** | 60.0 ± 14.1 (n=2) |" in table
    assert f"| {UMAZE} | 76.7 ± 11.5 (n=3) | - | - |" in table  # no other label: nothing to mark
    # where the last three lie, as a share of training, against the paper's 80-100%
    assert "mean of the last three evaluations, at steps 300, 400, 500 (60-100% of training;" in table
    assert "averages 800k, 900k and 1M steps of a 1M-step run, 80-100%)" in table
    assert "ddof=1" in table and "over seeds (n per cell)" in table
    assert "every label whose mean ± std interval overlaps the highest one's" in table
    final = to_markdown(task_table(groups, "final", LABELS))
    # fd's final [48.0, 78.6] clears iso's [15.9, 44.1]: fd alone in bold
    assert f"| {T1} | **63.3 ± 15.3 (n=3)** | 30.0 ± 14.1 (n=2) | 5.0 ± 7.1 (n=2) |" in final
    assert "the last evaluation" in final


def test_family_averages_are_per_seed_means_over_tasks(runs):
    groups, _ = group_scores(collect_runs([runs]).runs)
    fd_cube = [g for g in groups if g.label == "fd" and g.family == "cube-single-play"]
    # fd, per seed (T1 + T2) / 2: 0.8, 0.6, 0.7 -> 0.7 +- 0.1
    stat = family_average(fd_cube, "last3")
    assert stat.values == pytest.approx((0.8, 0.6, 0.7)) and stat.std == pytest.approx(0.1)
    table = to_markdown(family_table(groups, "last3", LABELS))
    # iso, per seed: (0.2 + 0.9) / 2 = 0.55 and (0.4 + 0.96) / 2 = 0.68 -> 61.5 +- 9.2;
    # bc: (0 + 0.5) / 2 = 0.25 and (0.0667 + 0.7) / 2 = 0.3833 -> 31.7 +- 9.4
    assert (
        "| cube-single-play (2 tasks) | **70.0 ± 10.0 (n=3)** | **61.5 ± 9.2 (n=2)** | 31.7 ± 9.4 (n=2) |"
        in table
    )
    assert "| d4rl-antmaze (1 task) | 76.7 ± 11.5 (n=3) | - | - |" in table


def test_a_label_missing_a_task_gets_no_family_average(runs, tmp_path):
    groups, _ = group_scores(collect_runs([runs]).runs)
    partial = [g for g in groups if not (g.label == "iso" and g.task == T2)]
    table = to_markdown(family_table(partial, "last3", LABELS))
    assert "| cube-single-play (2 tasks) | **70.0 ± 10.0 (n=3)** | - | 31.7 ± 9.4 (n=2) |" in table
    iqm = to_markdown(iqm_table(iqm_results(partial, "last3", LABELS, num_resamples=200), "last3", 200))
    assert "| cube-single-play (2 tasks) | " in iqm and " | - | " in iqm


def test_csv_holds_raw_numbers_and_latex_marks_the_bold_cells(runs):
    groups, _ = group_scores(collect_runs([runs]).runs)
    lines = scores_csv(groups, ["last3", "final"]).strip().splitlines()
    assert lines[0] == "protocol,family,task,label,metric,n_seeds,mean,std,bold,seeds,values"
    rows = {(r[0], r[2], r[3]): r for r in (line.split(",") for line in lines[1:])}
    assert len(rows) == 2 * 7
    fd1 = rows[("last3", T1, "fd")]
    assert fd1[5] == "3" and float(fd1[6]) == pytest.approx(0.5) and float(fd1[7]) == pytest.approx(0.1)
    assert fd1[9] == "0 1 2" and [float(v) for v in fd1[10].split()] == pytest.approx([0.6, 0.4, 0.5])
    # the cells the tables show in bold (see the per-task test); none on U-maze (alone in its row)
    bold = {key for key, r in rows.items() if r[8] == "1"}
    assert bold == {
        ("last3", T1, "fd"),
        ("last3", T1, "iso"),
        ("last3", T2, "fd"),
        ("last3", T2, "iso"),
        ("final", T1, "fd"),
        ("final", T2, "fd"),
        ("final", T2, "iso"),
    }
    latex = to_latex(task_table(groups, "last3", LABELS))
    assert r"\textbf{50.0 $\pm$ 10.0 (n=3)}" in latex and r"\textbf{93.0 $\pm$ 4.2 (n=2)}" in latex
    assert r"& 3.3 $\pm$ 4.7 (n=2) \\" in latex  # outside fd's interval: not bold
    assert r"76.7 $\pm$ 11.5 (n=3) & - & -" in latex  # alone in its row: not marked
    assert r"success rate (\%)" in latex  # LaTeX specials escaped in the caption
    assert r"\toprule" in latex and r"\midrule" in latex and "ddof=1" in latex


def test_iqm_table_against_hand_computed_values(runs):
    groups, _ = group_scores(collect_runs([runs]).runs)
    results = iqm_results(groups, "last3", LABELS, num_resamples=4000)
    scopes = [scope.name for scope, _ in results]
    # success and normalised return are never pooled: no "all tasks" row
    assert scopes == ["cube-single-play (2 tasks)", "d4rl-antmaze (1 task)"]
    cube = results[0][1]
    # fd: last3 scores 0.6 0.4 0.5 (T1) and 1.0 0.8 0.9 (T2); 6 values, one cut from each end:
    # mean(0.5, 0.6, 0.8, 0.9) = 0.7
    assert cube["fd"].value == pytest.approx(0.7) and (cube["fd"].num_tasks, cube["fd"].num_runs) == (2, 6)
    assert cube["fd"].low <= 0.7 <= cube["fd"].high
    # iso: T1 {0.2, 0.4}, T2 {0.9, 0.96}.  Resampling within each task, the IQM of the 4 pooled values is
    # (max of the T1 pair + min of the T2 pair) / 2: 0.55 (p = 3/16), 0.58 (1/16), 0.65 (9/16), 0.68 (3/16),
    # so the 95% interval is [0.55, 0.68] exactly; bc likewise: 0.25, 0.35, 0.2833, 0.3833 -> [0.25, 0.3833]
    assert cube["iso"].value == pytest.approx(0.65)
    assert (cube["iso"].low, cube["iso"].high) == pytest.approx((0.55, 0.68))
    assert (cube["bc"].value, cube["bc"].low, cube["bc"].high) == pytest.approx(
        (0.28333, 0.25, 0.38333), abs=1e-4
    )
    assert results[1][1]["fd"].value == pytest.approx(76.6667, abs=1e-3)  # 3 values: their mean
    assert results[1][1]["iso"] is None

    table = iqm_table(results, "last3", 4000)
    md = to_markdown(table)
    fd_text = f"{100 * cube['fd'].value:.1f} [{100 * cube['fd'].low:.1f}, {100 * cube['fd'].high:.1f}] (n=6)"
    assert (
        f"| cube-single-play (2 tasks) | **{fd_text}** | **65.0 [55.0, 68.0] (n=4)** | 28.3 [25.0, 38.3] (n=4) |"
        in md
    )
    assert "stratified bootstrap" in md and "Agarwal et al. 2021" in md and "4000 resamples" in md
    # fewer than four scores: the row says its value is the plain mean, and why its interval is coarse
    assert "| d4rl-antmaze (1 task), mean (n < 4) | 76.7 [" in md
    assert "| cube-single-play (2 tasks) |" in md  # 4 or more scores: an IQM, no note
    assert "at most C(2n - 1, n) distinct resamples (10 for n = 3)" in md
    assert "every label whose 95% interval overlaps the highest one's" in md
    assert r"\textbf{65.0 [55.0, 68.0] (n=4)}" in to_latex(table)
    lines = aggregate_csv({"last3": results}, {"last3": table}).strip().splitlines()
    assert lines[0] == "protocol,scope,metric,label,n_tasks,n_runs,iqm,ci_low,ci_high,confidence,bold"
    iso = next(line for line in lines if ",iso," in line).split(",")
    assert iso[:6] == ["last3", "cube-single-play (2 tasks)", "success", "iso", "2", "4"]
    assert [float(v) for v in iso[6:9]] == pytest.approx([0.65, 0.55, 0.68]) and iso[9:] == ["0.95", "1"]
    assert len(lines) == 1 + 3 + 1  # labels lacking a task of a row have no line
    assert any(line.startswith("last3,d4rl-antmaze (1 task),") for line in lines)  # the name, not the note


def test_all_tasks_row_pools_the_families_of_one_metric(tmp_path):
    # two families scored by success rate: one IQM over all their tasks, after the per-family rows
    puzzle = "puzzle-3x3-play-singletask-task1-v0"
    for agent, base in (("fd", 0.5), ("iso", 0.1)):
        for task in (T1, puzzle):
            write_run(tmp_path / f"{agent}-{task}", agent, task, {s: [base + 0.1 * s] * 5 for s in range(4)})
    groups, _ = group_scores(collect_runs([tmp_path]).runs)
    results = iqm_results(groups, "last3", num_resamples=500)
    assert [scope.name for scope, _ in results] == [
        "cube-single-play (1 task)",
        "puzzle-3x3-play (1 task)",
        "all (2 tasks)",
    ]
    everything = results[2][1]["fd"]
    # 8 values 0.5, 0.6, 0.7, 0.8 twice: cut two from each end -> mean(0.6, 0.6, 0.7, 0.7) = 0.65
    assert (everything.value, everything.num_tasks, everything.num_runs) == (pytest.approx(0.65), 2, 8)


def test_displacement_statistics_use_the_last_logged_values(runs):
    stats = displacement_stats(collect_runs([runs]).runs)
    fd = stats[("fd", "cube-single-play")]  # per (label, family): targets differ between families
    assert fd["delta_abs_mean"].values == pytest.approx((0.1, 0.2, 0.3))  # step 400's 99.0 is not the last
    assert (fd["fisher_condition"].mean, fd["fisher_condition"].std) == pytest.approx((20.0, 10.0))
    assert stats[("iso", "cube-single-play")]["penalty"].n == 2
    assert {family for _, family in stats} == {"cube-single-play"}  # only T1's runs logged them


def trial_record(run_dir: str, label: str, state: str, **extra) -> dict:
    """A trial record as a sweep writes it (every field its manifest validation requires)."""
    return {
        "run_dir": run_dir,
        "label": label,
        "agent": "fd",
        "task": T1,
        "seeds": [0],
        "fingerprint": "0" * 12,
        "state": state,
        **extra,
    }


def test_sweep_labels_duplicates_and_unfinished_trials(runs, tmp_path):
    sweep = tmp_path / "sweep"
    write_run(sweep / "runs" / "a", "fd", T1, {0: [0.1] * 5})
    manifest = {
        "format": 1,
        "trials": {
            "a": trial_record("runs/a", "fd-velocity", "done", wall_s=12.5),
            "b": trial_record("runs/b", "fd-velocity", "failed", error="ValueError: boom\n..."),
        },
    }
    (sweep / "manifest.json").write_text(json.dumps(manifest))
    collection = collect_runs([sweep, runs / "fd-t1-a", runs / "fd-t1-a"])
    assert [r.label for r in collection.runs] == ["fd-velocity", "fd"]  # the same run given twice: read once
    assert [r.wall_s for r in collection.runs] == [12.5, None]  # the manifest's wall time, when there is one
    assert any("b (sweep): not finished, state failed: ValueError: boom" in n for n in collection.notes)
    duplicate = collect_runs([runs / "fd-t1-a", runs / "fd-t1-a" / ".."])
    _, notes = group_scores(duplicate.runs)
    assert not notes
    copy = tmp_path / "copy"
    write_run(copy, "fd", T1, {0: [0.5] * 5})
    _, notes = group_scores(collect_runs([runs / "fd-t1-a", copy]).runs)
    assert any("seed 0 appears twice" in n for n in notes)


def test_bold_rule_marks_every_interval_that_overlaps_the_best():
    # (value, low, high) as displayed
    assert bold_flags([(50.0, 40.0, 60.0), (30.0, 15.9, 44.1), (3.3, -1.4, 8.0)]) == [True, True, False]
    assert bold_flags([(50.0, 40.0, 60.0), (30.0, 20.0, 40.0), (10.0, 5.0, 15.0)]) == [
        True,
        True,
        False,
    ]  # touching
    assert bold_flags([(50.0, 45.0, 55.0), (50.0, 45.0, 55.0), (10.0, 9.0, 11.0)]) == [
        True,
        True,
        False,
    ]  # ties
    assert bold_flags([(50.0, 45.0, 55.0), (30.0, 25.0, 35.0), None]) == [True, False, False]
    assert bold_flags([(50.0, 40.0, 60.0), (45.0, 35.0, 55.0)]) == [
        False,
        False,
    ]  # all overlap: none stands out
    assert bold_flags([(0.0, 0.0, 0.0), (0.0, 0.0, 0.0)]) == [False, False]
    assert bold_flags([(70.0, 60.0, 80.0), None]) == [False, False]  # alone in its row


def test_trials_of_a_variant_removed_from_the_spec_are_named_as_such(tmp_path):
    """A sweep whose spec dropped a variant keeps its pending trials in the manifest: the report says they
    were removed from the spec, not that they are still to run."""
    sweep = tmp_path / "sweep"
    write_run(sweep / "runs" / "a", "fd", T1, {0: [0.1] * 5})
    manifest = {
        "format": 1,
        "spec": {"agents": [{"name": "fd", "label": "fd"}]},
        "trials": {
            "a": trial_record("runs/a", "fd", "done"),
            "b": trial_record("runs/b", "fd", "pending"),
            "c": trial_record("runs/c", "fd-velocity", "pending"),
        },
    }
    (sweep / "manifest.json").write_text(json.dumps(manifest))
    notes = collect_runs([sweep]).notes
    assert any(n.startswith("b (sweep): not finished, state pending") for n in notes)
    assert any(
        n.startswith("c (sweep): not run, its variant 'fd-velocity' was removed from the sweep's spec")
        for n in notes
    )
