"""F, data fidelity (docs/scoring.md section 3): are the numbers internally consistent, sampled
as declared, on one clock, plausible, and measured the strongest way?"""

from __future__ import annotations

import enum
import functools
import math
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pydantic
from trainmark.scorer import rubric
from trainmark.scorer.traces import NS, SampleStream, Stream, TraceDigest
from trainmark.spec import models
from trainmark.spec.findings import Finding, Severity, json_pointer
from trainmark.spec.layout import MANIFEST_NAME


@dataclass
class Component:
    """One sub-score: passed/total checks or a mean of scores; None when nothing applies."""

    scores: list[float] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def check(self, passed: bool, finding: Finding | None = None) -> None:
        self.scores.append(1.0 if passed else 0.0)
        if not passed and finding is not None:
            self.findings.append(finding)

    def add(self, verdicts: Iterable[tuple[bool, Finding | None]]) -> None:
        """Count each (passed, finding) verdict of a check."""
        for passed, finding in verdicts:
            self.check(passed, finding)

    @property
    def value(self) -> float | None:
        return math.fsum(self.scores) / len(self.scores) if self.scores else None


def weighted(components: dict[str, float | None], weights: dict[str, float]) -> float:
    """Weighted mean over the components that apply (value not None); 0 when none does."""
    applicable = {name: value for name, value in components.items() if value is not None}
    total = math.fsum(weights[name] for name in applicable)
    return math.fsum(weights[name] * value for name, value in applicable.items()) / total if total else 0.0


def _duration(seconds: float) -> str:
    if abs(seconds) >= 3600:
        return f"{seconds / 3600:.2f} h"
    return f"{seconds:.3g} s"


def _streams(digest: TraceDigest) -> Iterator[tuple[str, Stream]]:
    for (_run_id, rank), stream in sorted(digest.steps.items()):
        yield f"steps of rank {rank}", stream
    for (_run_id, channel, device, node, rank), stream in sorted(
        digest.samples.items(), key=lambda item: repr(item[0])
    ):
        yield f"channel {channel} for {_target(device, node, rank)}", stream
    for (_run_id, _path), stream in sorted(digest.events.items()):
        yield "events", stream


def _target(device: int | None, node: int | None, rank: int | None) -> str:
    """'device 0', 'device 0, rank 1', 'node 2' or 'the run'."""
    if device is not None:
        return f"device {device}" + (f", rank {rank}" if rank is not None and rank != 0 else "")
    return f"node {node}" if node is not None else "the run"


def _global(run: models.Run, name: str) -> models.Metric | None:
    for metric in run.metrics:
        if metric.name == name and metric.scope == "global":
            return metric
    return None


def _metric_pointer(manifest: models.Manifest, run: models.Run, metric: models.Metric) -> str:
    return f"/runs/{manifest.runs.index(run)}/metrics/{run.metrics.index(metric)}"


# ---------------------------------------------------------------- F1 consistency
#
# Each check is a small function yielding one verdict per thing it checks: (passed, the finding
# that explains a failure). A verdict counts once in F1 (passed / checked), whether or not it
# carries a finding. The lists say which checks F1 runs, for each stream, each rank's steps, each
# run and the bundle; docs/contributing.md ("A new finding or rubric rule") shows how to add one.

Verdict = tuple[bool, Finding | None]


def timestamps_increase(label: str, stream: Stream) -> Iterator[Verdict]:
    """non-monotonic: a stream's timestamps never go backwards."""
    yield (
        stream.backwards == 0,
        Finding(
            "non-monotonic",
            Severity.WARNING,
            f"{label} in run {stream.run_id}: timestamps go backwards {stream.backwards} time(s)",
            file=stream.file,
            line=stream.first_backwards_line,
        ),
    )


def timestamps_are_unique(label: str, stream: Stream) -> Iterator[Verdict]:
    """duplicate-timestamp: no two records of a stream share a timestamp."""
    yield (
        stream.duplicates == 0,
        Finding(
            "duplicate-timestamp",
            Severity.WARNING,
            f"{label} in run {stream.run_id}: {stream.duplicates} repeated timestamp(s)",
            file=stream.file,
            line=stream.first_duplicate_line,
        ),
    )


def records_lie_inside_the_run(label: str, stream: Stream) -> Iterator[Verdict]:
    """outside-window: records lie inside their run's started_at .. ended_at (with WINDOW_SLACK_S)."""
    yield (
        stream.outside_window == 0,
        Finding(
            "outside-window",
            Severity.WARNING,
            f"{label}: {stream.outside_window} record(s) lie more than {rubric.WINDOW_SLACK_S:g} s outside run "
            f"{stream.run_id}'s window (started_at .. ended_at)",
            file=stream.file,
        ),
    )


