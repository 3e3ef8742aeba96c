"""The aggregate across tasks: interquartile mean and stratified bootstrap intervals (fidec.stats), checked
against values known by hand, their definition (scipy's trimmed mean, rliable) and their coverage."""

from __future__ import annotations

import numpy as np
import pytest

from fidec.stats import compare_groups, iqm, stratified_bootstrap_ci


def test_iqm_of_known_arrays():
    # 8 values: two cut from each end -> mean(2, 3, 4, 5); the outliers do not move it
    assert iqm([-50.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1000.0]) == pytest.approx(3.5)
    assert iqm([[4.0, 1.0], [3.0, 2.0]]) == pytest.approx(2.5)  # pooled over every axis: mean(2, 3)
    assert iqm([1.0, 2.0, 9.0]) == pytest.approx(4.0)  # fewer than four values: nothing cut, the mean
    assert iqm([0.0, 1.0, 2.0, 3.0, 100.0]) == pytest.approx(2.0)  # 5 values: one cut from each end
    assert iqm(np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]]), axis=0) == pytest.approx(
        [2.5, 25.0]
    )
    with pytest.raises(ValueError, match="no values"):
        iqm([])


def test_iqm_is_the_25_percent_trimmed_mean():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for n in range(1, 30):
        values = rng.normal(size=(n, 3))
        assert iqm(values) == pytest.approx(stats.trim_mean(values, 0.25, axis=None))
        assert iqm(values, axis=0) == pytest.approx(stats.trim_mean(values, 0.25, axis=0))


def test_resampling_within_tasks_keeps_each_task_s_share():
    # Task A scores 0, task B scores 1 in every run: every stratified resample holds three of each, so the
    # IQM is 0.5 in every replicate and the interval has no width (pooled resampling would spread it).
    value, low, high = stratified_bootstrap_ci([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], iqm, num_resamples=500)
    assert (value, low, high) == pytest.approx((0.5, 0.5, 0.5))
    value, low, high = stratified_bootstrap_ci([[0.0, 0.0, 0.0, 1.0, 1.0, 1.0]], iqm, num_resamples=500)
    assert value == pytest.approx(0.5) and low < 0.4 and high > 0.6


def test_bootstrap_interval_covers_the_true_iqm():
    # Ten tasks whose means are symmetric about 0.5, ten runs each: the pooled population is symmetric about
    # 0.5, so its IQM is 0.5.  A 95% interval should cover it in about 95% of repeated experiments; the
    # percentile bootstrap covers a little less with few runs per task (resampling n runs shrinks the
    # variance by (n - 1) / n): 0.927 over 1000 such experiments, 0.91 with five runs per task.
    task_means = np.linspace(0.3, 0.7, 10)
    rng = np.random.default_rng(0)
    trials = 400
    covered = 0
    for trial in range(trials):
        scores = rng.normal(task_means, 0.1, size=(10, 10))
        _, low, high = stratified_bootstrap_ci(list(scores.T), iqm, num_resamples=1000, seed=trial)
        covered += low <= 0.5 <= high
    assert 0.89 <= covered / trials <= 0.98


def test_one_stratum_with_the_mean_is_the_percentile_bootstrap_of_the_mean():
    rng = np.random.default_rng(1)
    values = rng.normal(0.5, 0.1, size=(200, 3))
    mean, low, high = stratified_bootstrap_ci([values], np.mean, num_resamples=2000, seed=0)
    assert mean == pytest.approx(values.mean(0))
    assert np.all(low < mean) and np.all(mean < high)
    # For many samples the percentile interval approaches mean +- 1.96 sigma / sqrt(n).
    half_width = 1.96 * values.std(0, ddof=1) / np.sqrt(200)
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.15)
    again = stratified_bootstrap_ci([values], np.mean, num_resamples=2000, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip((mean, low, high), again, strict=True))  # seeded


