"""What the scorer learns from the traces, in the validator's single pass.

`TraceDigest` is a `spec.validate.RecordObserver`: the validator hands it every record that
passed its model, in batches, and it keeps constant-size running totals per stream (a stream is
one rank's steps, or one channel's samples of one device or node in one run). Nothing here keeps
a trace in memory; the gap median comes from a log-spaced histogram (bins 2^(1/8) wide, about 9 %).
"""

from __future__ import annotations

import hashlib
import math
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from trainmark.scorer import rubric
from trainmark.spec import models
from trainmark.spec.records import RECORD_TYPES
from trainmark.spec.validate import RecordsCallback

NS = 1_000_000_000
HISTOGRAM_BINS_PER_OCTAVE = 8


@dataclass
class GapHistogram:
    """Counts of positive gaps in log-spaced bins; enough to state a median to within ~5 %."""

    bins: Counter = field(default_factory=Counter)
    count: int = 0

    def add(self, gap_s: float) -> None:
        self.bins[math.floor(math.log2(gap_s) * HISTOGRAM_BINS_PER_OCTAVE)] += 1
        self.count += 1

    def median_s(self) -> float | None:
        """The geometric centre of the bin holding the median gap."""
        if not self.count:
            return None
        seen = 0
        for index in sorted(self.bins):
            seen += self.bins[index]
            if seen * 2 >= self.count:
                return 2 ** ((index + 0.5) / HISTOGRAM_BINS_PER_OCTAVE)
        raise AssertionError("unreachable")


@dataclass(eq=False)
class RunningMoments:
    """Welford's running mean and variance (constant memory, numerically stable); two are equal when
    they agree to 1e-12 (batching changes the last bits)."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, value: float) -> None:
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (value - self.mean)

    def add_many(self, values: list[float]) -> None:
        """A batch at once: its own two-pass mean and M2, merged (Chan et al. 1979), as exact as one by one."""
        if not values:
            return
        count = len(values)
        mean = math.fsum(values) / count
        m2 = math.fsum((value - mean) ** 2 for value in values)
        total = self.count + count
        delta = mean - self.mean
        self.m2 += m2 + delta * delta * self.count * count / total
        self.mean += delta * count / total
        self.count = total

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, RunningMoments)
            and self.count == other.count
            and all(
                math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-300)
                for a, b in ((self.mean, other.mean), (self.m2, other.m2))
            )
        )

    @property
    def cv(self) -> float | None:
        """Sample standard deviation / |mean|; None for fewer than 2 values or a zero mean."""
        if self.count < 2 or self.mean == 0:
            return None
        return math.sqrt(max(self.m2, 0.0) / (self.count - 1)) / abs(self.mean)


class ContentFingerprint:
    """A digest of a stream's values with time offsets removed: two runs whose records are the
    same apart from a shift in time have the same fingerprint (rubric r2, duplicates by content).
    Each record is its time since the stream's first and its values, as float64 in record order,
    so the digest does not depend on how the records were batched; a missing value is NaN."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._origin_ns: int | None = None
        self.count = 0

    def add_many(self, times: list[int], *columns: list) -> None:
        """A batch of records: their times and, per column, their values (None allowed)."""
        if not times:
            return
        if self._origin_ns is None:
            self._origin_ns = times[0]
        origin = self._origin_ns
        flat = array(
            "d",
            [
                math.nan if value is None else value
                for row in zip([time_ns - origin for time_ns in times], *columns)
                for value in row
            ],
        )
        self._digest.update(flat.tobytes())
        self.count += len(times)

    def hexdigest(self) -> str | None:
        return self._digest.hexdigest() if self.count else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ContentFingerprint) and (self.count, self.hexdigest()) == (
            other.count,
            other.hexdigest(),
        )


