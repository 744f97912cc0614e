"""Rubric r2's physics gate (docs/scoring.md, r2 2.5): what no real training run can show.

Each check is an error finding that points at the record; any one fails the gate, so the bundle
is not ranked and earns no badge. The checks only compare numbers the bundle gives with each
other and with physical ceilings the bundle itself declares (peaks, power limits); a check whose
inputs are absent does not apply.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta

from trainmark.scorer import rubric
from trainmark.scorer.derived import _reported, highest_peak, precision_peaks, text_of, used_devices
from trainmark.scorer.traces import SampleStream, TraceDigest, to_unix_ns
from trainmark.spec import models
from trainmark.spec.findings import Finding, Severity
from trainmark.spec.layout import MANIFEST_NAME


def _pointer(
    manifest: models.Manifest, run: models.Run, name: str, scope: str = "global", device: int | None = None
) -> str:
    index = manifest.runs.index(run)
    for metric_index, metric in enumerate(run.metrics):
        if metric.name == name and metric.scope == scope and metric.device == device and metric.value is not None:
            return f"/runs/{index}/metrics/{metric_index}/value"
    return f"/runs/{index}"


# ---------------------------------------------------------------- checks of one run
#
# Each check is a small function yielding the findings (all errors) of one physical impossibility.


def flops_within_device_peaks(manifest: models.Manifest, run: models.Run, digest: TraceDigest) -> Iterator[Finding]:
    """physics-flops: the FLOP/s claimed do not exceed the sum of the devices' known peaks."""
    devices = used_devices(manifest, run)
    ceilings = [max(precision_peaks(manifest, device), default=None) or highest_peak(device) for device in devices]
    if None not in ceilings and ceilings:
        ceiling = math.fsum(ceilings)
        claimed = _reported(run, "flops_per_second")
        if claimed is not None and claimed > ceiling:
            yield Finding(
                "physics-flops",
                Severity.ERROR,
                f"run {run.run_id} claims {claimed:.4g} FLOP/s on {len(devices)} device(s) whose known peaks add up "
                f"to {ceiling:.4g} FLOP/s ({claimed / ceiling * 100:.0f} % utilization)",
                file=MANIFEST_NAME,
                pointer=_pointer(manifest, run, "flops_per_second"),
            )


def utilization_at_most_full(manifest: models.Manifest, run: models.Run, digest: TraceDigest) -> Iterator[Finding]:
    """physics-flops: no compute_utilization above 100 %."""
    for metric_index, metric in enumerate(run.metrics):
        if (
            metric.name == "compute_utilization"
            and metric.value is not None
            and metric.value > rubric.UTILIZATION_CEILING_PERCENT
        ):
            yield Finding(
                "physics-flops",
                Severity.ERROR,
                f"run {run.run_id}: compute_utilization ({metric.scope}) is {metric.value:.4g} %, above 100 %",
                file=MANIFEST_NAME,
                pointer=f"/runs/{manifest.runs.index(run)}/metrics/{metric_index}/value",
            )


def _run_streams(run: models.Run, digest: TraceDigest) -> list[SampleStream]:
    return [s for s in digest.samples.values() if s.run_id == run.run_id]


def _sampled_devices(streams: list[SampleStream]) -> list[int]:
    return sorted({s.device for s in streams if s.device is not None})


