"""`trainmark score`: the reproducibility score of a bundle under rubric r1 or r2 (docs/scoring.md).

One pass over the bundle: the validator streams every record once and hands each valid one to
a `TraceDigest`; gates, F, H and C are then computed from the manifest and those running
totals. The result is a pure function of the bundle's bytes and the rubric version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from trainmark.scorer import rubric
from trainmark.scorer.completeness import completeness
from trainmark.scorer.confidence import confidence_of
from trainmark.scorer.derived import derived_findings
from trainmark.scorer.fidelity import Component, clock, consistency, measurement_tier, plausibility, sampling, weighted
from trainmark.scorer.physics import physics_findings
from trainmark.scorer.provenance import provenance_of
from trainmark.scorer.statistics import MetricStatistics, metric_statistics, student_t_quantile
from trainmark.scorer.summaries import summary_findings
from trainmark.scorer.traces import TraceDigest
from trainmark.spec import models
from trainmark.spec.archive import ArchiveLimits
from trainmark.spec.errors import BundleInvalid
from trainmark.spec.findings import Finding, Severity
from trainmark.spec.layout import MANIFEST_NAME
from trainmark.spec.validate import ObserverGroup, RecordObserver, validate_bundle

MAX_VALIDATION_FINDINGS = 500
SCORE_DECIMALS = 6
"""Scores are rounded to 6 decimals so that last-bit differences of libm between machines never show."""

INTEGRITY_CODES = frozenset(
    {
        "digest-mismatch",
        "size-mismatch",
        "record-count-mismatch",
        "file-missing",
        "file-unlisted",
        "file-unsafe",
        "archive-invalid",
        "archive-unsafe",
        "archive-limit",
        "bundle-unreadable",
    }
)
FINITE_CODES = frozenset({"non-finite-number"})


@dataclass(frozen=True)
class Gate:
    """One pass/fail condition for being ranked."""

    code: str
    passed: bool
    message: str


@dataclass
class ScoreReport:
    """Everything `trainmark score` reports."""

    bundle_id: str
    rubric_version: str
    ranked: bool
    score: float
    fidelity: float
    completeness: float
    confidence: float
    badges: list[str]
    gates: list[Gate]
    statistics: dict[str, MetricStatistics]
    findings: list[Finding]
    components: dict[str, dict[str, float | None]] = field(default_factory=dict)
    provenance: str | None = None
    """r2: measured, imported, declared or synthetic (docs/scoring.md, r2 section 8); None under r1."""
    run_fingerprints: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    """Per run, a digest of its traces' content with time offsets removed (the registry compares runs
    across submissions with it); not part of the report."""
    manifest: models.Manifest | None = field(default=None, repr=False, compare=False)
    """The manifest the models read (not part of the report; the registry stores from it)."""

    def as_dict(self) -> dict:
        """The `trainmark score --json` document."""
        document = {
            "bundle_id": self.bundle_id,
            "rubric_version": self.rubric_version,
            "ranked": self.ranked,
            "score": self.score,
            "fidelity": self.fidelity,
            "completeness": self.completeness,
            "confidence": self.confidence,
            "badges": self.badges,
            "gates": [{"code": gate.code, "passed": gate.passed, "message": gate.message} for gate in self.gates],
            "statistics": {name: stats.as_dict() for name, stats in self.statistics.items()},
            "findings": [finding.as_dict() for finding in self.findings],
        }
        if self.provenance is not None:
            document["provenance"] = self.provenance
            document["not_ranked_because"] = [gate.message for gate in self.gates if not gate.passed]
        return document


def _gate(code: str, counts: dict[str, int], ok: str, broken: str) -> Gate:
    problems = {name: count for name, count in sorted(counts.items()) if count}
    if not problems:
        return Gate(code, True, ok)
    listed = ", ".join(f"{name} x{count}" for name, count in problems.items())
    return Gate(code, False, f"{broken}: {listed}")


def gates(validation_errors: dict[str, int], summary_mismatches: int) -> list[Gate]:
    """The four gates of r1 (docs/scoring.md section 2), from the validator's error counts per code."""
    integrity = {code: count for code, count in validation_errors.items() if code in INTEGRITY_CODES}
    finite = {code: count for code, count in validation_errors.items() if code in FINITE_CODES}
    validity = {
        code: count
        for code, count in validation_errors.items()
        if code not in INTEGRITY_CODES and code not in FINITE_CODES
    }
    return [
        _gate(
            "integrity",
            integrity,
            "every listed file is present, unchanged and counted; no file is unlisted",
            "files do not match the manifest",
        ),
        _gate(
            "validity",
            validity,
            "the manifest and every trace record follow the standard",
            "the bundle breaks the standard",
        ),
        _gate("finite", finite, "no NaN or Infinity anywhere", "non-finite numbers"),
        _gate(
            "summary",
            {"summary-mismatch": summary_mismatches},
            f"every recomputable run summary agrees with its traces within "
            f"{rubric.SUMMARY_RELATIVE_TOLERANCE * 100:g} %",
            "summaries disagree with their traces",
        ),
    ]