@dataclass
class Stream:
    """Running facts about one time-ordered stream of records."""

    file: str
    run_id: str
    window_ns: tuple[int, int]
    gap_threshold_s: float | None = None
    count: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    previous_ns: int | None = None
    backwards: int = 0
    first_backwards_line: int | None = None
    duplicates: int = 0
    first_duplicate_line: int | None = None
    outside_window: int = 0
    gaps_over: int = 0
    gap_time_over_s: float = 0.0
    max_gap_s: float = 0.0
    gaps: GapHistogram = field(default_factory=GapHistogram)

    def add_times(self, times: list[int], lines: list[int | None]) -> None:
        """Account consecutive timestamps in file order, with their line numbers (samples and
        events by time, steps and epochs by start); each is compared with the one before it (a
        step back, a repeat, or a gap)."""
        if not times:
            return
        self.count += len(times)
        start, end = self.window_ns
        low, high = start - rubric.WINDOW_SLACK_S * NS, end + rubric.WINDOW_SLACK_S * NS
        earliest, latest = min(times), max(times)
        if earliest < low or latest > high:
            self.outside_window += sum(1 for time_ns in times if time_ns < low or time_ns > high)
        self.first_ns = earliest if self.first_ns is None else min(self.first_ns, earliest)
        self.last_ns = latest if self.last_ns is None else max(self.last_ns, latest)
        if self.previous_ns is None:
            befores, afters, after_lines = times[:-1], times[1:], lines[1:]
        else:
            befores, afters, after_lines = [self.previous_ns, *times[:-1]], times, lines
        self.previous_ns = times[-1]
        backwards = [line for before, after, line in zip(befores, afters, after_lines) if after < before]
        if backwards:
            self.backwards += len(backwards)
            self.first_backwards_line = self.first_backwards_line or backwards[0]
        repeats = [line for before, after, line in zip(befores, afters, after_lines) if after == before]
        if repeats:
            self.duplicates += len(repeats)
            self.first_duplicate_line = self.first_duplicate_line or repeats[0]
        if self.gap_threshold_s is None:
            return  # gaps matter only against a declared sampling rate
        for before, after in zip(befores, afters):
            if after > before:
                gap_s = (after - before) / NS
                self.gaps.add(gap_s)
                if gap_s > self.max_gap_s:
                    self.max_gap_s = gap_s
                if gap_s > self.gap_threshold_s:
                    self.gaps_over += 1
                    self.gap_time_over_s += gap_s

    @property
    def span_s(self) -> float:
        """Seconds from the first to the last timestamp."""
        return (self.last_ns - self.first_ns) / NS if self.count else 0.0

    @property
    def achieved_rate_hz(self) -> float | None:
        """(n - 1) / span, as the standard defines it."""
        return (self.count - 1) / self.span_s if self.count > 1 and self.span_s > 0 else None


@dataclass
class StepStream(Stream):
    """One rank's step records in one run."""

    measured: int = 0
    measured_duration_s: float = 0.0
    updates: int = 0
    last_step: int | None = None
    final_loss: float | None = None
    final_loss_step: int = -1
    step_index_backwards: int = 0
    peak_memory_bytes: int | None = None
    last_end_ns: int | None = None
    durations: RunningMoments = field(default_factory=RunningMoments)
    last_duration_s: float = 0.0
    overlaps: int = 0
    first_overlap_line: int | None = None
    content: ContentFingerprint = field(default_factory=ContentFingerprint)

    def add_steps(self, records: list[models.StepRecord], lines: list[int | None]) -> None:
        """Account consecutive step records of this rank, in file order."""
        starts = [record.start_unix_ns for record in records]
        self.add_times(starts, lines)
        self.content.add_many(
            starts,
            [record.step for record in records],
            [record.duration_s for record in records],
            [record.loss for record in records],
        )
        self.durations.add_many([record.duration_s for record in records if not record.warmup and not record.profiled])
        slack_ns, slack_per_s = rubric.OVERLAP_SLACK_S * NS, rubric.OVERLAP_SLACK_FRACTION * NS
        for record, line in zip(records, lines):
            if (
                self.last_end_ns is not None
                and record.start_unix_ns < self.last_end_ns - slack_ns - slack_per_s * self.last_duration_s
            ):
                self.overlaps += 1
                self.first_overlap_line = self.first_overlap_line or line
            if not record.warmup and not record.profiled:
                self.measured += 1
                self.measured_duration_s += record.duration_s
            if record.updated is not False:
                self.updates += 1
            if self.last_step is not None and record.step <= self.last_step:
                self.step_index_backwards += 1
            self.last_step = record.step
            if record.loss is not None and record.step > self.final_loss_step:
                self.final_loss, self.final_loss_step = record.loss, record.step
            if record.peak_memory_bytes is not None and (
                self.peak_memory_bytes is None or record.peak_memory_bytes > self.peak_memory_bytes
            ):
                self.peak_memory_bytes = record.peak_memory_bytes
            end = record.start_unix_ns + round(record.duration_s * NS)
            if self.last_end_ns is None or end > self.last_end_ns:
                self.last_end_ns = end
                self.last_duration_s = record.duration_s


