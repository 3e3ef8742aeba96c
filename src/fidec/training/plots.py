"""Learning curves of a run: the evaluation score and key train metrics against gradient steps.

Each panel shows one thin line per seed and their mean as a thick line; a vertical dashed line marks the
start of the online phase when there is one.  Text is at least 9 pt, every panel is labelled on both axes,
the legend sits below the panels.  Drawn without pyplot (no global backend is switched).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from fidec.files import write_bytes_atomic
from fidec.formatting import METRIC_SCALE

# Train metrics worth a panel, in order of preference (those an agent does not log are skipped).
KEY_TRAIN_METRICS = (
    "critic_loss",
    "actor_loss",
    "bc_loss",
    "penalty",
    "alpha",
    "q_mean",
    "distill_loss",
    "online/return_mean",
)
MAX_PANELS = 6
FONT_PT = 10


def _steps_label(x: float, _pos: object = None) -> str:
    """Tick text of a step count: 20000 -> '20k', 1500000 -> '1.5M' (labels stay short and never collide)."""
    if abs(x) >= 1e6:
        return f"{x / 1e6:g}M"
    if abs(x) >= 1e3:
        return f"{x / 1e3:g}k"
    return f"{x:g}"


# What each panel's y axis shows (units where there are any).
Y_LABELS = {
    "success": "success rate (% of episodes)",
    "normalized_score": "D4RL normalised return (x100)",
    "critic_loss": "critic loss (TD error squared)",
    "actor_loss": "actor loss",
    "bc_loss": "flow-matching loss",
    "penalty": "penalty delta^T F delta / d",
    "alpha": "alpha (Lagrange multiplier)",
    "q_mean": "mean Q(s, a)",
    "distill_loss": "distillation loss",
    "online/return_mean": "episode return (online)",
}


def _series(rows: Sequence[Mapping[str, Any]], key: str) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{seed: (steps, values)} of ``key`` (rows lacking it, or with a non-numeric value, skipped)."""
    out: dict[int, list[tuple[int, float]]] = {}
    for row in rows:
        value = row.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out.setdefault(row["seed"], []).append((row["step"], float(value)))
    return {
        seed: (np.array([p[0] for p in sorted(points)]), np.array([p[1] for p in sorted(points)]))
        for seed, points in out.items()
    }


def _draw(ax, series: dict[int, tuple[np.ndarray, np.ndarray]], title: str, ylabel: str) -> None:
    alone = len(series) == 1  # one seed: its line is the result, drawn at full strength
    for seed, (steps, values) in sorted(series.items()):
        marker = "o" if len(steps) <= 25 else None  # evaluations are few: show where they were taken
        ax.plot(
            steps,
            values,
            linewidth=1.6 if alone else 0.9,
            alpha=1.0 if alone else 0.5,
            marker=marker,
            markersize=4 if alone else 2.5,
            label=f"seed {seed}",
        )
    common: set[int] | None = None
    for steps, _ in series.values():
        common = set(steps.tolist()) if common is None else common & set(steps.tolist())
    if common and len(series) > 1:
        grid = np.array(sorted(common))
        stacked = np.stack([values[np.searchsorted(steps, grid)] for steps, values in series.values()])
        ax.plot(grid, stacked.mean(axis=0), color="black", linewidth=2.0, label="mean over seeds")
    ax.set_title(title, fontsize=FONT_PT)
    ax.set_xlabel("gradient steps", fontsize=FONT_PT)
    ax.set_ylabel(ylabel, fontsize=FONT_PT)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(_steps_label))
    ax.tick_params(labelsize=FONT_PT)
    ax.grid(alpha=0.3)


def learning_curves_figure(
    train_rows: Sequence[Mapping[str, Any]],
    eval_rows: Sequence[Mapping[str, Any]],
    metric: str,
    title: str = "",
    online_start: int | None = None,
) -> Figure:
    """The evaluation ``metric`` and up to five train metrics against gradient steps."""
    scale = METRIC_SCALE.get(metric, 1.0)
    evaluation = {
        seed: (steps, scale * values) for seed, (steps, values) in _series(eval_rows, metric).items()
    }
    panels: list[tuple[str, str, dict]] = [("evaluation", metric, evaluation)]
    for key in KEY_TRAIN_METRICS:
        series = _series(train_rows, key)
        if series and len(panels) < MAX_PANELS:
            panels.append(("training", key, series))
    cols = 3 if len(panels) > 2 else len(panels)
    rows = int(np.ceil(len(panels) / cols))
    fig = Figure(figsize=(4.6 * cols, 3.4 * rows + 0.9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (kind, key, series) in zip(axes.flat, panels, strict=False):
        ylabel = Y_LABELS.get(key, key)
        if series:
            _draw(ax, series, f"{kind}: {key}", ylabel)
        else:
            ax.set_title(f"{kind}: {key} (no data yet)", fontsize=FONT_PT)
            ax.set_xlabel("gradient steps", fontsize=FONT_PT)
            ax.set_ylabel(ylabel, fontsize=FONT_PT)
        if online_start is not None:
            ax.axvline(online_start, color="grey", linestyle="--", linewidth=0.9, label="online phase starts")
    for ax in list(axes.flat)[len(panels) :]:
        ax.remove()
    legend: dict[str, Any] = {}
    for ax in fig.axes:
        for handle, text in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(text, handle)
    if legend:
        fig.legend(
            list(legend.values()),
            list(legend),
            loc="outside lower center",
            ncol=min(len(legend), 6),
            fontsize=FONT_PT,
        )
    fig.suptitle(title or "learning curves", fontsize=FONT_PT + 1)
    return fig


def plot_learning_curves(
    train_rows: Sequence[Mapping[str, Any]],
    eval_rows: Sequence[Mapping[str, Any]],
    metric: str,
    path: str | Path,
    title: str = "",
    online_start: int | None = None,
) -> Path:
    """Write :func:`learning_curves_figure` as a PNG, atomically."""
    fig = learning_curves_figure(train_rows, eval_rows, metric, title, online_start)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return write_bytes_atomic(path, buffer.getvalue())
