"""`trainmark report` and `trainmark compare --html`: self-contained HTML (inline CSS and SVG, no
script, no external file) that people would rather look at than read.

The report shows what was run (every reporting block of the manifest), the score and its
findings, the per-stage table (forward, backward, optimizer: time, peak memory, bandwidth, power)
as the framework's example table lays it out, the kernel breakdown, and per run plots of step
time, memory and power with the warm-up and profiler phases shaded. Every number that the score
report also holds is taken from it and carries its exact value in `data-value`, so a test can
hold the page to the score JSON.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from trainmark.scorer.advice import score_advice
from trainmark.scorer.compare import QUANTITIES, Comparison
from trainmark.scorer.plots import interval_plot, overlaid_plots
from trainmark.scorer.score import ScoreReport, score_bundle
from trainmark.scorer.series import SeriesCollector
from trainmark.scorer.units import human as human_quantity
from trainmark.scorer.units import si
from trainmark.spec import models
from trainmark.spec.archive import open_bundle
from trainmark.spec.bundle import read_manifest

GLANCE = (
    ("time_to_train", "time to train"),
    ("steps_per_second", "throughput"),
    ("time_per_step", "time per step"),
    ("total_energy", "energy per run"),
    ("energy_per_sample", "energy per sample"),
    ("energy_per_step", "energy per step"),
    ("peak_memory", "peak memory"),
    ("power_mean", "mean power"),
    ("final_loss", "final loss"),
    ("final_quality", "final quality"),
)
"""What a reader looks for first, in this order, where the bundle reports it."""
STAGES = (
    ("data_loading", "data loading"),
    ("forward", "forward"),
    ("backward", "backward"),
    ("optimizer", "optimizer"),
)
BLOCKS = ("system", "software", "model", "training", "dataset", "code", "environment", "methodology")


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if (isinstance(value, int) or float(value).is_integer()) and abs(value) < 1e7:
        return f"{int(value):,}"
    return f"{value:.{digits}g}"


def show(value: Any, unit: str = "") -> str:
    """A value for a person (trainmark.scorer.units: IEC bytes, SI prefixes, kWh beside J, durations);
    the exact value goes in the element's data-value."""
    if value is None:
        return "null"
    if unit and isinstance(value, (int, float)) and not isinstance(value, bool):
        return human_quantity(value, unit)
    return _number(value)


def bound(value: Any, unit: str = "") -> str:
    """An interval bound of a quantity that cannot be negative: never shown below 0."""
    if isinstance(value, (int, float)) and value < 0:
        value = 0.0
    if unit == "J" and value is not None:
        return si(value, "J")  # kWh once, beside the headline
    return show(value, unit)


def ratio(value: float | None) -> str:
    """A ratio of means: three significant figures, SI prefixes past a thousand, never below 0."""
    return "null" if value is None else si(max(0.0, value))


def bundle_names(comparison: Comparison) -> list[str]:
    """What to call each compared bundle: its folder's name, or its configuration's label where two
    folders share a name."""
    names = [Path(configuration.path).name.removesuffix(".tar.gz") for configuration in comparison.configurations]
    if len(set(names)) < len(names):
        return [configuration.label for configuration in comparison.configurations]
    return names


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("trainmark.scorer", "templates"), autoescape=select_autoescape(default=True)
    )
    environment.filters["number"] = _number
    environment.filters["show"] = show
    environment.filters["bound"] = bound
    environment.filters["ratio"] = ratio
    environment.globals["style"] = Markup(
        resources.files("trainmark.scorer").joinpath("templates", "report.css").read_text()
    )
    return environment


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """A reporting block as (field path, text) rows; a metric object reads "value unit (method)"."""
    if isinstance(value, dict):
        if "unit" in value and ("value" in value or "unavailable_reason" in value):
            if value.get("value") is None:
                return [(prefix, f"null: {value.get('unavailable_reason')}")]
            return [
                (
                    prefix,
                    f"{_number(value['value'])} {value['unit']} ({value.get('method', '')}"
                    f"{'; ' + value['source'] if value.get('source') else ''})",
                )
            ]
        rows = []
        for key, item in value.items():
            rows.extend(_flatten(item, f"{prefix}.{key}" if prefix else key))
        return rows
    if isinstance(value, list):
        if all(not isinstance(item, (dict, list)) for item in value):
            return [(prefix, ", ".join(str(item) for item in value))]
        rows = []
        for index, item in enumerate(value):
            rows.extend(_flatten(item, f"{prefix}[{index}]"))
        return rows
    return [(prefix, "null" if value is None else str(value))]