def independence(manifest: models.Manifest) -> tuple[set[int], list[Finding]]:
    """Runs that are not independent: a reused seed (warning) or a duplicate run (not kept for C)."""
    findings: list[Finding] = []
    duplicates: set[int] = set()
    seen_seeds: dict[int, str] = {}
    for index, run in enumerate(manifest.runs):
        if run.seed is None:
            continue
        if run.seed in seen_seeds:
            findings.append(
                Finding(
                    "seed-reuse",
                    Severity.WARNING,
                    f"run {run.run_id} uses seed {run.seed} like run {seen_seeds[run.seed]}; "
                    "runs with the same seed do not show run-to-run variation",
                    file=MANIFEST_NAME,
                    pointer=f"/runs/{index}/seed",
                )
            )
        else:
            seen_seeds[run.seed] = run.run_id
    traces: dict[str, tuple[str, ...]] = {}
    for entry in manifest.files:
        if entry.run_id is not None and entry.record_type != "document":
            traces[entry.run_id] = traces.get(entry.run_id, ()) + (entry.sha256,)
    signatures: dict[tuple, str] = {}
    for index, run in enumerate(manifest.runs):
        values = tuple(sorted((m.name, m.value) for m in run.metrics if m.scope == "global" and m.value is not None))
        keys = [
            ("traces", tuple(sorted(traces.get(run.run_id, ())))),
            ("start", run.started_at.isoformat()),
            ("summary", values),
        ]
        for kind, signature in keys:
            if kind == "traces" and not signature or kind == "summary" and len(values) < 3:
                continue
            if (kind, signature) in signatures:
                what = {
                    "traces": "identical trace files",
                    "start": "the same start time",
                    "summary": "identical summary metrics",
                }[kind]
                findings.append(
                    Finding(
                        "duplicate-run",
                        Severity.WARNING,
                        f"run {run.run_id} has {what} as run {signatures[(kind, signature)]}; "
                        "it is not an independent run and does not count for confidence",
                        file=MANIFEST_NAME,
                        pointer=f"/runs/{index}",
                    )
                )
                duplicates.add(index)
                break
            signatures[(kind, signature)] = run.run_id
    return duplicates, findings


def key_metrics(statistics: dict[str, MetricStatistics]) -> list[str]:
    """For each key quantity, the first of its metrics the bundle reports."""
    chosen = []
    for alternatives in rubric.KEY_QUANTITIES:
        name = next((name for name in alternatives if name in statistics), None)
        if name is not None:
            chosen.append(name)
    return chosen


def _global_value(run: models.Run, name: str) -> float | None:
    return next((m.value for m in run.metrics if m.name == name and m.scope == "global" and m.value is not None), None)


