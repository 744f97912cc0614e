"""Downsampled trace series for the plots (the registry's pages and `trainmark report`),
collected during the scorer's single pass.

Each run's window is cut into a fixed number of buckets; a bucket keeps its lowest and highest
point, so peaks survive and memory stays flat whatever the trace's length. The phases of a run
(warm-up steps, the profiler window) come along as spans of seconds, to be shaded on the plots.
"""

from __future__ import annotations

from trainmark.scorer.traces import to_unix_ns
from trainmark.spec import models
from trainmark.spec.validate import RecordsCallback

BUCKETS = 150
MEMORY_FIELDS = ("allocated_bytes", "resident_bytes", "used_bytes", "reserved_bytes")


class _Buckets:
    def __init__(self, start_ns: int, end_ns: int) -> None:
        self.start_ns = start_ns
        self.width_ns = max(1, (end_ns - start_ns) // BUCKETS)
        self.low: dict[int, tuple[float, float]] = {}
        self.high: dict[int, tuple[float, float]] = {}

    def add(self, time_ns: int, value: float) -> None:
        index = (time_ns - self.start_ns) // self.width_ns
        point = ((time_ns - self.start_ns) / 1e9, value)
        if index not in self.low or value < self.low[index][1]:
            self.low[index] = point
        if index not in self.high or value > self.high[index][1]:
            self.high[index] = point

    def points(self) -> list[list[float]]:
        merged = sorted(set(self.low.values()) | set(self.high.values()))
        return [[round(t, 6), value] for t, value in merged]


PHASES = (("warmup", "warm-up"), ("profiled", "profiled"))


class _Phases:
    """Contiguous spans of flagged steps, in seconds since the run started."""

    def __init__(self, start_ns: int) -> None:
        self.start_ns = start_ns
        self.spans: dict[str, list[list[float]]] = {}
        self.open: dict[str, list[float]] = {}

    def add(self, record: models.StepRecord) -> None:
        begin = (record.start_unix_ns - self.start_ns) / 1e9
        end = begin + record.duration_s
        for flag, label in PHASES:
            if getattr(record, flag):
                span = self.open.get(label)
                if span is not None and begin - span[1] <= max(record.duration_s, 1e-3):
                    span[1] = end
                else:
                    self.open[label] = [begin, end]
                    self.spans.setdefault(label, []).append(self.open[label])
            else:
                self.open.pop(label, None)


class SeriesCollector:
    """A RecordObserver that keeps power, memory and step-time series per run, downsampled, and
    the runs' phases."""

    def __init__(self) -> None:
        self.windows: dict[str, tuple[int, int]] = {}
        self.series: dict[tuple[str, str, str, str], _Buckets] = {}
        self.phases: dict[str, _Phases] = {}

    def begin(self, manifest: models.Manifest) -> None:
        for run in manifest.runs:
            start, end = to_unix_ns(run.started_at), to_unix_ns(run.ended_at)
            self.windows[run.run_id] = (start, max(end, start + 1))

    def _bucket(self, run_id: str, kind: str, label: str, unit: str) -> _Buckets:
        key = (run_id, kind, label, unit)
        if key not in self.series:
            self.series[key] = _Buckets(*self.windows[run_id])
        return self.series[key]

    def begin_file(self, entry: models.FileEntry) -> RecordsCallback | None:
        run_id = entry.run_id
        if run_id not in self.windows:
            return None
        if entry.record_type == "step":
            phases = self.phases.setdefault(run_id, _Phases(self.windows[run_id][0]))

            def on_steps(records: list[models.StepRecord], lines: list[int | None]) -> None:
                for record in records:
                    if record.rank == 0:
                        self._bucket(run_id, "step_time", "rank 0", "s").add(record.start_unix_ns, record.duration_s)
                        if record.loss is not None:
                            self._bucket(run_id, "loss", "rank 0", "1").add(record.start_unix_ns, record.loss)
                        phases.add(record)

            return on_steps
        if entry.record_type == "power_sample":

            def on_power(records: list[models.PowerSample], lines: list[int | None]) -> None:
                for record in records:
                    if record.power_w is not None:
                        target = f"device {record.device}" if record.device is not None else f"node {record.node}"
                        self._bucket(run_id, "power", target, "W").add(record.time_unix_ns, record.power_w)

            return on_power
        if entry.record_type == "memory_sample":

            def on_memory(records: list[models.MemorySample], lines: list[int | None]) -> None:
                for record in records:
                    self._add_memory(run_id, record)

            return on_memory
        return None

    def _add_memory(self, run_id: str, record: models.MemorySample) -> None:
        """The first memory figure a sample carries (allocated, resident, used, reserved)."""
        for name in MEMORY_FIELDS:
            value = getattr(record, name)
            if value is not None:
                label = f"device {record.device} {name.removesuffix('_bytes')}" + (
                    f" (rank {record.rank})" if record.rank else ""
                )
                self._bucket(run_id, "memory", label, "By").add(record.time_unix_ns, float(value))
                return

    def results(self) -> list[dict]:
        """[{run_id, kind, label, unit, points}] in a stable order; phases are kind "phase" with
        points [[start_s, end_s], ...]."""
        found = [
            {"run_id": run_id, "kind": kind, "label": label, "unit": unit, "points": buckets.points()}
            for (run_id, kind, label, unit), buckets in sorted(self.series.items())
        ]
        for run_id, phases in sorted(self.phases.items()):
            for label, spans in sorted(phases.spans.items()):
                found.append(
                    {
                        "run_id": run_id,
                        "kind": "phase",
                        "label": label,
                        "unit": "s",
                        "points": [[round(start, 6), round(end, 6)] for start, end in spans],
                    }
                )
        return found
