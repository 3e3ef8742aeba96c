"""A run's metrics tables: ``<name>.jsonl`` (the record, one JSON object per row) and ``<name>.csv`` (the same rows).

The CSV columns are the union of keys seen so far; the file is rewritten when a new column appears (e.g.
at the start of the online phase).  On resume both files are cut back to the checkpoint's step, so a
resumed run writes the same bytes as an uninterrupted one.  Nothing time-dependent goes into them.
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


def read_rows(jsonl_path: Path, csv_path: Path | None = None) -> list[dict[str, Any]]:
    """Rows of a ``.jsonl`` table (the record; a torn last line is skipped), else of its ``.csv`` twin;
    numbers parsed, rows without ``step`` and ``seed`` dropped."""
    rows: list[dict[str, Any]] = []
    if jsonl_path.exists():
        for line in jsonl_path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    elif csv_path is not None and csv_path.exists():
        with open(csv_path, newline="") as stream:
            rows = [{k: v for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(stream)]
    return [{k: _number(v) for k, v in row.items()} for row in rows if "step" in row and "seed" in row]


class MetricsTable:
    """One metrics table as ``<name>.jsonl`` (appended) and ``<name>.csv`` (same rows)."""

    def __init__(self, directory: Path, name: str):
        self.jsonl_path = directory / f"{name}.jsonl"
        self.csv_path = directory / f"{name}.csv"
        self.rows: list[dict] = []
        self.columns: list[str] = list(FIRST_COLUMNS)

    def load(self, max_step: int | None) -> list[dict]:
        """Read existing rows (skipping a torn last line), keep those with step <= max_step, rewrite both files."""
        rows = []
        if self.jsonl_path.exists():
            for line in self.jsonl_path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if max_step is None or row["step"] <= max_step:
                    rows.append(row)
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
