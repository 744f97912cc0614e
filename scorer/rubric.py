"""Rubrics r1 and r2: every number the score depends on, in one place.

docs/scoring.md is the normative text and quotes these values; a test checks that it does.
Changing any of them changes scores, so it means a new rubric version, never an edit of r1.
The module-level constants are r1's, and r2 keeps every one it does not name in `R2` below;
a rubric is chosen by its version (`rubric_of`).
"""

from __future__ import annotations

from dataclasses import dataclass

RUBRIC_VERSION = "r2"
"""The current rubric: what `trainmark score` and the registry use unless told otherwise."""

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
MEASUREMENT_TIERS = {
    "counter": 1.0,
    "sampled": 0.8,
    "profiler": 0.6,
    "analytical": 0.6,
    "derived": 0.6,
    "modeled": 0.2,
    "declared": 0.1,
}
"""Tier of the energy measurement (a derived global energy takes the lowest tier of its device energies)."""
MISSING_TIER = 0.0
PLACEHOLDER_STRINGS = frozenset(
    {
        "placeholder",
        "todo",
        "tbd",
        "fixme",
        "changeme",
        "n/a",
        "na",
        "unknown",
        "none",
        "null",
        "nan",
        "-",
        "?",
        "xxx",
        "",
    }
)
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

HIGHER_IS_BETTER = frozenset(
    {
        "steps_per_second",
        "samples_per_second",
        "tokens_per_second",
        "flops_per_second",
        "compute_utilization",
        "flops_per_joule",
        "steps_per_kilojoule",
        "final_accuracy",
        "steps_completed",
        "updates_completed",
        "device_utilization",
    }
)
NO_DIRECTION = frozenset(
    {
        "flops_per_step_analytical",
        "flops_per_step_counted",
        "final_quality",
        "checkpoint_interval",
        "checkpoint_size",
        "idle_power",
        "temperature_mean",
        "temperature_max",
    }
    | {
        f"kernel_time_share_{category}"
        for category in (
            "matmul",
            "attention",
            "normalization",
            "elementwise",
            "optimizer",
            "data_movement",
            "communication",
            "other",
        )
    }
)
"""Every other catalog metric is lower-is-better (time, energy, power, memory, loss)."""

SOURCE_ISSUE_SEVERITY = {
    "type-mismatch": "warning",
    "placeholder-value": "warning",
    "unparseable-line": "warning",
    "missing-event": "warning",
    "assumed-value": "warning",
    "incomplete-source": "warning",
    "duplicate-event": "info",
    "unknown-key": "info",
    "duplicate-file": "info",
    "undefined-value": "warning",
    "excluded-data": "info",
}
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


# ================================================================ rubric r2 (docs/scoring.md, part II)


@dataclass(frozen=True)
class Rubric:
    """What differs between rubric versions; everything else is the module constants above."""

    version: str
    key_quantities: tuple[tuple[str, ...], ...]
    """For each key quantity of C, its metrics in order of preference."""
    strict: bool
    """r2's rules: errors count (a failed gate: no badges), derived metrics recomputed, physics gate,
    too-good-to-be-true findings, duplicates by content, a missing key quantity counts as 0,
    log-scale intervals, Reproduced from the interval, provenance, no self-declared calibration."""


R1 = Rubric("r1", KEY_QUANTITIES, strict=False)
R2 = Rubric("r2", (("steps_per_second", "samples_per_second"), ("energy_per_step", "energy_per_sample")), strict=True)
"""r2's key quantities: throughput and energy per unit of work. Peak memory is a property of the
configuration, not a run-to-run quantity. Time-to-train results (MLPerf), whose time varies with
convergence, use per-sample throughput and energy per sample."""
RUBRICS = {rubric.version: rubric for rubric in (R1, R2)}


def rubric_of(version: str) -> Rubric:
    """The rubric of that version; a clear error naming the known ones otherwise."""
    from trainmark.spec.errors import TrainmarkError

    if version not in RUBRICS:
        raise TrainmarkError(f"unknown rubric {version!r}; this trainmark implements {', '.join(RUBRICS)}")
    return RUBRICS[version]


# ---------------------------------------------------------------- r2: recomputed summaries (gate)
DERIVED_RELATIVE_TOLERANCE = 0.01
"""A derived metric (energy per step, net energy, FLOP/s, utilization, samples/s, ...) agrees with its
recomputation from the traces and the manifest within 1 % (it is a ratio of rounded inputs)."""
SAMPLED_ENERGY_TOLERANCE = 0.02
"""Sampled energy agrees with the trapezoid integral of its power trace within 2 % (integration rule
and window edges differ between tools)."""

# ---------------------------------------------------------------- r2: physics gate
PHYSICS_POWER_LIMIT_FACTOR = 1.2
"""No power sample above 1.2 x the device's enforced power limit."""
COUNTER_POLLED_TOLERANCE = 0.05
"""Counter and polled energy of one device in one run within 5 % of the counter's."""
UTILIZATION_CEILING_PERCENT = 100.0
"""FLOP/s at most the sum of the known peaks of the precision in use (utilization <= 100 %)."""
OVERLAP_SLACK_S = 0.001
OVERLAP_SLACK_FRACTION = 0.001
"""Two steps of one rank overlap when one starts more than 1 ms + 0.1 % of the previous step's duration
before the previous one ends: timer resolution, rounding of duration_s, and a wall clock (start) that
NTP may slew by up to 500 ppm against the monotonic clock that times the step."""
FUTURE_SLACK_S = 300.0
"""created_at may lie at most 5 minutes after the scoring machine's clock (clock drift)."""

# ---------------------------------------------------------------- r2: too good to be true
# Floors from real data: `python tools/derive_floors.py` over the shared MLPerf sets and corpus
# (50 result sets, 234 runs with block timings, 35 power logs) measured
#   run-to-run CV of time to train   min 1.58e-4 (median 4.4e-2)
#   within-run CV of block durations min 1.57e-4 (median 1.6e-3)
#   within-run CV of power readings  min 7.5e-3
# Each floor is the smallest value real hardware showed divided by 10.
STEP_DURATION_CV_FLOOR = 1.5e-5
"""A rank's measured step durations with a CV below this (identical durations: 0) are too regular."""
POWER_CV_FLOOR = 7.5e-4
"""A device's power readings over a run with a CV below this (constant power: 0) are too regular."""
RUN_TO_RUN_CV_FLOOR = 1.5e-5
"""A key quantity that varies less than this between three or more runs is too regular."""
TOO_REGULAR_MIN_RECORDS = 5
"""The jitter floors, and duplicates by content, apply to streams of at least 5 values."""
TOO_GOOD_SCORE_FACTOR = 0.5
"""A bundle with a too-good-to-be-true finding (including a duplicate run) has C = 0 and its R halved:
fabricated regularity must never outscore honest noise."""

# ---------------------------------------------------------------- r2: C and Reproduced
R2_SCORE_WEIGHTS = SCORE_WEIGHTS
R2_TARGET_RELATIVE_HALF_WIDTH = TARGET_RELATIVE_HALF_WIDTH
"""Reproduced holds exactly when every key quantity's (log-scale) 95 % half-width is within this."""
