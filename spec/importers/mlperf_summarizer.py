"""MLCommons' published scoring rules for MLPerf Training (mlperf_logging's result summarizer).

These functions compute what MLCommons reports for a result folder, so that a bundle can carry the
official figure beside trainmark's own statistics. They follow the summarizer's code, not any
submitter's habits:

- every `result_*.txt` is a run; a run whose log has no `run_start`, no `run_stop`, a `run_stop`
  whose status is not `success`, or a line the parser cannot read is dropped, and a dropped run
  counts as one of the slowest;
- time to train is `run_stop - run_start` (the last `run_start` met before the first `run_stop`,
  in file order, as the summarizer's loop reads them);
- olympic mean: sort by time to train, drop the `k` fastest and the `k` slowest (`k = 4` for unet3d,
  else 1; dropped runs take slowest places), average the rest; more than `k` dropped runs: no score;
- a run's energy is the sum over `power/<result file stem>/node_*.txt` of
  `conversion_eff x sum P_i (t_i - t_(i-1))` over the readings between `power_measurement_start`
  and `power_measurement_stop` in time order, x time to train / (stop - start), plus for each
  `sw_*.txt` `conversion_eff x interconnect_power_est x time to train` (its `power_reading` lines
  are not counted); the benchmark's energy is the mean over the runs the time olympic selection
  keeps, in that order;
- both are multiplied by `scaling.json`'s `scaling_factor`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainmark.spec.importers.mlperf_log import Log, number

MAX_ENERGY_J = 1e30  # the standard's bound of a metric value


def max_dropped_scores(benchmark: str | None) -> int:
    """How many fastest and slowest runs the olympic mean drops (the summarizer's rule)."""
    return 4 if benchmark == "unet3d" else 1


@dataclass
class RunScore:
    """One result file as the summarizer sees it."""

    stem: str
    time_to_train_ms: float | None  # None: dropped
    dropped_reason: str | None
    energy_j: float | None = None  # None with energy_reason when undefined
    energy_reason: str | None = None


def time_to_train(log: Log) -> tuple[float | None, str | None]:
    """(time to train in ms, None), or (None, why the summarizer drops the run)."""
    if log.unparsed_lines:
        return None, f"{log.unparsed_lines} :::MLLOG line(s) of {log.path} do not parse (the summarizer's parse error)"
    start = stop = None
    for event in log.events:
        if event.key == "run_start":
            start = event
        if event.key == "run_stop":
            stop = event
        if start is not None and stop is not None:
            break
    if start is None:
        return None, f"no run_start in {log.path}"
    if stop is None:
        return None, f"no run_stop in {log.path}: the run did not finish"
    status = stop.metadata.get("status")
    if status != "success":
        return None, f"run_stop status {status!r} in {log.path}, not 'success'"
    return stop.time_ms - start.time_ms, None


@dataclass
class NodeWindow:
    """What MLCommons' formula uses from one node's power log."""

    start_ms: float | None
    stop_ms: float | None
    stop_logged: bool
    efficiency: float
    weighted_sum: float  # sum of P_i (t_i - t_(i-1)) over the counted readings, W ms
    counted: int  # readings inside the window


def node_window(log: Log) -> NodeWindow:
    """The summarizer's pass over a node's power log: readings in time order, inside the window."""
    events = sorted(log.events, key=lambda event: event.time_ms)  # stable: ties keep file order
    start = previous = None
    stop = None
    last = 0.0
    efficiency = 1.0
    total = 0.0
    counted = 0
    for event in events:
        if event.key == "power_measurement_start":
            start = previous = event.time_ms
        if event.key == "power_reading" and stop is None and start is not None:
            watts = number(event.value)
            if watts is not None:
                total += watts * (event.time_ms - previous)
                previous = event.time_ms
                last = max(last, event.time_ms)
                counted += 1
        if event.key == "power_measurement_stop":
            stop = event.time_ms
        if event.key == "conversion_eff" and number(event.value) is not None:
            efficiency = float(event.value)
    return NodeWindow(
        start,
        stop if stop is not None else (last if start is not None else None),
        stop is not None,
        efficiency,
        total,
        counted,
    )


def node_energy_j(window: NodeWindow, time_to_train_ms: float, path: str) -> tuple[float | None, str | None]:
    """A node's energy by MLCommons' formula, or None and why it is undefined."""
    if window.start_ms is None:
        return None, f"no power_measurement_start in {path}: MLCommons' formula has no window"
    length = window.stop_ms - window.start_ms
    if length == 0:
        return None, (
            f"the power measurement window of {path} has zero length (power_measurement_stop at the "
            "start's time): MLCommons' formula divides by it, so the energy is undefined"
        )
    joules = window.efficiency * window.weighted_sum * time_to_train_ms / length / 1000
    if not math.isfinite(joules) or abs(joules) > MAX_ENERGY_J:
        return None, f"MLCommons' formula gives {joules!r} J for {path}: not a number a bundle can hold"
    return joules, None


def switch_energy_j(log: Log, time_to_train_ms: float) -> float | None:
    """A switch's energy by MLCommons' formula: conversion_eff x interconnect_power_est x time to train.

    None when it is not a number a bundle can hold (a garbage estimate).
    """
    efficiency, watts = 1.0, 0.0
    for event in log.events:  # file order; the first interconnect_power_est ends the pass
        if event.key == "conversion_eff" and number(event.value) is not None:
            efficiency = float(event.value)
        if event.key == "interconnect_power_est" and number(event.value) is not None:
            watts = float(event.value)
            break
    joules = efficiency * watts * time_to_train_ms / 1000
    return joules if math.isfinite(joules) and abs(joules) <= MAX_ENERGY_J else None


@dataclass
class OlympicResult:
    """The official olympic figures of a result folder (before the scaling factor)."""

    time_to_train_min: float | None
    energy_j: float | None
    kept: list[str]  # stems, fastest first
    dropped: list[str]
    reason: str | None  # why time_to_train_min is None
    energy_reason: str | None  # why energy_j is None


def olympic(scores: list[RunScore], benchmark: str | None, has_power: bool) -> OlympicResult:
    """The summarizer's olympic selection over time to train, and the energy mean over the same runs."""
    k = max_dropped_scores(benchmark)
    timed = sorted((s for s in scores if s.time_to_train_ms is not None), key=lambda s: (s.time_to_train_ms, s.stem))
    dropped = [s.stem for s in scores if s.time_to_train_ms is None]
    if len(dropped) > k:
        reason = (
            f"{len(dropped)} runs did not converge or could not be read ({', '.join(dropped)}); MLCommons "
            f"allows at most {k} for this benchmark and reports no score"
        )
        return OlympicResult(None, None, [], dropped, reason, reason)
    kept = timed[k : len(timed) - (k - len(dropped))]
    if not kept:
        reason = f"{len(timed)} usable runs leave none after dropping {k} fastest and {k} slowest"
        return OlympicResult(None, None, [], dropped, reason, reason)
    minutes = sum(s.time_to_train_ms / 60 / 1000 for s in kept) / len(kept)
    energy, energy_reason = None, None
    if not has_power:
        energy_reason = "this result has no MLPerf power logs (no power/ folder)"
    else:
        missing = [s for s in kept if s.energy_j is None]
        if missing:
            energy_reason = "; ".join(f"{s.stem}: {s.energy_reason}" for s in missing)
        else:
            energy = sum(s.energy_j for s in kept) / len(kept)
    return OlympicResult(minutes, energy, [s.stem for s in kept], dropped, None, energy_reason)