def device_power_is_physical(manifest: models.Manifest, run: models.Run, digest: TraceDigest) -> Iterator[Finding]:
    """Per device: physics-idle (idle power below the mean training power), physics-energy-channels (its
    energy counter and polled power agree within COUNTER_POLLED_TOLERANCE), physics-power (its power stays
    below PHYSICS_POWER_LIMIT_FACTOR x its limit)."""
    streams = _run_streams(run, digest)
    for device in _sampled_devices(streams):
        polled = [s for s in streams if s.device == device and s.mean_power_w is not None]
        counters = [s for s in streams if s.device == device and s.counter_mean_power_w is not None]
        idle = _reported(run, "idle_power", "device", device)
        mean = (
            math.fsum(s.mean_power_w for s in polled) / len(polled)
            if polled
            else _reported(run, "power_mean", "device", device)
        )
        if idle is not None and mean is not None and idle >= mean:
            yield Finding(
                "physics-idle",
                Severity.ERROR,
                f"run {run.run_id}, device {device}: idle power {idle:.4g} W is not below the mean training power "
                f"{mean:.4g} W",
                file=MANIFEST_NAME,
                pointer=_pointer(manifest, run, "idle_power", "device", device),
            )
        if polled and counters:
            counter_w = math.fsum(s.counter_mean_power_w for s in counters) / len(counters)
            polled_w = math.fsum(s.mean_power_w for s in polled) / len(polled)
            apart = abs(counter_w - polled_w) / counter_w if counter_w else math.inf
            if apart > rubric.COUNTER_POLLED_TOLERANCE:
                yield Finding(
                    "physics-energy-channels",
                    Severity.ERROR,
                    f"run {run.run_id}, device {device}: the energy counter gives {counter_w:.1f} W on average, polled "
                    f"power {polled_w:.1f} W ({apart * 100:.1f} % apart; at most "
                    f"{rubric.COUNTER_POLLED_TOLERANCE * 100:g} %)",
                    file=polled[0].file,
                    pointer="/power_w",
                )
        for stream in streams:
            if (
                stream.device == device
                and stream.power_limit_w
                and stream.max_power_w is not None
                and stream.max_power_w > stream.power_limit_w * rubric.PHYSICS_POWER_LIMIT_FACTOR
            ):
                yield Finding(
                    "physics-power",
                    Severity.ERROR,
                    f"run {run.run_id}, device {device}: power reaches {stream.max_power_w:.4g} W, above "
                    f"{rubric.PHYSICS_POWER_LIMIT_FACTOR:g} x its {stream.power_limit_w:g} W limit",
                    file=stream.file,
                    pointer="/power_w",
                )


def run_idle_below_training_power(manifest: models.Manifest, run: models.Run, digest: TraceDigest) -> Iterator[Finding]:
    """physics-idle: the run's global idle power is below its mean training power (when no device already says so)."""
    idle, mean = _reported(run, "idle_power"), _reported(run, "power_mean")
    if idle is None or mean is None or idle < mean:
        return
    if any(finding.code == "physics-idle" for finding in device_power_is_physical(manifest, run, digest)):
        return
    yield Finding(
        "physics-idle",
        Severity.ERROR,
        f"run {run.run_id}: idle power {idle:.4g} W is not below the mean training power {mean:.4g} W",
        file=MANIFEST_NAME,
        pointer=_pointer(manifest, run, "idle_power"),
    )


def net_energy_within_total(manifest: models.Manifest, run: models.Run, digest: TraceDigest) -> Iterator[Finding]:
    """physics-net-energy: net energy (idle subtracted) does not exceed total energy, globally and per device."""
    for device in [None] + [d.index for d in manifest.system.devices]:
        scope = "global" if device is None else "device"
        net, total = _reported(run, "net_energy", scope, device), _reported(run, "total_energy", scope, device)
        if net is not None and total is not None and net > total * (1 + rubric.SUMMARY_RELATIVE_TOLERANCE):
            yield Finding(
                "physics-net-energy",
                Severity.ERROR,
                f"run {run.run_id}: net energy {net:.6g} J exceeds total energy {total:.6g} J",
                file=MANIFEST_NAME,
                pointer=_pointer(manifest, run, "net_energy", scope, device),
            )


# ---------------------------------------------------------------- checks of the bundle


def steps_do_not_overlap(manifest: models.Manifest, digest: TraceDigest, now: datetime) -> Iterator[Finding]:
    """step-overlap: one process runs one step at a time."""
    for (run_id, rank), stream in sorted(digest.steps.items()):
        if stream.overlaps:
            yield Finding(
                "step-overlap",
                Severity.ERROR,
                f"rank {rank} in run {run_id}: {stream.overlaps} step(s) start before the previous "
                "step ended; one process runs one step at a time",
                file=stream.file,
                line=stream.first_overlap_line,
            )


