"""Metrics tables: a row that one copy lost (a torn line, a line missing) is rebuilt from the other, exactly."""

from __future__ import annotations

from pathlib import Path

from fidec.training.metrics import MetricsTable, read_rows, recover_rows

ROWS = [
    {
        "step": 25,
        "seed": 0,
        "phase": "offline",
        "success": 0.5,
        "return_mean": -3.25,
        "normalized_score": None,
    },
    {
        "step": 25,
        "seed": 1,
        "phase": "offline",
        "success": 1.0,
        "return_mean": -1.0,
        "normalized_score": None,
    },
    {
        "step": 50,
        "seed": 0,
        "phase": "offline",
        "success": 0.0,
        "return_mean": "nan",
        "normalized_score": None,
    },
    {
        "step": 50,
        "seed": 1,
        "phase": "offline",
        "success": 0.1,
        "return_mean": -2.0000000001,
        "normalized_score": None,
    },
]


def _table(folder: Path) -> MetricsTable:
    table = MetricsTable(folder, "eval")
    table.append(ROWS)
    return table


def test_a_torn_last_line_is_rebuilt_byte_for_byte(tmp_path):
    table = _table(tmp_path)
    intact = table.jsonl_path.read_bytes()
    table.jsonl_path.write_bytes(intact[:-7])
    rows, notes = recover_rows(table.jsonl_path, table.csv_path)
    assert rows == ROWS and len(notes) == 1 and "step 50 seed 1" in notes[0]
    again = MetricsTable(tmp_path, "eval")
    again.load(None)
    assert again.jsonl_path.read_bytes() == intact and again.notes == notes


def test_a_missing_row_comes_back_in_its_place(tmp_path):
    table = _table(tmp_path)
    lines = table.jsonl_path.read_text().splitlines(keepends=True)
    table.jsonl_path.write_text("".join(lines[:1] + lines[2:]))  # seed 1 at step 25 lost
    rows, notes = recover_rows(table.jsonl_path, table.csv_path)
    assert rows == ROWS and "step 25 seed 1" in notes[0]
    assert read_rows(table.jsonl_path, table.csv_path)[1]["seed"] == 1


def test_a_torn_csv_line_is_not_trusted_and_the_csv_is_rewritten(tmp_path):
    table = _table(tmp_path)
    intact_csv = table.csv_path.read_bytes()
    table.csv_path.write_bytes(intact_csv[:-5])
    rows, notes = recover_rows(table.jsonl_path, table.csv_path)
    assert rows == ROWS and notes == []
    MetricsTable(tmp_path, "eval").load(None)
    assert table.csv_path.read_bytes() == intact_csv


def test_a_row_that_no_copy_holds_is_reported_as_dropped(tmp_path):
    table = _table(tmp_path)
    table.csv_path.write_text(table.csv_path.read_text().splitlines(keepends=True)[0])  # header only
    table.jsonl_path.write_bytes(table.jsonl_path.read_bytes()[:-7])
    rows, notes = recover_rows(table.jsonl_path, table.csv_path)
    assert rows == ROWS[:3] and "1 torn line(s)" in notes[0]