def run_statistics(
    manifest: models.Manifest, excluded: set[int], *, log_scale: bool = False
) -> dict[str, MetricStatistics]:
    """Statistics of every global run-level metric over the completed, independent runs.

    When the bundle reports time_to_train, the other metrics' headlines are means over the runs
    its olympic selection keeps (MLPerf averages energy over the runs the time score kept).
    """
    kept = [run for index, run in enumerate(manifest.runs) if run.status == "completed" and index not in excluded]
    failed = sum(1 for run in manifest.runs if run.status != "completed")
    names: dict[str, str] = {}
    for run in manifest.runs:
        for metric in run.metrics:
            if metric.scope == "global" and metric.value is not None:
                names.setdefault(metric.name, metric.unit)
    result = {}
    for name, unit in names.items():
        values = [value for value in (_global_value(run, name) for run in kept) if value is not None]
        result[name] = metric_statistics(values, unit, failed_runs=failed, lower_is_better=rubric.lower_is_better(name))
        if log_scale:
            result[name] = _on_log_scale(result[name], values)
    selection = _time_selection(kept, failed)
    if selection is not None:
        for name, stats in result.items():
            chosen = [_global_value(run, name) for run in selection]
            if name != "time_to_train" and None not in chosen:
                result[name] = dataclasses.replace(
                    stats,
                    headline=math.fsum(chosen) / len(chosen),
                    headline_method="mean of the runs the time_to_train olympic selection keeps (MLPerf)",
                )
    return result


@dataclass(frozen=True)
class LogScaleStatistics(MetricStatistics):
    """r2: the statistics of a positive quantity, its 95 % interval computed on the logs of the values
    (exp(mean of logs +- t x std of logs / sqrt(n))), so it never reaches zero or below."""

    log_half_width: float | None = None


def _on_log_scale(stats: MetricStatistics, values: list[float]) -> MetricStatistics:
    if len(values) < 2 or any(value <= 0 for value in values):
        return stats
    logs = [math.log(value) for value in values]
    centre = math.fsum(logs) / len(logs)
    spread = math.sqrt(math.fsum((x - centre) ** 2 for x in logs) / (len(logs) - 1))
    half = student_t_quantile(0.975, len(logs) - 1) * spread / math.sqrt(len(logs))
    fields = {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)}
    fields.update(ci95_low=math.exp(centre - half), ci95_high=math.exp(centre + half), log_half_width=half)
    return LogScaleStatistics(**fields)


def _time_selection(kept: list[models.Run], failed: int) -> list[models.Run] | None:
    """The completed runs that time_to_train's olympic mean keeps (a failed run counts as the slowest)."""
    timed = [run for run in kept if _global_value(run, "time_to_train") is not None]
    if not timed or len(timed) != len(kept) or len(timed) + failed < 3 or failed > 1:
        return None
    ranked = sorted(timed, key=lambda run: _global_value(run, "time_to_train"))
    return ranked[1:] if failed else ranked[1:-1]


def source_findings(manifest: models.Manifest) -> list[Finding]:
    """The problems an importer recorded in the original data (source.issues), as findings."""
    if manifest.source is None:
        return []
    return [
        Finding(
            issue.code,
            Severity(rubric.SOURCE_ISSUE_SEVERITY[issue.code]),
            issue.message,
            file=issue.file,
            line=issue.line,
            pointer=issue.pointer or "",
        )
        for issue in manifest.source.issues or []
    ]


def _high_variance(name: str, stats: MetricStatistics) -> list[Finding]:
    """A key quantity whose runs spread too far to support a comparison (both rubrics)."""
    if stats.cv is None or stats.cv <= rubric.HIGH_VARIANCE_CV:
        return []
    return [
        Finding(
            "high-variance",
            Severity.WARNING,
            f"{name} varies by {stats.cv * 100:.1f} % between runs (CV; over "
            f"{rubric.HIGH_VARIANCE_CV * 100:g} % cannot support a comparison); 95 % "
            f"interval {stats.ci95_low:.6g} .. {stats.ci95_high:.6g} {stats.unit}",
            file=MANIFEST_NAME,
            pointer="/runs",
        )
    ]


def _too_few_runs(kept: int, attempted: int) -> list[Finding]:
    """Fewer runs report the key quantities than statistics need (both rubrics)."""
    if kept >= rubric.MIN_RUNS:
        return []
    return [
        Finding(
            "too-few-runs",
            Severity.WARNING,
            f"{kept} completed independent run(s) report the key metrics; statistics need at "
            f"least {rubric.MIN_RUNS} ({attempted} attempted), so their confidence is 0",
            file=MANIFEST_NAME,
            pointer="/runs",
        )
    ]