def energy_counter_increases(label: str, stream: Stream) -> Iterator[Verdict]:
    """non-monotonic: a cumulative energy counter never goes backwards."""
    if isinstance(stream, SampleStream) and stream.energy_count >= 2:
        yield (
            stream.energy_decreases == 0,
            Finding(
                "non-monotonic",
                Severity.WARNING,
                f"{label}: the cumulative energy counter goes backwards {stream.energy_decreases} time(s) "
                "(counter wrap or reset; only increases are counted)",
                file=stream.file,
            ),
        )


def step_indices_increase(run_id: str, rank: int, stream: Stream) -> Iterator[Verdict]:
    """non-monotonic: one rank's step indices increase."""
    yield (
        stream.step_index_backwards == 0,
        Finding(
            "non-monotonic",
            Severity.WARNING,
            f"step indices of rank {rank} in run {run_id} do not increase ({stream.step_index_backwards} time(s))",
            file=stream.file,
        ),
    )


def energy_channels_agree(manifest: models.Manifest, digest: TraceDigest, run: models.Run) -> Iterator[Verdict]:
    """channel-inconsistent: a device's energy counter and its polled power agree (ENERGY_CHANNEL_TOLERANCE)."""
    streams = [s for s in digest.samples.values() if s.run_id == run.run_id]
    for device in sorted({s.device for s in streams if s.device is not None}):
        counters = [s for s in streams if s.device == device and s.counter_mean_power_w is not None]
        polled = [s for s in streams if s.device == device and s.mean_power_w is not None]
        if counters and polled:
            counter_w = sum(s.counter_mean_power_w for s in counters) / len(counters)
            polled_w = sum(s.mean_power_w for s in polled) / len(polled)
            difference = abs(counter_w - polled_w) / counter_w if counter_w else math.inf
            yield (
                difference <= rubric.ENERGY_CHANNEL_TOLERANCE,
                Finding(
                    "channel-inconsistent",
                    Severity.WARNING,
                    f"run {run.run_id}, device {device}: the energy counter gives {counter_w:.1f} W on average, "
                    f"polled power {polled_w:.1f} W ({difference * 100:.1f} % apart, tolerance "
                    f"{rubric.ENERGY_CHANNEL_TOLERANCE * 100:g} %)",
                    file=polled[0].file,
                ),
            )


def dc_power_within_ac_power(manifest: models.Manifest, digest: TraceDigest, run: models.Run) -> Iterator[Verdict]:
    """channel-inconsistent: a node's power after the supplies (DC) is not above its power at the wall (AC)."""
    by_node: dict[int, dict[str, list[float]]] = {}
    for stream in digest.samples.values():
        if stream.run_id != run.run_id:
            continue
        channel = digest.channel(stream.channel)
        if (
            stream.node is not None
            and channel is not None
            and channel.domain == "node"
            and channel.current_type
            and stream.mean_power_w is not None
        ):
            by_node.setdefault(stream.node, {}).setdefault(channel.current_type, []).append(stream.mean_power_w)
    for node, readings in sorted(by_node.items()):
        if "AC" in readings and "DC" in readings:
            ac, dc = sum(readings["AC"]), sum(readings["DC"])
            yield (
                dc <= ac,
                Finding(
                    "channel-inconsistent",
                    Severity.WARNING,
                    f"run {run.run_id}, node {node}: DC power ({dc:.0f} W) above AC power ({ac:.0f} W); power "
                    "after the supplies cannot exceed power at the wall",
                    file=MANIFEST_NAME,
                ),
            )


def step_rate_is_reciprocal(manifest: models.Manifest, digest: TraceDigest, run: models.Run) -> Iterator[Verdict]:
    """metric-inconsistent: steps_per_second x time_per_step = 1 (RECIPROCAL_TOLERANCE)."""
    per_second, per_step = _global(run, "steps_per_second"), _global(run, "time_per_step")
    if per_second and per_step and per_second.value is not None and per_step.value is not None:
        product = per_second.value * per_step.value
        yield (
            abs(product - 1) <= rubric.RECIPROCAL_TOLERANCE,
            Finding(
                "metric-inconsistent",
                Severity.WARNING,
                f"steps_per_second x time_per_step = {product:.4f}, not 1",
                file=MANIFEST_NAME,
                pointer=_metric_pointer(manifest, run, per_second),
            ),
        )


