"""Shared test helper: what keeps a matplotlib figure from being read at a glance."""

from __future__ import annotations

import itertools

import matplotlib.text

MIN_POINTS = 9.0


def readability_problems(fig) -> list[str]:
    """What keeps ``fig`` from being read at a glance (empty when nothing does)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    problems = []
    for text in fig.findobj(matplotlib.text.Text):
        if text.get_visible() and text.get_text().strip() and text.get_fontsize() < MIN_POINTS:
            problems.append(f"{text.get_text()!r} at {text.get_fontsize()} pt")
    for ax in fig.axes:
        if ax.get_legend() is not None:
            problems.append(f"a legend inside the axes {ax.get_title()!r}")
        if not ax.get_xlabel() or not ax.get_ylabel():
            problems.append(f"axes {ax.get_title()!r} without an x or y label")
    for legend in fig.legends:
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            overlap = box.intersection(box, ax.bbox)
            if overlap is not None and overlap.width > 1 and overlap.height > 1:
                problems.append(f"the legend covers the axes {ax.get_title()!r}")
    for ax in fig.axes:
        labels = [t for t in ax.get_xticklabels() if t.get_visible() and t.get_text().strip()]
        boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
        for left, right in itertools.pairwise(boxes):
            if right.x0 < left.x1:
                problems.append(f"x tick labels collide in the axes {ax.get_title()!r}")
                break
    if getattr(fig, "_suptitle", None) is None:
        problems.append("no title stating the figure's message")
    return problems
