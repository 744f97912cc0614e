"""Rubric r2's summary gate, second half: every derived metric recomputed (docs/scoring.md, r2 2.4).

r1 recomputes only what one trace defines alone (steps/s, counter energy, ...). A derived metric
(energy per step, net energy, FLOP/s, utilization, samples/s, ...) is a formula over other
metrics and the manifest; r2 recomputes it from its inputs, taking each input from the traces
where the traces define it and from the manifest otherwise, and fails the gate when the reported
value is off by more than the stated tolerance. Sampled energy and power are integrated from the
power trace again.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from trainmark.scorer import rubric
from trainmark.scorer.summaries import _counter_channels
from trainmark.scorer.traces import NS, TraceDigest
from trainmark.spec import models
from trainmark.spec.findings import Finding, Severity
from trainmark.spec.layout import MANIFEST_NAME

PRECISION_FORMAT = {
    "fp32": "fp32",
    "tf32": "tf32",
    "bf16_autocast": "bf16",
    "fp16_autocast": "fp16",
    "bf16": "bf16",
    "fp16": "fp16",
    "fp8_mixed": "fp8",
    "fp64": "fp64",
}
"""The number format whose peak a precision policy's matrix multiplies run at."""


def text_of(value: object) -> str | None:
    """An enumeration value as its text (the models keep some as enum members, some as strings)."""
    return None if value is None else str(getattr(value, "value", value))


def _reported(run: models.Run, name: str, scope: str = "global", device: int | None = None) -> float | None:
    return next(
        (
            m.value
            for m in run.metrics
            if m.name == name and m.scope == scope and m.device == device and m.value is not None
        ),
        None,
    )


def used_devices(manifest: models.Manifest, run: models.Run) -> list[models.Device]:
    """The devices a run's ranks are placed on (every device of the system when it names no placement)."""
    devices = {device.index: device for device in manifest.system.devices}
    placed = sorted({placement.device for placement in run.ranks or [] if placement.device is not None})
    return [devices[index] for index in placed if index in devices] or list(manifest.system.devices)


def precision_peaks(manifest: models.Manifest, device: models.Device) -> list[float]:
    """The device's dense peaks for the precision in use (several sources may be listed)."""
    policy = manifest.model.precision_policy
    fmt = PRECISION_FORMAT.get(text_of(policy) or "")
    return [peak.flops_per_s for peak in device.peak_flops or [] if text_of(peak.format) == fmt and not peak.sparse]


def highest_peak(device: models.Device) -> float | None:
    """The highest peak the device lists in any format, sparse included (the physical ceiling)."""
    return max((peak.flops_per_s for peak in device.peak_flops or []), default=None)


class RunInputs:
    """Each input of the derived formulas for one run: from the traces when they define it."""

    def __init__(self, manifest: models.Manifest, run: models.Run, digest: TraceDigest) -> None:
        self.manifest, self.run, self.digest = manifest, run, digest
        rank0 = digest.steps.get((run.run_id, 0))
        self.steps_per_second = (
            rank0.measured / rank0.measured_duration_s
            if rank0 is not None and rank0.measured and rank0.measured_duration_s > 0
            else _reported(run, "steps_per_second")
        )
        self.steps_completed = float(rank0.count) if rank0 is not None else _reported(run, "steps_completed")
        self.updates_completed = float(rank0.updates) if rank0 is not None else _reported(run, "updates_completed")
        counters = _counter_channels(digest)
        self.counter_energy: dict[int, float] = {}
        self.counter_window_s: dict[int, float] = {}
        self.sampled_energy: dict[int, float] = {}
        self.power_window_s: dict[int, float] = {}
        for stream in digest.samples.values():
            if stream.run_id != run.run_id or stream.device is None:
                continue
            if stream.channel in counters and stream.energy_count >= 2:
                self.counter_energy[stream.device] = (
                    self.counter_energy.get(stream.device, 0.0) + stream.energy_increase_j
                )
                self.counter_window_s[stream.device] = (stream.energy_last_ns - stream.energy_first_ns) / NS
            if stream.power_count >= 2:
                self.sampled_energy[stream.device] = (
                    self.sampled_energy.get(stream.device, 0.0) + stream.power_integral_j
                )
                self.power_window_s[stream.device] = (stream.power_last_ns - stream.power_first_ns) / NS
        energy_metric = next((m for m in run.metrics if m.name == "total_energy" and m.scope == "global"), None)
        traced = None
        if energy_metric is not None and energy_metric.method in ("counter", "derived") and self.counter_energy:
            traced = math.fsum(self.counter_energy.values())
        self.total_energy = traced if traced is not None else _reported(run, "total_energy")

    def flops_per_step(self) -> list[float]:
        return [
            value
            for value in (
                _reported(self.run, "flops_per_step_analytical"),
                _reported(self.run, "flops_per_step_counted"),
            )
            if value
        ]


