"""Summary statistics every report in fidec uses: the mean and sample standard deviation over seeds, the
interquartile mean, and stratified percentile-bootstrap confidence intervals."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike


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


def iqm(values: ArrayLike, axis: int | None = None) -> Any:
    """Interquartile mean: sort, cut floor(n/4) values from each end, average the rest (the 25% trimmed mean
    of Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice", as rliable's
    ``aggregate_iqm``).  Fewer than four values: nothing is cut, it is the mean.  ``axis=None`` pools all."""
    array = np.asarray(values, dtype=np.float64)
    if axis is None:
        array, axis = array.reshape(-1), 0
    n = array.shape[axis]
    if n == 0:
        raise ValueError("the interquartile mean of no values is undefined")
    cut = n // 4
    middle = np.take(np.sort(array, axis=axis), np.arange(cut, n - cut), axis=axis)
    return middle.mean(axis=axis)


def stratified_bootstrap_ci(
    strata: Sequence[ArrayLike],
    statistic: Callable[..., Any] = np.mean,
    num_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[Any, Any, Any]:
    """(estimate, low, high): ``statistic`` of the pooled samples and its percentile-bootstrap interval.

    Each stratum (e.g. one task's runs; shape (n_i, ...)) is resampled with replacement on its own, keeping
    n_i, and the resampled strata are pooled: the stratified bootstrap of Agarwal et al. (2021) and rliable's
    ``StratifiedBootstrap`` (runs resampled within each task).  ``statistic(x, axis=...)`` reduces the sample
    axis, e.g. ``np.mean`` or :func:`iqm`.  The interval holds the (1 - c)/2 and (1 + c)/2 quantiles of
    ``num_resamples`` replicates; a seeded generator makes it reproducible.  With one stratum and ``np.mean``
    it is the percentile bootstrap of the mean over axis 0 (one band per remaining index).
    """
    arrays = [np.asarray(s, dtype=np.float64) for s in strata]
    if not arrays or any(a.ndim < 1 or a.shape[0] < 1 for a in arrays):
        raise ValueError("give at least one stratum, each with at least one sample along axis 0")
    if len({a.shape[1:] for a in arrays}) > 1:
        raise ValueError(f"strata differ in shape beyond axis 0: {[a.shape for a in arrays]}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    rng = np.random.default_rng(seed)
    resampled = np.concatenate(
        [a[rng.integers(0, a.shape[0], size=(num_resamples, a.shape[0]))] for a in arrays], axis=1
    )
    replicates = statistic(resampled, axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail], axis=0)
    return statistic(np.concatenate(arrays, axis=0), axis=0), low, high
