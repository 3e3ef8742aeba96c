"""Figures of a report: learning curves with bootstrap bands over seeds, and the aggregate across tasks.

At each evaluation step with scores x_1..x_n (one per seed), the band is the percentile bootstrap
interval of the mean (:func:`fidec.stats.stratified_bootstrap_ci` with one stratum): resample n seeds with
replacement B times, take each resample's mean, and keep the (1 - c)/2 and (1 + c)/2 quantiles
(c = 0.95).  The generator is seeded, so a report is reproducible.  With one seed the band has zero width.

Every figure says one thing, with every panel's axes labelled (with units), text of at least 9 pt and the
legend outside the data: :func:`task_figure` one task, :func:`overview_figure` every task side by side,
:func:`aggregate_figure` the interquartile mean of each label with its interval (``plot_*`` write them).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter

from fidec.files import write_bytes_atomic
from fidec.formatting import METRIC_SCALE
from fidec.reports.aggregate import PROTOCOL_TEXT, AggregateInterval, AggregateScope, GroupScores
from fidec.reports.tables import METRIC_TEXT
from fidec.stats import stratified_bootstrap_ci

FONT_PT = 9  # the smallest text in any figure
TITLE_PT = 10
DPI = 110
STEPS_TEXT = "gradient steps"
BAND_TEXT = "line: mean over seeds; shaded: 95% bootstrap CI of the mean"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LINESTYLES = ("-", "--", "-.", ":")
_RC: Any = {  # matplotlib's stubs type rc keys as one Literal
    "font.size": FONT_PT,
    "axes.labelsize": FONT_PT,
    "axes.titlesize": FONT_PT,
    "xtick.labelsize": FONT_PT,
    "ytick.labelsize": FONT_PT,
    "legend.fontsize": FONT_PT,
    "figure.titlesize": TITLE_PT,
}


def aligned_curves(group: GroupScores) -> tuple[np.ndarray, np.ndarray]:
    """(steps, seeds x steps scores) on the evaluation steps every seed has."""
    common = sorted(set.intersection(*(set(steps.tolist()) for steps, _ in group.curves.values())))
    steps = np.array(common, dtype=np.int64)
    rows = []
    for seed in group.seeds:
        seed_steps, scores = group.curves[seed]
        lookup = dict(zip(seed_steps.tolist(), scores.tolist(), strict=True))
        rows.append([lookup[s] for s in common])
    return steps, np.array(rows, dtype=np.float64).reshape(len(group.seeds), len(common))


def curve_band(
    group: GroupScores, num_resamples: int = 2000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, low, high) of one (label, task) as drawn: scores in display units (success in %)."""
    steps, values = aligned_curves(group)
    if steps.size == 0:
        empty = np.zeros(0)
        return steps, empty, empty, empty
    values = values * METRIC_SCALE.get(group.metric, 1.0)
    mean, low, high = stratified_bootstrap_ci([values], np.mean, num_resamples=num_resamples, seed=seed)
    return steps, mean, low, high


def _styles(labels: Sequence[str]) -> dict[str, dict]:
    """Colour, marker and line style per label: curves that coincide stay distinguishable."""
    cycle = matplotlib.colormaps["tab10"]
    return {
        label: {
            "color": matplotlib.colors.to_hex(cycle(i % 10)),
            "marker": MARKERS[i % len(MARKERS)],
            "linestyle": LINESTYLES[i % len(LINESTYLES)],
        }
        for i, label in enumerate(labels)
    }


def _draw(
    ax: Axes, groups: Sequence[GroupScores], styles: dict[str, dict], num_resamples: int, seed: int
) -> None:
    """Mean curve with a marker at each evaluation, its bootstrap band, and both axes labelled."""
    for group in groups:
        steps, mean, low, high = curve_band(group, num_resamples, seed)
        if steps.size == 0:
            continue
        style = styles[group.label]
        ax.plot(steps, mean, label=group.label, linewidth=1.6, markersize=4, **style)
        ax.fill_between(steps, low, high, color=style["color"], alpha=0.2, linewidth=0)
    if groups and all(g.metric == "success" for g in groups):
        ax.set_ylim(-3, 103)  # success rate in %: always the full range, so panels compare at a glance
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set_xlabel(STEPS_TEXT)
    ax.set_ylabel(_metric_text(groups))
    ax.grid(alpha=0.3)


def _metric_text(groups: Sequence[GroupScores]) -> str:
    return ", ".join(dict.fromkeys(METRIC_TEXT.get(g.metric, g.metric) for g in groups))


def _legend_handles(labels: Sequence[str], styles: dict[str, dict], names: Sequence[str]) -> list[Line2D]:
    return [
        Line2D([], [], linewidth=1.6, markersize=4, label=name, **styles[label])
        for label, name in zip(labels, names, strict=True)
    ]