@dataclass
class SampleStream(Stream):
    """One channel's samples of one device or node in one run."""

    channel: str = ""
    device: int | None = None
    node: int | None = None
    rank: int | None = None
    power_count: int = 0
    power_integral_j: float = 0.0
    power_first_ns: int | None = None
    power_last_ns: int | None = None
    previous_power: tuple[int, float] | None = None
    max_power_w: float | None = None
    power_above_limit: int = 0
    power_limit_w: float | None = None
    energy_count: int = 0
    energy_increase_j: float = 0.0
    energy_first_ns: int | None = None
    energy_last_ns: int | None = None
    previous_energy: float | None = None
    energy_decreases: int = 0
    maxima: dict[str, int] = field(default_factory=dict)
    powers: RunningMoments = field(default_factory=RunningMoments)
    content: ContentFingerprint = field(default_factory=ContentFingerprint)

    def add_powers(self, records: list[models.PowerSample], lines: list[int | None]) -> None:
        """Account consecutive power samples of this stream, in file order."""
        self.add_times([record.time_unix_ns for record in records], lines)
        powered = [record for record in records if record.power_w is not None]
        watts = [record.power_w for record in powered]
        self.powers.add_many(watts)
        self.content.add_many([record.time_unix_ns for record in powered], watts)
        for record in records:
            self._add_power(record)

    def _add_power(self, record: models.PowerSample) -> None:
        time_ns = record.time_unix_ns
        if record.power_w is not None:
            watts = record.power_w
            self.power_count += 1
            if self.previous_power is not None and time_ns > self.previous_power[0]:
                self.power_integral_j += (
                    0.5 * (watts + self.previous_power[1]) * (time_ns - self.previous_power[0]) / NS
                )
            self.previous_power = (time_ns, watts)
            self.power_first_ns = time_ns if self.power_first_ns is None else min(self.power_first_ns, time_ns)
            self.power_last_ns = time_ns if self.power_last_ns is None else max(self.power_last_ns, time_ns)
            self.max_power_w = watts if self.max_power_w is None else max(self.max_power_w, watts)
            ceiling = (
                self.power_limit_w * rubric.POWER_LIMIT_FACTOR if self.power_limit_w else rubric.DEVICE_POWER_CEILING_W
            )
            if self.device is not None and watts > ceiling:
                self.power_above_limit += 1
        if record.energy_j is not None:
            joules = record.energy_j
            self.energy_count += 1
            if self.previous_energy is not None:
                if joules < self.previous_energy:
                    self.energy_decreases += 1
                else:
                    self.energy_increase_j += joules - self.previous_energy
            self.previous_energy = joules
            self.energy_first_ns = time_ns if self.energy_first_ns is None else min(self.energy_first_ns, time_ns)
            self.energy_last_ns = time_ns if self.energy_last_ns is None else max(self.energy_last_ns, time_ns)

    def add_memories(self, records: list[models.MemorySample], lines: list[int | None]) -> None:
        """Account consecutive memory samples of this stream, in file order."""
        self.add_times([record.time_unix_ns for record in records], lines)
        for record in records:
            for name in ("allocated_bytes", "reserved_bytes", "used_bytes", "resident_bytes"):
                value = getattr(record, name)
                if value is not None and value > self.maxima.get(name, -1):
                    self.maxima[name] = value

    @property
    def mean_power_w(self) -> float | None:
        """Trapezoid integral of polled power over its own window, per second."""
        if self.power_count < 2 or self.power_last_ns == self.power_first_ns:
            return None
        return self.power_integral_j / ((self.power_last_ns - self.power_first_ns) / NS)

    @property
    def counter_mean_power_w(self) -> float | None:
        """Energy counter increase over its window, per second."""
        if self.energy_count < 2 or self.energy_last_ns == self.energy_first_ns:
            return None
        return self.energy_increase_j / ((self.energy_last_ns - self.energy_first_ns) / NS)


@dataclass
class KernelCheck:
    """A kernel breakdown's total and the sum of its category times."""

    file: str
    total_s: float
    categories_s: float

    @property
    def consistent(self) -> bool:
        return abs(self.categories_s - self.total_s) <= rubric.KERNEL_TOTAL_TOLERANCE * max(self.total_s, 1e-12)


