"""Rubric r1: every number the score depends on, in one place.

docs/scoring.md is the normative text and quotes these values; a test checks that it does.
Changing any of them changes scores, so it means a new rubric version, never an edit of r1.
"""

from __future__ import annotations

RUBRIC_VERSION = "r1"

# R = 0.35 F + 0.30 H + 0.35 C
SCORE_WEIGHTS = {"fidelity": 0.35, "completeness": 0.30, "confidence": 0.35}

# ---------------------------------------------------------------- gates
SUMMARY_RELATIVE_TOLERANCE = 0.005
"""A reported summary agrees with its recomputation when |reported - recomputed| <= 0.5 % of |recomputed|."""
SUMMARY_ABSOLUTE_TOLERANCE = 1e-9
"""... or when both are within this of each other (values near zero)."""

# ---------------------------------------------------------------- F, data fidelity
FIDELITY_WEIGHTS = {"consistency": 0.30, "sampling": 0.25, "clock": 0.10, "plausibility": 0.15, "tier": 0.20}
ENERGY_CHANNEL_TOLERANCE = 0.05
"""Counter energy and the integral of polled power over the same window agree within 5 %."""
FLOPS_TOLERANCE = 0.10
"""Analytical and counted FLOPs per step agree within 10 %."""
RECIPROCAL_TOLERANCE = 0.005
"""steps_per_second x time_per_step is 1 within 0.5 %."""
KERNEL_TOTAL_TOLERANCE = 0.01
"""A kernel breakdown's category times add up to its total within 1 %."""
GAP_FACTOR = 2.0
"""A sampling gap is an interval longer than 2 x the declared sampling interval."""
RATE_FULL_SCORE = 0.9
"""Achieved / target rate at or above 0.9 scores 1 ..."""
RATE_ZERO_SCORE = 0.5
"""... falling linearly to 0 at 0.5."""
WINDOW_SLACK_S = 1.0
"""Samples up to 1 s outside the run window are accepted (sampler start-up and shut-down)."""
CLOCK_SKEW_S = 60.0
"""A stream whose samples lie more than 60 s outside its run's window has a clock problem."""
PLAUSIBILITY_PENALTY = 0.25
"""Each distinct plausibility problem costs 0.25 of the plausibility component."""
POWER_LIMIT_FACTOR = 1.2
"""A device's power sample above 1.2 x its enforced power limit is implausible ..."""
DEVICE_POWER_CEILING_W = 2000.0
"""... and above 2 kW when no limit is reported."""
MEASUREMENT_TIERS = {"counter": 1.0, "sampled": 0.8, "profiler": 0.6, "analytical": 0.6, "derived": 0.6,
                     "modeled": 0.2, "declared": 0.1}
"""Tier of the energy measurement (a derived global energy takes the lowest tier of its device energies)."""
MISSING_TIER = 0.0
PLACEHOLDER_STRINGS = frozenset({"placeholder", "todo", "tbd", "fixme", "changeme", "n/a", "na", "unknown",
                                 "none", "null", "nan", "-", "?", "xxx", ""})
"""Manifest strings (compared case-insensitively, stripped) that stand for a missing value."""

# ---------------------------------------------------------------- H, trace completeness
COMPLETENESS_WEIGHTS = {"fields": 0.50, "channels": 0.25, "coverage": 0.25}
COVERAGE_FULL = 0.95
"""A sampled stream that covers less than 95 % of its run's window gets a window-coverage finding."""

# ---------------------------------------------------------------- C, statistical confidence
KEY_QUANTITIES = (("steps_per_second", "time_to_train"), ("energy_per_step", "total_energy"), ("peak_memory",))
"""The quantities C is computed from (throughput, energy, memory): for each, the first of its run-level
(global) metrics the bundle reports. Time-to-train results (MLPerf) report no per-step figures."""
TARGET_RELATIVE_HALF_WIDTH = 0.10
"""C_m = clip(1 - h / 0.10, 0, 1) x sqrt(n_kept / n_attempted)."""
MIN_RUNS = 3
HIGH_VARIANCE_CV = 0.05
"""A key metric whose coefficient of variation exceeds 5 % gets a high-variance finding."""

HIGHER_IS_BETTER = frozenset({"steps_per_second", "samples_per_second", "tokens_per_second", "flops_per_second",
                              "compute_utilization", "flops_per_joule", "steps_per_kilojoule", "final_accuracy",
                              "steps_completed", "updates_completed", "device_utilization"})
NO_DIRECTION = frozenset({"flops_per_step_analytical", "flops_per_step_counted", "final_quality",
                          "checkpoint_interval", "checkpoint_size", "idle_power", "temperature_mean",
                          "temperature_max"} | {f"kernel_time_share_{category}" for category in (
                              "matmul", "attention", "normalization", "elementwise", "optimizer", "data_movement",
                              "communication", "other")})
"""Every other catalog metric is lower-is-better (time, energy, power, memory, loss)."""

SOURCE_ISSUE_SEVERITY = {"type-mismatch": "warning", "placeholder-value": "warning", "unparseable-line": "warning",
                         "missing-event": "warning", "assumed-value": "warning", "incomplete-source": "warning",
                         "duplicate-event": "info", "unknown-key": "info",
                         "duplicate-file": "info", "undefined-value": "warning", "excluded-data": "info"}
"""Severity of the finding for each kind of problem an importer recorded (source.issues)."""
PLAUSIBILITY_SOURCE_ISSUES = frozenset({"type-mismatch", "placeholder-value", "unparseable-line"})
"""Source issues that count as plausibility problems; missing-event counts as a failed consistency check."""

# ---------------------------------------------------------------- badges
COMPLETE_MIN_COMPLETENESS = 0.90
REPRODUCED_MAX_CV = 0.05


def lower_is_better(name: str) -> bool | None:
    """Direction of a catalog metric for ranking runs (None: no direction)."""
    if name in HIGHER_IS_BETTER:
        return False
    if name in NO_DIRECTION:
        return None
    return True