def flops_counts_agree(manifest: models.Manifest, digest: TraceDigest, run: models.Run) -> Iterator[Verdict]:
    """metric-inconsistent: analytical and counted FLOPs per step agree (FLOPS_TOLERANCE)."""
    analytical, counted = _global(run, "flops_per_step_analytical"), _global(run, "flops_per_step_counted")
    if analytical and counted and analytical.value and counted.value:
        difference = abs(analytical.value - counted.value) / max(analytical.value, counted.value)
        yield (
            difference <= rubric.FLOPS_TOLERANCE,
            Finding(
                "metric-inconsistent",
                Severity.WARNING,
                f"analytical ({analytical.value:.4g}) and counted ({counted.value:.4g}) FLOPs per step differ by "
                f"{difference * 100:.1f} % (tolerance {rubric.FLOPS_TOLERANCE * 100:g} %)",
                file=MANIFEST_NAME,
                pointer=_metric_pointer(manifest, run, counted),
            ),
        )


def global_peak_is_device_sum(manifest: models.Manifest, digest: TraceDigest, run: models.Run) -> Iterator[Verdict]:
    """metric-inconsistent: the global peak_memory is the sum of the device peaks."""
    device_peaks = [
        m.value for m in run.metrics if m.name == "peak_memory" and m.scope == "device" and m.value is not None
    ]
    global_peak = _global(run, "peak_memory")
    if device_peaks and global_peak and global_peak.value is not None:
        total = math.fsum(device_peaks)
        yield (
            abs(global_peak.value - total) <= rubric.SUMMARY_RELATIVE_TOLERANCE * total,
            Finding(
                "metric-inconsistent",
                Severity.WARNING,
                f"global peak_memory {global_peak.value:.6g} is not the sum of the device peaks ({total:.6g})",
                file=MANIFEST_NAME,
                pointer=_metric_pointer(manifest, run, global_peak),
            ),
        )


def source_events_present(manifest: models.Manifest, digest: TraceDigest) -> Iterator[Verdict]:
    """A converted bundle's missing-event issues each fail a check (the finding comes from score.source_findings)."""
    for issue in (manifest.source.issues or []) if manifest.source else []:
        if issue.code == "missing-event":
            yield False, None


def kernel_categories_add_up(manifest: models.Manifest, digest: TraceDigest) -> Iterator[Verdict]:
    """metric-inconsistent: a kernel breakdown's categories add up to its total (KERNEL_TOTAL_TOLERANCE)."""
    for breakdown in digest.kernel_breakdowns:
        yield (
            breakdown.consistent,
            Finding(
                "metric-inconsistent",
                Severity.WARNING,
                f"kernel categories add up to {breakdown.categories_s:.6g} s, the total says {breakdown.total_s:.6g} s",
                file=breakdown.file,
                pointer="/total_time_s",
            ),
        )


StreamCheck = Callable[[str, Stream], Iterable[Verdict]]
StepCheck = Callable[[str, int, Stream], Iterable[Verdict]]
RunCheck = Callable[[models.Manifest, TraceDigest, models.Run], Iterable[Verdict]]
BundleCheck = Callable[[models.Manifest, TraceDigest], Iterable[Verdict]]

STREAM_CHECKS: list[StreamCheck] = [
    timestamps_increase,
    timestamps_are_unique,
    records_lie_inside_the_run,
    energy_counter_increases,
]
"""F1 checks of every trace stream (each rank's steps, each channel's samples per device, events)."""
STEP_CHECKS: list[StepCheck] = [step_indices_increase]
"""F1 checks of each rank's step records in each run."""
RUN_CHECKS: list[RunCheck] = [
    energy_channels_agree,
    dc_power_within_ac_power,
    step_rate_is_reciprocal,
    flops_counts_agree,
    global_peak_is_device_sum,
]
"""F1 checks of each run's summaries and channels."""
BUNDLE_CHECKS: list[BundleCheck] = [source_events_present, kernel_categories_add_up]
"""F1 checks of the bundle as a whole."""


def consistency(manifest: models.Manifest, digest: TraceDigest) -> Component:
    """F1: every check of the lists above, over every stream, rank, run and the bundle."""
    component = Component()
    for label, stream in _streams(digest):
        for stream_check in STREAM_CHECKS:
            component.add(stream_check(label, stream))
    for (run_id, rank), stream in sorted(digest.steps.items()):
        for step_check in STEP_CHECKS:
            component.add(step_check(run_id, rank, stream))
    for run in manifest.runs:
        for run_check in RUN_CHECKS:
            component.add(run_check(manifest, digest, run))
    for bundle_check in BUNDLE_CHECKS:
        component.add(bundle_check(manifest, digest))
    return component


