"""Gate 4: each run's reported summary agrees with what its traces say (docs/scoring.md 2.4).

Only metrics with one unambiguous definition from the traces are recomputed; the others are
checked for consistency in F instead. A reported metric whose traces are absent cannot be
verified: that is an info finding, and H already charges for the missing trace.
"""

from __future__ import annotations

from collections.abc import Iterator

from trainmark.scorer import rubric
from trainmark.scorer.traces import TraceDigest
from trainmark.spec import models
from trainmark.spec.findings import Finding, Severity
from trainmark.spec.layout import MANIFEST_NAME

TargetKey = tuple[str, str, int | None, str | None]  # (name, scope, device, method or None for any)


def _counter_channels(digest: TraceDigest) -> set[str]:
    manifest = digest.manifest
    return {
        channel.name
        for channel in manifest.methodology.channels
        if channel.method == "counter" and "energy_j" in channel.fields and channel.domain in (None, "device")
    }


def recomputed_summaries(run: models.Run, digest: TraceDigest) -> dict[TargetKey, list[float]]:
    """Candidate values per (name, scope, device) for one run; a report matching any candidate agrees."""
    values: dict[TargetKey, list[float]] = {
        ("run_duration", "global", None, None): [(run.ended_at - run.started_at).total_seconds()]
    }
    rank0 = digest.steps.get((run.run_id, 0))
    if rank0 is not None:
        values[("steps_completed", "global", None, None)] = [float(rank0.count)]
        values[("updates_completed", "global", None, None)] = [float(rank0.updates)]
        if rank0.measured and rank0.measured_duration_s > 0:
            values[("time_per_step", "global", None, None)] = [rank0.measured_duration_s / rank0.measured]
            values[("steps_per_second", "global", None, None)] = [rank0.measured / rank0.measured_duration_s]
        if rank0.final_loss is not None:
            values[("final_loss", "global", None, None)] = [rank0.final_loss]

    counters = _counter_channels(digest)
    device_energy: dict[int, float] = {}
    for stream in digest.samples.values():
        if stream.run_id != run.run_id or stream.device is None:
            continue
        if stream.channel in counters and stream.energy_count >= 2:
            device_energy[stream.device] = device_energy.get(stream.device, 0.0) + stream.energy_increase_j
        for value in stream.maxima.values():
            values.setdefault(("peak_memory", "device", stream.device, "sampled"), []).append(float(value))
    for device, joules in device_energy.items():
        values[("total_energy", "device", device, "counter")] = [joules]
    if device_energy:
        values[("total_energy", "global", None, "counter")] = [
            sum(device_energy[device] for device in sorted(device_energy))
        ]

    for placement in run.ranks or []:
        stream = digest.steps.get((run.run_id, placement.rank))
        if placement.device is not None and stream is not None and stream.peak_memory_bytes is not None:
            values.setdefault(("peak_memory", "device", placement.device, "counter"), []).append(
                float(stream.peak_memory_bytes)
            )
    return values


METHOD_SPECIFIC = {"total_energy": ("counter",), "peak_memory": ("counter", "sampled")}
"""Metrics recomputed only for the methods named: the method says which trace the value comes from."""


def agrees(reported: float, candidates: list[float]) -> bool:
    """Within 0.5 % (relative) or 1e-9 (absolute) of any candidate."""
    return any(
        abs(reported - value) <= max(rubric.SUMMARY_RELATIVE_TOLERANCE * abs(value), rubric.SUMMARY_ABSOLUTE_TOLERANCE)
        for value in candidates
    )


def summary_findings(manifest: models.Manifest, digest: TraceDigest) -> Iterator[Finding]:
    """summary-mismatch (error) and summary-unverifiable (info) findings for every run."""
    recomputable = {
        "run_duration",
        "steps_completed",
        "updates_completed",
        "time_per_step",
        "steps_per_second",
        "final_loss",
        "total_energy",
        "peak_memory",
    }
    for run_index, run in enumerate(manifest.runs):
        candidates = recomputed_summaries(run, digest)
        for metric_index, metric in enumerate(run.metrics):
            if metric.value is None or metric.name not in recomputable:
                continue
            pointer = f"/runs/{run_index}/metrics/{metric_index}/value"
            if metric.scope not in ("global", "device") or (metric.name == "peak_memory" and metric.scope == "global"):
                continue  # global peak memory is a sum over devices, checked in F
            methods = METHOD_SPECIFIC.get(metric.name)
            if methods is not None and metric.method not in methods:
                continue  # e.g. modeled energy: nothing to recompute it from; the tier charges for it
            key = (metric.name, metric.scope, metric.device, metric.method if methods else None)
            if key not in candidates:
                yield Finding(
                    "summary-unverifiable",
                    Severity.INFO,
                    f"{metric.name} ({metric.scope}, {metric.method}) cannot be recomputed: the bundle "
                    "has no trace it derives from",
                    file=MANIFEST_NAME,
                    pointer=pointer,
                )
                continue
            if not agrees(metric.value, candidates[key]):
                nearest = min(candidates[key], key=lambda value: abs(value - metric.value))
                off = abs(metric.value - nearest) / abs(nearest) * 100 if nearest else float("inf")
                yield Finding(
                    "summary-mismatch",
                    Severity.ERROR,
                    f"{metric.name} ({metric.scope}{'' if metric.device is None else f' {metric.device}'}) "
                    f"is reported as {metric.value:.6g} but the traces give {nearest:.6g} "
                    f"({off:.2f} % off; tolerance {rubric.SUMMARY_RELATIVE_TOLERANCE * 100:g} %)",
                    file=MANIFEST_NAME,
                    pointer=pointer,
                )
