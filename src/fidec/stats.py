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


# -- comparing two groups of per-seed scores -------------------------------------------------------------

VERDICTS = ("distinguished", "not distinguished", "not testable")


@dataclass(frozen=True)
class Comparison:
    """Group ``b`` against group ``a`` (e.g. two agents' per-seed scores on one task): what the numbers
    support, from :func:`compare_groups`.

    Attributes:
        a, b: mean, sample std and values of each group.
        difference: mean(b) - mean(a).
        welch: the ``confidence`` interval of the difference from Welch's t (unequal variances,
            Welch-Satterthwaite degrees of freedom ``welch_df``); None when a group has fewer than two
            values.
        bootstrap: the percentile-bootstrap interval of the difference (each group's values resampled with
            replacement, keeping its size).  With three values per group it has at most 10 x 10 distinct
            resamples and is narrower than the Welch interval (anti-conservative): shown beside it, never
            used for the verdict.
        detectable: the minimum detectable difference: the smallest |true difference| that a two-sided
            Welch test at level 1 - ``confidence`` detects with probability ``power``, for the observed
            standard deviations and group sizes (noncentral t); None when not testable.  It is itself an
            estimate (it uses the sample stds).
        confidence, power: the levels used.
    """

    a: MeanStd
    b: MeanStd
    difference: float
    welch: tuple[float, float] | None
    welch_df: float | None
    bootstrap: tuple[float, float]
    detectable: float | None
    confidence: float
    power: float

    @property
    def overlap(self) -> bool:
        """Whether the mean ± std intervals of the two groups overlap (a description, not a test)."""
        sa, sb = self.a.std or 0.0, self.b.std or 0.0
        return intervals_overlap(
            (float(self.a.mean or 0.0) - sa, float(self.a.mean or 0.0) + sa),
            (float(self.b.mean or 0.0) - sb, float(self.b.mean or 0.0) + sb),
        )

    @property
    def verdict(self) -> str:
        """ "distinguished" when the Welch interval excludes 0, "not distinguished" when it contains 0, "not
        testable" when a group has fewer than two values.  "not distinguished" never means "equal": any
        difference smaller than :attr:`detectable` is likely to go unseen."""
        if self.welch is None:
            return "not testable"
        low, high = self.welch
        return "not distinguished" if low <= 0.0 <= high else "distinguished"

    @property
    def distinguished(self) -> bool:
        return self.verdict == "distinguished"

    def describe(self, scale: float = 1.0, decimals: int = 1, unit: str = "") -> str:
        """The comparison in words, e.g. "+14.4 points, Welch 95% interval [-2.1, +31.0]: not distinguished
        (n = 3 and 3; a difference below 25.3 points would likely go undetected)".  ``scale`` multiplies
        every number (100 for success rates in %), ``unit`` follows the difference and the detectable
        difference."""
        number = lambda v: f"{round(scale * v, decimals) + 0.0:+.{decimals}f}"  # never "-0.0"
        percent = f"{100 * self.confidence:g}%"
        sizes = f"n = {self.a.n} and {self.b.n}"
        if self.welch is None:
            return f"{number(self.difference)}{unit}: not testable ({sizes}; a group needs two values)"
        low, high = self.welch
        text = f"{number(self.difference)}{unit}, Welch {percent} interval [{number(low)}, {number(high)}]"
        if self.distinguished:
            return f"{text}: distinguished ({sizes})"
        detectable = f"{scale * (self.detectable or 0.0):.{decimals}f}{unit}"
        return (
            f"{text}: not distinguished ({sizes}; with this spread a difference below {detectable} would "
            f"likely go undetected: {100 * self.power:g}% power)"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (raw scale) of every number and the verdict."""
        return {
            "difference": self.difference,
            "welch": list(self.welch) if self.welch is not None else None,
            "welch_df": self.welch_df,
            "bootstrap": list(self.bootstrap),
            "detectable": self.detectable,
            "confidence": self.confidence,
            "power": self.power,
            "overlap": self.overlap,
            "verdict": self.verdict,
        }


def intervals_overlap(a: tuple[float, float], b: tuple[float, float], tolerance: float = 1e-9) -> bool:
    """Whether [a_low, a_high] and [b_low, b_high] share a point (``tolerance`` absorbs float round-off)."""
    return a[0] <= b[1] + tolerance and b[0] <= a[1] + tolerance


def bootstrap_difference(
    a: Sequence[float],
    b: Sequence[float],
    num_resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of mean(b) - mean(a), each group resampled with replacement on its
    own (keeping its size) from one seeded generator: ``a``'s draws first, then ``b``'s."""
    rng = np.random.default_rng(seed)
    xa, xb = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ia = rng.integers(0, len(xa), (num_resamples, len(xa)))
    ib = rng.integers(0, len(xb), (num_resamples, len(xb)))
    replicates = xb[ib].mean(axis=1) - xa[ia].mean(axis=1)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(replicates, [tail, 100.0 - tail])
    return float(low), float(high)


def welch_interval(
    a: MeanStd, b: MeanStd, confidence: float = 0.95
) -> tuple[tuple[float, float], float, float]:
    """((low, high), degrees of freedom, standard error) of mean(b) - mean(a) by Welch's t.

    Both groups need two or more values.  With no spread in either group the standard error is 0: the
    interval is the difference itself and the degrees of freedom are infinite."""
    from scipy import stats as scipy_stats

    if a.n < 2 or b.n < 2 or a.mean is None or b.mean is None:
        raise ValueError("Welch's interval needs two or more values in each group")
    va, vb = (a.std or 0.0) ** 2 / a.n, (b.std or 0.0) ** 2 / b.n
    se = float(np.sqrt(va + vb))
    difference = b.mean - a.mean
    if se == 0.0:
        return (difference, difference), float("inf"), 0.0
    df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2.0, df)) * se
    return (difference - half, difference + half), float(df), se