# ---------------------------------------------------------------- F2 sampling


def sampling(digest: TraceDigest) -> Component:
    component = Component()
    for (run_id, channel_name, device, node, rank), stream in sorted(
        digest.samples.items(), key=lambda item: repr(item[0])
    ):
        channel = digest.channel(channel_name)
        target = channel.target_rate_hz if channel is not None else None
        if not target or stream.count < 2:
            continue
        label = f"channel {channel_name} ({_target(device, node, rank)}) in run {run_id}"
        achieved = stream.achieved_rate_hz or 0.0
        ratio = achieved / target
        rate_score = min(
            1.0, max(0.0, (ratio - rubric.RATE_ZERO_SCORE) / (rubric.RATE_FULL_SCORE - rubric.RATE_ZERO_SCORE))
        )
        if ratio < rubric.RATE_FULL_SCORE:
            component.findings.append(
                Finding(
                    "sampling-rate-low",
                    Severity.WARNING,
                    f"{label}: {achieved:.3g} Hz achieved of {target:g} Hz declared ({ratio * 100:.0f} %)",
                    file=stream.file,
                )
            )
        gap_fraction = min(1.0, stream.gap_time_over_s / stream.span_s) if stream.span_s else 0.0
        if stream.gaps_over:
            median = stream.gaps.median_s()
            component.findings.append(
                Finding(
                    "sampling-gap",
                    Severity.WARNING,
                    f"{label}: {stream.gaps_over} gap(s) longer than {rubric.GAP_FACTOR:g} x the {1 / target:g} s interval; "
                    f"median gap {median:.3g} s (histogram estimate), longest {stream.max_gap_s:.3g} s, "
                    f"{stream.gap_time_over_s:.3g} s ({gap_fraction * 100:.1f} %) of the stream in such gaps",
                    file=stream.file,
                )
            )
        component.scores.append(rate_score * (1.0 - gap_fraction))
    return component


# ---------------------------------------------------------------- F3 clock


def clock(digest: TraceDigest) -> Component:
    component = Component()
    for label, stream in _streams(digest):
        if not stream.count:
            continue
        start, end = stream.window_ns
        early = (start - stream.first_ns) / NS
        late = (stream.last_ns - end) / NS
        skewed = early > rubric.CLOCK_SKEW_S or late > rubric.CLOCK_SKEW_S
        parts = []
        if early > rubric.CLOCK_SKEW_S:
            parts.append(f"starts {_duration(early)} before the run started")
        if late > rubric.CLOCK_SKEW_S:
            parts.append(f"ends {_duration(late)} after the run ended")
        component.check(
            not skewed,
            Finding(
                "clock-skew",
                Severity.WARNING,
                f"{label} in run {stream.run_id} {' and '.join(parts)}: its clock disagrees with the run's "
                f"(more than {rubric.CLOCK_SKEW_S:g} s)",
                file=stream.file,
            ),
        )
    return component


# ---------------------------------------------------------------- F4 plausibility

_NON_NEGATIVE = (
    "total_energy",
    "net_energy",
    "energy_per_step",
    "energy_per_update",
    "energy_per_sample",
    "power_mean",
    "power_median",
    "power_peak",
    "idle_power",
    "peak_memory",
    "time_per_step",
    "steps_per_second",
    "run_duration",
    "time_to_train",
)


@functools.cache
def _enum_fields(model_class: type) -> frozenset[str]:
    """Fields whose values come from an enumeration (their 'none' is a value, not a placeholder)."""
    names = set()
    for name, info in model_class.model_fields.items():
        pending = [info.annotation]
        while pending:
            annotation = pending.pop()
            if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
                names.add(name)
            pending.extend(typing.get_args(annotation))
    return frozenset(names)


