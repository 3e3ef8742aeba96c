"""Learning curves with bootstrap confidence bands over seeds.

At each evaluation step with scores x_1..x_n (one per seed), the band is the percentile bootstrap
interval of the mean: resample n seeds with replacement B times, take each resample's mean, and keep
the (1 - c)/2 and (1 + c)/2 quantiles (c = 0.95).  The generator is seeded, so a report is reproducible.
With one seed the band has zero width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fidec.reports.aggregate import GroupScores
from fidec.reports.tables import METRIC_SCALE, METRIC_TEXT


def bootstrap_ci(
    values: np.ndarray, num_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, low, high) over axis 0 of ``values`` (seeds x points): percentile bootstrap of the mean."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] < 1:
        raise ValueError(f"values must be (seeds, points) with at least one seed, got shape {values.shape}")
    n = values.shape[0]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(num_resamples, n))
    means = values[picks].mean(axis=1)  # (resamples, points)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail], axis=0)
    return values.mean(axis=0), low, high


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
    return (steps, *bootstrap_ci(values, num_resamples=num_resamples, seed=seed))


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LINESTYLES = ("-", "--", "-.", ":")


def _draw(ax, groups: Sequence[GroupScores], styles: dict[str, dict], num_resamples: int, seed: int) -> None:
    """Mean curve with a marker at each evaluation, and the bootstrap band; each label keeps its style."""
    from matplotlib.ticker import EngFormatter

    for group in groups:
        steps, mean, low, high = curve_band(group, num_resamples, seed)
        if steps.size == 0:
            continue
        style = styles[group.label]
        ax.plot(
            steps, mean, label=f"{group.label} (n={len(group.seeds)})", linewidth=1.6, markersize=4, **style
        )
        ax.fill_between(steps, low, high, color=style["color"], alpha=0.2, linewidth=0)
    if groups and all(g.metric == "success" for g in groups):
        ax.set_ylim(-3, 103)  # success rate in %: always the full range, so panels compare at a glance
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.grid(alpha=0.3)


def _styles(labels: Sequence[str]) -> dict[str, dict]:
    """Colour, marker and line style per label: curves that coincide stay distinguishable."""
    import matplotlib

    cycle = matplotlib.colormaps["tab10"]
    return {
        label: {
            "color": matplotlib.colors.to_hex(cycle(i % 10)),
            "marker": MARKERS[i % len(MARKERS)],
            "linestyle": LINESTYLES[i % len(LINESTYLES)],
        }
        for i, label in enumerate(labels)
    }


def plot_task(groups: Sequence[GroupScores], path: Path, num_resamples: int = 2000, seed: int = 0) -> Path:
    """One task, every label: mean score against step with its 95% bootstrap band over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(g.label for g in groups))
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    _draw(ax, groups, _styles(labels), num_resamples, seed)
    ax.set_title(f"{groups[0].task}\nmean over seeds, 95% bootstrap CI", fontsize=9)
    ax.set_xlabel("gradient steps")
    ax.set_ylabel(METRIC_TEXT.get(groups[0].metric, groups[0].metric))
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_overview(
    groups: Sequence[GroupScores], path: Path, num_resamples: int = 2000, seed: int = 0, max_columns: int = 5
) -> Path:
    """Every task in one grid of panels (one shared legend); bands as in :func:`plot_task`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(g.label for g in groups))
    tasks = list(dict.fromkeys(g.task for g in groups))
    columns = min(max_columns, len(tasks))
    rows = math.ceil(len(tasks) / columns)
    width = max(3.4 * columns, 6.0)  # room for the title and legend even with one panel
    height = 2.6 * rows + 0.8
    fig, axes = plt.subplots(rows, columns, figsize=(width, height), squeeze=False)
    styles = _styles(labels)
    for ax, task in zip(axes.flat, tasks, strict=False):
        _draw(ax, [g for g in groups if g.task == task], styles, num_resamples, seed)
        ax.set_title(task, fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(tasks) :]:
        ax.axis("off")
    handles = [plt.Line2D([], [], linewidth=1.6, markersize=4, **styles[label]) for label in labels]
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8, frameon=False)
    metrics = ", ".join(dict.fromkeys(METRIC_TEXT.get(g.metric, g.metric) for g in groups))
    fig.suptitle(f"{metrics} against gradient steps\nmean over seeds, 95% bootstrap CI", fontsize=9)
    fig.tight_layout(rect=(0, 0.3 / height, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
