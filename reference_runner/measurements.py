"""What one rank measured during a run, in typed objects that travel to rank 0 and to the launcher.

The measurement code (reference_runner/instruments.py, stepping.py) fills a `RankMeasurements`
as the run goes; at the end every rank's is gathered on rank 0 into a `WorkerResult`, which the
reference loop hands to its launcher as JSON (`to_json`/`from_json`) and `trainmark.track` uses
in place; reference_runner/summary.py turns it into the run's metrics.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

from trainmark.reference_runner.sampler import Sampler
from trainmark.reference_runner.sensors import MemoryProbe, PowerMeter
from trainmark.spec import models

STAGES = ("data_loading", "forward", "backward", "optimizer")


class StageTotals:
    """Seconds and peak memory per stage within one step (micro-batches add up)."""

    def __init__(self) -> None:
        self.seconds = {stage: 0.0 for stage in STAGES}
        self.peaks: dict[str, int | None] = {stage: None for stage in STAGES}

    def close(self, stage: str, began_ns: int, peak_bytes: int | None) -> None:
        """End a stage that began at `began_ns` (perf_counter_ns) with its peak memory."""
        self.seconds[stage] += (time.perf_counter_ns() - began_ns) / 1e9
        if peak_bytes is not None and (self.peaks[stage] is None or peak_bytes > self.peaks[stage]):
            self.peaks[stage] = peak_bytes

    def step_peak(self) -> int | None:
        """The step's peak: the highest of its stages' (the stages cover the whole step)."""
        values = [value for value in self.peaks.values() if value is not None]
        return max(values) if values else None


@dataclass
class CheckpointSave:
    """One checkpoint written during the run: after which step, its size and how long it took."""

    step: int
    size_bytes: int
    duration_s: float


@dataclass
class MemoryTotals:
    """What a rank's memory probe showed over the run."""

    channel: str
    count: int
    rate_hz: float | None
    maxima: dict[str, int]
    source: str
    tool: str


@dataclass
class PowerTotals:
    """What one device's power meter showed over the run (read by the node's first rank)."""

    power_channel: str | None
    energy_channel: str | None
    power_source: str | None
    energy_source: str | None
    tool: str
    power_count: int
    power_rate_hz: float | None
    energy_count: int
    energy_rate_hz: float | None
    energy_increase_j: float
    energy_window_s: float | None
    samples: list[tuple[int, float, str]]  # (time_ns, watts, phase)
    idle: tuple[float, str] | None  # (idle power in W, method), None: no idle baseline

    @classmethod
    def from_plain(cls, data: dict) -> PowerTotals:
        """From its JSON form (tuples came back as lists)."""
        return cls(
            **{
                **data,
                "samples": [tuple(sample) for sample in data["samples"]],
                "idle": tuple(data["idle"]) if data["idle"] else None,
            }
        )