def confidence(manifest: models.Manifest, statistics: dict[str, MetricStatistics]) -> tuple[float, list[Finding]]:
    """C: the mean of C_m over the key quantities the bundle reports (0 when it reports none)."""
    findings: list[Finding] = []
    attempted = len(manifest.runs)
    chosen = key_metrics(statistics)
    per_metric = []
    for name in chosen:
        stats = statistics[name]
        per_metric.append(confidence_of(stats, attempted, rubric.TARGET_RELATIVE_HALF_WIDTH))
        findings += _high_variance(name, stats)
    findings += _too_few_runs(max((statistics[name].n for name in chosen), default=0), attempted)
    return (math.fsum(per_metric) / len(per_metric) if per_metric else 0.0), findings


def badges(
    manifest: models.Manifest,
    completeness_value: float,
    statistics: dict[str, MetricStatistics],
    findings: list[Finding],
) -> list[str]:
    """Complete, Calibrated, Reproduced (docs/scoring.md section 6)."""
    earned = []
    if completeness_value >= rubric.COMPLETE_MIN_COMPLETENESS:
        earned.append("Complete")
    calibration = manifest.calibration
    if calibration is not None and all(
        deviation.within_margin and abs(deviation.deviation_percent) <= deviation.margin_percent
        for deviation in calibration.deviations
    ):
        earned.append("Calibrated")
    key = [statistics[name] for name in key_metrics(statistics)]
    independent = not any(finding.code in ("seed-reuse", "duplicate-run") for finding in findings)
    if (
        key
        and independent
        and all(
            stats.n >= rubric.MIN_RUNS and stats.cv is not None and stats.cv <= rubric.REPRODUCED_MAX_CV
            for stats in key
        )
    ):
        earned.append("Reproduced")
    return earned


