"""Run-level metrics computed from traces, as the standard defines them.

A producer reports summaries; anyone can recompute them from the traces with these
definitions (the scorer does, to check them). Global throughput comes from rank 0's step
records, leaving out steps flagged `warmup` or `profiled`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from trainmark.spec import producer_version
from trainmark.spec.metrics import measured_or_unavailable
from trainmark.spec.records import RECORD_TYPES

STEPS_SOURCE = "runs/{run_id}/steps*.jsonl, rank 0"


@dataclass
class StepStatistics:
    """Streaming totals over one rank's step records (constant memory)."""

    steps: int = 0
    measured_steps: int = 0
    measured_duration_s: float = 0.0
    last_loss: float | None = None
    last_end_unix_ns: int | None = None
    ranks_seen: set[int] = field(default_factory=set)

    def add(self, record: dict) -> None:
        """Account one step record (parsed JSON)."""
        self.steps += 1
        if not record.get("warmup") and not record.get("profiled"):
            self.measured_steps += 1
            self.measured_duration_s += record["duration_s"]
        if record.get("loss") is not None:
            self.last_loss = record["loss"]
        end = record["start_unix_ns"] + int(record["duration_s"] * 1e9)
        if self.last_end_unix_ns is None or end > self.last_end_unix_ns:
            self.last_end_unix_ns = end


def _metric(name: str, unit: str, value: float | None, source: str, reason: str | None = None) -> dict:
    return measured_or_unavailable(name, unit, value, "derived", source, f"trainmark {producer_version()}", reason)


def step_metrics(statistics: StepStatistics, run_id: str, started_at: datetime, ended_at: datetime) -> list[dict]:
    """The throughput metrics a step trace supports, as manifest metric objects."""
    source = STEPS_SOURCE.format(run_id=run_id)
    no_steps = "no measured (non-warm-up, non-profiled) steps were logged"
    per_step = (statistics.measured_duration_s / statistics.measured_steps) if statistics.measured_steps else None
    per_second = (
        statistics.measured_steps / statistics.measured_duration_s
        if statistics.measured_steps and statistics.measured_duration_s > 0
        else None
    )
    return [
        _metric("steps_completed", "{step}", float(statistics.steps), f"count of step records in {source}"),
        _metric("time_per_step", "s", per_step, f"mean duration_s of measured steps in {source}", no_steps),
        _metric(
            "steps_per_second",
            "{step}/s",
            per_second,
            f"measured steps / sum of their duration_s in {source}",
            no_steps,
        ),
        _metric("run_duration", "s", (ended_at - started_at).total_seconds(), "runs[].ended_at - runs[].started_at"),
        _metric(
            "final_loss",
            "1",
            statistics.last_loss,
            f"loss of the last step record in {source}",
            "no step record carries a loss",
        ),
    ]


def trace_end_unix_ns(lines: Iterable[bytes], record_type: str) -> int | None:
    """The latest instant a trace file covers (end of the last interval or last sample); None for undated records."""
    timing = RECORD_TYPES[record_type].timing
    if timing is None:
        return None
    latest = None
    for line in lines:
        if not line.strip():
            continue
        record = json.loads(line)
        if timing == "interval":
            end = record["start_unix_ns"] + int(record["duration_s"] * 1e9)
        else:
            end = record["time_unix_ns"]
        latest = end if latest is None else max(latest, end)
    return latest


def read_lines(path: Path) -> Iterable[bytes]:
    """The lines of a JSON Lines file, streamed."""
    with path.open("rb") as handle:
        yield from handle


__all__ = ["StepStatistics", "step_metrics", "trace_end_unix_ns", "read_lines"]