def _save(fig: Figure, path: Path) -> Path:
    """Write the figure as a PNG, atomically."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(_RC):  # tick labels are made while drawing: same sizes as the rest
        fig.savefig(buffer, format="png", dpi=DPI)
    return write_bytes_atomic(path, buffer.getvalue())


def plot_task(groups: Sequence[GroupScores], path: Path, num_resamples: int = 2000, seed: int = 0) -> Path:
    """Write :func:`task_figure` to ``path`` (PNG)."""
    return _save(task_figure(groups, num_resamples, seed), path)


def task_figure(groups: Sequence[GroupScores], num_resamples: int = 2000, seed: int = 0) -> Figure:
    """One task, every label: mean score against step with its 95% bootstrap band over seeds."""
    labels = list(dict.fromkeys(g.label for g in groups))
    styles = _styles(labels)
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(7.0, 3.8), layout="constrained")
        ax = fig.subplots()
        _draw(ax, groups, styles, num_resamples, seed)
        ax.set_title(BAND_TEXT)
        fig.suptitle(groups[0].task)
        seeds = {g.label: len(g.seeds) for g in groups}
        names = [f"{label} (n={seeds[label]})" for label in labels]
        fig.legend(handles=_legend_handles(labels, styles, names), loc="outside right upper", frameon=False)
    return fig


def plot_overview(
    groups: Sequence[GroupScores], path: Path, num_resamples: int = 2000, seed: int = 0, max_columns: int = 3
) -> Path:
    """Write :func:`overview_figure` to ``path`` (PNG)."""
    return _save(overview_figure(groups, num_resamples, seed, max_columns), path)


def overview_figure(
    groups: Sequence[GroupScores], num_resamples: int = 2000, seed: int = 0, max_columns: int = 3
) -> Figure:
    """Every task in its own labelled panel, one legend below them; bands as in :func:`task_figure`."""
    labels = list(dict.fromkeys(g.label for g in groups))
    tasks = list(dict.fromkeys(g.task for g in groups))
    columns = min(max_columns, len(tasks))
    rows = math.ceil(len(tasks) / columns)
    styles = _styles(labels)
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(max(3.4 * columns, 6.0), 2.9 * rows + 1.1), layout="constrained")
        axes = fig.subplots(rows, columns, squeeze=False)
        for ax, task in zip(axes.flat, tasks, strict=False):
            _draw(ax, [g for g in groups if g.task == task], styles, num_resamples, seed)
            ax.set_title(task)
        for ax in list(axes.flat)[len(tasks) :]:
            ax.axis("off")
        fig.legend(
            handles=_legend_handles(labels, styles, labels),
            loc="outside lower center",
            ncol=min(len(labels), 5),
            frameon=False,
        )
        fig.suptitle(f"Learning curves on each task ({BAND_TEXT})")
    return fig


def plot_aggregate(
    results: Sequence[tuple[AggregateScope, dict[str, AggregateInterval | None]]],
    protocol: str,
    path: Path,
    confidence: float = 0.95,
) -> Path:
    """Write :func:`aggregate_figure` to ``path`` (PNG)."""
    return _save(aggregate_figure(results, protocol, confidence), path)


def aggregate_figure(
    results: Sequence[tuple[AggregateScope, dict[str, AggregateInterval | None]]],
    protocol: str,
    confidence: float = 0.95,
) -> Figure:
    """The interquartile mean of each label with its stratified bootstrap interval, one panel per set of tasks
    (as in the IQM table): which labels are ahead across tasks, and by how much beyond the uncertainty."""
    labels = list(dict.fromkeys(label for _, row in results for label in row))
    styles = _styles(labels)
    percent = f"{100 * confidence:g}%"
    with matplotlib.rc_context(_RC):
        height = sum(0.32 * len(labels) + 0.9 for _ in results) + 0.6
        fig = Figure(figsize=(7.0, height), layout="constrained")
        axes = fig.subplots(len(results), 1, squeeze=False)[:, 0]
        for ax, (scope, by_label) in zip(axes, results, strict=True):
            scale = METRIC_SCALE.get(scope.metric, 1.0)
            for y, label in enumerate(labels):
                a = by_label.get(label)
                if a is None:
                    continue
                color = styles[label]["color"]
                ax.hlines(y, a.low * scale, a.high * scale, color=color, linewidth=6, alpha=0.45)
                ax.plot(a.value * scale, y, marker="|", markersize=14, color=color, markeredgewidth=2)
            ax.set_yticks(range(len(labels)), labels)
            ax.set_ylim(len(labels) - 0.5, -0.5)
            if scope.metric == "success":
                ax.set_xlim(-2, 102)
            ax.set_xlabel(f"IQM of {METRIC_TEXT.get(scope.metric, scope.metric)}")
            ax.set_ylabel("agent")
            ax.set_title(scope.name)
            ax.grid(axis="x", alpha=0.3)
        fig.suptitle(
            f"Aggregate across tasks: IQM (tick) with its {percent} stratified bootstrap CI (bar)\n"
            f"protocol: {PROTOCOL_TEXT[protocol]}"
        )
    return fig
