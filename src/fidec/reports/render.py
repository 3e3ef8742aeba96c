"""Build a report from sweep or run directories: tables (md / csv / latex), learning curves, report.md and
report.html.

    <out>/report.md            what a person opens first: protocol, tables, curves, displacement statistics
    <out>/report.html          the same, self-contained apart from the PNGs beside it
    <out>/scores.csv           raw numbers: every (protocol, label, task) with each seed's value
    <out>/aggregate.csv        raw numbers of the IQM tables: every (protocol, set of tasks, label)
    <out>/runs.csv             every run read: label, task, seeds, wall time (a sweep manifest's), folder
    <out>/tables.md|tex        the score tables in the format asked for
    <out>/curves/overview.png  every task; curves/<task>.png one per task
    <out>/curves/aggregate.png the IQM of each label across tasks with its interval (last3 protocol)

Every file is written atomically; the output folder is checked before the bootstrap and the figures.
"""

from __future__ import annotations

import csv
import html
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fidec.files import output_dir, write_text_atomic
from fidec.reports.aggregate import (
    DISPLACEMENT_METRICS,
    Collection,
    GroupScores,
    ReportInputError,
    collect_runs,
    displacement_stats,
    group_scores,
    iqm_results,
)
from fidec.reports.curves import plot_aggregate, plot_overview, plot_task
from fidec.reports.tables import (
    FORMATS,
    Table,
    aggregate_csv,
    family_table,
    iqm_table,
    render,
    scores_csv,
    stats_table,
    task_table,
    to_html,
    to_markdown,
)

TABLE_SUFFIX = {"md": "md", "latex": "tex", "csv": "csv"}


@dataclass(frozen=True)
class Report:
    """Where the report's files are, and the score tables in the asked format (for printing)."""

    out_dir: Path
    markdown: Path
    html: Path | None
    tables_file: Path
    csv: Path
    aggregate_csv: Path
    figures: tuple[Path, ...]
    notes: tuple[str, ...]
    text: str
    num_runs: int


def score_tables(groups: Sequence[GroupScores], best: bool = False) -> list[Table]:
    """Per-task and per-family tables for the last-three and final protocols (and best, when asked)."""
    protocols = ["last3", "final"] + (["best"] if best else [])
    tables = [task_table(groups, p) for p in protocols]
    tables += [family_table(groups, p) for p in protocols]
    return tables


def displacement_table(collection: Collection) -> Table | None:
    stats = displacement_stats(collection.runs)
    if not stats:
        return None
    caption = (
        "Last logged value of each train metric (block means), mean ± sample std over every (task, seed) of the "
        "label in the task family (rows per family: the target divergence is set per family). delta: the "
        "refinement's displacement a - a_hat; penalty: delta^T F_n delta / d (FD) or ||delta||^2 / d (iso); "
        "fisher_condition: condition number of F_n."
    )
    rows = {f"{label}, {family}": values for (label, family), values in stats.items()}
    return stats_table(rows, "Displacement statistics (Fisher vs isotropic)", caption)