def _placeholders(node: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """Free-text strings of a model tree that stand for a missing value."""
    if isinstance(node, pydantic.BaseModel):
        enums = _enum_fields(type(node))
        for name in type(node).model_fields:
            if name not in enums:
                yield from _placeholders(getattr(node, name), path + (name,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _placeholders(value, path + (index,))
    elif isinstance(node, str) and node.strip().lower() in rubric.PLACEHOLDER_STRINGS:
        yield path, node


def plausibility(manifest: models.Manifest, digest: TraceDigest) -> Component:
    problems: list[Finding] = []
    for path, text in _placeholders(manifest):
        problems.append(
            Finding(
                "placeholder-value",
                Severity.WARNING,
                f"{text!r} stands for a missing value; leave the field out or give the reason",
                file=MANIFEST_NAME,
                pointer=json_pointer(path),
            )
        )
    devices = {device.index: device for device in manifest.system.devices}
    for run_index, run in enumerate(manifest.runs):
        for metric_index, metric in enumerate(run.metrics):
            if metric.value is None:
                continue
            pointer = f"/runs/{run_index}/metrics/{metric_index}/value"
            reason = None
            if metric.unit == "%" and not 0 <= metric.value <= 100:
                reason = f"{metric.name} is {metric.value:.4g} %, outside 0..100 %"
            elif metric.name in _NON_NEGATIVE and metric.value < 0:
                reason = f"{metric.name} is negative ({metric.value:.4g} {metric.unit})"
            elif metric.scope == "device" and metric.device in devices:
                device = devices[metric.device]
                if metric.name == "peak_memory" and device.memory_bytes and metric.value > device.memory_bytes:
                    reason = (
                        f"peak_memory {metric.value:.4g} By exceeds device {metric.device}'s memory "
                        f"({device.memory_bytes} By)"
                    )
                if (
                    metric.name == "power_peak"
                    and device.power_limit_w
                    and metric.value > device.power_limit_w * rubric.POWER_LIMIT_FACTOR
                ):
                    reason = (
                        f"power_peak {metric.value:.4g} W exceeds {rubric.POWER_LIMIT_FACTOR:g} x device "
                        f"{metric.device}'s power limit ({device.power_limit_w:g} W)"
                    )
            if reason:
                problems.append(
                    Finding("implausible-value", Severity.WARNING, reason, file=MANIFEST_NAME, pointer=pointer)
                )
    for stream in sorted(digest.samples.values(), key=lambda s: (s.run_id, s.channel, repr(s.device), repr(s.node))):
        if stream.power_above_limit:
            ceiling = (
                f"{rubric.POWER_LIMIT_FACTOR:g} x its {stream.power_limit_w:g} W power limit"
                if stream.power_limit_w
                else f"{rubric.DEVICE_POWER_CEILING_W:g} W"
            )
            problems.append(
                Finding(
                    "implausible-value",
                    Severity.WARNING,
                    f"{stream.power_above_limit} power sample(s) of device {stream.device} in run "
                    f"{stream.run_id} exceed {ceiling} (highest {stream.max_power_w:.4g} W)",
                    file=stream.file,
                    pointer="/power_w",
                )
            )
    source_problems = (
        sum(1 for issue in (manifest.source.issues or []) if issue.code in rubric.PLAUSIBILITY_SOURCE_ISSUES)
        if manifest.source
        else 0
    )
    component = Component(findings=problems)  # the source issues' own findings come from score.source_findings
    component.scores.append(max(0.0, 1.0 - rubric.PLAUSIBILITY_PENALTY * (len(problems) + source_problems)))
    return component


# ---------------------------------------------------------------- F5 measurement tier


def measurement_tier(manifest: models.Manifest) -> Component:
    component = Component()
    for run_index, run in enumerate(manifest.runs):
        energy = _global(run, "total_energy")
        if energy is None or energy.value is None:
            reason = energy.unavailable_reason if energy is not None else "the run reports no total_energy"
            component.findings.append(
                Finding(
                    "missing-sensor",
                    Severity.WARNING,
                    f"run {run.run_id}: no energy measurement ({reason})",
                    file=MANIFEST_NAME,
                    pointer=f"/runs/{run_index}"
                    + (f"/metrics/{run.metrics.index(energy)}" if energy is not None else ""),
                )
            )
            component.scores.append(rubric.MISSING_TIER)
            continue
        method = energy.method
        if method == "derived":
            inputs = [
                m.method
                for m in run.metrics
                if m.name == "total_energy" and m.scope == "device" and m.value is not None and m.method != "derived"
            ]
            tier = min((rubric.MEASUREMENT_TIERS[m] for m in inputs), default=rubric.MEASUREMENT_TIERS["derived"])
        else:
            tier = rubric.MEASUREMENT_TIERS[method]
        if method == "modeled" or (method == "derived" and tier == rubric.MEASUREMENT_TIERS["modeled"]):
            component.findings.append(
                Finding(
                    "modeled-energy",
                    Severity.WARNING,
                    f"run {run.run_id}: total_energy is an estimate (modeled: {energy.source}), not a measurement",
                    file=MANIFEST_NAME,
                    pointer=_metric_pointer(manifest, run, energy),
                )
            )
        component.scores.append(tier)
    return component
