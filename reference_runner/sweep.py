"""Sweeps: a grid of configurations, each trained as one bundle of N runs, resumable.

`trainmark sweep --preset tiny --vary precision=fp32,bf16_autocast --vary micro_batch_size=8,16`
trains every combination into OUT/<point>/, where <point> names the knobs that vary
(`micro_batch_size=8,precision=fp32`). OUT/sweep.json lists the grid. A point whose bundle is
finished with every run completed is skipped when the sweep is run again; a point left half-done
(interrupted, or a run that failed) is trained again from scratch.
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainmark.reference_runner.calibration import configuration_digest
from trainmark.reference_runner.config import ConfigInvalid, RunConfig, build_config
from trainmark.reference_runner.devices import refuse_unsupported_precision
from trainmark.reference_runner.launch import run_bundle
from trainmark.reference_runner.progress import JobProgress
from trainmark.spec.errors import BundleInvalid, TrainmarkError

INDEX = "sweep.json"
POINT_NAME_CHARACTERS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-+=,")


@dataclass(frozen=True)
class SweepPoint:
    """One configuration of the grid: the knobs that vary, and the whole configuration."""

    values: tuple[tuple[str, Any], ...]
    config: RunConfig

    @property
    def name(self) -> str:
        return ",".join(f"{knob}={_text(value)}" for knob, value in self.values)


@dataclass
class SweepOutcome:
    """What a sweep did: each point's bundle and whether it was trained now or found complete."""

    out: Path
    trained: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def parse_vary(specs: list[str]) -> list[tuple[str, list[str]]]:
    """`KNOB=V1,V2,...` options as (knob, [values]); a knob at most once, at least one value each."""
    varies: list[tuple[str, list[str]]] = []
    for spec in specs:
        knob, sign, values = spec.partition("=")
        knob = knob.strip()
        choices = [value.strip() for value in values.split(",") if value.strip()]
        if not sign or not knob or not choices:
            raise ConfigInvalid(f"--vary {spec!r}: write KNOB=V1,V2,... (e.g. --vary precision=fp32,bf16_autocast)")
        if knob in {name for name, _ in varies}:
            raise ConfigInvalid(f"--vary names {knob} twice; give all its values in one --vary")
        if len(set(choices)) != len(choices):
            raise ConfigInvalid(f"--vary {knob} repeats a value: {values}")
        varies.append((knob, choices))
    if not varies:
        raise ConfigInvalid("a sweep needs at least one --vary KNOB=V1,V2,...")
    return varies


def grid(
    preset: str | None, config_file: Path | None, fixed: dict[str, Any], varies: list[tuple[str, list[str]]]
) -> list[SweepPoint]:
    """Every combination, each validated as a whole configuration before anything is trained."""
    points, problems = [], []
    for combination in itertools.product(*(values for _, values in varies)):
        overrides = dict(fixed) | {knob: value for (knob, _), value in zip(varies, combination)}
        try:
            config = build_config(preset, config_file, overrides)
            refuse_unsupported_precision(config.precision, config.device, None)
        except ConfigInvalid as error:
            problems.append(f"{','.join(f'{k}={v}' for (k, _), v in zip(varies, combination))}: {error}")
            continue
        points.append(SweepPoint(tuple((knob, getattr(config, knob)) for knob, _ in varies), config))
    if problems:
        raise ConfigInvalid(
            "some points of the grid are not valid configurations (nothing was trained):\n  " + "\n  ".join(problems)
        )
    for point in points:
        if not set(point.name) <= POINT_NAME_CHARACTERS:
            raise ConfigInvalid(
                f"the point {point.name!r} would not make a plain folder name; "
                "vary knobs whose values are numbers or plain words"
            )
    return points


def point_is_complete(folder: Path, repeats: int) -> bool:
    """Whether `folder` holds a finished bundle with `repeats` runs, every one completed."""
    from trainmark.spec.bundle import read_manifest

    if not (folder / "manifest.json").is_file():
        return False
    try:
        _, manifest = read_manifest(folder)
    except BundleInvalid:
        return False
    return len(manifest.runs) == repeats and all(run.status == "completed" for run in manifest.runs)


def _recorded_digests(out: Path) -> dict[str, str]:
    """Each point's configuration digest as an earlier run of the sweep recorded it."""
    try:
        index = json.loads((out / INDEX).read_text())
        return {point["name"]: point["configuration_digest"] for point in index["points"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _write_index(out: Path, index: dict) -> None:
    temporary = out / (INDEX + ".tmp")
    temporary.write_text(json.dumps(index, indent=2) + "\n")
    temporary.replace(out / INDEX)


def run_sweep(
    points: list[SweepPoint],
    repeats: int,
    out: Path,
    on_progress: Callable[[JobProgress], None] | None = None,
    on_run: Callable[[str, str, str, float], None] | None = None,
) -> SweepOutcome:
    """Train every point not already complete. `on_progress(progress)` hears where the whole sweep
    stands (run k of N, the point, phase, step, loss, rate, time left) while runs go;
    `on_run(point, run_id, status, seconds)` hears of each run as it ends."""
    out.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    outcome = SweepOutcome(out)
    recorded = _recorded_digests(out)
    # A point counts as done only if the same configuration made it (the manifest alone does not say).
    pending = [
        point
        for point in points
        if recorded.get(point.name) != configuration_digest(point.config)
        or not point_is_complete(out / point.name, repeats)
    ]
    # A point's digest is written once its bundle is complete, so an interrupted sweep never
    # vouches for a folder that an earlier configuration left behind.
    index = {
        "repeats": repeats,
        "points": [
            {
                "name": point.name,
                "values": dict(point.values),
                "bundle": point.name,
                "configuration_digest": None if point in pending else configuration_digest(point.config),
            }
            for point in points
        ],
    }
    _write_index(out, index)
    outcome.skipped = [point.name for point in points if point not in pending]
    progress = JobProgress(len(pending) * repeats)
    for point in pending:
        folder = out / point.name
        if folder.exists():
            shutil.rmtree(folder)  # half-done: it is trained again from the start
        progress.label = point.name

        def run_ended(run_id: str, status: str, seconds: float, name: str = point.name) -> None:
            if on_run:
                on_run(name, run_id, status, seconds)

        result = run_bundle(
            point.config,
            repeats,
            folder,
            on_run=run_ended,
            quiet_workers=True,
            progress=progress,
            on_progress=on_progress,
        )
        finished = all(status == "completed" for status in result.statuses.values())
        (outcome.trained if finished else outcome.incomplete).append(point.name)
        if finished:
            entry = next(entry for entry in index["points"] if entry["name"] == point.name)
            entry["configuration_digest"] = configuration_digest(point.config)
            _write_index(out, index)
    outcome.seconds = time.monotonic() - began
    if outcome.incomplete:
        raise TrainmarkError(
            f"{len(outcome.incomplete)} point(s) have runs that did not complete: "
            f"{', '.join(outcome.incomplete)}; run the sweep again to retrain them"
        )
    return outcome
