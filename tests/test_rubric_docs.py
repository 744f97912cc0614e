"""docs/scoring.md is the normative text: it quotes every constant of rubric r1 and catalogs every
finding code the scorer emits, and every cataloged code is triggered from data by a test."""

from __future__ import annotations

import re

from trainmark.scorer import rubric

from tests.bundles import REPO

SCORING = (REPO / "docs" / "scoring.md").read_text()
TEST_SOURCES = "\n".join(path.read_text() for path in (REPO / "tests").glob("test_*.py"))
SCORER_SOURCES = "\n".join(path.read_text() for path in (REPO / "scorer").glob("*.py"))


def _percent(value: float) -> str:
    return f"{value * 100:g} %"


def test_weights_and_thresholds_are_quoted():
    weights = rubric.SCORE_WEIGHTS
    assert (
        f"R = {weights['fidelity']:.2f} F + {weights['completeness']:.2f} H + {weights['confidence']:.2f} C"
    ) in SCORING
    for name, weight in rubric.FIDELITY_WEIGHTS.items():
        assert f"{name} {weight:.2f}" in SCORING, name
    for name, weight in rubric.COMPLETENESS_WEIGHTS.items():
        assert f"{weight:.2f} {name}" in SCORING, name
    for value in (
        rubric.SUMMARY_RELATIVE_TOLERANCE,
        rubric.ENERGY_CHANNEL_TOLERANCE,
        rubric.FLOPS_TOLERANCE,
        rubric.KERNEL_TOTAL_TOLERANCE,
        rubric.COVERAGE_FULL,
        rubric.HIGH_VARIANCE_CV,
    ):
        assert f"**{_percent(value)}**" in SCORING, value
    assert f"**{rubric.CLOCK_SKEW_S:g} s**" in SCORING and f"**{rubric.WINDOW_SLACK_S:g} s**" in SCORING
    assert f"1 - {rubric.PLAUSIBILITY_PENALTY} x k" in SCORING
    assert (
        f"clip((achieved / target - {rubric.RATE_ZERO_SCORE}) / ({rubric.RATE_FULL_SCORE} - "
        f"{rubric.RATE_ZERO_SCORE}), 0, 1)" in SCORING
    )
    assert f"longer than {rubric.GAP_FACTOR:g} / target" in SCORING
    assert f"1 - h / {rubric.TARGET_RELATIVE_HALF_WIDTH:.2f}" in SCORING
    for method, tier in rubric.MEASUREMENT_TIERS.items():
        assert re.search(rf"\| [a-z, ]*{method}[a-z, ]* \| {tier} \|", SCORING), method
    for text in rubric.PLACEHOLDER_STRINGS - {""}:
        assert f"`{text}`" in SCORING, text
    assert f"H >= {rubric.COMPLETE_MIN_COMPLETENESS:.2f}" in SCORING
    for alternatives in rubric.KEY_QUANTITIES:
        assert all(name in SCORING.split("### 5.2 C")[1] for name in alternatives), alternatives
    for code, severity in rubric.SOURCE_ISSUE_SEVERITY.items():
        assert re.search(rf"`{code}`[^|]*\| {severity} \|", SCORING.split("### 3.5")[1]), code


def _catalog_codes() -> set[str]:
    section = SCORING.split("## 7. Finding catalog")[1].split("## 8.")[0]
    return set(re.findall(r"`([a-z]+(?:-[a-z]+)+)`", section)) - {"archive-invalid"}


def test_every_code_the_scorer_emits_is_cataloged():
    emitted = set(re.findall(r'Finding\(\s*"([a-z-]+)"', SCORER_SOURCES))
    assert emitted, "the scorer emits findings"
    assert emitted <= _catalog_codes(), emitted - _catalog_codes()


def test_every_cataloged_code_is_triggered_by_a_test():
    codes = _catalog_codes() - {"field-missing", "rule-violation"}  # validation codes: tests/test_examples.py
    untested = {code for code in codes if f'"{code}"' not in TEST_SOURCES}
    assert untested == set()
