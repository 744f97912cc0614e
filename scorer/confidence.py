"""The confidence sub-score C (rubric r1, docs/scoring.md section 5).

The statistics themselves (intervals, headline values) are scorer/statistics.py.
"""

from __future__ import annotations

import math

from trainmark.scorer.statistics import MetricStatistics


def confidence_of(stats: MetricStatistics, attempted: int, target_half_width: float) -> float:
    """C for one metric: clip(1 - h / target, 0, 1) * sqrt(n_kept / n_attempted); 0 when n < 3."""
    if stats.n < 3 or attempted == 0:
        return 0.0
    half_width = stats.relative_half_width
    if half_width is None:
        return 0.0
    return max(0.0, min(1.0, 1.0 - half_width / target_half_width)) * math.sqrt(stats.n / attempted)
