"""A run's metrics tables: ``<name>.jsonl`` (the record, one JSON object per row) and ``<name>.csv`` (the same rows).

The CSV columns are the union of keys seen so far; the file is rewritten when a new column appears (e.g.
at the start of the online phase).  On resume both files are cut back to the checkpoint's step, so a
resumed run writes the same bytes as an uninterrupted one.  Nothing time-dependent goes into them.
A row that one file lost (a torn line after a crash, a file damaged by hand) is rebuilt from the other
(:func:`recover_rows`): no row that exists in either file is lost.
Where the files live is :class:`fidec.training.rundir.RunDir`'s business.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fidec.files import WriteError, write_text_atomic

FIRST_COLUMNS = ("step", "seed", "phase")


def clean_value(value: Any) -> Any:
    """JSON-safe scalar: floats as Python floats (non-finite ones as strings), numpy scalars unwrapped."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _number(value: Any) -> Any:
    """'12' -> 12, '0.5' / 'nan' -> float; other strings unchanged (CSV cells and non-finite JSON values)."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return (
            int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
        )
    return value


def _parse_line(line: str) -> dict[str, Any] | None:
    """A JSONL row, or None for a torn or foreign line (one without ``step`` and ``seed``)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) and "step" in row and "seed" in row else None


def _csv_cells(path: Path) -> list[dict[str, str]]:
    """The CSV copy's rows as text cells; a torn last line (no newline yet) is left out."""
    try:
        text = path.read_text()
    except (FileNotFoundError, UnicodeDecodeError):
        return []
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    try:
        return [
            {k: v or "" for k, v in row.items() if k is not None}
            for row in csv.DictReader(io.StringIO(complete))
        ]
    except csv.Error:
        return []


def _int_cell(text: str | None) -> int | None:
    try:
        return int(text) if text not in (None, "") else None
    except ValueError:
        return None


def _cell_like(text: str, example: Any) -> Any:
    """A CSV cell as the JSONL record wrote it: a number as its text says (``1`` an int, ``1.0`` a float; a
    non-finite one stays a string, as :func:`clean_value` writes it), a boolean when the column's ``example``
    is one, else the text."""
    if isinstance(example, bool):
        return text == "True"
    number = _number(text)
    if isinstance(number, float) and not math.isfinite(number):
        return text
    if isinstance(number, int) and isinstance(example, float):
        return float(number)
    return number


def _rebuild(cells: Mapping[str, str], template: Mapping[str, Any] | None) -> dict[str, Any]:
    """A JSONL row rebuilt from its CSV copy: the keys and types of ``template`` (an intact row of the same
    phase), an empty cell of one of its keys read as null; without a template, the non-empty cells."""
    if template is None:
        return {k: _number(v) for k, v in cells.items() if v != ""}
    row: dict[str, Any] = {}
    for key, example in template.items():
        text = cells.get(key, "")
        row[key] = None if text == "" else _cell_like(text, example)
    row.update({k: _number(v) for k, v in cells.items() if k not in row and v != ""})
    return row