QUADRATURE_NODES = 200


def _power_function(df: float, confidence: float) -> Callable[[float], float]:
    """shift -> power of a two-sided t test with ``df`` degrees of freedom (see :func:`t_test_power`)."""
    from scipy import stats as scipy_stats

    critical = float(scipy_stats.t.ppf(0.5 + confidence / 2.0, df))
    if np.isinf(df):
        return lambda shift: float(
            scipy_stats.norm.cdf(shift - critical) + scipy_stats.norm.cdf(-shift - critical)
        )
    # Gauss-Legendre over the quantiles u of V ~ chi2(df): smooth on [0, 1] for any df.
    nodes, weights = np.polynomial.legendre.leggauss(QUADRATURE_NODES)
    bounds = critical * np.sqrt(scipy_stats.chi2.ppf((nodes + 1.0) / 2.0, df) / df)
    return lambda shift: float(
        np.sum(weights * (scipy_stats.norm.cdf(shift - bounds) + scipy_stats.norm.cdf(-shift - bounds))) / 2.0
    )


def t_test_power(shift: float, df: float, confidence: float = 0.95) -> float:
    """Power of a two-sided t test at level 1 - ``confidence`` when the true difference is ``shift``
    standard errors: P(|T| > t_crit) for T = (Z + shift) / sqrt(V / df), Z ~ N(0, 1), V ~ chi2(df) (the
    noncentral t), by Gauss-Legendre quadrature over the quantiles of V (within about 1e-6 of scipy's
    noncentral t, which returns NaN far in its tails at small df)."""
    return _power_function(df, confidence)(shift)


def detectable_difference(se: float, df: float, confidence: float = 0.95, power: float = 0.8) -> float:
    """The smallest |true difference| a two-sided t test at level 1 - ``confidence`` detects with
    probability ``power``, for a standard error ``se`` and ``df`` degrees of freedom (:func:`t_test_power`
    solved for the shift).  0 when ``se`` is 0."""
    from scipy import optimize

    if not 0.0 < power < 1.0 or not 0.0 < confidence < 1.0:
        raise ValueError(f"power and confidence must lie in (0, 1), got {power} and {confidence}")
    if power <= 1.0 - confidence:
        raise ValueError(f"power {power} must exceed the test's level {1.0 - confidence}")
    if se == 0.0:
        return 0.0
    power_at = _power_function(df, confidence)
    shortfall = lambda shift: power_at(shift) - power
    high = 4.0
    while shortfall(high) < 0.0:
        high *= 2.0
    return float(optimize.brentq(shortfall, 0.0, high, xtol=1e-8)) * se


def compare_groups(
    a: Iterable[float],
    b: Iterable[float],
    confidence: float = 0.95,
    power: float = 0.8,
    num_resamples: int = 10000,
    seed: int = 0,
) -> Comparison:
    """Compare two groups of per-seed scores (``b`` against ``a``): the one place where fidec decides what a
    sentence may say about a difference (see :class:`Comparison`: the Welch interval decides, the
    percentile bootstrap is shown beside it, the detectable difference says what a null result can rule
    out)."""
    sa, sb = mean_std(a), mean_std(b)
    if sa.n == 0 or sb.n == 0 or sa.mean is None or sb.mean is None:
        raise ValueError("compare_groups needs at least one value in each group")
    bootstrap = bootstrap_difference(sa.values, sb.values, num_resamples, confidence, seed)
    if sa.n < 2 or sb.n < 2:
        welch, df, detectable = None, None, None
    else:
        welch, df, se = welch_interval(sa, sb, confidence)
        detectable = detectable_difference(se, df, confidence, power)
    return Comparison(sa, sb, sb.mean - sa.mean, welch, df, bootstrap, detectable, confidence, power)
