"""Summary statistics every report in fidec uses: the mean and sample standard deviation over seeds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MeanStd:
    """Mean and sample standard deviation (ddof = 1; 0 for one value) of ``values``; None when empty."""

    mean: float | None
    std: float | None
    n: int
    values: tuple[float, ...] = ()


def mean_std(values: Iterable[float | None]) -> MeanStd:
    """Mean and sample std (ddof = 1) of the values that are not None (std 0 for a single value)."""
    kept = tuple(float(v) for v in values if v is not None)
    if not kept:
        return MeanStd(None, None, 0, ())
    std = float(np.std(kept, ddof=1)) if len(kept) > 1 else 0.0
    return MeanStd(float(np.mean(kept)), std, len(kept), kept)