def _template_for(cells: Mapping[str, str], intact: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The intact row to copy keys and types from: same step and phase first, else the nearest of the phase."""
    step, phase = _int_cell(cells.get("step")), cells.get("phase")
    same_phase = [r for r in intact if r.get("phase") == phase]
    if not same_phase or step is None:
        return None
    return min(same_phase, key=lambda r: (abs(int(r["step"]) - step), r["step"] > step))


def recover_rows(jsonl_path: Path, csv_path: Path | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """The table's rows and one note per row rebuilt: the JSONL record, with every row it lost (a torn line,
    a line missing) rebuilt from the CSV copy, so that no row that exists in either file is lost.

    Without a ``.jsonl`` file the CSV copy is the table (numbers parsed, empty cells left out)."""
    cells = _csv_cells(csv_path) if csv_path is not None else []
    if not jsonl_path.exists():
        rows = [_rebuild(c, None) for c in cells]
        return [r for r in rows if "step" in r and "seed" in r], []
    lines = [line for line in jsonl_path.read_text().splitlines() if line.strip()]
    intact = [row for line in lines if (row := _parse_line(line)) is not None]
    if len(intact) == len(lines) and len(cells) <= len(intact):
        return intact, []
    have = {(r["step"], r["seed"]) for r in intact}
    order: dict[tuple[int, int], int] = {}
    rebuilt = []
    for index, row_cells in enumerate(cells):
        step, seed = _int_cell(row_cells.get("step")), _int_cell(row_cells.get("seed"))
        if step is None or seed is None:
            continue
        order.setdefault((step, seed), index)
        if (step, seed) not in have:
            rebuilt.append(_rebuild(row_cells, _template_for(row_cells, intact)))
            have.add((step, seed))
    # Rows in the files' order: by step, then as the CSV copy lists them.
    keyed = [
        ((r["step"], order.get((r["step"], r["seed"]), len(cells) + i)), r) for i, r in enumerate(intact)
    ]
    keyed += [((r["step"], order[(r["step"], r["seed"])]), r) for r in rebuilt]
    rows = [row for _, row in sorted(keyed, key=lambda pair: pair[0])]
    notes = [
        f"{jsonl_path.name}: row step {r['step']} seed {r['seed']} was lost (a torn or missing line); rebuilt it "
        f"from {csv_path.name if csv_path else 'the CSV copy'}"
        for r in rebuilt
    ]
    lost = len(lines) - len(intact) - len(rebuilt)
    if lost > 0:
        notes.append(
            f"{jsonl_path.name}: {lost} torn line(s) that no other copy holds were dropped (rows past the last "
            "checkpoint are recomputed on resume)"
        )
    return rows, notes


def read_rows(jsonl_path: Path, csv_path: Path | None = None) -> list[dict[str, Any]]:
    """Rows of a ``.jsonl`` table (the record; a row lost to a torn line is rebuilt from the ``.csv`` twin),
    else of its ``.csv`` twin; numbers parsed, rows without ``step`` and ``seed`` dropped."""
    rows, _ = recover_rows(jsonl_path, csv_path)
    return [{k: _number(v) for k, v in row.items()} for row in rows]


class MetricsTable:
    """One metrics table as ``<name>.jsonl`` (appended) and ``<name>.csv`` (same rows)."""

    def __init__(self, directory: Path, name: str):
        self.jsonl_path = directory / f"{name}.jsonl"
        self.csv_path = directory / f"{name}.csv"
        self.rows: list[dict] = []
        self.columns: list[str] = list(FIRST_COLUMNS)
        self.notes: list[str] = []

    def load(self, max_step: int | None) -> list[dict]:
        """Read existing rows (a row lost to a torn line rebuilt from the other copy, see :func:`recover_rows`;
        its note in :attr:`notes`), keep those with step <= max_step, rewrite both files."""
        recovered, self.notes = recover_rows(self.jsonl_path, self.csv_path)
        rows = [row for row in recovered if max_step is None or row["step"] <= max_step]
        self.rows = rows
        self.columns = self._columns_for(rows)
        write_text_atomic(self.jsonl_path, "".join(json.dumps(r) + "\n" for r in rows))
        self._rewrite_csv()
        return rows

    @staticmethod
    def _columns_for(rows: Sequence[Mapping]) -> list[str]:
        columns = list(FIRST_COLUMNS)
        for row in rows:
            columns.extend(k for k in row if k not in columns)
        return columns

    def _rewrite_csv(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text_atomic(self.csv_path, buffer.getvalue())

    def _append_text(self, path: Path, text: str) -> None:
        try:
            with open(path, "a") as stream:
                stream.write(text)
        except OSError as exc:
            raise WriteError(exc.errno, f"cannot append to {path}: {exc.strerror or exc}") from exc

    def append(self, rows: Sequence[Mapping[str, Any]]) -> None:
        cleaned = [{k: clean_value(v) for k, v in row.items()} for row in rows]
        self._append_text(self.jsonl_path, "".join(json.dumps(r) + "\n" for r in cleaned))
        self.rows.extend(cleaned)
        new_columns = self._columns_for(self.rows)
        if new_columns != self.columns:
            self.columns = new_columns
            self._rewrite_csv()
            return
        buffer = io.StringIO()
        csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\n").writerows(cleaned)
        self._append_text(self.csv_path, buffer.getvalue())