def _candidates(inputs: RunInputs) -> dict[tuple[str, str, int | None], list[float]]:
    """Recomputed values of the derived metrics of one run, keyed (name, scope, device)."""
    manifest, run = inputs.manifest, inputs.run
    training = manifest.training
    out: dict[tuple[str, str, int | None], list[float]] = {}

    def put(name: str, value: float | None, scope: str = "global", device: int | None = None) -> None:
        if value is not None and math.isfinite(value):
            out.setdefault((name, scope, device), []).append(value)

    sps, energy = inputs.steps_per_second, inputs.total_energy
    if sps is not None and training.global_batch_size:
        put("samples_per_second", training.global_batch_size * sps)
        if training.sequence_length:
            put("tokens_per_second", training.global_batch_size * training.sequence_length * sps)
    if energy is not None:
        if inputs.steps_completed:
            put("energy_per_step", energy / inputs.steps_completed)
            put("steps_per_kilojoule", inputs.steps_completed / (energy / 1000) if energy else None)
            if training.global_batch_size:
                put("energy_per_sample", energy / (inputs.steps_completed * training.global_batch_size))
        if inputs.updates_completed:
            put("energy_per_update", energy / inputs.updates_completed)
        for flops in inputs.flops_per_step():
            if inputs.steps_completed and energy:
                put("flops_per_joule", flops * inputs.steps_completed / energy)
    world = training.world_size or len(run.ranks or []) or 1
    devices = used_devices(manifest, run)
    # A device does the work of every rank placed on it (several processes may share one CPU).
    ranks_on = {
        device.index: sum(1 for placement in run.ranks or [] if placement.device == device.index) or 1
        for device in devices
    }
    for flops in inputs.flops_per_step():
        if sps is None:
            continue
        put("flops_per_second", flops * sps)
        for device in devices:
            put("flops_per_second", flops / world * ranks_on[device.index] * sps, "device", device.index)
        if all(precision_peaks(manifest, device) for device in devices):
            total_peak = math.fsum(max(precision_peaks(manifest, device)) for device in devices)
            put("compute_utilization", flops * sps / total_peak * 100)
            for device in devices:
                for peak in precision_peaks(manifest, device):
                    put(
                        "compute_utilization",
                        flops / world * ranks_on[device.index] * sps / peak * 100,
                        "device",
                        device.index,
                    )
    # idle subtraction: idle power x the window the energy was measured over (counter, polled or run)
    idle = {device.index: _reported(run, "idle_power", "device", device.index) for device in devices}
    if all(value is not None for value in idle.values()) and idle:
        put("idle_power", math.fsum(idle.values()))
        if energy is not None:
            duration = (run.ended_at - run.started_at).total_seconds()
            for windows in (inputs.counter_window_s, inputs.power_window_s, {d: duration for d in idle}):
                if all(d in windows for d in idle):
                    put("net_energy", energy - math.fsum(idle[d] * windows[d] for d in idle))
    for device, joules in inputs.sampled_energy.items():
        put("total_energy", joules, "device", device)
    # Imported node energy is not recomputed here: it follows its source's published rule (MLPerf:
    # conversion efficiency x a left-rectangle sum, rescaled to time to train), which the registry
    # checks by importing the kept originals again.
    node_energy: dict[int, float] = {}
    for stream in inputs.digest.samples.values():
        if stream.run_id != run.run_id or stream.power_count < 2:
            continue
        if stream.device is not None:
            put("power_mean", stream.mean_power_w, "device", stream.device)
            put("power_mean", stream.powers.mean, "device", stream.device)
            put("power_peak", stream.max_power_w, "device", stream.device)
        elif stream.node is not None and manifest.source is None:
            node_energy[stream.node] = node_energy.get(stream.node, 0.0) + stream.power_integral_j
    for node, joules in node_energy.items():
        put("total_energy", joules, "node", node)
    return out


SAMPLED = frozenset({"total_energy", "power_mean"})
"""Metrics integrated from polled samples: compared within SAMPLED_ENERGY_TOLERANCE."""


def derived_findings(manifest: models.Manifest, digest: TraceDigest) -> Iterator[Finding]:
    """summary-mismatch (error) for every derived metric off its recomputation by more than the tolerance."""
    for run_index, run in enumerate(manifest.runs):
        candidates = _candidates(RunInputs(manifest, run, digest))
        for metric_index, metric in enumerate(run.metrics):
            if metric.value is None:
                continue
            key = (
                metric.name,
                metric.scope,
                metric.device if metric.scope == "device" else metric.node if metric.scope == "node" else None,
            )
            if key not in candidates:
                continue
            if metric.name in SAMPLED and metric.method != "sampled":
                continue  # counter energy is r1's summary check; modeled energy has nothing to recompute
            if metric.name == "power_peak" and metric.method != "sampled":
                continue
            tolerance = rubric.SAMPLED_ENERGY_TOLERANCE if metric.name in SAMPLED else rubric.DERIVED_RELATIVE_TOLERANCE
            values = candidates[key]
            if any(
                abs(metric.value - value) <= max(tolerance * abs(value), rubric.SUMMARY_ABSOLUTE_TOLERANCE)
                for value in values
            ):
                continue
            nearest = min(values, key=lambda value: abs(value - metric.value))
            off = abs(metric.value - nearest) / abs(nearest) * 100 if nearest else math.inf
            where = "" if key[2] is None else f" {key[2]}"
            yield Finding(
                "summary-mismatch",
                Severity.ERROR,
                f"{metric.name} ({metric.scope}{where}) is reported as {metric.value:.6g} but its "
                f"recomputation from the traces and the manifest gives {nearest:.6g} ({off:.2f} % off; "
                f"tolerance {tolerance * 100:g} %)",
                file=MANIFEST_NAME,
                pointer=f"/runs/{run_index}/metrics/{metric_index}/value",
            )