@dataclass
class RankMeasurements:
    """One rank's totals; every field is plain data (it is pickled to rank 0)."""

    rank: int
    node: int
    local_rank: int
    device: int
    shares_device: bool
    peak_method: str
    peak_source: str
    peak_tool: str
    peak_reason: str | None
    steps: int = 0
    measured: int = 0
    measured_duration_s: float = 0.0
    measured_stage_s: dict[str, float] = field(default_factory=lambda: {stage: 0.0 for stage in STAGES})
    updates: int = 0
    samples: int = 0
    final_loss: float | None = None
    step_peak_max: int | None = None
    stage_peak_max: dict[str, int | None] = field(default_factory=lambda: {stage: None for stage in STAGES})
    reserved_at_peak: int | None = None
    allocation_deltas: list[int] = field(default_factory=list)
    completed_epoch_seconds: list[float] = field(default_factory=list)
    checkpoints: list[CheckpointSave] = field(default_factory=list)
    final_eval_loss: float | None = None
    final_accuracy: float | None = None
    kernel_breakdown: models.KernelBreakdown | None = None
    profiled_allocations_per_step: float | None = None
    memory: MemoryTotals | None = None
    power: dict[int, PowerTotals] = field(default_factory=dict)
    energy_reason: str | None = None
    device_block: dict | None = None
    device_software: dict = field(default_factory=dict)
    host: dict | None = None
    stages_marked: list[str] | None = None  # the stages the loop marked with step.phase(); None: all

    def plain(self) -> dict:
        """JSON-ready form."""
        data = asdict(self)
        data["kernel_breakdown"] = self.kernel_breakdown.model_dump(mode="json") if self.kernel_breakdown else None
        return data

    @classmethod
    def from_plain(cls, data: dict) -> RankMeasurements:
        """From `plain()`'s form, after a trip through JSON."""
        breakdown = data["kernel_breakdown"]
        return cls(
            **{
                **data,
                "checkpoints": [CheckpointSave(**save) for save in data["checkpoints"]],
                "kernel_breakdown": models.KernelBreakdown.model_validate(breakdown) if breakdown else None,
                "memory": MemoryTotals(**data["memory"]) if data["memory"] else None,
                "power": {int(device): PowerTotals.from_plain(totals) for device, totals in data["power"].items()},
            }
        )

    def add_step(self, record: models.StepRecord, stages: StageTotals, measured: bool, reserved: int | None) -> None:
        """Account one finished step."""
        self.steps += 1
        self.samples += record.samples or 0
        if record.updated is not False:
            self.updates += 1
        if record.loss is not None:
            self.final_loss = record.loss
        if measured:
            self.measured += 1
            self.measured_duration_s += record.duration_s
            for stage in STAGES:
                self.measured_stage_s[stage] += stages.seconds[stage]
            if record.allocations is not None:
                self.allocation_deltas.append(record.allocations)
        peak = record.peak_memory_bytes
        if peak is not None and (self.step_peak_max is None or peak > self.step_peak_max):
            self.step_peak_max = peak
            self.reserved_at_peak = reserved
        for stage in STAGES:
            value = stages.peaks[stage]
            if value is not None and (self.stage_peak_max[stage] is None or value > self.stage_peak_max[stage]):
                self.stage_peak_max[stage] = value

    def add_sampler(
        self,
        sampler: Sampler,
        idle: dict[int, tuple[float, str]],
        energy_reason: str | None,
        probe: MemoryProbe,
        meters: list[PowerMeter],
    ) -> None:
        """Keep what the sampler saw (power per device on the node's first rank; this rank's memory)."""
        memory = sampler.memory[probe.device]
        self.memory = MemoryTotals(
            channel=probe.channel.name,
            count=memory.stream.count,
            rate_hz=memory.stream.achieved_rate_hz,
            maxima=dict(memory.maxima),
            source=probe.channel.source,
            tool=probe.channel.tool,
        )
        self.energy_reason = energy_reason
        for meter in meters:
            totals = sampler.power[meter.device]
            window_s = (totals.energy.last_ns - totals.energy.first_ns) / 1e9 if totals.energy.count >= 2 else None
            self.power[meter.device] = PowerTotals(
                power_channel=meter.power_channel.name if meter.power_channel else None,
                energy_channel=meter.energy_channel.name if meter.energy_channel else None,
                power_source=meter.power_channel.source if meter.power_channel else None,
                energy_source=meter.energy_channel.source if meter.energy_channel else None,
                tool=(meter.energy_channel or meter.power_channel).tool,
                power_count=totals.power.count,
                power_rate_hz=totals.power.achieved_rate_hz,
                energy_count=totals.energy.count,
                energy_rate_hz=totals.energy.achieved_rate_hz,
                energy_increase_j=totals.energy_increase_j,
                energy_window_s=window_s,
                samples=totals.samples,
                idle=idle.get(meter.device),
            )


@dataclass
class WorkerResult:
    """One run as its ranks measured it, gathered on rank 0: what the run summary is built from."""

    run_id: str
    seed: int | None
    started_at_ns: int
    ended_at_ns: int
    planned_steps: int
    world_size: int
    ranks: list[RankMeasurements]
    sampler_errors: list[str]

    def to_json(self) -> str:
        """The result as the reference loop hands it to its launcher."""
        return json.dumps({**asdict(self), "ranks": [rank.plain() for rank in self.ranks]})

    @classmethod
    def from_json(cls, text: str) -> WorkerResult:
        """Read what `to_json` wrote."""
        data = json.loads(text)
        return cls(**{**data, "ranks": [RankMeasurements.from_plain(rank) for rank in data["ranks"]]})