class TraceDigest:
    """Running totals of every stream in a bundle, fed by the validator (a RecordObserver)."""

    def __init__(self) -> None:
        self.manifest: models.Manifest | None = None
        self.steps: dict[tuple[str, int], StepStream] = {}
        # (run_id, channel, device, node, rank): ranks sharing a device (processes on one CPU) sample apart
        self.samples: dict[tuple[str, str, int | None, int | None, int | None], SampleStream] = {}
        self.events: dict[tuple[str, str], Stream] = {}
        self.kernel_breakdowns: list[KernelCheck] = []
        self._windows: dict[str, tuple[int, int]] = {}
        self._channels: dict[str, models.Channel] = {}
        self._power_limits: dict[int, float | None] = {}

    def begin(self, manifest: models.Manifest) -> None:
        self.manifest = manifest
        self._windows = {run.run_id: (to_unix_ns(run.started_at), to_unix_ns(run.ended_at)) for run in manifest.runs}
        self._channels = {channel.name: channel for channel in manifest.methodology.channels}
        self._power_limits = {device.index: device.power_limit_w for device in manifest.system.devices}

    def begin_file(self, entry: models.FileEntry) -> RecordsCallback | None:
        """The callback that digests this file's records: one per record type, none for documents."""
        run_id = entry.run_id
        if run_id is None or run_id not in self._windows:
            return None
        follow = self._FOLLOWERS.get(entry.record_type)
        return follow(self, entry.path, run_id, self._windows[run_id], entry.record_type) if follow else None

    def _follow_steps(self, path: str, run_id: str, window: tuple[int, int], kind: str) -> RecordsCallback:
        def on_steps(records: list[models.StepRecord], lines: list[int | None]) -> None:
            # Files hold one rank's steps each, but the standard does not insist.
            for rank, (rank_records, rank_lines) in _by_stream(records, lines, lambda step: step.rank).items():
                stream = self.steps.get((run_id, rank))
                if stream is None:
                    stream = self.steps[(run_id, rank)] = StepStream(path, run_id, window)
                stream.add_steps(rank_records, rank_lines)

        return on_steps

    def _follow_samples(self, path: str, run_id: str, window: tuple[int, int], kind: str) -> RecordsCallback:
        fields = RECORD_TYPES[kind].model.model_fields  # asking a model for a field it lacks is slow
        has_node, has_rank = "node" in fields, "rank" in fields

        def stream_key(record: Any) -> tuple:
            return (
                run_id,
                record.channel,
                record.device,
                record.node if has_node else None,
                record.rank if has_rank else None,
            )

        def on_samples(records: list[Any], lines: list[int | None]) -> None:
            # One file interleaves several streams (channels, devices); each takes its own in order.
            for key, (stream_records, stream_lines) in _by_stream(records, lines, stream_key).items():
                stream = self.samples.get(key)
                if stream is None:
                    _, channel_name, device, node, rank = key
                    channel = self._channels.get(channel_name)
                    threshold = (
                        rubric.GAP_FACTOR / channel.target_rate_hz
                        if channel is not None and channel.target_rate_hz
                        else None
                    )
                    stream = self.samples[key] = SampleStream(
                        path,
                        run_id,
                        window,
                        threshold,
                        channel=channel_name,
                        device=device,
                        node=node,
                        rank=rank,
                        power_limit_w=self._power_limits.get(device),
                    )
                if kind == "power_sample":
                    stream.add_powers(stream_records, stream_lines)
                else:
                    stream.add_memories(stream_records, stream_lines)

        return on_samples

    def _follow_kernels(self, path: str, run_id: str, window: tuple[int, int], kind: str) -> RecordsCallback:
        def on_kernels(records: list[models.KernelBreakdown], lines: list[int | None]) -> None:
            for record in records:
                categories = math.fsum(category.time_s for category in record.categories)
                self.kernel_breakdowns.append(KernelCheck(path, record.total_time_s, categories))

        return on_kernels

    def _follow_events(self, path: str, run_id: str, window: tuple[int, int], kind: str) -> RecordsCallback:
        instants = RECORD_TYPES[kind].timing == "instant"

        def on_events(records: list[Any], lines: list[int | None]) -> None:
            stream = self.events.get((run_id, path))
            if stream is None:
                stream = self.events[(run_id, path)] = Stream(path, run_id, window)
            stream.add_times(
                [record.time_unix_ns for record in records]
                if instants
                else [record.start_unix_ns for record in records],
                lines,
            )

        return on_events

    _FOLLOWERS: ClassVar[dict[str, Callable[..., RecordsCallback]]] = {
        "step": _follow_steps,
        "power_sample": _follow_samples,
        "memory_sample": _follow_samples,
        "kernel_breakdown": _follow_kernels,
        "epoch": _follow_events,
        "allocator_event": _follow_events,
    }
    """How each record type is digested; a record type not named here (documents) is not read."""

    def channel(self, name: str) -> models.Channel | None:
        """The methodology channel of that name."""
        return self._channels.get(name)


def _by_stream(
    records: list[Any], lines: list[int | None], key: Callable[[Any], Any]
) -> dict[Any, tuple[list, list[int | None]]]:
    """Records and their line numbers grouped by `key(record)`, each group in file order."""
    groups: dict[Any, tuple[list, list[int | None]]] = {}
    for record, line in zip(records, lines):
        records_of, lines_of = groups.setdefault(key(record), ([], []))
        records_of.append(record)
        lines_of.append(line)
    return groups


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_unix_ns(moment: datetime) -> int:
    """Exact nanoseconds since the epoch of an offset-carrying datetime (microsecond precision)."""
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000
