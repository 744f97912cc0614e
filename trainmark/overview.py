"""A short, human-sized overview of a bundle (what `trainmark bundle show` prints)."""

from __future__ import annotations

from collections import Counter

from trainmark.spec import models

HEADLINE_METRICS = (
    "steps_per_second",
    "time_per_step",
    "tokens_per_second",
    "samples_per_second",
    "time_to_train",
    "compute_utilization",
    "peak_memory",
    "total_energy",
    "energy_per_step",
    "energy_per_sample",
    "power_mean",
    "final_loss",
    "final_quality",
)
"""Global-scope metrics shown per run, in this order, when a run reports them."""


def _metric_view(metric: models.Metric) -> dict:
    if metric.value is None:
        return {"value": None, "unit": metric.unit, "unavailable_reason": metric.unavailable_reason}
    return {"value": metric.value, "unit": metric.unit, "method": metric.method}


def bundle_overview(manifest: models.Manifest, bundle_id: str) -> dict:
    """The facts a reader wants first: what ran, on what, how often, and the headline numbers."""
    device_groups = Counter(f"{device.model} ({device.kind})" for device in manifest.system.devices)
    runs = []
    for run in manifest.runs:
        globals_ = {metric.name: metric for metric in run.metrics if metric.scope == "global"}
        runs.append(
            {
                "run_id": run.run_id,
                "status": run.status,
                "seed": run.seed,
                "duration_s": (run.ended_at - run.started_at).total_seconds(),
                "metrics": {name: _metric_view(globals_[name]) for name in HEADLINE_METRICS if name in globals_},
            }
        )
    software = manifest.software
    stack = [f"{software.framework.name} {software.framework.version}"]
    if software.cuda_version:
        stack.append(f"CUDA {software.cuda_version}")
    return {
        "bundle_id": bundle_id,
        "schema_version": manifest.schema_version,
        "producer": f"{manifest.producer.name} {manifest.producer.version}",
        "description": manifest.description,
        "submitter": manifest.submitter.name if manifest.submitter else None,
        "system": {
            "nodes": manifest.system.node_count,
            "devices": [f"{count} x {name}" for name, count in sorted(device_groups.items())],
            "host_cpu": manifest.system.hosts[0].cpu_model,
        },
        "software": ", ".join(stack),
        "model": {
            "name": manifest.model.name,
            "architecture_family": manifest.model.architecture_family,
            "parameters_total": manifest.model.parameters_total.value,
            "precision_policy": manifest.model.precision_policy,
        },
        "training": {
            "global_batch_size": manifest.training.global_batch_size,
            "sequence_length": manifest.training.sequence_length,
            "world_size": manifest.training.world_size,
            "max_steps": manifest.training.max_steps,
        },
        "runs": runs,
        "reported": {
            metric.name: _metric_view(metric)  # what the source's authority reports (e.g. MLCommons)
            for metric in (manifest.source.reported or [] if manifest.source else [])
        },
        "files": len(manifest.files),
        "bytes": sum(entry.size_bytes for entry in manifest.files),
    }
