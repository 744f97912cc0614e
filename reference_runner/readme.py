"""The short README.md every bundle the runner writes carries: what was run, on what, how each
quantity was measured, what is missing and why, and what to keep in mind before scaling the
figures to other sizes. It is written from the finished manifest, so it says nothing the
manifest does not."""

from __future__ import annotations

from collections import Counter

METHOD_WORDS = {
    "counter": "read from a hardware or software counter",
    "derived": "computed from other measured values",
    "analytical": "from a formula (no measurement)",
    "profiler": "from the profiler",
    "sampled": "from periodic samples",
    "estimated": "an estimate",
}


def _metric_text(metric: dict) -> str:
    value = metric["value"]
    shown = f"{value:,.0f}" if float(value).is_integer() and abs(value) < 1e15 else f"{value:.4g}"
    return shown if metric["unit"] == "1" else f"{shown} {metric['unit']}"


def _global_metrics(run: dict) -> dict[str, dict]:
    return {metric["name"]: metric for metric in run.get("metrics", []) if metric.get("scope") == "global"}


def bundle_readme(manifest: dict) -> str:
    """Markdown for the bundle described by `manifest` (the document, files optional)."""
    model, training, system, software = (
        manifest["model"],
        manifest["training"],
        manifest["system"],
        manifest["software"],
    )
    runs = manifest.get("runs", [])
    devices = Counter(device["model"] for device in system["devices"])
    hardware = ", ".join(f"{count} x {name}" for name, count in sorted(devices.items()))
    parameters = (model.get("parameters_total") or {}).get("value")
    lines = [
        f"# {model['name']}: {len(runs)} run(s) on {hardware}",
        "",
        manifest.get("description") or "",
        "",
        "This bundle follows the trainmark standard "
        f"{manifest['schema_version']}; `manifest.json` holds every number with its unit, method, source and "
        "tool, and `runs/<run>/` the traces they come from. `trainmark report .` draws it; "
        "`trainmark score .` scores it.",
        "",
        "## What was run",
        "",
        f"- Model: {model['name']} ({model['architecture_family']}"
        + (f", {parameters:,.0f} parameters" if parameters else "")
        + f"), precision {model['precision_policy']}"
        + (", activation checkpointing" if model.get("activation_checkpointing") else "")
        + ".",
        f"- Training: global batch {training['global_batch_size']} (micro batch {training.get('micro_batch_size')}"
        f" x {training.get('gradient_accumulation_steps')} accumulation x world size {training['world_size']}), "
        + (
            f"sequence length {training['sequence_length']}, "
            if training.get("sequence_length")
            else "no token sequences, "
        )
        + f"{training.get('max_steps')} optimizer steps, "
        f"optimizer {training['optimizer']['name']}; the first {training.get('warmup_steps_excluded', 0)} steps "
        "are warm-up and left out of throughput statistics.",
        f"- Data: {manifest['dataset']['name']} (snapshot {manifest['dataset'].get('snapshot_id', 'not recorded')}).",
        "- Runs: "
        + ", ".join(
            f"{run['run_id']} ("
            + (f"seed {run['seed']}, " if run.get("seed") is not None else "no seed recorded, ")
            + f"{run['status']})"
            for run in runs
        )
        + ".",
        "",
        "## On what",
        "",
        f"- Hardware: {hardware} on {system['node_count']} node(s); host CPU {system['hosts'][0]['cpu_model']}.",
        f"- Software: {software['framework']['name']} {software['framework']['version']}, Python "
        f"{software.get('python_version', 'unknown')}"
        + (f", CUDA {software['cuda_version']}" if software.get("cuda_version") else "")
        + ".",
        "",
        "## How each quantity was measured",
        "",
    ]
    first = next((run for run in runs if run.get("status") == "completed"), runs[0] if runs else None)
    measured = [
        metric
        for metric in (first or {}).get("metrics", [])
        if metric.get("value") is not None and metric.get("scope") == "global"
    ]
    for metric in measured:
        how = METHOD_WORDS.get(metric.get("method", ""), metric.get("method", ""))
        source = f": {metric['source']}" if metric.get("source") else ""
        lines.append(f"- `{metric['name']}` = {_metric_text(metric)} in {first['run_id']} ({how}{source}).")
    missing: dict[str, str] = {}
    for run in runs:
        for metric in run.get("metrics", []):
            if metric.get("value") is None:
                missing.setdefault(metric["name"], metric.get("unavailable_reason") or "no reason given")
    lines += ["", "## What is missing, and why", ""]
    if missing:
        by_reason: dict[str, list[str]] = {}
        for name, reason in missing.items():
            by_reason.setdefault(reason, []).append(name)
        for reason, names in by_reason.items():
            lines.append(f"- {', '.join(f'`{name}`' for name in names)}: {reason}")
    else:
        lines.append("- Nothing: every quantity of the catalog was measured.")
    lines += ["", "## Before scaling these figures", ""] + [f"- {caveat}" for caveat in _caveats(manifest, missing)]
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


def _caveats(manifest: dict, missing: dict[str, str]) -> list[str]:
    model, training, system = manifest["model"], manifest["training"], manifest["system"]
    kinds = {device.get("kind") for device in system["devices"]}
    caveats = []
    parameters = (model.get("parameters_total") or {}).get("value") or 0
    if parameters and parameters < 50e6:
        caveats.append(
            f"The model is small ({parameters:,.0f} parameters): fixed per-step costs (Python, kernel "
            "launches, the data loader) weigh far more than in a large model, so throughput does not "
            "scale linearly with size, and the kernel shares will shift toward matrix multiplication "
            "as the model grows."
        )
    if "cpu" in kinds:
        caveats.append(
            "It ran on CPUs: step times depend on the thread count and on whatever else the machine was "
            "doing; GPU figures for the same model differ by orders of magnitude and in their breakdown."
        )
    if training["world_size"] == 1:
        caveats.append(
            "One process: no gradient communication is included; data-parallel runs add all-reduce "
            "time that grows with the parameter count and shrinks with the interconnect's bandwidth."
        )
    if any(name.startswith("energy") or name in ("total_energy", "flops_per_joule") for name in missing):
        caveats.append(
            "Energy was not measured (no sensor was readable), so these runs support no energy figure; "
            "do not carry one over from another machine's runs as if it belonged to these."
        )
    if "compute_utilization" in missing:
        caveats.append(
            "Utilization against a peak is missing because no peak FLOP/s is known for this device; "
            "FLOP/s alone does not say how far the hardware was from its limit."
        )
    runs = manifest.get("runs", [])
    if sum(1 for run in runs if run.get("status") == "completed") < 3:
        caveats.append(
            "Fewer than three completed runs: the spread between runs, and so the intervals, are not well estimated."
        )
    if training.get("sequence_length"):
        caveats.append(
            f"Throughput was measured over {training.get('max_steps')} steps of a sequence length of "
            f"{training['sequence_length']} and a global batch of {training['global_batch_size']}: memory "
            "grows with batch and sequence length (attention activations with the square of the sequence "
            "length unless a fused attention kernel avoids it), and steps per second fall as the batch "
            "grows."
        )
    else:
        caveats.append(
            f"Throughput was measured over {training.get('max_steps')} steps of a global batch of "
            f"{training['global_batch_size']}: memory grows with the batch, and steps per second fall as "
            "it grows."
        )
    return caveats
