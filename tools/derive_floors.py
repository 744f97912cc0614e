"""Derive rubric r2's "too good to be true" floors from real data (docs/scoring.md, r2 section 6).

    python tools/derive_floors.py [DIR ...]

Reads every MLPerf result set under the given folders (default: /work/shared/data/mlperf and the
unpacked corpus /work/shared/data/mlperf-corpus.tar.gz), and any trainmark bundle directory given
(a `trainmark run --preset tiny` output), and prints the jitter real hardware shows:

- run-to-run CV of time to train within one result set (MLPerf: run_start .. run_stop);
- within-run CV of the durations of equal blocks (MLPerf block_start .. block_stop; trainmark
  step records' duration_s);
- power readings: within-run CV and the largest share of readings equal to the one before.

The floors in scorer/rubric.py are these minima divided by a safety factor (documented there).
"""

from __future__ import annotations

import json
import statistics
import sys
import tarfile
import tempfile
from pathlib import Path

DEFAULT_SETS = Path("/work/shared/data/mlperf")
CORPUS = Path("/work/shared/data/mlperf-corpus.tar.gz")


def _events(path: Path):
    for line in path.read_text(errors="replace").splitlines():
        if ":::MLLOG " not in line:
            continue
        try:
            yield json.loads(line.split(":::MLLOG ", 1)[1])
        except json.JSONDecodeError:
            continue


def _cv(values: list[float]) -> float | None:
    if len(values) < 3 or statistics.fmean(values) == 0:
        return None
    return statistics.stdev(values) / abs(statistics.fmean(values))


def mlperf_set(folder: Path) -> dict:
    times, block_cvs, power = [], [], []
    for result in sorted(folder.glob("result_*.txt")):
        start = stop = None
        blocks, open_at = [], None
        for event in _events(result):
            key = event.get("key")
            if key == "run_start" and start is None:
                start = event["time_ms"]
            elif key == "run_stop" and stop is None:
                stop = event["time_ms"]
            elif key == "block_start":
                open_at = event["time_ms"]
            elif key == "block_stop" and open_at is not None:
                blocks.append(event["time_ms"] - open_at)
                open_at = None
        if start is not None and stop is not None:
            times.append((stop - start) / 1000)
        cv = _cv(blocks[1:-1])  # the first and the last block include warm-up and the tail
        if cv is not None:
            block_cvs.append(cv)
    for node in sorted(folder.glob("power/result_*/*.txt")):
        readings = [
            float(e["value"])
            for e in _events(node)
            if e.get("key") == "power_reading" and isinstance(e.get("value"), (int, float))
        ]
        if len(readings) >= 10:
            repeats = sum(1 for a, b in zip(readings, readings[1:]) if a == b) / (len(readings) - 1)
            power.append((_cv(readings), repeats))
    return {"set": folder.name, "runs": len(times), "time_cv": _cv(times), "block_cvs": block_cvs, "power": power}


def trainmark_bundle(folder: Path) -> dict:
    step_cvs = []
    for path in sorted(folder.glob("runs/*/steps*.jsonl")):
        durations = [
            record["duration_s"]
            for record in map(json.loads, path.read_text().splitlines())
            if not record.get("warmup") and not record.get("profiled")
        ]
        cv = _cv(durations)
        if cv is not None:
            step_cvs.append(cv)
    return {"set": folder.name, "step_cvs": step_cvs}


def main(arguments: list[str]) -> None:
    folders = [Path(a) for a in arguments] or [DEFAULT_SETS]
    with tempfile.TemporaryDirectory() as scratch:
        if not arguments and CORPUS.is_file():
            with tarfile.open(CORPUS) as archive:
                archive.extractall(scratch, filter="data")
            folders.append(Path(scratch))
        sets, bundles = [], []
        for folder in folders:
            if (folder / "manifest.json").is_file():
                bundles.append(trainmark_bundle(folder))
                continue
            for candidate in sorted(p for p in folder.iterdir() if p.is_dir()):
                if (candidate / "manifest.json").is_file():
                    bundles.append(trainmark_bundle(candidate))
                elif any(candidate.glob("result_*.txt")):
                    sets.append(mlperf_set(candidate))
    time_cvs = [s["time_cv"] for s in sets if s["time_cv"] is not None and s["runs"] >= 3]
    block_cvs = [cv for s in sets for cv in s["block_cvs"]]
    power = [p for s in sets for p in s["power"] if p[0] is not None]
    step_cvs = [cv for b in bundles for cv in b["step_cvs"]]
    report = {
        "mlperf_sets": len(sets),
        "run_to_run_time_cv": {
            "sets": len(time_cvs),
            "min": min(time_cvs, default=None),
            "median": statistics.median(time_cvs) if time_cvs else None,
        },
        "within_run_block_duration_cv": {
            "runs": len(block_cvs),
            "min": min(block_cvs, default=None),
            "median": statistics.median(block_cvs) if block_cvs else None,
        },
        "power_reading_cv": {"runs": len(power), "min": min((p[0] for p in power), default=None)},
        "power_repeat_share": {
            "runs": len(power),
            "max": max((p[1] for p in power), default=None),
            "median": statistics.median(p[1] for p in power) if power else None,
        },
        "trainmark_step_duration_cv": {"runs": len(step_cvs), "min": min(step_cvs, default=None)},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
