"""What would raise a score (scorer/advice.py): the points each part leaves, and its findings."""

from __future__ import annotations

import json

import pytest
from trainmark.scorer import rubric
from trainmark.scorer.advice import score_advice
from trainmark.scorer.score import score_bundle
from typer.testing import CliRunner

from tests.bundles import VALID_BUNDLES
from trainmark.cli import app


@pytest.mark.parametrize("bundle", VALID_BUNDLES, ids=lambda path: path.name)
def test_the_points_left_add_up_to_what_the_score_misses(bundle):
    report = score_bundle(bundle, "r1")
    advice = score_advice(report)
    left = sum(item.points for item in advice)
    # parts worth under 0.05 points are not listed: at most one per part of the rubric
    parts = len(rubric.FIDELITY_WEIGHTS) + len(rubric.COMPLETENESS_WEIGHTS) + 1
    assert 100 * (1 - report.score) - 0.05 * parts <= left <= 100 * (1 - report.score) + 1e-6
    assert [item.points for item in advice] == sorted((item.points for item in advice), reverse=True)
    for item in advice:
        if item.findings:
            assert sum(finding["points_share"] for finding in item.findings) == pytest.approx(item.points)


def test_the_cpu_example_loses_its_tier_points_to_the_missing_energy_sensor():
    cpu = next(path for path in VALID_BUNDLES if path.name == "cpu-tiny")
    report = score_bundle(cpu, "r1")
    tier = next(item for item in score_advice(report) if item.part == "tier")
    expected = 100 * rubric.SCORE_WEIGHTS["fidelity"] * rubric.FIDELITY_WEIGHTS["tier"]  # tier is 0: all of it
    assert tier.value == 0 and tier.points == pytest.approx(expected)
    assert {finding["code"] for finding in tier.findings} == {"missing-sensor"} and len(tier.findings) == 3
    result = CliRunner().invoke(app, ["score", str(cpu), "--rubric", "r1", "--json"])
    assert json.loads(result.output)["advice"][0]["part"] == "tier"
    text = CliRunner().invoke(app, ["score", str(cpu), "--rubric", "r1"]).output
    assert "what would raise this score" in text and f"+{expected:.1f}" in text
    assert "3 x missing-sensor, about 2.33 each" in text
