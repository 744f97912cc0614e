"""What would raise a score: for each part of each component, the points it leaves on the table
and the findings that cost them.

Points are on the 0-100 scale of the score (score x 100). A part's points are exact under the
rubric's weights: weight of the component x weight of the part x (1 - the part's value). How they
split among that part's findings is not something the rubric states, so each finding is shown
with an even share of its part's points, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trainmark.scorer import rubric
from trainmark.scorer.score import ScoreReport

PART_FINDINGS = {
    "consistency": (
        "channel-inconsistent",
        "metric-inconsistent",
        "summary-mismatch",
        "summary-unverifiable",
        "missing-event",
    ),
    "sampling": ("sampling-gap", "sampling-rate-low"),
    "clock": ("clock-skew", "non-monotonic", "duplicate-timestamp", "outside-window"),
    "plausibility": ("implausible-value", "placeholder-value", "type-mismatch", "unparseable-line"),
    "tier": ("missing-sensor", "modeled-energy"),
    "fields": ("reporting-field-absent",),
    "channels": ("channel-absent",),
    "coverage": ("window-coverage",),
    "confidence": ("too-few-runs", "high-variance", "seed-reuse", "duplicate-run"),
}
"""Which findings belong to which part (by finding code)."""

HOW = {
    "consistency": "make the numbers agree with each other (energy with the integral of power, steps/s with "
    "1 / time per step, counted with analytical FLOPs, summaries with their traces)",
    "sampling": "sample at the declared rate without gaps (a sampler off the training thread, 10 Hz)",
    "clock": "stamp every sample on one monotonic clock, inside its run's window",
    "plausibility": "report values a device can have and no placeholder text",
    "tier": "measure energy with a hardware counter (NVML's energy counter, RAPL) rather than polled power, "
    "a model or a declaration",
    "fields": "report the recommended fields the findings name (hardware, model, training, software, "
    "environment, methodology)",
    "channels": "record power, memory and step traces for every rank and device",
    "coverage": "let each trace cover the whole run",
    "confidence": f"run at least {rubric.MIN_RUNS} independent runs (5 or more for the olympic mean) and keep "
    f"the 95 % half-width under {rubric.TARGET_RELATIVE_HALF_WIDTH * 100:g} % of the mean",
}
"""What raises each part, in a sentence."""


@dataclass
class Advice:
    """One part of the score that is not full: its points left and the findings behind them."""

    component: str
    part: str
    value: float
    points: float
    how: str
    findings: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def score_advice(report: ScoreReport) -> list[Advice]:
    """Every part below full, most points first; each finding with an even share of its part's points."""
    parts: list[tuple[str, str, float, float]] = []
    for component, weights in (("fidelity", rubric.FIDELITY_WEIGHTS), ("completeness", rubric.COMPLETENESS_WEIGHTS)):
        for part, value in report.components.get(component, {}).items():
            if value is not None and part in weights:
                parts.append((component, part, value, 100 * rubric.SCORE_WEIGHTS[component] * weights[part]))
    parts.append(("confidence", "confidence", report.confidence, 100 * rubric.SCORE_WEIGHTS["confidence"]))
    advice = []
    for component, part, value, weight in parts:
        points = weight * (1 - value)
        if points < 0.05:
            continue
        codes = PART_FINDINGS.get(part, ())
        findings = [finding.as_dict() for finding in report.findings if finding.code in codes]
        for finding in findings:
            finding["points_share"] = points / len(findings)
        advice.append(Advice(component, part, value, points, HOW[part], findings))
    return sorted(advice, key=lambda item: -item.points)
