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
