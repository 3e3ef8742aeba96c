"""The report files (Markdown, HTML, tables, curves), the `report` command, and the bootstrap bands."""

from __future__ import annotations

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from fidec.reports.aggregate import collect_runs, group_scores
from fidec.reports.commands import report_command
from fidec.reports.curves import bootstrap_ci, curve_band
from fidec.reports.render import build_report
from test_reports_aggregate import T1, T2, runs  # noqa: F401  (the fixture)


def test_report_files_and_contents(runs, tmp_path):  # noqa: F811
    out = tmp_path / "report"
    report = build_report([runs], out, fmt="md", num_resamples=200)
    assert report.num_runs == 6 and report.markdown == out / "report.md"
    for name in (
        "report.md",
        "report.html",
        "scores.csv",
        "tables.md",
        "curves/overview.png",
        f"curves/{T2}.png",
    ):
        assert (out / name).is_file(), name
    assert (out / "curves" / "overview.png").read_bytes()[:4] == b"\x89PNG"
    markdown = report.markdown.read_text()
    for heading in (
        "Per-task scores: last3",
        "Per-task scores: final",
        "Family averages: last3",
        "Learning curves",
    ):
        assert f"## {heading}" in markdown
    assert "![learning curves](curves/overview.png)" in markdown
    assert "Displacement statistics (Fisher vs isotropic)" in markdown and "fisher_condition" in markdown
    assert "best evaluation is not reported" in markdown and "scores: best" not in markdown
    html = report.html.read_text()
    assert "<b>50.0 ± 10.0 (n=3)</b>" in html and "<img src='curves/overview.png'>" in html
    assert report.text == (out / "tables.md").read_text()

    with_best = build_report([runs], tmp_path / "best", fmt="latex", best=True, write_html=False, plots=False)
    assert "## Per-task scores: best" in with_best.markdown.read_text()
    assert "optimistic" in with_best.text and r"\begin{tabular}" in with_best.text
    assert with_best.html is None and not (tmp_path / "best" / "curves").exists()


def test_report_command(runs, tmp_path):  # noqa: F811
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


def test_bootstrap_band_of_the_mean():
    rng = np.random.default_rng(1)
    values = rng.normal(0.5, 0.1, size=(200, 3))
    mean, low, high = bootstrap_ci(values, num_resamples=2000, seed=0)
    assert mean == pytest.approx(values.mean(0))
    assert np.all(low < mean) and np.all(mean < high)
    # For many seeds the percentile band approaches mean +- 1.96 sigma / sqrt(n).
    half_width = 1.96 * values.std(0, ddof=1) / np.sqrt(200)
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.15)
    again = bootstrap_ci(values, num_resamples=2000, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip((mean, low, high), again, strict=True))  # seeded


def test_bootstrap_band_degenerate_cases():
    one_seed = np.array([[0.1, 0.4, 0.9]])
    mean, low, high = bootstrap_ci(one_seed)
    assert np.array_equal(low, mean) and np.array_equal(high, mean)
    same = np.full((4, 2), 0.3)
    _, low, high = bootstrap_ci(same)
    assert np.allclose(low, 0.3) and np.allclose(high, 0.3)
    with pytest.raises(ValueError, match="seeds, points"):
        bootstrap_ci(np.zeros(3))


def test_curve_bands_are_drawn_from_the_seeds(runs, tmp_path):  # noqa: F811
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

    import matplotlib.image

    report = build_report([runs], tmp_path / "r", num_resamples=200)
    image = matplotlib.image.imread(report.out_dir / "curves" / f"{T1}.png")
    assert image.shape[:2] == (396, 605)  # 5.5 x 3.6 inches at 110 dpi
    # The bands are drawn: pixels of each label's colour at 20% opacity over white.
    tab10 = [np.array(matplotlib.colors.to_rgb(c)) for c in ("#1f77b4", "#ff7f0e")]
    pixels = image[..., :3].reshape(-1, 3)
    for color in tab10:
        band = 0.2 * color + 0.8
        assert np.sum(np.all(np.abs(pixels - band) < 0.02, axis=1)) > 200