def score_bundle(
    path: Path,
    rubric_version: str = rubric.RUBRIC_VERSION,
    *,
    full_jsonschema: bool = False,
    limits: ArchiveLimits = ArchiveLimits(),
    observer: RecordObserver | None = None,
    now: datetime | None = None,
) -> ScoreReport:
    """Score the bundle at `path` (directory or .tar.gz) under the rubric of that version.

    Raises `BundleInvalid` when the input is not a readable bundle (no manifest the models
    accept); a bundle that is readable but fails a gate is scored and marked not ranked.
    `full_jsonschema` adds JSON Schema conformance to the validation (findings fail the validity
    gate); `observer` also watches the single pass (the registry collects plot series with it);
    `now` is the clock r2's created_at check compares with (the current time when None).
    """
    chosen = rubric.rubric_of(rubric_version)
    digest = TraceDigest()
    watchers = ObserverGroup(digest, observer) if observer is not None else digest
    validation = validate_bundle(
        path, observer=watchers, max_findings=MAX_VALIDATION_FINDINGS, full_jsonschema=full_jsonschema, limits=limits
    )
    manifest, document = validation.manifest, validation.manifest_document
    if manifest is None:
        first = validation.findings[0] if validation.findings else None
        if first is None:
            raise BundleInvalid("not a readable bundle (no manifest); run trainmark validate", code="bundle-unreadable")
        # The first finding's own code and place, so that a refusal says exactly what is wrong.
        raise BundleInvalid(
            f"not a readable bundle: {first.message}; run trainmark validate for every finding",
            file=first.file,
            line=first.line,
            pointer=first.pointer or "",
            code=first.code,
        )

    summaries = list(summary_findings(manifest, digest))
    if chosen.strict:
        summaries += list(derived_findings(manifest, digest))
    gate_list = gates(
        dict(validation.error_counts), sum(1 for finding in summaries if finding.code == "summary-mismatch")
    )
    physics: list[Finding] = []
    provenance = None
    if chosen.strict:
        physics = physics_findings(manifest, digest, now)
        provenance = provenance_of(manifest)
        gate_list += [
            _gate(
                "physics",
                {code: sum(1 for f in physics if f.code == code) for code in {f.code for f in physics}},
                "nothing physically impossible: FLOP/s within the peaks, idle below training power, net energy "
                "within total, counter and polled energy agree, power within its limit, no overlapping steps or "
                "runs, created_at after the runs, one hardware",
                "physically impossible",
            ),
            Gate(
                "provenance",
                provenance != "synthetic",
                f"the bundle's numbers are {provenance}"
                if provenance != "synthetic"
                else "the bundle says it is synthetic (made up, e.g. an example of the standard): never ranked",
            ),
        ]

    fidelity_parts: dict[str, Component] = {
        "consistency": consistency(manifest, digest),
        "sampling": sampling(digest),
        "clock": clock(digest),
        "plausibility": plausibility(manifest, digest),
        "tier": measurement_tier(manifest),
    }
    fidelity_values = {name: part.value for name, part in fidelity_parts.items()}
    fidelity_value = weighted(fidelity_values, rubric.FIDELITY_WEIGHTS)
    completeness_value, completeness_values, completeness_findings = completeness(manifest, document, digest)
    duplicates, independence_findings = independence(manifest)
    too_good: list[Finding] = []
    if chosen.strict:
        content, content_findings = content_duplicates(manifest, digest, duplicates)
        duplicates |= content
        independence_findings += content_findings
    statistics = run_statistics(manifest, duplicates, log_scale=chosen.strict)
    if chosen.strict:
        too_good = too_good_findings(digest, statistics, chosen)
        confidence_value, confidence_findings = confidence_r2(manifest, statistics, chosen)
    else:
        confidence_value, confidence_findings = confidence(manifest, statistics)

    findings = list(validation.findings) + summaries + physics + source_findings(manifest)
    for part in fidelity_parts.values():
        findings += part.findings
    findings += completeness_findings + independence_findings + too_good + confidence_findings
    fabricated = chosen.strict and (too_good or any(f.code == "duplicate-run" for f in findings))
    if fabricated:
        confidence_value = 0.0
    weights = rubric.SCORE_WEIGHTS
    total = (
        weights["fidelity"] * fidelity_value
        + weights["completeness"] * completeness_value
        + weights["confidence"] * confidence_value
    )
    if fabricated:
        total *= rubric.TOO_GOOD_SCORE_FACTOR
    ranked = all(gate.passed for gate in gate_list)
    if chosen.strict:
        earned = badges_r2(manifest, completeness_value, statistics, findings, chosen) if ranked else []
        if manifest.calibration is not None:
            findings.append(
                Finding(
                    "calibration-unverified",
                    Severity.INFO,
                    "the bundle's own calibration comparison is shown but earns nothing: Calibrated "
                    "comes only from a calibration record the registry holds and recomputes",
                    file=MANIFEST_NAME,
                    pointer="/calibration",
                )
            )
    else:
        earned = badges(manifest, completeness_value, statistics, findings)
    return ScoreReport(
        bundle_id=validation.bundle_id,
        rubric_version=chosen.version,
        ranked=ranked,
        score=round(total, SCORE_DECIMALS),
        fidelity=round(fidelity_value, SCORE_DECIMALS),
        completeness=round(completeness_value, SCORE_DECIMALS),
        confidence=round(confidence_value, SCORE_DECIMALS),
        badges=earned,
        gates=gate_list,
        statistics=statistics,
        findings=findings,
        components={
            "fidelity": {k: None if v is None else round(v, SCORE_DECIMALS) for k, v in fidelity_values.items()},
            "completeness": {
                k: None if v is None else round(v, SCORE_DECIMALS) for k, v in completeness_values.items()
            },
        },
        provenance=provenance,
        run_fingerprints=run_content_fingerprints(digest),
        manifest=manifest,
    )


