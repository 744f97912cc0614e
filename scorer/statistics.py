"""Statistics over a bundle's runs: Student-t intervals and MLPerf's olympic headline.

No scipy at run time: the Student-t quantile comes from the regularized incomplete beta
function (Numerical Recipes' continued fraction) and bisection; tests compare it with
scipy.stats to 1e-10. The scorer's confidence and the runner's calibration both use these.
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Lentz's method for the continued fraction of I_x(a, b) (Numerical Recipes 6.4)."""
    tiny, epsilon = 1e-300, 1e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 1000):
        m2 = 2 * m
        numerator = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + numerator * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + numerator / c
        c = c if abs(c) > tiny else tiny
        result *= d * c
        numerator = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + numerator * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + numerator / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        result *= delta
        if abs(delta - 1.0) < epsilon:
            return result
    raise ArithmeticError("incomplete beta continued fraction did not converge")


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(a * math.log(x) + b * math.log1p(-x) - _log_beta(a, b))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


@functools.lru_cache(maxsize=1024)
def student_t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p, for 0.5 <= p < 1 (bisection to machine precision; cached: every
    metric of a bundle asks for the same few)."""
    if not 0.5 <= p < 1.0 or df <= 0:
        raise ValueError(f"need 0.5 <= p < 1 and df > 0, got p={p}, df={df}")
    low, high = 0.0, 1.0
    while student_t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        if student_t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low <= 1e-15 * max(1.0, high):
            break
    return (low + high) / 2.0


def olympic_mean(values: list[float]) -> float:
    """MLPerf's olympic score: drop the lowest and the highest, average the rest (n >= 3).

    For n = 3 this is the median.
    """
    if len(values) < 3:
        raise ValueError("the olympic mean needs at least three values")
    ordered = sorted(values)
    return math.fsum(ordered[1:-1]) / (len(ordered) - 2)


@dataclass(frozen=True)
class MetricStatistics:
    """Statistics of one run-level metric over a bundle's runs (docs/scoring.md 5.1)."""

    unit: str
    n: int
    mean: float | None
    std: float | None
    cv: float | None
    ci95_low: float | None
    ci95_high: float | None
    headline: float | None
    headline_method: str

    @property
    def relative_half_width(self) -> float | None:
        """h = t(0.975, n-1) * CV / sqrt(n); None when undefined (n < 2 or mean 0)."""
        if self.n < 2 or self.cv is None:
            return None
        return student_t_quantile(0.975, self.n - 1) * self.cv / math.sqrt(self.n)

    def as_dict(self) -> dict:
        """The `statistics` entry of `trainmark score --json`."""
        return {
            "unit": self.unit,
            "n": self.n,
            "mean": self.mean,
            "std": self.std,
            "cv": self.cv,
            "ci95_low": self.ci95_low,
            "ci95_high": self.ci95_high,
            "headline": self.headline,
            "headline_method": self.headline_method,
        }


def metric_statistics(
    values: list[float], unit: str, *, failed_runs: int = 0, lower_is_better: bool | None = None
) -> MetricStatistics:
    """n, mean, sample standard deviation, CV, Student-t 95 % interval and the headline value.

    `values` come from the runs that completed. A failed run counts as the worst possible
    value for the headline (MLPerf: a run that did not converge counts as the slowest), so it
    is what the olympic mean drops first; with more failed runs than it drops, or when the
    metric has no direction, the headline is left undefined.
    """
    n = len(values)
    mean = math.fsum(values) / n if n else None
    std = statistics.stdev(values) if n >= 2 else None
    cv = std / abs(mean) if std is not None and mean not in (None, 0.0) else None
    if n >= 2:
        half = student_t_quantile(0.975, n - 1) * std / math.sqrt(n)
        low, high = mean - half, mean + half
    else:
        low = high = None
    attempted = n + failed_runs
    if failed_runs and lower_is_better is None:
        headline, method = None, "undefined: failed runs, and the metric has no direction to rank them by"
    elif failed_runs > 1:
        headline, method = None, f"undefined: {failed_runs} failed runs; the olympic mean drops only one"
    elif failed_runs and attempted < 3:
        headline, method = None, "undefined: too few runs to drop the failed one"
    elif attempted >= 3:
        worst = math.inf if lower_is_better else -math.inf
        headline = olympic_mean(values + [worst] * failed_runs)
        method = "median" if attempted == 3 else "olympic mean (drop lowest and highest)"
    elif n:
        headline, method = mean, f"mean (only {n} run{'s' if n > 1 else ''}; olympic scoring needs 3)"
    else:
        headline, method = None, "undefined: no run reports this metric"
    return MetricStatistics(unit, n, mean, std, cv, low, high, headline, method)
