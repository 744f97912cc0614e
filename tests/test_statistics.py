"""scorer/statistics.py and C match hand-computed values and scipy.stats (used here only as a reference)."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as scipy_stats
from trainmark.scorer.confidence import confidence_of
from trainmark.scorer.statistics import metric_statistics, olympic_mean, student_t_cdf, student_t_quantile


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 7, 9, 10, 19, 29, 30, 60, 120, 1000])
@pytest.mark.parametrize("p", [0.5, 0.9, 0.95, 0.975, 0.995, 0.9995])
def test_t_quantile_matches_scipy(df, p):
    assert student_t_quantile(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), rel=1e-10, abs=1e-12)


def test_t_quantile_for_huge_samples_is_still_close():
    # The continued fraction loses digits near x = 1; at a million runs it is still good to 1e-8.
    assert student_t_quantile(0.975, 10**6) == pytest.approx(scipy_stats.t.ppf(0.975, 10**6), rel=1e-8)


@pytest.mark.parametrize("t", [-30.0, -2.5, -0.1, 0.0, 0.3, 1.0, 4.3, 50.0])
@pytest.mark.parametrize("df", [1, 2, 5, 30, 400])
def test_t_cdf_matches_scipy(t, df):
    assert student_t_cdf(t, df) == pytest.approx(scipy_stats.t.cdf(t, df), rel=1e-10, abs=1e-14)


def test_quantiles_quoted_in_the_rubric():
    assert round(student_t_quantile(0.975, 2), 6) == 4.302653
    assert round(student_t_quantile(0.975, 4), 6) == 2.776445
    assert round(student_t_quantile(0.975, 9), 6) == 2.262157


def test_quantile_domain():
    with pytest.raises(ValueError):
        student_t_quantile(0.4, 3)
    with pytest.raises(ValueError):
        student_t_quantile(0.975, 0)


def test_three_runs_by_hand():
    result = metric_statistics([10.0, 14.0, 12.0], "{step}/s", lower_is_better=False)
    half = 4.302652729749464 * 2.0 / math.sqrt(3)
    assert (result.n, result.mean, result.std) == (3, 12.0, 2.0)
    assert result.cv == pytest.approx(1 / 6)
    assert (result.ci95_low, result.ci95_high) == pytest.approx((12 - half, 12 + half), rel=1e-12)
    assert (result.headline, result.headline_method) == (12.0, "median")
    reference = scipy_stats.t.interval(0.95, 2, loc=12.0, scale=scipy_stats.sem([10.0, 14.0, 12.0]))
    assert (result.ci95_low, result.ci95_high) == pytest.approx(reference, rel=1e-10)


def test_olympic_mean_drops_one_at_each_end():
    assert olympic_mean([5.0, 1.0, 3.0, 4.0, 2.0]) == 3.0
    assert olympic_mean([1.0, 2.0, 4.0, 100.0]) == 3.0
    assert metric_statistics([5.0, 1.0, 3.0, 4.0, 2.0], "s", lower_is_better=True).headline_method.startswith(
        "olympic mean"
    )
    with pytest.raises(ValueError):
        olympic_mean([1.0, 2.0])


def test_a_failed_run_counts_as_the_slowest():
    times = metric_statistics([10.0, 11.0], "s", failed_runs=1, lower_is_better=True)
    assert times.headline == 11.0 and times.n == 2  # median of 10, 11 and "infinitely slow"
    throughput = metric_statistics([10.0, 11.0], "{step}/s", failed_runs=1, lower_is_better=False)
    assert throughput.headline == 10.0
    five = metric_statistics([10.0, 11.0, 12.0, 13.0], "s", failed_runs=1, lower_is_better=True)
    assert five.headline == pytest.approx(12.0)  # drop 10 and the failed run: mean of 11, 12, 13


@pytest.mark.parametrize(
    "values, failed, direction, reason",
    [
        ([1.0, 2.0, 3.0], 2, True, "2 failed runs"),
        ([1.0, 2.0, 3.0], 1, None, "no direction"),
        ([1.0], 1, True, "too few runs"),
        ([], 0, True, "no run reports"),
    ],
)
def test_undefined_headlines_say_why(values, failed, direction, reason):
    result = metric_statistics(values, "s", failed_runs=failed, lower_is_better=direction)
    assert result.headline is None and reason in result.headline_method


def test_one_run_has_no_spread():
    result = metric_statistics([7.0], "s", lower_is_better=True)
    assert (result.std, result.cv, result.ci95_low, result.headline) == (None, None, None, 7.0)
    assert "only 1 run" in result.headline_method


def test_confidence_by_hand():
    result = metric_statistics([100.0, 101.0, 102.0], "{step}/s", lower_is_better=False)
    h = scipy_stats.t.ppf(0.975, 2) * (1 / 101) / math.sqrt(3)
    assert result.relative_half_width == pytest.approx(h, rel=1e-10)
    assert confidence_of(result, 3, 0.10) == pytest.approx(1 - h / 0.10, rel=1e-10)
    assert confidence_of(result, 4, 0.10) == pytest.approx((1 - h / 0.10) * math.sqrt(3 / 4), rel=1e-10)
    assert confidence_of(metric_statistics([1.0, 2.0], "s"), 2, 0.10) == 0.0
    assert confidence_of(metric_statistics([1.0, 50.0, 99.0], "s"), 3, 0.10) == 0.0  # clipped


samples = st.lists(st.floats(1.0, 1000.0), min_size=3, max_size=12)


@given(samples, st.floats(0.0, 1.0), st.integers(0, 3))
def test_a_smaller_spread_never_lowers_confidence(values, factor, extra_attempts):
    mean = statistics.fmean(values)
    tighter = [mean + (value - mean) * factor for value in values]
    attempted = len(values) + extra_attempts
    wide = confidence_of(metric_statistics(values, "s"), attempted, 0.10)
    narrow = confidence_of(metric_statistics(tighter, "s"), attempted, 0.10)
    assert narrow >= wide - 1e-12
    assert 0.0 <= wide <= 1.0


@given(samples, st.randoms())
def test_order_of_runs_does_not_matter(values, rng):
    shuffled = values[:]
    rng.shuffle(shuffled)
    assert metric_statistics(values, "s", lower_is_better=True) == metric_statistics(
        shuffled, "s", lower_is_better=True
    )


def test_bootstrap_would_under_cover_where_t_does_not():
    # Why r1 uses Student-t: at n = 3 from a normal population, the t interval covers the mean
    # about 95 % of the time, a percentile bootstrap far less (it cannot exceed the sample range).
    rng = random.Random(7)
    t_hits = range_hits = 0
    trials = 2000
    for _ in range(trials):
        values = [rng.gauss(100.0, 5.0) for _ in range(3)]
        result = metric_statistics(values, "s")
        t_hits += result.ci95_low <= 100.0 <= result.ci95_high
        range_hits += min(values) <= 100.0 <= max(values)
    assert 0.93 <= t_hits / trials <= 0.97
    assert range_hits / trials < 0.80
