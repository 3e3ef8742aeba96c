"""Learning curves of a run: evaluation score and key train metrics against step.

Each panel shows one thin line per seed and their mean as a thick line; a vertical dashed line marks
the start of the online phase when there is one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

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


def _draw(ax, series: dict[int, tuple[np.ndarray, np.ndarray]], title: str) -> None:
    for seed, (steps, values) in sorted(series.items()):
        ax.plot(steps, values, linewidth=0.8, alpha=0.45, label=f"seed {seed}")
    common = None
    for steps, _ in series.values():
        common = set(steps.tolist()) if common is None else common & set(steps.tolist())
    if common and len(series) > 1:
        grid = np.array(sorted(common))
        stacked = np.stack([values[np.searchsorted(steps, grid)] for steps, values in series.values()])
        ax.plot(grid, stacked.mean(axis=0), color="black", linewidth=2.0, label="mean")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)


def plot_learning_curves(
    train_rows: Sequence[Mapping[str, Any]],
    eval_rows: Sequence[Mapping[str, Any]],
    metric: str,
    path: str | Path,
    title: str = "",
    online_start: int | None = None,
) -> Path:
    """Write a PNG with the evaluation ``metric`` and up to five train metrics against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[tuple[str, dict]] = [(f"eval: {metric}", _series(eval_rows, metric))]
    for key in KEY_TRAIN_METRICS:
        series = _series(train_rows, key)
        if series and len(panels) < MAX_PANELS:
            panels.append((f"train: {key}", series))
    cols = 3 if len(panels) > 2 else len(panels)
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, (name, series) in zip(axes.flat, panels, strict=False):
        if series:
            _draw(ax, series, name)
        else:
            ax.set_title(f"{name} (no data)", fontsize=9)
        if online_start is not None:
            ax.axvline(online_start, color="grey", linestyle="--", linewidth=0.8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