def runs_csv(collection: Collection) -> str:
    """One row per run read: label, task, seeds, wall time in seconds (empty when no manifest recorded it)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["label", "task", "seeds", "wall_s", "run_dir"])
    for run in collection.runs:
        wall = "" if run.wall_s is None else repr(run.wall_s)
        writer.writerow([run.label, run.task, " ".join(str(s) for s in run.seeds), wall, str(run.run_dir)])
    return out.getvalue()


def build_report(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    fmt: str = "md",
    best: bool = False,
    write_html: bool = True,
    plots: bool = True,
    num_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Report:
    """Read the runs under ``paths`` and write the report into ``out_dir`` (see the module docstring)."""
    if fmt not in FORMATS:
        raise ReportInputError(f"unknown --format {fmt!r}; use one of {', '.join(FORMATS)}")
    output_dir(out_dir, create=False)  # a bad --out is reported before the runs are read
    collection = collect_runs(paths)
    protocols = ["last3", "final"] + (["best"] if best else [])
    groups, group_notes = group_scores(collection.runs, protocols)
    if not groups:
        found = "; ".join(collection.notes) or "nothing"
        raise ReportInputError(
            f"no finished run with evaluations under {', '.join(str(p) for p in paths)} (found: {found}); "
            "give sweep or run directories that `fidec sweep` or `fidec train` completed"
        )
    notes = tuple(collection.notes) + tuple(group_notes)
    out = output_dir(out_dir)  # checked (and created) before the bootstrap and the figures
    iqm = {p: iqm_results(groups, p, None, num_resamples, confidence, seed) for p in protocols}
    iqm_tables = {p: iqm_table(iqm[p], p, num_resamples, confidence) for p in protocols}
    tables = score_tables(groups, best) + list(iqm_tables.values())
    extra = displacement_table(collection)

    csv_path = write_text_atomic(out / "scores.csv", scores_csv(groups, protocols))
    aggregate_path = write_text_atomic(out / "aggregate.csv", aggregate_csv(iqm, iqm_tables, confidence))
    write_text_atomic(out / "runs.csv", runs_csv(collection))
    if fmt == "csv":
        text, tables_file = csv_path.read_text(), csv_path
    else:
        text = "\n".join(render(t, fmt) for t in tables + ([extra] if extra else []))
        tables_file = write_text_atomic(out / f"tables.{TABLE_SUFFIX[fmt]}", text)

    figures: list[Path] = []
    if plots:
        figures.append(plot_overview(groups, out / "curves" / "overview.png", num_resamples, seed))
        figures.append(plot_aggregate(iqm["last3"], "last3", out / "curves" / "aggregate.png", confidence))
        for task in dict.fromkeys(g.task for g in groups):
            figures.append(
                plot_task(
                    [g for g in groups if g.task == task], out / "curves" / f"{task}.png", num_resamples, seed
                )
            )

    context = _Context(collection, groups, tables, extra, figures, notes, out, best)
    markdown = write_text_atomic(out / "report.md", _markdown(context))
    html_path = write_text_atomic(out / "report.html", _html(context)) if write_html else None
    return Report(
        out,
        markdown,
        html_path,
        tables_file,
        csv_path,
        aggregate_path,
        tuple(figures),
        notes,
        text,
        len(collection.runs),
    )


@dataclass(frozen=True)
class _Context:
    collection: Collection
    groups: Sequence[GroupScores]
    tables: Sequence[Table]
    extra: Table | None
    figures: Sequence[Path]
    notes: Sequence[str]
    out: Path
    best: bool


def _overview_lines(c: _Context) -> list[str]:
    labels = list(dict.fromkeys(g.label for g in c.groups))
    tasks = list(dict.fromkeys(g.task for g in c.groups))
    seeds = sorted({s for g in c.groups for s in g.seeds})
    return [
        f"{len(c.collection.runs)} finished run(s): {len(labels)} label(s) ({', '.join(labels)}) on "
        f"{len(tasks)} task(s), seeds {seeds}.",
        "Sources: " + _listed([f"`{s}`" for s in c.collection.sources]) + ".",
        "Protocol: *last3* = mean of the last three evaluations of a seed (at the steps the per-task table "
        "states; the paper's OGBench protocol averages the evaluations at 800k, 900k and 1M steps of a 1M-step "
        "run, 80-100% of training); *final* = the last evaluation. Per task and family each cell is the "
        "mean ± sample std (ddof=1) over seeds; across tasks, the interquartile mean (IQM) of every (task, seed) "
        "score with its stratified bootstrap confidence interval (Agarwal et al. 2021). In each row the highest "
        "value and every label whose interval overlaps it are bold (none when all overlap). "
        + (
            "*best* (max over evaluations) is optimistic and shown because it was asked for."
            if c.best
            else "The best evaluation is not reported (`--best` adds it, labelled)."
        ),
    ]


def _figure_sections(c: _Context) -> list[tuple[str, Path, list[Path]]]:
    """(heading, image shown, figures linked): the learning curves (overview, then one link per task) and
    the aggregate across tasks."""
    if not c.figures:
        return []
    overview, aggregate, *per_task = c.figures
    return [("Learning curves", overview, per_task), ("IQM across tasks (figure)", aggregate, [])]


def _listed(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _relative(path: Path, out: Path) -> str:
    return str(path.relative_to(out)) if path.is_relative_to(out) else str(path)


def _markdown(c: _Context) -> str:
    lines = [f"# Results ({time.strftime('%Y-%m-%d %H:%M')})", ""]
    lines += [line + "\n" for line in _overview_lines(c)]
    for table in c.tables:
        lines += [f"## {table.title}", "", to_markdown(table, title=False)]
    for heading, image, links in _figure_sections(c):
        lines += [f"## {heading}", "", f"![{heading.lower()}]({_relative(image, c.out)})", ""]
        lines += [f"- [{p.stem}]({_relative(p, c.out)})" for p in links] + ([""] if links else [])
    if c.extra is not None:
        lines += [f"## {c.extra.title}", "", to_markdown(c.extra, title=False)]
    else:
        lines += [
            "## Displacement statistics",
            "",
            f"No run logged any of {', '.join(DISPLACEMENT_METRICS)}.",
            "",
        ]
    if c.notes:
        lines += ["## Not included", ""] + [f"- {note}" for note in c.notes] + [""]
    return "\n".join(lines)


def _html(c: _Context) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>fidec report</title><style>",
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse;margin:1em 0}td,th{padding:2px 8px;border-bottom:1px solid #ddd;"
        "text-align:right}td:first-child,th:first-child{text-align:left}caption{caption-side:top;text-align:left;"
        "font-size:90%;margin-bottom:.4em}img{max-width:100%}",
        "</style></head><body>",
        f"<h1>Results ({html.escape(time.strftime('%Y-%m-%d %H:%M'))})</h1>",
    ]
    parts += [f"<p>{html.escape(line).replace('*', '')}</p>" for line in _overview_lines(c)]
    for table in c.tables:
        parts += [f"<h2>{html.escape(table.title)}</h2>", to_html(table)]
    for heading, image, links in _figure_sections(c):
        parts += [f"<h2>{html.escape(heading)}</h2>", f"<img src='{html.escape(_relative(image, c.out))}'>"]
        if links:
            parts += (
                ["<ul>"]
                + [
                    f"<li><a href='{html.escape(_relative(p, c.out))}'>{html.escape(p.stem)}</a></li>"
                    for p in links
                ]
                + ["</ul>"]
            )
    if c.extra is not None:
        parts += [f"<h2>{html.escape(c.extra.title)}</h2>", to_html(c.extra)]
    if c.notes:
        parts += ["<h2>Not included</h2><ul>"] + [f"<li>{html.escape(n)}</li>" for n in c.notes] + ["</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts)