def runs_do_not_overlap(manifest: models.Manifest, digest: TraceDigest, now: datetime) -> Iterator[Finding]:
    """run-overlap: two runs on the same devices do not overlap in time (beyond WINDOW_SLACK_S)."""
    slack = timedelta(seconds=rubric.WINDOW_SLACK_S)
    for index, run in enumerate(manifest.runs):
        devices = {d.index for d in used_devices(manifest, run)}
        for other_index in range(index):
            other = manifest.runs[other_index]
            if (
                devices & {d.index for d in used_devices(manifest, other)}
                and run.started_at < other.ended_at - slack
                and other.started_at < run.ended_at - slack
            ):
                yield Finding(
                    "run-overlap",
                    Severity.ERROR,
                    f"runs {other.run_id} and {run.run_id} overlap in time on the same devices",
                    file=MANIFEST_NAME,
                    pointer=f"/runs/{index}/started_at",
                )


def created_after_the_runs(manifest: models.Manifest, digest: TraceDigest, now: datetime) -> Iterator[Finding]:
    """created-at: the manifest is written after the last run ended, and not in the future."""
    created = manifest.created_at
    last_end = max((run.ended_at for run in manifest.runs), default=None)
    if last_end is not None and created < last_end - timedelta(seconds=rubric.WINDOW_SLACK_S):
        yield Finding(
            "created-at",
            Severity.ERROR,
            f"created_at {created.isoformat()} is before the last run ended ({last_end.isoformat()})",
            file=MANIFEST_NAME,
            pointer="/created_at",
        )
    if to_unix_ns(created) > to_unix_ns(now) + rubric.FUTURE_SLACK_S * 1e9:
        yield Finding(
            "created-at",
            Severity.ERROR,
            f"created_at {created.isoformat()} is in the future",
            file=MANIFEST_NAME,
            pointer="/created_at",
        )


def _hardware(manifest: models.Manifest, run: models.Run) -> tuple:
    """What a run ran on: the sorted (kind, vendor, model, memory) of the devices its ranks use."""
    return tuple(
        sorted(
            (text_of(device.kind) or "", device.vendor or "", device.model or "", device.memory_bytes or 0)
            for device in used_devices(manifest, run)
        )
    )


def runs_share_hardware(manifest: models.Manifest, digest: TraceDigest, now: datetime) -> Iterator[Finding]:
    """hardware-mismatch: every run ran on the hardware of the first; one bundle reports one configuration."""
    first = _hardware(manifest, manifest.runs[0]) if manifest.runs else None
    for index, run in enumerate(manifest.runs[1:], start=1):
        if _hardware(manifest, run) != first:
            names = ", ".join(f"{model}" for _, _, model, _ in _hardware(manifest, run))
            yield Finding(
                "hardware-mismatch",
                Severity.ERROR,
                f"run {run.run_id} ran on other hardware ({names}) than run "
                f"{manifest.runs[0].run_id}; one bundle reports one configuration",
                file=MANIFEST_NAME,
                pointer=f"/runs/{index}/ranks",
            )


RunCheck = Callable[[models.Manifest, models.Run, TraceDigest], Iterable[Finding]]
BundleCheck = Callable[[models.Manifest, TraceDigest, datetime], Iterable[Finding]]

RUN_CHECKS: list[RunCheck] = [
    flops_within_device_peaks,
    utilization_at_most_full,
    device_power_is_physical,
    run_idle_below_training_power,
    net_energy_within_total,
]
"""The physics gate's checks of each run, in the order their findings are reported."""
BUNDLE_CHECKS: list[BundleCheck] = [
    steps_do_not_overlap,
    runs_do_not_overlap,
    created_after_the_runs,
    runs_share_hardware,
]
"""The physics gate's checks across runs and of the bundle as a whole."""


def physics_findings(manifest: models.Manifest, digest: TraceDigest, now: datetime | None = None) -> list[Finding]:
    """Every physics-gate violation of the bundle (empty when it passes): every check of the lists above."""
    now = now or datetime.now(UTC)
    findings = [finding for run in manifest.runs for check in RUN_CHECKS for finding in check(manifest, run, digest)]
    findings += [finding for check in BUNDLE_CHECKS for finding in check(manifest, digest, now)]
    return findings
