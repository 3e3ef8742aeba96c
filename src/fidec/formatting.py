"""How fidec writes numbers and tables in its text outputs (Markdown pages, console summaries)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

# Scores shown on another scale than they are stored: success rates are fractions, shown in %
# (normalized_score is already x100).
METRIC_SCALE = {"success": 100.0}


def format_number(value: Any, digits: int = 3) -> str:
    """Compact text of a number: ``digits`` significant digits, thousands without decimals, integers with
    separators, booleans as yes/no, '-' for None or NaN; anything else as ``str``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def format_fixed(value: float | None, decimals: int = 1) -> str:
    """``value`` with a fixed number of decimals ('-' for None or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{decimals}f}"


def format_percent(value: float | None, decimals: int = 0) -> str:
    """A fraction as a percentage: 0.853 -> '85%' ('-' for None or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.{decimals}f}%"


def format_mean_std(
    mean: float | None, std: float | None, decimals: int | None = None, sep: str = "±"
) -> str:
    """'mean ± std' with ``decimals`` fixed decimals, or 3 significant digits when ``decimals`` is None."""
    if mean is None:
        return "-"
    return f"{_decimal(mean, decimals)} {sep} {_decimal(0.0 if std is None else std, decimals)}"


def format_interval(
    value: float | None, low: float | None, high: float | None, decimals: int | None = None
) -> str:
    """'value [low, high]' (a point estimate and its confidence interval), numbers as in
    :func:`format_mean_std`; '-' when ``value`` is None."""
    if value is None:
        return "-"
    return f"{_decimal(value, decimals)} [{_decimal(low, decimals)}, {_decimal(high, decimals)}]"


def _decimal(value: float | None, decimals: int | None) -> str:
    """``decimals`` fixed decimals, or :func:`format_number`'s 3 significant digits when None."""
    return (
        format_number(None if value is None else float(value))
        if decimals is None
        else format_fixed(value, decimals)
    )


def listed(items: Iterable[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub pipe table.  ``align``: one letter per column, 'l' or 'r' (default: first left, rest right).
    Cells are written with ``str`` (format them first)."""
    align = align or "l" + "r" * (len(headers) - 1)
    if len(align) != len(headers):
        raise ValueError(f"align has {len(align)} letters for {len(headers)} columns")
    rule = "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"
    lines = ["| " + " | ".join(headers) + " |", rule]
    for row in rows:
        cells = [str(c) for c in row]
        if len(cells) != len(headers):
            raise ValueError(f"a row has {len(cells)} cells for {len(headers)} columns: {cells}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
