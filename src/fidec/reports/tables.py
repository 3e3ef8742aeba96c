"""Result tables: agents side by side, one row per task (or family, or set of tasks), with their intervals.

A :class:`Table` holds display-ready numbers (success rates in %, D4RL normalised returns as they are):
mean ± std over seeds, or an aggregate with its confidence interval.  In every row the highest value is
bold, and so is every label whose interval overlaps the highest one's (:func:`bold_flags`); each caption
says which interval.  Tables render to Markdown, LaTeX (booktabs) or HTML.  :func:`scores_csv` and
:func:`aggregate_csv` write the raw numbers instead.
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from fidec.formatting import METRIC_SCALE, format_fixed, format_interval, format_mean_std, markdown_table
from fidec.reports.aggregate import (
    PROTOCOL_TEXT,
    AggregateInterval,
    AggregateScope,
    GroupScores,
    family_average,
)
from fidec.stats import MeanStd, intervals_overlap

FORMATS = ("md", "csv", "latex")
METRIC_TEXT = {"success": "success rate (%)", "normalized_score": "D4RL normalised return (x100)"}
SCORE_DECIMALS = 1
# Interval overlap is judged on the numbers as shown; this absorbs float round-off in "low <= high".
_TOLERANCE = 1e-9
BOLD_RULE = (
    "Bold: the highest value of each row and every label whose {interval} overlaps the highest one's "
    "(none when the row has one value or all overlap, as nothing then stands out)."
)


@dataclass(frozen=True)
class Cell:
    """A shown value (already scaled) from ``n`` values: mean ± ``std``, or an estimate with its interval
    [``low``, ``high``]; ``bold`` as decided by :func:`bold_flags`."""

    value: float
    n: int
    std: float | None = None
    low: float | None = None
    high: float | None = None
    bold: bool = False

    def shown(self, decimals: int | None) -> tuple[float, float, float]:
        """(value, low, high) as displayed: mean ± std gives the interval [mean - std, mean + std]."""
        rounded = (lambda v: v) if decimals is None else (lambda v: round(v, decimals))
        value = rounded(self.value)
        if self.low is not None and self.high is not None:
            return value, rounded(self.low), rounded(self.high)
        spread = rounded(self.std or 0.0)
        return value, value - spread, value + spread

    def text(self, decimals: int | None, plus_minus: str = "±", show_n: bool = False) -> str:
        """'50.0 ± 10.0' or '50.0 [40.0, 60.0]'; with ``show_n``, the count: '50.0 ± 10.0 (n=3)'."""
        if self.low is not None:
            text = format_interval(self.value, self.low, self.high, decimals)
        else:
            text = format_mean_std(self.value, self.std, decimals, sep=plus_minus)
        return f"{text} (n={self.n})" if show_n else text


@dataclass(frozen=True)
class Row:
    """``name`` identifies the row (e.g. in the CSV files); ``note`` is shown after it."""

    name: str
    cells: tuple[Cell | None, ...]
    group: str = ""
    note: str = ""

    @property
    def title(self) -> str:
        return f"{self.name}, {self.note}" if self.note else self.name


@dataclass(frozen=True)
class Table:
    """``columns`` are the labels compared; rows with the same ``group`` are drawn together.

    ``decimals``: fixed decimals of every number, or None for 3 significant digits."""

    title: str
    caption: str
    row_header: str
    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    decimals: int | None = SCORE_DECIMALS
    show_n: bool = False


def _cell_text(cell: Cell | None, table: Table, plus_minus: str = "±") -> str:
    return "-" if cell is None else cell.text(table.decimals, plus_minus, table.show_n)


def bold_flags(shown: Sequence[tuple[float, float, float] | None]) -> list[bool]:
    """Which cells of a row are bold, from each cell's (value, low, high) as displayed.

    The highest value is bold (ties all), and so is every cell whose [low, high] overlaps the interval of a
    highest one.  Nothing is bold when fewer than two cells have a value or when every cell would be bold.
    """
    present = [s for s in shown if s is not None]
    if len(present) < 2:
        return [False] * len(shown)
    top = max(value for value, _, _ in present)
    best = [(low, high) for value, low, high in present if value == top]
    flags = [
        s is not None and any(intervals_overlap((s[1], s[2]), interval, _TOLERANCE) for interval in best)
        for s in shown
    ]
    if all(flag for flag, s in zip(flags, shown, strict=True) if s is not None):
        return [False] * len(shown)
    return flags


def _mark_bold(cells: Sequence[Cell | None], decimals: int | None) -> tuple[Cell | None, ...]:
    flags = bold_flags([None if c is None else c.shown(decimals) for c in cells])
    return tuple(None if c is None else replace(c, bold=flag) for c, flag in zip(cells, flags, strict=True))


def _scaled(stat: MeanStd | None, metric: str) -> Cell | None:
    if stat is None or stat.mean is None:
        return None
    scale = METRIC_SCALE.get(metric, 1.0)
    return Cell(stat.mean * scale, stat.n, std=(stat.std or 0.0) * scale)


T = TypeVar("T")


def _ordered(values: Sequence[T]) -> list[T]:
    """The distinct values in order of first appearance."""
    return list(dict.fromkeys(values))


def _metrics_text(groups: Sequence[GroupScores]) -> str:
    return "; ".join(METRIC_TEXT.get(m, m) for m in _ordered([g.metric for g in groups]))


def _counts(rows: Sequence[Row], unit: str) -> tuple[str, bool]:
    """('3 seeds', False) when every cell has 3 values, else ('seeds (n per cell)', True)."""
    ns = sorted({c.n for r in rows for c in r.cells if c is not None})
    if len(ns) == 1:
        return f"{ns[0]} {unit}{'s' if ns[0] != 1 else ''}", False
    return f"{unit}s (n per cell)", True


def task_table(groups: Sequence[GroupScores], protocol: str, labels: Sequence[str] | None = None) -> Table:
    """Rows = tasks (grouped by family), columns = labels: mean ± std over seeds of ``protocol``."""
    labels = list(labels or _ordered([g.label for g in groups]))
    by_key = {(g.label, g.task): g for g in groups}
    family_of = {g.task: g.family for g in groups}
    rows = []
    for family in _ordered([g.family for g in groups]):
        for task in [t for t in family_of if family_of[t] == family]:
            cells = [
                _scaled(by_key[(label, task)].stat(protocol), by_key[(label, task)].metric)
                if (label, task) in by_key
                else None
                for label in labels
            ]
            rows.append(Row(task, _mark_bold(cells, SCORE_DECIMALS), group=family))
    seeds_text, show_n = _counts(rows, "seed")
    steps = _ordered([g.last3_steps for g in groups])
    at = last3_span_text(steps[0]) if protocol == "last3" and len(steps) == 1 else ""
    caption = (
        f"Score: {_metrics_text(groups)}; protocol: {PROTOCOL_TEXT[protocol]}{at}. "
        f"Mean ± sample std (ddof=1) over {seeds_text}. {BOLD_RULE.format(interval='mean ± std interval')}"
    )
    return Table(f"Per-task scores: {protocol}", caption, "task", tuple(labels), tuple(rows), show_n=show_n)


def last3_span_text(steps: Sequence[int]) -> str:
    """', at steps 10000, 15000, 20000 (50-100% of training; ...)': where the last three evaluations lie, as a
    share of the steps up to the last one (a run's last evaluation is at its last training step), against the
    paper's 80-100% (800k, 900k and 1M steps of a 1M-step run)."""
    if not steps:
        return ""
    share = f"{100 * steps[0] / steps[-1]:.0f}-100%" if steps[-1] > 0 else "-"
    return (
        f", at steps {', '.join(str(s) for s in steps)} ({share} of training; the paper's OGBench protocol "
        "averages 800k, 900k and 1M steps of a 1M-step run, 80-100%)"
    )


def distinct_resamples(size: int) -> int:
    """Distinct multisets a bootstrap resample of ``size`` values can draw: C(2 size - 1, size) (10 for 3)."""
    return math.comb(2 * size - 1, size)


def family_table(groups: Sequence[GroupScores], protocol: str, labels: Sequence[str] | None = None) -> Table:
    """Rows = task families: per seed the mean over the family's tasks, then mean ± std over seeds.

    A label that lacks some task of a family gets no family average (it would not be comparable).
    """
    labels = list(labels or _ordered([g.label for g in groups]))
    rows = []
    for family in _ordered([g.family for g in groups]):
        family_tasks = _ordered([g.task for g in groups if g.family == family])
        cells = []
        for label in labels:
            members = [g for g in groups if g.label == label and g.family == family]
            complete = len(members) == len(family_tasks)
            cells.append(
                _scaled(family_average(members, protocol), members[0].metric)
                if complete and members
                else None
            )
        name = f"{family} ({len(family_tasks)} task{'s' if len(family_tasks) > 1 else ''})"
        rows.append(Row(name, _mark_bold(cells, SCORE_DECIMALS)))
    seeds_text, show_n = _counts(rows, "seed")
    caption = (
        f"Score: {_metrics_text(groups)}; protocol: {PROTOCOL_TEXT[protocol]}. For each seed the mean over the "
        f"family's tasks, then mean ± sample std (ddof=1) over {seeds_text}; '-' where a label lacks a task of the "
        f"family. {BOLD_RULE.format(interval='mean ± std interval')}"
    )
    return Table(f"Family averages: {protocol}", caption, "family", tuple(labels), tuple(rows), show_n=show_n)


def iqm_table(
    results: Sequence[tuple[AggregateScope, dict[str, AggregateInterval | None]]],
    protocol: str,
    num_resamples: int,
    confidence: float = 0.95,
) -> Table:
    """Rows = sets of tasks (each family, then all tasks of a metric), columns = labels: the interquartile
    mean of every (task, seed) score with its stratified bootstrap interval (see :func:`iqm_results`)."""
    labels = tuple(_ordered([label for _, row in results for label in row]))
    rows = []
    small = False
    for scope, by_label in results:
        scale = METRIC_SCALE.get(scope.metric, 1.0)
        cells = [
            None
            if (a := by_label.get(label)) is None
            else Cell(a.value * scale, a.num_runs, low=a.low * scale, high=a.high * scale)
            for label in labels
        ]
        runs = {c.n for c in cells if c is not None}
        note = "mean (n < 4)" if runs and max(runs) < 4 else ""  # nothing is cut: the "IQM" is the mean
        small = small or bool(note)
        rows.append(Row(scope.name, _mark_bold(cells, SCORE_DECIMALS), note=note))
    runs_text, show_n = _counts(rows, "score")
    runs_text = "n per cell" if show_n else runs_text
    metrics = "; ".join(METRIC_TEXT.get(m, m) for m in _ordered([s.metric for s, _ in results]))
    percent = f"{100 * confidence:g}%"
    caption = (
        f"Score: {metrics}; protocol: {PROTOCOL_TEXT[protocol]}. Interquartile mean (IQM) over every (task, seed) "
        f"score of the row's tasks ({runs_text}): the mean of the middle 50% after cutting the lowest and highest "
        f"quarter (fewer than four scores: their mean), with its {percent} stratified bootstrap confidence "
        f"interval [low, high] (seeds resampled with replacement within each task, {num_resamples} resamples, "
        "percentile interval; Agarwal et al. 2021, 'Deep RL at the Edge of the Statistical Precipice', as in "
        "the rliable library). '-' where a label lacks a task of the row. "
        + (
            "Rows marked 'mean (n < 4)' have fewer than four scores: nothing is cut, the value is their mean, "
            f"and with n scores in a task the bootstrap draws from at most C(2n - 1, n) distinct resamples "
            f"({distinct_resamples(3)} for n = 3), so those intervals are coarse. "
            if small
            else ""
        )
        + BOLD_RULE.format(interval=f"{percent} interval")
    )
    return Table(
        f"Aggregate across tasks (IQM): {protocol}", caption, "tasks", labels, tuple(rows), show_n=show_n
    )


def stats_table(stats: dict[str, dict[str, MeanStd]], title: str, caption: str) -> Table:
    """Rows = labels, columns = statistics (no bold): e.g. the displacement statistics."""
    columns = _ordered([key for by_key in stats.values() for key in by_key])
    rows = [
        Row(label, tuple(_scaled(by_key.get(key), "") for key in columns)) for label, by_key in stats.items()
    ]
    return Table(title, caption, "agent", tuple(columns), tuple(rows), decimals=None)


# -- rendering -------------------------------------------------------------------------------------------


def to_markdown(table: Table, title: bool = True) -> str:
    """A pipe table after its caption (preceded by the bold title unless ``title`` is False)."""
    caption = f"**{table.title}.** {table.caption}" if title else table.caption
    rows = [
        [
            row.title,
            *(f"**{_cell_text(c, table)}**" if c and c.bold else _cell_text(c, table) for c in row.cells),
        ]
        for row in table.rows
    ]
    return f"{caption}\n\n" + markdown_table([table.row_header, *table.columns], rows)


def _latex_escape(text: str) -> str:
    for char, escaped in (
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("#", r"\#"),
        ("_", r"\_"),
        ("$", r"\$"),
        ("{", r"\{"),
        ("}", r"\}"),
        ("±", r"$\pm$"),
    ):
        text = text.replace(char, escaped)
    return text


def to_latex(table: Table) -> str:
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{_latex_escape(table.title)}. {_latex_escape(table.caption)}}}",
        r"\begin{tabular}{l" + "c" * len(table.columns) + "}",
        r"\toprule",
        " & ".join(_latex_escape(h) for h in [table.row_header, *table.columns]) + r" \\",
        r"\midrule",
    ]
    previous = None
    for row in table.rows:
        if previous is not None and row.group != previous:
            lines.append(r"\midrule")
        previous = row.group
        cells = []
        for cell in row.cells:
            text = _cell_text(cell, table, plus_minus=r"$\pm$")
            cells.append(rf"\textbf{{{text}}}" if cell and cell.bold else text)
        lines.append(" & ".join([_latex_escape(row.title), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_html(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in [table.row_header, *table.columns])
    body = []
    for row in table.rows:
        cells = []
        for cell in row.cells:
            text = html.escape(_cell_text(cell, table))
            cells.append(f"<td><b>{text}</b></td>" if cell and cell.bold else f"<td>{text}</td>")
        body.append(f"<tr><td>{html.escape(row.title)}</td>{''.join(cells)}</tr>")
    return (
        f"<table>\n<caption><b>{html.escape(table.title)}.</b> {html.escape(table.caption)}</caption>\n"
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>\n"
    )


def _bold_cells(table: Table) -> set[tuple[str, str]]:
    """(row name, column) of every bold cell of ``table``."""
    return {
        (row.name, column)
        for row in table.rows
        for column, cell in zip(table.columns, row.cells, strict=True)
        if cell is not None and cell.bold
    }


def scores_csv(groups: Sequence[GroupScores], protocols: Sequence[str]) -> str:
    """Raw numbers (not scaled): one row per (protocol, label, task) with mean, std, n and each seed's value.

    ``bold`` is 1 for exactly the cells the per-task table of that protocol shows in bold.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["protocol", "family", "task", "label", "metric", "n_seeds", "mean", "std", "bold", "seeds", "values"]
    )
    for protocol in protocols:
        bold = _bold_cells(task_table(groups, protocol))
        for g in groups:
            stat = g.stat(protocol)
            writer.writerow(
                [
                    protocol,
                    g.family,
                    g.task,
                    g.label,
                    g.metric,
                    stat.n,
                    repr(stat.mean),
                    repr(stat.std),
                    int((g.task, g.label) in bold),
                    " ".join(str(s) for s in g.seeds),
                    " ".join(repr(v) for v in stat.values),
                ]
            )
    return out.getvalue()


def aggregate_csv(
    results: Mapping[str, Sequence[tuple[AggregateScope, dict[str, AggregateInterval | None]]]],
    tables: Mapping[str, Table],
    confidence: float = 0.95,
) -> str:
    """Raw numbers (not scaled) of the IQM tables: one row per (protocol, scope, label) with the IQM, its
    interval, the numbers of tasks and runs; ``bold`` as in the table of that protocol."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "protocol",
            "scope",
            "metric",
            "label",
            "n_tasks",
            "n_runs",
            "iqm",
            "ci_low",
            "ci_high",
            "confidence",
            "bold",
        ]
    )
    for protocol, rows in results.items():
        bold = _bold_cells(tables[protocol])
        for scope, by_label in rows:
            for label, a in by_label.items():
                if a is None:
                    continue
                writer.writerow(
                    [
                        protocol,
                        scope.name,
                        scope.metric,
                        label,
                        a.num_tasks,
                        a.num_runs,
                        repr(a.value),
                        repr(a.low),
                        repr(a.high),
                        format_fixed(confidence, 2),
                        int((scope.name, label) in bold),
                    ]
                )
    return out.getvalue()


def render(table: Table, fmt: str) -> str:
    """``fmt``: "md" or "latex" (CSV holds raw numbers: see :func:`scores_csv` and :func:`aggregate_csv`)."""
    if fmt == "md":
        return to_markdown(table)
    if fmt == "latex":
        return to_latex(table)
    raise ValueError(f"unknown table format {fmt!r}; use one of {FORMATS}")