def run_content_fingerprints(digest: TraceDigest) -> dict[str, str]:
    """Per run: sha256 over its streams' content fingerprints (steps per rank, power per channel and
    device), each with its time offset removed; runs without such streams are left out."""
    parts: dict[str, list[str]] = {}
    for (run_id, rank), stream in digest.steps.items():
        if stream.content.count >= rubric.TOO_REGULAR_MIN_RECORDS:
            parts.setdefault(run_id, []).append(f"steps {rank} {stream.content.hexdigest()}")
    for stream in digest.samples.values():
        if stream.content.count >= rubric.TOO_REGULAR_MIN_RECORDS:
            parts.setdefault(stream.run_id, []).append(
                f"power {stream.channel} {stream.device} {stream.node} {stream.content.hexdigest()}"
            )
    return {run_id: hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest() for run_id, lines in parts.items()}


# ---------------------------------------------------------------- rubric r2


def content_duplicates(
    manifest: models.Manifest, digest: TraceDigest, known: set[int]
) -> tuple[set[int], list[Finding]]:
    """Runs whose step or power sequences equal an earlier run's once time offsets are removed."""
    index_of = {run.run_id: index for index, run in enumerate(manifest.runs)}
    seen: dict[tuple, str] = {}
    duplicates: set[int] = set()
    findings: list[Finding] = []
    streams: list[tuple[str, str, object]] = [
        (run_id, f"step records of rank {rank}", stream) for (run_id, rank), stream in sorted(digest.steps.items())
    ]
    streams += [
        (
            stream.run_id,
            f"{stream.channel} readings of "
            + (f"device {stream.device}" if stream.device is not None else f"node {stream.node}"),
            stream,
        )
        for _, stream in sorted(digest.samples.items(), key=lambda item: repr(item[0]))
        if stream.content.count
    ]
    for run_id, identity, stream in sorted(streams, key=lambda item: (index_of.get(item[0], -1), item[1])):
        index = index_of.get(run_id)
        fingerprint = stream.content.hexdigest()
        if index is None or fingerprint is None or stream.content.count < rubric.TOO_REGULAR_MIN_RECORDS:
            continue
        earlier = seen.get((identity, fingerprint))
        if earlier is not None and earlier != run_id and index not in duplicates:
            duplicates.add(index)
            if index not in known:
                findings.append(
                    Finding(
                        "duplicate-run",
                        Severity.WARNING,
                        f"run {run_id} repeats run {earlier}'s {identity} record for record once the "
                        "time offset is removed; it is a copy, not an independent run",
                        file=stream.file,
                    )
                )
        seen.setdefault((identity, fingerprint), run_id)
    return duplicates, findings


def too_good_findings(
    digest: TraceDigest, statistics: dict[str, MetricStatistics], chosen: rubric.Rubric
) -> list[Finding]:
    """Jitter below anything real hardware shows (floors in rubric.py, from tools/derive_floors.py)."""
    findings = []
    for (run_id, rank), stream in sorted(digest.steps.items()):
        cv = stream.durations.cv
        if (
            stream.durations.count >= rubric.TOO_REGULAR_MIN_RECORDS
            and cv is not None
            and cv < rubric.STEP_DURATION_CV_FLOOR
        ):
            findings.append(
                Finding(
                    "too-regular",
                    Severity.WARNING,
                    f"rank {rank} in run {run_id}: {stream.durations.count} measured step durations "
                    f"vary by {cv:.2g} (CV); real hardware shows at least "
                    f"{rubric.STEP_DURATION_CV_FLOOR * 10:.2g}, the floor is {rubric.STEP_DURATION_CV_FLOOR:g}",
                    file=stream.file,
                    pointer="/duration_s",
                )
            )
    for _, stream in sorted(digest.samples.items(), key=lambda item: repr(item[0])):
        cv = stream.powers.cv
        if stream.powers.count >= rubric.TOO_REGULAR_MIN_RECORDS and cv is not None and cv < rubric.POWER_CV_FLOOR:
            where = f"device {stream.device}" if stream.device is not None else f"node {stream.node}"
            findings.append(
                Finding(
                    "too-regular",
                    Severity.WARNING,
                    f"channel {stream.channel} ({where}) in run {stream.run_id}: "
                    f"{stream.powers.count} power readings vary by {cv:.2g} (CV); real training "
                    f"power varies by at least {rubric.POWER_CV_FLOOR * 10:.2g}, the floor is "
                    f"{rubric.POWER_CV_FLOOR:g}",
                    file=stream.file,
                    pointer="/power_w",
                )
            )
    for name in filter(None, key_metrics_r2(statistics, chosen)):
        stats = statistics[name]
        if stats.n >= rubric.MIN_RUNS and stats.cv is not None and stats.cv < rubric.RUN_TO_RUN_CV_FLOOR:
            findings.append(
                Finding(
                    "too-regular",
                    Severity.WARNING,
                    f"{name} varies by {stats.cv:.2g} (CV) over {stats.n} runs; independent runs on "
                    f"real hardware vary by at least {rubric.RUN_TO_RUN_CV_FLOOR * 10:.2g}",
                    file=MANIFEST_NAME,
                    pointer="/runs",
                )
            )
    return findings


