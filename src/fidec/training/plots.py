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

from fidec.files import write_bytes_atomic

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
# What each panel's y axis shows (units where there are any).
Y_LABELS = {
    "success": "success rate (fraction of episodes)",
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
    for seed, (steps, values) in sorted(series.items()):
        ax.plot(steps, values, linewidth=0.9, alpha=0.5, label=f"seed {seed}")
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
    panels: list[tuple[str, str, dict]] = [("evaluation", metric, _series(eval_rows, metric))]
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
