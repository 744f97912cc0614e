"""The reproducibility scorer: rubric r1 (docs/scoring.md), a pure function of a bundle.

`scorer.score.score_bundle` is the entry point; `scorer.rubric` holds every constant.
"""