def key_metrics_r2(statistics: dict[str, MetricStatistics], chosen: rubric.Rubric) -> list[str | None]:
    """For each key quantity, the first of its metrics the bundle reports, or None (which counts as 0)."""
    return [
        next((name for name in alternatives if name in statistics and statistics[name].n), None)
        for alternatives in chosen.key_quantities
    ]


def log_half_width(stats: MetricStatistics) -> float | None:
    """r2's relative half-width: t(0.975, n-1) x (std of the logs) / sqrt(n), the interval's half-width on a
    log scale (about CV-sized for small spreads); None when undefined (n < 2 or a value not positive)."""
    return getattr(stats, "log_half_width", None)


def confidence_r2(
    manifest: models.Manifest, statistics: dict[str, MetricStatistics], chosen: rubric.Rubric
) -> tuple[float, list[Finding]]:
    """C: the mean of C_m over every key quantity, one the bundle does not report counting as 0."""
    findings: list[Finding] = []
    attempted = len(manifest.runs)
    per_metric = []
    for alternatives, name in zip(chosen.key_quantities, key_metrics_r2(statistics, chosen)):
        if name is None:
            per_metric.append(0.0)
            findings.append(
                Finding(
                    "key-quantity-absent",
                    Severity.WARNING,
                    f"no run reports {' or '.join(alternatives)}: this key quantity counts as 0 in C",
                    file=MANIFEST_NAME,
                    pointer="/runs",
                )
            )
            continue
        stats = statistics[name]
        half = log_half_width(stats)
        value = 0.0
        if stats.n >= rubric.MIN_RUNS and attempted and half is not None:
            value = max(0.0, min(1.0, 1.0 - half / rubric.R2_TARGET_RELATIVE_HALF_WIDTH)) * math.sqrt(
                stats.n / attempted
            )
        per_metric.append(value)
        findings += _high_variance(name, stats)
    findings += _too_few_runs(
        max((statistics[name].n for name in key_metrics_r2(statistics, chosen) if name), default=0), attempted
    )
    return (math.fsum(per_metric) / len(per_metric) if per_metric else 0.0), findings


def badges_r2(
    manifest: models.Manifest,
    completeness_value: float,
    statistics: dict[str, MetricStatistics],
    findings: list[Finding],
    chosen: rubric.Rubric,
) -> list[str]:
    """Complete and Reproduced under r2 (a ranked bundle only); Calibrated comes from the registry."""
    earned = []
    if completeness_value >= rubric.COMPLETE_MIN_COMPLETENESS:
        earned.append("Complete")
    names = key_metrics_r2(statistics, chosen)
    doubtful = any(finding.code in ("seed-reuse", "duplicate-run", "too-regular") for finding in findings)
    widths = [log_half_width(statistics[name]) if name else None for name in names]
    if (
        names
        and not doubtful
        and all(name and statistics[name].n >= rubric.MIN_RUNS for name in names)
        and all(width is not None and width <= rubric.R2_TARGET_RELATIVE_HALF_WIDTH for width in widths)
    ):
        earned.append("Reproduced")
    return earned
