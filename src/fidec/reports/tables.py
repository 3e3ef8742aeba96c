"""Result tables: agents side by side, one row per task (or family), mean ± std over seeds, best in bold.

A :class:`Table` holds display-ready numbers (success rates in %, D4RL normalised returns as they are)
and renders to Markdown, LaTeX (booktabs) or HTML.  :func:`scores_csv` writes the raw numbers instead,
one row per (protocol, label, task) with every seed's value.
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from fidec.reports.aggregate import PROTOCOL_TEXT, GroupScores, Stat, family_average

FORMATS = ("md", "csv", "latex")
METRIC_SCALE = {"success": 100.0}  # success rates are shown in %; normalized_score is already x100
METRIC_TEXT = {"success": "success rate (%)", "normalized_score": "D4RL normalised return (x100)"}


@dataclass(frozen=True)
class Cell:
    """A shown value: mean ± std over ``n`` seeds (already scaled), marked bold when best in its row."""

    mean: float
    std: float
    n: int
    bold: bool = False


@dataclass(frozen=True)
class Row:
    name: str
    cells: tuple[Cell | None, ...]
    group: str = ""


@dataclass(frozen=True)
class Table:
    """``columns`` are the labels compared; rows with the same ``group`` are drawn together."""

    title: str
    caption: str
    row_header: str
    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    digits: int = 1
    show_n: bool = False


def _scaled(stat: Stat | None, metric: str) -> Cell | None:
    if stat is None or stat.n == 0 or math.isnan(stat.mean):
        return None
    scale = METRIC_SCALE.get(metric, 1.0)
    return Cell(stat.mean * scale, stat.std * scale, stat.n)


def best_flags(shown: Sequence[float | None]) -> list[bool]:
    """True for the highest of the displayed values (ties all True); all False when fewer than two values
    are present or when every present value ties (nothing stands out)."""
    present = [v for v in shown if v is not None]
    if len(present) < 2 or len(set(present)) == 1:
        return [False] * len(shown)
    best = max(present)
    return [v is not None and v == best for v in shown]


def _mark_best(cells: Sequence[Cell | None], digits: int) -> tuple[Cell | None, ...]:
    """Bold the highest mean as displayed (see :func:`best_flags`)."""
    flags = best_flags([None if c is None else round(c.mean, digits) for c in cells])
    return tuple(
        None if c is None else Cell(c.mean, c.std, c.n, bold=flag)
        for c, flag in zip(cells, flags, strict=True)
    )


def _ordered(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _metrics_text(groups: Sequence[GroupScores]) -> str:
    return "; ".join(METRIC_TEXT.get(m, m) for m in _ordered([g.metric for g in groups]))


def _seed_counts(rows: Sequence[Row]) -> tuple[str, bool]:
    """('3 seeds', False) when every cell has 3 seeds, else ('seeds (n per cell)', True)."""
    ns = sorted({c.n for r in rows for c in r.cells if c is not None})
    if len(ns) == 1:
        return f"{ns[0]} seed{'s' if ns[0] > 1 else ''}", False
    return "seeds (n per cell)", True


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
            rows.append(Row(task, _mark_best(cells, 1), group=family))
    seeds_text, show_n = _seed_counts(rows)
    steps = _ordered([g.last3_steps for g in groups])
    at = (
        f", at steps {', '.join(str(s) for s in steps[0])}"
        if protocol == "last3" and len(steps) == 1
        else ""
    )
    caption = (
        f"Score: {_metrics_text(groups)}; protocol: {PROTOCOL_TEXT[protocol]}{at}. "
        f"Mean ± sample std (ddof=1) over {seeds_text}; the highest mean of each row in bold."
    )
    return Table(f"Per-task scores: {protocol}", caption, "task", tuple(labels), tuple(rows), show_n=show_n)


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
        rows.append(
            Row(
                f"{family} ({len(family_tasks)} task{'s' if len(family_tasks) > 1 else ''})",
                _mark_best(cells, 1),
            )
        )
    seeds_text, show_n = _seed_counts(rows)
    caption = (
        f"Score: {_metrics_text(groups)}; protocol: {PROTOCOL_TEXT[protocol]}. For each seed the mean over the "
        f"family's tasks, then mean ± sample std (ddof=1) over {seeds_text}; '-' where a label lacks a task of the "
        "family; the highest mean of each row in bold."
    )
    return Table(f"Family averages: {protocol}", caption, "family", tuple(labels), tuple(rows), show_n=show_n)


def stats_table(stats: dict[str, dict[str, Stat]], title: str, caption: str) -> Table:
    """Rows = labels, columns = statistics (no best marking): e.g. the displacement statistics."""
    columns = _ordered([key for by_key in stats.values() for key in by_key])
    rows = [
        Row(label, tuple(_scaled(by_key.get(key), "") for key in columns)) for label, by_key in stats.items()
    ]
    return Table(title, caption, "agent", tuple(columns), tuple(rows), digits=3)


# -- rendering -------------------------------------------------------------------------------------------


def _number(value: float, digits: int) -> str:
    if digits == 3:  # statistics of any magnitude: significant digits
        return f"{value:.3g}"
    return f"{value:.{digits}f}"


def cell_text(cell: Cell | None, digits: int, plus_minus: str = "±", show_n: bool = False) -> str:
    """'50.0 ± 10.0' ('-' for no value); with ``show_n``, the number of seeds: '50.0 ± 10.0 (n=3)'."""
    if cell is None:
        return "-"
    text = f"{_number(cell.mean, digits)} {plus_minus} {_number(cell.std, digits)}"
    return f"{text} (n={cell.n})" if show_n else text


def to_markdown(table: Table, title: bool = True) -> str:
    """A pipe table after its caption (preceded by the bold title unless ``title`` is False)."""
    header = [table.row_header, *table.columns]
    caption = f"**{table.title}.** {table.caption}" if title else table.caption
    lines = [caption, "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "---|" + "---:|" * len(table.columns))
    for row in table.rows:
        cells = [
            f"**{cell_text(c, table.digits, show_n=table.show_n)}**"
            if c and c.bold
            else cell_text(c, table.digits, show_n=table.show_n)
            for c in row.cells
        ]
        lines.append("| " + " | ".join([row.name, *cells]) + " |")
    return "\n".join(lines) + "\n"


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
            text = cell_text(cell, table.digits, plus_minus=r"$\pm$", show_n=table.show_n)
            cells.append(rf"\textbf{{{text}}}" if cell and cell.bold else text)
        lines.append(" & ".join([_latex_escape(row.name), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_html(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in [table.row_header, *table.columns])
    body = []
    for row in table.rows:
        cells = []
        for cell in row.cells:
            text = html.escape(cell_text(cell, table.digits, show_n=table.show_n))
            cells.append(f"<td><b>{text}</b></td>" if cell and cell.bold else f"<td>{text}</td>")
        body.append(f"<tr><td>{html.escape(row.name)}</td>{''.join(cells)}</tr>")
    return (
        f"<table>\n<caption><b>{html.escape(table.title)}.</b> {html.escape(table.caption)}</caption>\n"
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>\n"
    )


def scores_csv(groups: Sequence[GroupScores], protocols: Sequence[str]) -> str:
    """Raw numbers (not scaled): one row per (protocol, label, task) with mean, std, n and each seed's value.

    ``best`` is 1 for the label(s) with the highest mean of a (protocol, task), compared at the tables'
    display precision with the tables' rule (:func:`best_flags`), so CSV and tables mark the same cells.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["protocol", "family", "task", "label", "metric", "n_seeds", "mean", "std", "best", "seeds", "values"]
    )
    for protocol in protocols:
        stats = [g.stat(protocol) for g in groups]
        shown = [
            round(st.mean * METRIC_SCALE.get(g.metric, 1.0), 1) for g, st in zip(groups, stats, strict=True)
        ]
        best_of = {}
        for task in _ordered([g.task for g in groups]):
            members = [i for i, g in enumerate(groups) if g.task == task]
            best_of.update(zip(members, best_flags([shown[i] for i in members]), strict=True))
        for i, (g, stat) in enumerate(zip(groups, stats, strict=True)):
            best = best_of[i]
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
                    int(best),
                    " ".join(str(s) for s in g.seeds),
                    " ".join(repr(v) for v in stat.values),
                ]
            )
    return out.getvalue()


def render(table: Table, fmt: str) -> str:
    """``fmt``: "md" or "latex" (CSV holds raw numbers: see :func:`scores_csv`)."""
    if fmt == "md":
        return to_markdown(table)
    if fmt == "latex":
        return to_latex(table)
    raise ValueError(f"unknown table format {fmt!r}; use one of {FORMATS}")
