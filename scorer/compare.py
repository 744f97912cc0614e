"""Side-by-side comparison of configurations: one bundle each, several runs each.

For every quantity the framework asks a trade-off study to report (throughput, FLOP/s,
utilization, peak memory per stage, energy per step and per update, FLOPs per joule, final loss
and accuracy) a configuration gets its headline value with the Student-t 95 % interval over its
runs, and, against the baseline, the ratio of means with a 95 % interval (delta method on the
log ratio, Welch-Satterthwaite degrees of freedom). A ratio whose interval contains 1 is reported
as "no change", never as a win. Bundles are compared only as far as they are comparable: a
difference in hardware or software is stated next to the table, not hidden in it.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from trainmark.scorer.statistics import metric_statistics, student_t_quantile
from trainmark.spec import models
from trainmark.spec.archive import open_bundle
from trainmark.spec.bundle import bundle_id, read_manifest
from trainmark.spec.errors import TrainmarkError
from trainmark.spec.layout import MANIFEST_NAME

# (metric, label, higher is better): the columns, in the order the framework's tables use.
QUANTITIES = (
    ("steps_per_second", "steps/s", True),
    ("time_per_step", "time per step", False),
    ("flops_per_second", "FLOP/s", True),
    ("compute_utilization", "utilization", True),
    ("peak_memory_forward", "peak memory, forward", False),
    ("peak_memory_backward", "peak memory, backward", False),
    ("peak_memory_optimizer", "peak memory, optimizer", False),
    ("energy_per_step", "energy per step", False),
    ("energy_per_update", "energy per update", False),
    ("flops_per_joule", "FLOPs per joule", True),
    ("final_loss", "final loss", False),
    ("final_accuracy", "final accuracy", True),
)
# What distinguishes one configuration from another, as the manifest states it.
KNOBS = (
    ("precision", lambda m: m.model.precision_policy),
    ("global batch", lambda m: m.training.global_batch_size),
    ("micro batch", lambda m: m.training.micro_batch_size),
    ("accumulation", lambda m: m.training.gradient_accumulation_steps),
    ("sequence", lambda m: m.training.sequence_length),
    ("activation checkpointing", lambda m: m.model.activation_checkpointing),
    ("model", lambda m: m.model.name),
    ("parameters", lambda m: m.model.parameters_total.value),
    ("world size", lambda m: m.training.world_size),
    ("steps", lambda m: m.training.max_steps),
)


@dataclass
class Cell:
    """One quantity of one configuration, and its change against the baseline."""

    unit: str
    n: int = 0
    headline: float | None = None
    ci95_low: float | None = None
    ci95_high: float | None = None
    mean: float | None = None
    std: float | None = None
    unavailable_reason: str | None = None
    ratio: float | None = None
    ratio_low: float | None = None
    ratio_high: float | None = None
    verdict: str = ""

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Configuration:
    """One bundle in the comparison."""

    path: str
    bundle_id: str
    label: str
    knobs: dict[str, object]
    runs_completed: int
    runs_total: int
    cells: dict[str, Cell] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "bundle_id": self.bundle_id,
            "label": self.label,
            "knobs": self.knobs,
            "runs_completed": self.runs_completed,
            "runs_total": self.runs_total,
            "cells": {name: cell.as_dict() for name, cell in self.cells.items()},
        }


@dataclass
class Comparison:
    configurations: list[Configuration]
    baseline: int
    differences: list[str]
    caveats: list[str]

    def as_dict(self) -> dict:
        return {
            "baseline": self.configurations[self.baseline].label,
            "quantities": [
                {"name": name, "label": label, "higher_is_better": higher} for name, label, higher in QUANTITIES
            ],
            "differences": self.differences,
            "caveats": self.caveats,
            "configurations": [configuration.as_dict() for configuration in self.configurations],
        }


def bundle_paths(inputs: list[Path]) -> list[Path]:
    """Bundles named directly, and the bundles inside a folder (a sweep's output), in order."""
    found: list[Path] = []
    for path in inputs:
        if path.is_dir() and not (path / MANIFEST_NAME).is_file():
            inside = sorted(child for child in path.iterdir() if (child / MANIFEST_NAME).is_file())
            grid_order = _sweep_order(path)
            inside.sort(key=lambda child: grid_order.get(child.name, len(grid_order)))
            if not inside:
                raise TrainmarkError(
                    f"{path} is neither a bundle nor a folder of bundles (no manifest.json in it or its subfolders)"
                )
            found.extend(inside)
        else:
            found.append(path)
    if len(found) < 2:
        raise TrainmarkError("a comparison needs at least two bundles (or a folder with two)")
    return found


def _sweep_order(folder: Path) -> dict[str, int]:
    """A sweep's points in the order of its grid (the first varied value first), from sweep.json."""
    try:
        points = json.loads((folder / "sweep.json").read_text())["points"]
        return {point["bundle"]: index for index, point in enumerate(points)}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def run_values(run: models.Run, name: str) -> tuple[float | None, str | None, str | None]:
    """(value, unit, reason) of a metric for one run: the global value, or for per-device peak
    memory the largest device's."""
    chosen = [metric for metric in run.metrics if metric.name == name and metric.scope == "global"]
    if not chosen and name.startswith("peak_memory"):
        chosen = [metric for metric in run.metrics if metric.name == name and metric.scope == "device"]
    present = [metric for metric in chosen if metric.value is not None]
    if present:
        return max(metric.value for metric in present), present[0].unit, None
    if chosen:
        return None, chosen[0].unit, chosen[0].unavailable_reason
    return None, None, "not in the bundle"


def quantity_cell(manifest: models.Manifest, name: str, higher_is_better: bool) -> Cell:
    values, unit, reasons = [], None, []
    completed = [run for run in manifest.runs if run.status == "completed"]
    for run in completed:
        value, run_unit, reason = run_values(run, name)
        unit = unit or run_unit
        if value is None:
            reasons.append(reason)
        else:
            values.append(value)
    if not values:
        return Cell(unit or "", unavailable_reason=reasons[0] if reasons else "no completed run")
    failed = sum(1 for run in manifest.runs if run.status == "failed")
    stats = metric_statistics(values, unit, failed_runs=failed, lower_is_better=not higher_is_better)
    return Cell(
        unit,
        n=stats.n,
        headline=stats.headline,
        ci95_low=stats.ci95_low,
        ci95_high=stats.ci95_high,
        mean=stats.mean,
        std=stats.std,
    )


def ratio_interval(cell: Cell, base: Cell) -> tuple[float | None, float | None, float | None]:
    """Ratio of means and its 95 % interval (log-scale delta method, Welch-Satterthwaite df)."""
    if cell.mean is None or base.mean is None or cell.mean <= 0 or base.mean <= 0:
        return None, None, None
    ratio = cell.mean / base.mean
    if cell.n < 2 or base.n < 2 or cell.std is None or base.std is None:
        return ratio, None, None
    parts = [(cell.std / cell.mean) ** 2 / cell.n, (base.std / base.mean) ** 2 / base.n]
    variance = sum(parts)
    if variance == 0:
        return ratio, ratio, ratio
    degrees = variance**2 / sum(part**2 / (n - 1) for part, n in zip(parts, (cell.n, base.n)) if part > 0)
    half = student_t_quantile(0.975, degrees) * math.sqrt(variance)
    return ratio, ratio * math.exp(-half), ratio * math.exp(half)


def verdict(low: float | None, high: float | None, higher_is_better: bool) -> str:
    if low is None or high is None:
        return "no interval (fewer than 2 runs)"
    if low <= 1.0 <= high:
        return "no change"
    went_up = low > 1.0
    return ("higher" if went_up else "lower") + (", better" if went_up == higher_is_better else ", worse")


def _knob_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return f"{int(value):,}"
    return str(value)


def _describe_hardware(manifest: models.Manifest) -> str:
    groups = Counter(device.model for device in manifest.system.devices)
    devices = ", ".join(f"{count} x {name}" for name, count in sorted(groups.items()))
    return f"{devices} on {manifest.system.node_count} node(s), host {manifest.system.hosts[0].cpu_model}"


def _describe_software(manifest: models.Manifest) -> str:
    software = manifest.software
    stack = [f"{software.framework.name} {software.framework.version}"]
    if software.cuda_version:
        stack.append(f"CUDA {software.cuda_version}")
    return ", ".join(stack)


def compare(inputs: list[Path], baseline: Path | None = None) -> Comparison:
    """Compare the bundles at `inputs` (bundles, or folders of bundles) against `baseline` (default
    the first)."""
    paths = bundle_paths(inputs)
    manifests: list[tuple[Path, str, models.Manifest]] = []
    for path in paths:
        with open_bundle(path) as root:
            document, manifest = read_manifest(root)
        manifests.append((path, bundle_id(document), manifest))
    base_index = 0
    if baseline is not None:
        matches = [
            index
            for index, (path, identifier, _) in enumerate(manifests)
            if path.resolve() == baseline.resolve() or identifier == str(baseline) or path.name == str(baseline)
        ]
        if not matches:
            raise TrainmarkError(f"the baseline {baseline} is not one of the compared bundles")
        base_index = matches[0]

    knob_values = [{knob: read(manifest) for knob, read in KNOBS} for _, _, manifest in manifests]
    varying = [knob for knob, _ in KNOBS if len({repr(values[knob]) for values in knob_values}) > 1]
    differences = [f"{knob}: " + ", ".join(_knob_text(values[knob]) for values in knob_values) for knob in varying]
    caveats = []
    for what, describe in (("hardware", _describe_hardware), ("software", _describe_software)):
        seen = {describe(manifest) for _, _, manifest in manifests}
        if len(seen) > 1:
            caveats.append(
                f"the {what} differs, so a change mixes the configuration with the {what}: "
                + "; ".join(f"{path.name}: {describe(manifest)}" for path, _, manifest in manifests)
            )
    labels_seen: Counter = Counter()
    configurations = []
    for (path, identifier, manifest), values in zip(manifests, knob_values):
        label = ", ".join(f"{knob} {_knob_text(values[knob])}" for knob in varying) or path.name
        labels_seen[label] += 1
        if labels_seen[label] > 1:
            label = f"{label} ({path.name})"
        configuration = Configuration(
            str(path),
            identifier,
            label,
            {knob: values[knob] for knob in varying},
            sum(1 for run in manifest.runs if run.status == "completed"),
            len(manifest.runs),
        )
        for name, _, higher in QUANTITIES:
            configuration.cells[name] = quantity_cell(manifest, name, higher)
        configurations.append(configuration)
    base = configurations[base_index]
    for index, configuration in enumerate(configurations):
        for name, _, higher in QUANTITIES:
            cell = configuration.cells[name]
            if index == base_index:
                cell.verdict = "baseline"
                continue
            cell.ratio, cell.ratio_low, cell.ratio_high = ratio_interval(cell, base.cells[name])
            if cell.ratio is None:
                cell.verdict = (
                    "not measured" if cell.headline is None or base.cells[name].headline is None else "no ratio"
                )
            else:
                cell.verdict = verdict(cell.ratio_low, cell.ratio_high, higher)
    return Comparison(configurations, base_index, differences, caveats)