def test_bootstrap_degenerate_cases_and_bad_input():
    one_seed = np.array([[0.1, 0.4, 0.9]])
    mean, low, high = stratified_bootstrap_ci([one_seed])
    assert np.array_equal(low, mean) and np.array_equal(high, mean)
    _, low, high = stratified_bootstrap_ci([np.full((4, 2), 0.3)])
    assert np.allclose(low, 0.3) and np.allclose(high, 0.3)
    with pytest.raises(ValueError, match="at least one stratum"):
        stratified_bootstrap_ci([])
    with pytest.raises(ValueError, match="at least one sample"):
        stratified_bootstrap_ci([[1.0], []])
    with pytest.raises(ValueError, match="differ in shape"):
        stratified_bootstrap_ci([np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(ValueError, match="confidence"):
        stratified_bootstrap_ci([[1.0, 2.0]], confidence=95)


def test_same_interval_as_rliable():
    """rliable (optional; not a fidec dependency) on the same scores: the same estimate, and bounds equal
    within the Monte Carlo error of the two (differently seeded) bootstraps."""
    library = pytest.importorskip("rliable.library")
    metrics = pytest.importorskip("rliable.metrics")
    rng = np.random.default_rng(7)
    scores = rng.beta(2.0, 3.0, size=(5, 8)) + np.linspace(0.0, 0.3, 8)  # 5 runs x 8 tasks
    points, intervals = library.get_interval_estimates(
        {"a": scores},
        lambda x: np.array([metrics.aggregate_iqm(x)]),
        reps=20000,
        random_state=np.random.RandomState(0),
    )
    value, low, high = stratified_bootstrap_ci(list(scores.T), iqm, num_resamples=20000)
    assert value == pytest.approx(points["a"][0])
    assert (low, high) == pytest.approx((intervals["a"][0, 0], intervals["a"][1, 0]), abs=0.005)


# -- compare_groups: the verdict every page words its comparisons with ------------------------------------


def test_welch_interval_is_scipy_s_and_decides_the_verdict():
    stats = pytest.importorskip("scipy.stats")
    a, b = [0.10, 0.05, 0.15], [0.20, 0.35, 0.25, 0.30]
    c = compare_groups(a, b)
    expected = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert c.difference == pytest.approx(np.mean(b) - np.mean(a))
    assert c.welch == pytest.approx((expected.low, expected.high))
    va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 4
    assert c.welch_df == pytest.approx((va + vb) ** 2 / (va**2 / 2 + vb**2 / 3))
    assert c.welch[0] > 0 and c.verdict == "distinguished" and c.distinguished
    wide = compare_groups([0.0, 0.1, 0.2], [0.05, 0.15, 0.3])
    assert wide.welch[0] < 0 < wide.welch[1] and wide.verdict == "not distinguished"
    assert not wide.distinguished


def test_the_bootstrap_interval_is_shown_but_narrower_with_three_seeds():
    """With three values a side the percentile bootstrap is anti-conservative: it can exclude 0 where the
    Welch interval does not, and the verdict follows Welch."""
    a, b = [0.0, 0.0167, 0.0167], [0.0667, 0.1667, 0.1]  # fql and fd, cube-single, last three (rounded)
    c = compare_groups(a, b)
    assert c.bootstrap[0] > 0 and c.welch[0] < 0
    assert c.verdict == "not distinguished"
    assert compare_groups(a, b).bootstrap == c.bootstrap  # seeded
    assert compare_groups(a, b, seed=1).bootstrap != c.bootstrap


def test_detectable_difference_at_80_percent_power():
    from fidec.stats import detectable_difference, t_test_power

    # The large-sample rule: (z_0.975 + z_0.8) standard errors = 2.8016 se.
    assert detectable_difference(1.0, float("inf")) == pytest.approx(2.8016, abs=1e-3)
    assert detectable_difference(2.0, 1e6) == pytest.approx(2 * 2.8016, abs=2e-3)
    # Few degrees of freedom need a larger difference; at it the power is 80%.
    for df in (2.1, 4.0, 10.0):
        d = detectable_difference(1.0, df)
        assert d > 2.8016 and t_test_power(d, df) == pytest.approx(0.8, abs=1e-6)
        assert t_test_power(0.0, df) == pytest.approx(0.05, abs=1e-6)  # the test's level
    assert detectable_difference(0.0, 3.0) == 0.0
    with pytest.raises(ValueError, match="must exceed"):
        detectable_difference(1.0, 3.0, power=0.01)


def test_power_matches_a_simulated_t_test():
    """t_test_power: the rejection rate of a one-sample t test of n = 4 normal values with mean shift * se."""
    stats = pytest.importorskip("scipy.stats")
    from fidec.stats import t_test_power

    rng = np.random.default_rng(0)
    n, shift, trials = 4, 3.0, 40000
    values = rng.normal(shift / np.sqrt(n), 1.0, size=(trials, n))  # true mean = shift standard errors
    t = values.mean(1) / (values.std(1, ddof=1) / np.sqrt(n))
    rate = np.mean(np.abs(t) > stats.t.ppf(0.975, n - 1))
    assert rate == pytest.approx(t_test_power(shift, n - 1), abs=0.01)


def test_comparison_words_and_untestable_groups():
    c = compare_groups([0.1, 0.2, 0.3], [0.15, 0.25, 0.4])
    text = c.describe(scale=100, unit=" points")
    assert text.startswith("+6.7 points, Welch 95% interval [")
    assert "not distinguished (n = 3 and 3; with this spread a difference below" in text
    assert f"{100 * c.detectable:.1f} points would likely go undetected: 80% power)" in text
    assert c.overlap
    far = compare_groups([0.0, 0.01, 0.02], [0.5, 0.51, 0.52])
    assert far.describe(100).endswith(": distinguished (n = 3 and 3)") and not far.overlap
    one = compare_groups([0.3], [0.1, 0.2])
    assert one.verdict == "not testable" and one.welch is None and one.detectable is None
    assert "not testable (n = 1 and 2" in one.describe()
    record = c.to_dict()
    assert record["verdict"] == "not distinguished" and record["welch"] == list(c.welch)
    with pytest.raises(ValueError, match="at least one value"):
        compare_groups([], [0.1])
