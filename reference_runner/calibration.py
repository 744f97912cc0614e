"""Calibration: what a known configuration measures on this hardware, and how far a later run is off.

`trainmark calibrate` trains the calibration configuration several times and writes a record:
the hardware it ran on, the configuration's digest, and for each calibrated metric the mean,
standard deviation and Student-t 95 % half-width over the runs. A later `trainmark run
--calibration RECORD` of the same configuration on the same hardware reports, per metric, its
deviation from the record and the error margin of that deviation (the two half-widths in
quadrature, relative to the reference mean). A deviation outside its margin says the machine
is not behaving as it did when calibrated (thermal throttling, a changed driver, a noisy
neighbour), which is worth knowing before trusting any other number it produced.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

from trainmark.reference_runner.config import RunConfig
from trainmark.scorer.statistics import metric_statistics, student_t_quantile
from trainmark.spec import producer_version
from trainmark.spec.errors import TrainmarkError
from trainmark.spec.jsontext import canonical_json, load_document

RECORD_KIND = "trainmark-calibration"
RECORD_VERSION = 1
CALIBRATED_METRICS = (
    "steps_per_second",
    "time_per_step",
    "tokens_per_second",
    "peak_memory",
    "energy_per_step",
    "total_energy",
)


def hardware_description(system: dict) -> tuple[str, str]:
    """(key, text) of the hardware a bundle ran on: device kinds, vendors and models, CPUs, nodes."""
    devices = sorted((device["kind"], device["vendor"], device["model"]) for device in system["devices"])
    hosts = sorted((host.get("cpu_model", "?"), host.get("cpu_cores_used", 0)) for host in system["hosts"])
    descriptor = {"node_count": system["node_count"], "devices": devices, "hosts": hosts}
    key = hashlib.sha256(canonical_json(json.loads(json.dumps(descriptor)))).hexdigest()
    models = sorted({f"{kind} {model}" for kind, _, model in devices})
    text = f"{len(devices)} device(s) ({', '.join(models)}) on {system['node_count']} node(s)"
    return key, text


def configuration_digest(config: RunConfig) -> str:
    """sha256 of the configuration without the seed (calibration runs use several seeds)."""
    knobs = {name: value for name, value in config.as_dict().items() if name not in ("seed", "submitter")}
    return hashlib.sha256(canonical_json(knobs)).hexdigest()


def _global_values(runs: list[dict], name: str) -> tuple[list[float], str | None]:
    values, unit = [], None
    for run in runs:
        if run.get("status") != "completed":
            continue
        for metric in run.get("metrics", []):
            if metric["name"] == name and metric["scope"] == "global" and metric.get("value") is not None:
                values.append(metric["value"])
                unit = metric["unit"]
    return values, unit


def _half_width(values: list[float]) -> float:
    stats = metric_statistics(values, "")
    return student_t_quantile(0.975, stats.n - 1) * stats.std / math.sqrt(stats.n)


def make_record(manifest: dict, config: RunConfig, bundle_id: str) -> dict:
    """The calibration record of a bundle of calibration runs (at least two completed runs)."""
    key, text = hardware_description(manifest["system"])
    metrics = {}
    for name in CALIBRATED_METRICS:
        values, unit = _global_values(manifest["runs"], name)
        if len(values) >= 2:
            stats = metric_statistics(values, unit)
            metrics[name] = {
                "unit": unit,
                "n": stats.n,
                "mean": stats.mean,
                "std": stats.std,
                "ci95_half_width": _half_width(values),
            }
    if not metrics:
        raise TrainmarkError(
            "a calibration needs at least two completed runs that report throughput; "
            "run trainmark calibrate with --repeats 3 or more"
        )
    return {
        "kind": RECORD_KIND,
        "version": RECORD_VERSION,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "producer": f"trainmark {producer_version()}",
        "hardware": {"key": key, "description": text},
        "configuration": {"name": config.name, "digest": configuration_digest(config), "knobs": config.as_dict()},
        "bundle_id": bundle_id,
        "metrics": metrics,
    }


def load_record(path: Path) -> dict:
    """A calibration record, checked for kind and version."""
    if not path.is_file():
        raise TrainmarkError(f"{path}: no calibration record there (make one with trainmark calibrate)")
    record = load_document(path.read_bytes(), file=path.name)
    if not isinstance(record, dict) or record.get("kind") != RECORD_KIND:
        raise TrainmarkError(f"{path} is not a trainmark calibration record")
    if record.get("version") != RECORD_VERSION:
        raise TrainmarkError(
            f"{path} is a calibration record of version {record.get('version')}; this trainmark "
            f"reads version {RECORD_VERSION}"
        )
    return record


def check_applicable(record: dict, config: RunConfig, system: dict) -> None:
    """Refuse a comparison across configurations or hardware: its deviation would mean nothing."""
    if record["configuration"]["digest"] != configuration_digest(config):
        raise TrainmarkError(
            f"the calibration record was made with configuration {record['configuration']['name']} "
            f"(digest {record['configuration']['digest'][:12]}); this run's configuration differs, "
            "so a deviation from it would mean nothing. Run the record's configuration "
            f"(e.g. --preset {record['configuration']['name']} with the same knobs)"
        )
    key, text = hardware_description(system)
    if key != record["hardware"]["key"]:
        raise TrainmarkError(
            f"the calibration record is for {record['hardware']['description']}; this machine is "
            f"{text}. Calibrate this machine with trainmark calibrate"
        )


def compare(record: dict, runs: list[dict]) -> dict:
    """The manifest's calibration block: each calibrated metric's deviation and error margin."""
    deviations = []
    for name, reference in record["metrics"].items():
        values, unit = _global_values(runs, name)
        if len(values) < 2 or not reference["mean"]:
            continue
        measured_mean = sum(values) / len(values)
        measured_half = _half_width(values)
        deviation = (measured_mean - reference["mean"]) / abs(reference["mean"]) * 100
        margin = math.hypot(reference["ci95_half_width"], measured_half) / abs(reference["mean"]) * 100
        deviations.append(
            {
                "name": name,
                "unit": unit,
                "reference_mean": reference["mean"],
                "reference_half_width": reference["ci95_half_width"],
                "measured_mean": measured_mean,
                "measured_half_width": measured_half,
                "deviation_percent": deviation,
                "margin_percent": margin,
                "within_margin": abs(deviation) <= margin,
            }
        )
    if not deviations:
        raise TrainmarkError("no calibrated metric can be compared: the run needs at least two completed runs")
    return {
        "record_id": hashlib.sha256(canonical_json(record)).hexdigest(),
        "record_created_at": record["created_at"],
        "hardware": record["hardware"]["description"],
        "configuration": f"{record['configuration']['name']} (digest {record['configuration']['digest'][:16]})",
        "deviations": deviations,
    }
