"""H, trace completeness (docs/scoring.md section 4): are the reporting fields there, does every
rank and device have its channels, and do the channels cover each run from start to stop?"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from trainmark.scorer import rubric
from trainmark.scorer.fidelity import Component
from trainmark.scorer.traces import NS, TraceDigest
from trainmark.spec import models
from trainmark.spec.findings import Finding, Severity
from trainmark.spec.layout import MANIFEST_NAME

TRANSFORMERS = frozenset(
    {"decoder_transformer", "encoder_transformer", "encoder_decoder_transformer", "mixture_of_experts"}
)

Condition = Callable[[models.Manifest], bool]


def _always(manifest: models.Manifest) -> bool:
    return True


def _accelerated(manifest: models.Manifest) -> bool:
    return any(device.kind != "cpu" for device in manifest.system.devices)


def _nvidia(manifest: models.Manifest) -> bool:
    return any(device.vendor.strip().lower() == "nvidia" for device in manifest.system.devices)


def _mixed_precision(manifest: models.Manifest) -> bool:
    return manifest.model.precision_policy not in ("fp32", "fp64")


def _several_devices(manifest: models.Manifest) -> bool:
    return manifest.system.node_count > 1 or len(manifest.system.devices) > 1


def _distributed(manifest: models.Manifest) -> bool:
    return manifest.training.world_size > 1


def _transformer(manifest: models.Manifest) -> bool:
    return manifest.model.architecture_family in TRANSFORMERS


# Each entry: the field (JSON pointer; '*' = every element; '|' = any of these), when it applies.
# Conditions read only required fields, so adding an optional field never changes what applies.
REPORTING_FIELDS: list[tuple[str, Condition]] = [
    ("/submitter", _always),
    ("/system/devices/*/memory_bytes", _always),
    ("/system/devices/*/memory_type", _always),
    ("/system/devices/*/peak_flops", _always),
    ("/system/devices/*/driver_version", _accelerated),
    ("/system/devices/*/power_limit_w", _accelerated),
    ("/system/devices/*/max_graphics_clock_mhz", _accelerated),
    ("/system/hosts/*/cpu_model", _always),
    ("/system/hosts/*/cpu_cores", _always),
    ("/system/hosts/*/memory_bytes", _always),
    ("/system/interconnect", _several_devices),
    ("/software/python_version", _always),
    ("/software/os_name", _always),
    ("/software/kernel_version", _always),
    ("/software/packages_digest", _always),
    ("/software/compiler", _always),
    ("/software/cuda_version", _nvidia),
    ("/software/accelerator_driver_version", _accelerated),
    ("/software/mixed_precision_implementation", _mixed_precision),
    ("/software/distributed_backend", _distributed),
    ("/model/parameters_total/value", _always),
    ("/model/parameters_trainable/value", _always),
    ("/model/layers", _always),
    ("/model/hidden_size", _always),
    ("/model/precision_policy", _always),
    ("/model/activation_checkpointing", _always),
    ("/model/vocab_size", _transformer),
    ("/training/micro_batch_size", _always),
    ("/training/gradient_accumulation_steps", _always),
    ("/training/sequence_length", _transformer),
    ("/training/optimizer/hyperparameters", _always),
    ("/training/lr_schedule", _always),
    ("/training/max_steps|/training/epochs|/training/quality_target", _always),
    ("/training/parallelism", _distributed),
    ("/dataset/snapshot_id", _always),
    ("/dataset/size_samples|/dataset/size_tokens|/dataset/size_bytes", _always),
    ("/code/commit", _always),
    ("/environment/ambient_temperature/value", _always),
    ("/environment/cooling_method", _always),
    ("/methodology/clock/synchronization", _always),
    ("/methodology/flop_counting", _always),
    ("/methodology/channels", _always),
    ("/methodology/profiler", _always),
    ("/runs/*/seed", _always),
    ("/runs/*/ranks", _always),
]


def _present(node: Any, parts: list[str]) -> bool:
    if not parts:
        return node is not None and node != [] and node != {} and node != "undeclared"
    if node is None:
        return False
    head, rest = parts[0], parts[1:]
    if head == "*":
        return isinstance(node, list) and bool(node) and all(_present(item, rest) for item in node)
    if isinstance(node, dict):
        return _present(node.get(head), rest)
    return False


def field_present(document: dict, pattern: str) -> bool:
    """Whether the reporting field named by `pattern` is given (see REPORTING_FIELDS)."""
    return any(_present(document, alternative.split("/")[1:]) for alternative in pattern.split("|"))


def reporting_fields(manifest: models.Manifest, document: dict) -> Component:
    component = Component()
    for pattern, applies in REPORTING_FIELDS:
        if not applies(manifest):
            continue
        present = field_present(document, pattern)
        component.check(
            present,
            Finding(
                "reporting-field-absent",
                Severity.INFO,
                f"{pattern.replace('|', ' or ')} is not reported",
                file=MANIFEST_NAME,
                pointer=pattern.split("|")[0].replace("/*", "/0"),
            ),
        )
    return component


def _list(values: list[int]) -> str:
    shown = ", ".join(str(value) for value in values[:8])
    return shown + (f" and {len(values) - 8} more" if len(values) > 8 else "")


def channels(manifest: models.Manifest, digest: TraceDigest) -> Component:
    component = Component()
    devices = manifest.system.devices
    node_of = {device.index: device.node for device in devices}
    for run_index, run in enumerate(manifest.runs):
        pointer = f"/runs/{run_index}"
        streams = [stream for stream in digest.samples.values() if stream.run_id == run.run_id]
        missing_ranks = [rank for rank in range(manifest.training.world_size) if (run.run_id, rank) not in digest.steps]
        powered_devices = {s.device for s in streams if s.device is not None and (s.power_count or s.energy_count)}
        powered_nodes = {
            s.node for s in streams if s.device is None and s.node is not None and (s.power_count or s.energy_count)
        }
        missing_power = [d.index for d in devices if d.index not in powered_devices and d.node not in powered_nodes]
        missing_memory = [d.index for d in devices if not any(s.device == d.index and s.maxima for s in streams)]
        expected = manifest.training.world_size + 2 * len(devices)
        present = expected - len(missing_ranks) - len(missing_power) - len(missing_memory)
        component.scores.append(present / expected)
        for label, missing, unit in (
            ("step records", missing_ranks, "rank"),
            ("power or energy samples", missing_power, "device"),
            ("memory samples", missing_memory, "device"),
        ):
            if missing:
                component.findings.append(
                    Finding(
                        "channel-absent",
                        Severity.WARNING,
                        f"run {run.run_id} has no {label} for {unit}{'s' if len(missing) > 1 else ''} {_list(missing)}"
                        + (f" (nodes {_list(sorted({node_of[d] for d in missing}))})" if unit == "device" else ""),
                        file=MANIFEST_NAME,
                        pointer=pointer,
                    )
                )
    return component


def coverage(digest: TraceDigest) -> Component:
    component = Component()
    for _key, stream in sorted(digest.samples.items(), key=lambda item: repr(item[0])):
        start, end = stream.window_ns
        if end <= start or not stream.count:
            continue
        covered = max(0, min(stream.last_ns, end) - max(stream.first_ns, start)) / (end - start)
        component.scores.append(covered)
        if covered < rubric.COVERAGE_FULL:
            late = max(0.0, (stream.first_ns - start) / NS)
            early = max(0.0, (end - stream.last_ns) / NS)
            target = f"device {stream.device}" if stream.device is not None else f"node {stream.node}"
            component.findings.append(
                Finding(
                    "window-coverage",
                    Severity.WARNING,
                    f"channel {stream.channel} ({target}) covers {covered * 100:.1f} % of run {stream.run_id}: it starts "
                    f"{late:.3g} s after the run started and stops {early:.3g} s before it ended",
                    file=stream.file,
                )
            )
    if not component.scores:
        component.scores.append(0.0)  # nothing sampled covers any run
    return component


def completeness(manifest: models.Manifest, document: dict, digest: TraceDigest) -> tuple[float, dict, list[Finding]]:
    """H and its components (fields, channels, coverage), with the findings that explain each lost point."""
    parts = {
        "fields": reporting_fields(manifest, document),
        "channels": channels(manifest, digest),
        "coverage": coverage(digest),
    }
    values = {name: part.value for name, part in parts.items()}
    total = math.fsum(rubric.COMPLETENESS_WEIGHTS[name] * (value or 0.0) for name, value in values.items())
    return total, values, [finding for part in parts.values() for finding in part.findings]
