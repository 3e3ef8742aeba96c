"""``fidec report DIRS``: tables, learning curves and a Markdown/HTML report.

:func:`report_command` is registered on the main CLI in :mod:`fidec.cli`; ``app`` runs it on its own
(``python -m fidec.reports.commands DIRS``).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from fidec.errors import user_errors
from fidec.reports.render import build_report


class TableFormat(StrEnum):
    md = "md"
    csv = "csv"
    latex = "latex"


def report_command(
    paths: list[Path] = typer.Argument(
        ..., help="Sweep directories (with manifest.json), run directories, or folders of them."
    ),
    fmt: TableFormat = typer.Option(TableFormat.md, "--format", help="Table format printed and written."),
    out: Path | None = typer.Option(
        None, "--out", help="Report folder (default: <sweep>/report for one sweep or run, else ./report)."
    ),
    best: bool = typer.Option(
        False, "--best", help="Also report the best evaluation (optimistic; labelled as such)."
    ),
    html: bool = typer.Option(True, "--html/--no-html", help="Also write report.html."),
    plots: bool = typer.Option(
        True, "--plots/--no-plots", help="Draw the learning curves and the aggregate."
    ),
    resamples: int = typer.Option(
        2000,
        "--bootstrap",
        min=100,
        help="Bootstrap resamples of the curves' 95% bands and of the IQM's stratified 95% intervals.",
    ),
) -> None:
    """Tables (per task and family, mean +- std over seeds; across tasks, the IQM with stratified bootstrap
    intervals), learning curves and report.md from runs.

    Protocols: last3 (mean of the last three evaluations; the paper's OGBench protocol averages those at
    80-100% of training) and final; the best evaluation only with --best.  Curves: mean over seeds with a
    95% bootstrap band.  Bold: the highest value of a row and every label whose interval overlaps it (none
    when all overlap).
    """
    if out is None:
        out = paths[0] / "report" if len(paths) == 1 else Path("report")
    with user_errors():
        report = build_report(
            paths, out, fmt=fmt.value, best=best, write_html=html, plots=plots, num_resamples=resamples
        )
    typer.echo(report.text)
    typer.echo(f"report: {report.markdown}" + (f" and {report.html}" if report.html else ""), err=True)
    if fmt is TableFormat.csv:
        typer.echo(f"aggregate (IQM) numbers: {report.aggregate_csv}", err=True)
    for note in report.notes:
        typer.echo(f"not included: {note}", err=True)


app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)
app.command("report")(report_command)

if __name__ == "__main__":
    app()
