"""The report files (Markdown, HTML, tables, figures), the `report` command, and the figures' readability."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest
import typer
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from typer.testing import CliRunner

from fidec.reports.aggregate import collect_runs, group_scores, iqm_results
from fidec.reports.commands import report_command
from fidec.reports.curves import aggregate_figure, curve_band, overview_figure, task_figure
from fidec.reports.render import build_report
from figures import readability_problems
from report_runs import T1, T2, UMAZE


def test_report_files_and_contents(runs, tmp_path):
    out = tmp_path / "report"
    report = build_report([runs], out, fmt="md", num_resamples=200)
    assert report.num_runs == 8 and report.markdown == out / "report.md"
    for name in (
        "report.md",
        "report.html",
        "scores.csv",
        "aggregate.csv",
        "tables.md",
        "curves/overview.png",
        "curves/aggregate.png",
        f"curves/{T2}.png",
    ):
        assert (out / name).is_file(), name
    assert (out / "curves" / "overview.png").read_bytes()[:4] == b"\x89PNG"
    markdown = report.markdown.read_text()
    for heading in (
        "Per-task scores: last3",
        "Per-task scores: final",
        "Family averages: last3",
        "Aggregate across tasks (IQM): last3",
        "Aggregate across tasks (IQM): final",
        "Learning curves",
        "IQM across tasks (figure)",
    ):
        assert f"## {heading}" in markdown
    assert "![learning curves](curves/overview.png)" in markdown
    assert "![iqm across tasks (figure)](curves/aggregate.png)" in markdown
    assert f"- [{T1}](curves/{T1}.png)" in markdown
    assert "Displacement statistics (Fisher vs isotropic)" in markdown and "fisher_condition" in markdown
    assert "| fd, cube-single-play | " in markdown  # one row per (label, family)
    runs_lines = (out / "runs.csv").read_text().splitlines()
    assert runs_lines[0] == "label,task,seeds,wall_s,run_dir"
    assert any(line.startswith(f"fd,{T1},0 1,,") for line in runs_lines)  # no manifest: no wall time
    assert "best evaluation is not reported" in markdown and "scores: best" not in markdown
    html = report.html.read_text()
    assert "<b>50.0 ± 10.0 (n=3)</b>" in html and "<img src='curves/overview.png'>" in html
    assert report.text == (out / "tables.md").read_text()
    assert "| cube-single-play (2 tasks) | " in report.text and "stratified bootstrap" in report.text
    assert report.aggregate_csv.read_text().startswith("protocol,scope,metric,label,n_tasks,n_runs,iqm")
    assert not list(out.rglob(".*.tmp"))  # atomic writes leave no temporary behind

    with_best = build_report([runs], tmp_path / "best", fmt="latex", best=True, write_html=False, plots=False)
    assert "## Per-task scores: best" in with_best.markdown.read_text()
    assert "optimistic" in with_best.text and r"\begin{tabular}" in with_best.text
    assert with_best.html is None and not (tmp_path / "best" / "curves").exists()


def test_report_command(runs, tmp_path):
    app = typer.Typer()
    app.command("report")(report_command)
    app.command("other")(lambda: None)  # keep the subcommand structure of the real CLI
    runner = CliRunner()
    result = runner.invoke(
        app, ["report", str(runs), "--format", "csv", "--out", str(tmp_path / "r"), "--no-plots"]
    )
    assert result.exit_code == 0, result.output
    assert "protocol,family,task,label" in result.output and (tmp_path / "r" / "report.md").exists()
    bad = runner.invoke(app, ["report", str(runs), "--format", "xlsx"])
    assert bad.exit_code == 2 and "xlsx" in bad.output
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = runner.invoke(app, ["report", str(empty), "--out", str(tmp_path / "e")])
    assert nothing.exit_code == 2 and "no finished run" in nothing.output


def test_curve_bands_are_drawn_from_the_seeds(runs, tmp_path):
    groups, _ = group_scores(collect_runs([runs]).runs)
    iso = next(g for g in groups if g.label == "iso" and g.task == T1)
    steps, mean, low, high = curve_band(iso, num_resamples=4000)
    # Two seeds at 0.0 / 0.0 / 0.2 / 0.2 / 0.2 and 0.0 / 0.0 / 0.4 / 0.4 / 0.4 (in %): a resample's mean is
    # one seed's value (probability 1/2) or their average, so the 95% band spans the two seeds' values.
    assert steps.tolist() == [100, 200, 300, 400, 500]
    assert mean == pytest.approx([0.0, 0.0, 30.0, 30.0, 30.0])
    assert low == pytest.approx([0.0, 0.0, 20.0, 20.0, 20.0]) and high == pytest.approx(
        [0.0, 0.0, 40.0, 40.0, 40.0]
    )

    report = build_report([runs], tmp_path / "r", num_resamples=200)
    image = matplotlib.image.imread(report.out_dir / "curves" / f"{T1}.png")
    assert image.shape[:2] == (418, 770)  # 7.0 x 3.8 inches at 110 dpi
    # The bands are drawn: pixels of each label's colour at 20% opacity over white.
    tab10 = [np.array(matplotlib.colors.to_rgb(c)) for c in ("#1f77b4", "#ff7f0e")]
    pixels = image[..., :3].reshape(-1, 3)
    for color in tab10:
        band = 0.2 * color + 0.8
        assert np.sum(np.all(np.abs(pixels - band) < 0.02, axis=1)) > 200


def _drawn(fig: Figure) -> Figure:
    FigureCanvasAgg(fig).draw()  # lay out (constrained layout) and make the tick labels
    return fig


def _check_readable(fig: Figure, ylabel: str | None) -> None:
    """Every text of at least 9 pt, every data panel labelled on both axes (units included), the legend
    outside every panel, a title (tests/figures.py); and the y label of every data panel."""
    assert not readability_problems(fig), readability_problems(fig)
    for ax in (ax for ax in fig.axes if ax.axison):
        if ylabel is not None:
            assert ax.get_ylabel() == ylabel


def test_figures_are_readable_at_a_glance(runs):
    # labels in the order the runs are found (folders sorted): bc, fd, iso
    groups, _ = group_scores(collect_runs([runs]).runs)
    cube = [g for g in groups if g.family == "cube-single-play"]
    overview = _drawn(overview_figure(cube, num_resamples=100))
    _check_readable(overview, "success rate (%)")
    assert [ax.get_title() for ax in overview.axes if ax.axison] == [T1, T2]
    assert all(ax.get_xlabel() == "gradient steps" for ax in overview.axes if ax.axison)
    _check_readable(_drawn(task_figure([g for g in groups if g.task == UMAZE], num_resamples=100)), None)
    task = _drawn(task_figure([g for g in groups if g.task == T1], num_resamples=100))
    _check_readable(task, "success rate (%)")
    assert [t.get_text() for t in task.legends[0].get_texts()] == ["bc (n=2)", "fd (n=3)", "iso (n=2)"]
    aggregate = _drawn(aggregate_figure(iqm_results(groups, "last3", num_resamples=100), "last3"))
    _check_readable(aggregate, None)
    assert [ax.get_xlabel() for ax in aggregate.axes] == [
        "IQM of success rate (%)",
        "IQM of D4RL normalised return (x100)",
    ]
    assert [t.get_text() for t in aggregate.axes[0].get_yticklabels()] == ["bc", "fd", "iso"]


def test_report_output_errors_are_one_line(runs, tmp_path):
    app = typer.Typer()
    app.command("report")(report_command)
    app.command("other")(lambda: None)
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    result = CliRunner().invoke(app, ["report", str(runs), "--out", str(not_a_folder), "--no-plots"])
    assert result.exit_code == 2 and "is a file; give a folder" in result.output
    missing = CliRunner().invoke(app, ["report", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert "Traceback" not in result.output + missing.output
