"""Where a bundle's numbers come from (rubric r2, docs/scoring.md part II section 8).

- `synthetic`: the bundle says it was made up (the standard's examples, test fixtures). Never ranked.
- `imported`: converted from third-party logs kept under `source/` (`trainmark import`).
- `measured`: written by trainmark's own runner or `trainmark.track` (producer `trainmark`), with the
  environment probe it takes (host CPU, installed-package digest).
- `declared`: anything else (hand-written, or another tool's output).

A bundle can always say less of itself (synthetic) but its claim to more is only a label: the
label is derived from what the bundle contains, and the registry alone can check an import
against its kept sources. The label is shown everywhere the score is; only `synthetic` changes
the ranking.
"""

from __future__ import annotations

import math

from trainmark.scorer.statistics import student_t_quantile
from trainmark.spec import models

PROVENANCES = ("measured", "imported", "declared", "synthetic")
RUNNER_PRODUCERS = frozenset({"trainmark"})


def provenance_of(manifest: models.Manifest) -> str:
    """One of PROVENANCES for the bundle."""
    declared = getattr(manifest, "provenance", None)
    if declared is not None and getattr(declared, "value", declared) == "synthetic":
        return "synthetic"
    if manifest.source is not None:
        return "imported"
    probed = manifest.software.packages_digest is not None and all(
        host.cpu_model for host in manifest.system.hosts or []
    )
    if manifest.producer.name in RUNNER_PRODUCERS and probed:
        return "measured"
    return "declared"


# ---------------------------------------------------------------- registry-held calibrations

CALIBRATION_MIN_READINGS = 2
"""Each side of a calibrated metric needs at least two readings (runs) for a 95 % half-width."""


def _half_width(values: list[float]) -> float:
    """Half-width of the Student-t 95 % interval of the mean of `values` (n >= 2)."""
    n = len(values)
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((value - mean) ** 2 for value in values) / (n - 1))
    return student_t_quantile(0.975, n - 1) * std / math.sqrt(n)


def calibration_deviation(name: str, unit: str, reference: list[float], measured: list[float]) -> dict:
    """One metric's deviation of `measured` readings (per run, on the calibrated devices) from the
    `reference` readings of the same configuration: deviation % = (mean_m - mean_r) / |mean_r| x 100,
    margin % = sqrt(h_r^2 + h_m^2) / |mean_r| x 100 (h: Student-t 95 % half-widths of the means),
    within_margin = |deviation| <= margin. The formulas of `trainmark run --calibration`
    (reference_runner/calibration.py), computed here from the readings, never taken from a document."""
    for side, values in (("reference", reference), ("measured", measured)):
        if len(values) < CALIBRATION_MIN_READINGS:
            raise ValueError(f"{name}: {side} needs at least {CALIBRATION_MIN_READINGS} readings, has {len(values)}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise ValueError(f"{name}: every {side} reading must be a finite number")
    reference_mean = math.fsum(reference) / len(reference)
    if reference_mean == 0:
        raise ValueError(f"{name}: the reference mean is 0, so a relative deviation means nothing")
    measured_mean = math.fsum(measured) / len(measured)
    reference_half, measured_half = _half_width(reference), _half_width(measured)
    deviation = (measured_mean - reference_mean) / abs(reference_mean) * 100
    margin = math.hypot(reference_half, measured_half) / abs(reference_mean) * 100
    return {
        "name": name,
        "unit": unit,
        "reference_n": len(reference),
        "reference_mean": reference_mean,
        "reference_half_width": reference_half,
        "measured_n": len(measured),
        "measured_mean": measured_mean,
        "measured_half_width": measured_half,
        "deviation_percent": deviation,
        "margin_percent": margin,
        "within_margin": abs(deviation) <= margin,
    }


def device_identity(device) -> tuple[str, str, str | None]:
    """(vendor, model, uuid or None) of a bundle's device (a models.Device) or a calibration's (a dict)."""
    if isinstance(device, dict):
        return (str(device["vendor"]), str(device["model"]), device.get("uuid") or None)
    return (device.vendor, device.model, device.uuid or None)


def devices_match(bundle_devices: list, calibrated: list) -> bool:
    """Whether a calibration covers exactly a bundle's devices: as many, and each paired with one of
    the same vendor and model, by uuid wherever both declare one (a calibration that names a
    device's uuid covers only that device), by vendor and model otherwise."""
    ours = [device_identity(device) for device in bundle_devices]
    theirs = [device_identity(device) for device in calibrated]
    if len(ours) != len(theirs):
        return False
    unmatched = list(ours)
    # First the devices the calibration names by uuid: each must be in the bundle, with that uuid.
    for vendor, model, uuid in sorted(theirs, key=lambda identity: identity[2] is None):
        if uuid is not None:
            candidates = [i for i, (v, m, u) in enumerate(unmatched) if (v, m, u) == (vendor, model, uuid)]
        else:
            candidates = [i for i, (v, m, _) in enumerate(unmatched) if (v, m) == (vendor, model)]
            # Prefer a bundle device without a uuid, leaving the uuid-named ones for exact pairs.
            candidates.sort(key=lambda i: unmatched[i][2] is not None)
        if not candidates:
            return False
        unmatched.pop(candidates[0])
    return True
