"""Registry-held calibrations (rubric r2, docs/scoring.md "Calibrated"): the raw readings of a known
configuration on a set of devices, against its reference readings, from which the registry computes
the verdict itself. A bundle earns Calibrated only from one of these that covers exactly its devices
and passes; the bundle's own `calibration` block is shown and earns nothing.

A calibration document (JSON, `trainmark registry calibration add`, `POST /api/v1/calibrations`):

    {"devices": [{"vendor": "NVIDIA", "model": "NVIDIA H100 80GB HBM3", "uuid": "GPU-..."}, ...],
     "configuration": "tiny (digest 3f2a...)",
     "metrics": {"steps_per_second": {"unit": "{step}/s", "reference": [41.2, 41.0, 41.5],
                                      "measured": [40.9, 41.3, 41.1]}, ...}}

`reference`: the per-run readings the configuration's reference gives for that hardware; `measured`:
the per-run readings of the calibration runs on these devices. A document that states a verdict
(`within_margin`, a deviation) is refused: the registry computes those.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

from trainmark.scorer.provenance import calibration_deviation
from trainmark.spec import models
from trainmark.spec.errors import TrainmarkError
from trainmark.spec.jsontext import canonical_json

MAX_DEVICES = 4096
MAX_READINGS = 10_000
MAX_TEXT = 256
DOCUMENT_KEYS = {"devices", "configuration", "metrics"}
DEVICE_KEYS = {"vendor", "model", "uuid"}
READING_KEYS = {"unit", "reference", "measured"}
METRIC_NAMES = frozenset(models.MetricName.__members__)
CALIBRATED_FROM_BUNDLES = (
    "steps_per_second",
    "time_per_step",
    "tokens_per_second",
    "peak_memory",
    "energy_per_step",
    "total_energy",
)
"""The metrics a document made from two bundles calibrates: those `trainmark calibrate` records."""


class CalibrationInvalid(TrainmarkError):
    """A calibration document the registry will not hold; the message says where and how to fix it."""

    code = "calibration-invalid"


@dataclass(frozen=True)
class CalibrationVerdict:
    """A calibration document with the verdict the registry computed from its readings."""

    id: str
    document: dict
    deviations: list[dict]

    @property
    def passed(self) -> bool:
        """Every calibrated metric within its margin."""
        return all(deviation["within_margin"] for deviation in self.deviations)


def _text(value, where: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT or "\x00" in value:
        raise CalibrationInvalid(f"{where} must be non-empty text of at most {MAX_TEXT} characters")
    return value


def _unknown(document: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(document) - known)
    if unknown:
        verdict = [name for name in unknown if name in ("within_margin", "deviations", "deviation_percent", "passed")]
        hint = (
            "; a calibration gives readings, not a verdict: the registry computes the verdict itself" if verdict else ""
        )
        raise CalibrationInvalid(
            f"{where} has unknown key(s) {', '.join(repr(name[:40]) for name in unknown[:5])}; "
            f"it takes {', '.join(sorted(known))}{hint}"
        )


def _readings(values, where: str) -> list[float]:
    if not isinstance(values, list) or not 2 <= len(values) <= MAX_READINGS:
        raise CalibrationInvalid(f"{where} must be a list of 2 to {MAX_READINGS} readings (one per run)")
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise CalibrationInvalid(f"{where}/{index} must be a finite number, not {str(value)[:40]!r}")
    return [float(value) for value in values]


def recompute(document) -> CalibrationVerdict:
    """Check a calibration document and compute its verdict from its readings; CalibrationInvalid
    (saying where) when it is not one."""
    if not isinstance(document, dict):
        raise CalibrationInvalid("a calibration is a JSON object with devices, configuration and metrics")
    _unknown(document, DOCUMENT_KEYS, "the calibration")
    devices = document.get("devices")
    if not isinstance(devices, list) or not 1 <= len(devices) <= MAX_DEVICES:
        raise CalibrationInvalid(f"/devices must list 1 to {MAX_DEVICES} devices, as the bundles declare them")
    clean_devices = []
    for index, device in enumerate(devices):
        where = f"/devices/{index}"
        if not isinstance(device, dict):
            raise CalibrationInvalid(f"{where} must be an object with vendor, model and (where known) uuid")
        _unknown(device, DEVICE_KEYS, where)
        entry = {
            "vendor": _text(device.get("vendor"), f"{where}/vendor"),
            "model": _text(device.get("model"), f"{where}/model"),
        }
        if device.get("uuid") is not None:
            entry["uuid"] = _text(device["uuid"], f"{where}/uuid")
        clean_devices.append(entry)
    configuration = _text(document.get("configuration"), "/configuration")
    metrics = document.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise CalibrationInvalid("/metrics must name at least one calibrated metric with its readings")
    clean_metrics, deviations = {}, []
    for name in sorted(metrics):
        where = f"/metrics/{name[:64]}"
        if name not in METRIC_NAMES:
            raise CalibrationInvalid(f"{where}: not a metric of the standard (e.g. steps_per_second, energy_per_step)")
        readings = metrics[name]
        if not isinstance(readings, dict):
            raise CalibrationInvalid(f"{where} must be an object with unit, reference and measured")
        _unknown(readings, READING_KEYS, where)
        unit = _text(readings.get("unit"), f"{where}/unit")
        reference = _readings(readings.get("reference"), f"{where}/reference")
        measured = _readings(readings.get("measured"), f"{where}/measured")
        try:
            deviations.append(calibration_deviation(name, unit, reference, measured))
        except ValueError as error:
            raise CalibrationInvalid(f"{where}: {error}") from None
        clean_metrics[name] = {"unit": unit, "reference": reference, "measured": measured}
    clean = {"devices": clean_devices, "configuration": configuration, "metrics": clean_metrics}
    return CalibrationVerdict(hashlib.sha256(canonical_json(clean)).hexdigest(), clean, deviations)


def _run_readings(manifest: models.Manifest) -> dict[str, tuple[str, list[float]]]:
    """Per metric, (unit, the global value of every completed run that reports it)."""
    readings: dict[str, tuple[str, list[float]]] = {}
    for run in manifest.runs:
        if getattr(run.status, "value", run.status) != "completed":
            continue
        for metric in run.metrics:
            if metric.scope == "global" and metric.value is not None:
                name = getattr(metric.name, "value", metric.name)
                unit = getattr(metric.unit, "value", metric.unit)
                readings.setdefault(name, (unit, []))[1].append(metric.value)
    return readings


def document_from_bundles(reference: Path, measured: Path, configuration: str | None = None) -> dict:
    """A calibration document from two bundles of the same configuration: `reference` (e.g. what
    `trainmark calibrate` wrote) gives the reference readings, `measured` (runs on the devices being
    calibrated) the devices and the measured readings; every metric of CALIBRATED_FROM_BUNDLES both
    report in 2+ completed runs is calibrated."""
    from trainmark.registry.store import workload_of
    from trainmark.spec.archive import open_bundle
    from trainmark.spec.bundle import read_manifest

    with open_bundle(reference) as root:
        reference_manifest = read_manifest(root)[1]
    with open_bundle(measured) as root:
        measured_manifest = read_manifest(root)[1]
    ours, theirs = workload_of(reference_manifest), workload_of(measured_manifest)
    if ours != theirs:
        raise CalibrationInvalid(
            f"the reference bundle ran {ours!r} and the measured one {theirs!r}: a calibration compares "
            "runs of one configuration"
        )
    reference_readings, measured_readings = _run_readings(reference_manifest), _run_readings(measured_manifest)
    metrics = {
        name: {"unit": unit, "reference": reference_readings[name][1], "measured": values}
        for name, (unit, values) in sorted(measured_readings.items())
        if name in CALIBRATED_FROM_BUNDLES
        and name in reference_readings
        and len(values) >= 2
        and len(reference_readings[name][1]) >= 2
        and reference_readings[name][0] == unit
    }
    if not metrics:
        raise CalibrationInvalid("the two bundles share no metric that 2 or more completed runs of each report")
    return {
        "devices": [
            {"vendor": device.vendor, "model": device.model} | ({"uuid": device.uuid} if device.uuid else {})
            for device in measured_manifest.system.devices
        ],
        "configuration": (configuration or ours)[:MAX_TEXT],
        "metrics": metrics,
    }