def _stage_value(manifest: models.Manifest, name: str) -> tuple[float | None, str, str | None]:
    """The median over completed runs of a per-stage metric (largest device for memory), its unit,
    or the reason it is missing."""
    from trainmark.scorer.compare import run_values

    values, unit, reason = [], "", None
    for run in manifest.runs:
        if run.status != "completed":
            continue
        value, run_unit, run_reason = run_values(run, name)
        unit = unit or (run_unit or "")
        if value is None:
            reason = reason or run_reason
        else:
            values.append(value)
    if not values:
        return None, unit, reason or "not in the bundle"
    values.sort()
    middle = len(values) // 2
    median = values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
    return median, unit, None


def stage_rows(manifest: models.Manifest, report: ScoreReport) -> list[dict]:
    """Forward, backward, optimizer (and data loading): time per step with its interval and share,
    peak memory, memory bandwidth, power."""
    statistics = report.statistics
    total = statistics.get("time_per_step")
    rows = []
    for stage, label in STAGES:
        time_stats = statistics.get(f"time_per_step_{stage}")
        row = {
            "stage": label,
            "time": time_stats,
            "time_metric": f"time_per_step_{stage}",
            "share": (
                time_stats.headline / total.headline * 100
                if time_stats and total and time_stats.headline and total.headline
                else None
            ),
        }
        for column, metric in (
            ("memory", f"peak_memory_{stage}"),
            ("bandwidth", f"memory_bandwidth_{stage}"),
            ("power", f"power_{stage}"),
        ):
            value, unit, reason = _stage_value(manifest, metric)
            row[column] = {"value": value, "unit": unit, "reason": reason}
        rows.append(row)
    return rows


def kernel_view(root: Path, manifest: models.Manifest) -> dict | None:
    """The first run's kernel breakdown (categories and top kernels) and its window."""
    for entry in manifest.files:
        if entry.record_type == "kernel_breakdown":
            breakdown = json.loads((root / entry.path).read_text())
            breakdown["run_id"] = entry.run_id
            total = breakdown.get("total_time_s") or 0.0
            for category in breakdown.get("categories", []):
                category["share"] = category["time_s"] / total * 100 if total else None
            return breakdown
    return None


def bundle_report_html(path: Path) -> tuple[str, ScoreReport]:
    """The self-contained HTML report of the bundle at `path`, and the score report it shows."""
    series = SeriesCollector()
    report = score_bundle(path, observer=series)
    with open_bundle(path) as root:
        document, manifest = read_manifest(root)
        kernels = kernel_view(root, manifest)
    blocks = [(name, _flatten(document.get(name))) for name in BLOCKS if document.get(name) is not None]
    plots = [Markup(svg) for svg in overlaid_plots(series.results())]
    glance = [
        (name, label, report.statistics[name])
        for name, label in GLANCE
        if name in report.statistics and report.statistics[name].headline is not None
    ]
    html = (
        _environment()
        .get_template("report.html")
        .render(
            manifest=manifest,
            document=document,
            score=report,
            blocks=blocks,
            stages=stage_rows(manifest, report),
            kernels=kernels,
            plots=plots,
            findings=[finding.as_dict() for finding in report.findings],
            gates=report.gates,
            statistics=report.statistics,
            glance=glance,
            advice=score_advice(report),
        )
    )
    return html, report


def comparison_html(comparison: Comparison) -> str:
    """The comparison as a self-contained page: the table, and a plot of each quantity's ratio to
    the baseline with its interval."""
    baseline = comparison.configurations[comparison.baseline]
    names = bundle_names(comparison)
    plots = []
    for name, label, higher in QUANTITIES:
        rows = [
            (bundle_name, cell.ratio, cell.ratio_low, cell.ratio_high)
            for bundle_name, configuration in zip(names, comparison.configurations)
            if configuration is not baseline and (cell := configuration.cells[name]).ratio is not None
        ]
        if rows:
            direction = "higher is better" if higher else "lower is better"
            plots.append(Markup(interval_plot(f"{label}: ratio to the baseline ({direction})", rows)))
    return (
        _environment()
        .get_template("compare.html")
        .render(comparison=comparison, baseline=baseline, quantities=QUANTITIES, plots=plots, names=names)
    )
