"""Everything that measures one rank of one run: the one measurement path of the reference loop and of `trainmark.track`.

    instruments = RankInstruments(backend, RankPlace.from_environment(), config)
    instruments.measure_idle()                  # idle baseline, before anything runs
    meter = instruments.open(writer, "run-1")   # sampler, profiler and allocator windows, step meter
    instruments.start()
    with meter.step(samples, tokens) as step:   # per step, per phase (reference_runner/stepping.py)
        ...
    with instruments.checkpoint(path, step=k):  # checkpoint footprint
        torch.save(state, path)
    instruments.stop()
    result = instruments.gather("run-1", seed, steps)   # a WorkerResult on rank 0, None elsewhere

The reference loop (reference_runner/loop.py) and `trainmark.track` (track.py) are its two
clients; what they add is only what differs between a preset and a user's loop (the model and
data the runner owns, the manifest blocks `track` infers). The run summary is built from the
`WorkerResult` by reference_runner/summary.py for both.

`config` is the runner's RunConfig or track's TrackConfig: both name the measurement settings
alike (sample_rate_hz, idle_seconds, warmup_steps, profile_first_step, profile_steps,
allocation_steps).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch.distributed as dist
from trainmark.reference_runner import metadata
from trainmark.reference_runner.devices import DeviceBackend
from trainmark.reference_runner.measurements import CheckpointSave, RankMeasurements, WorkerResult
from trainmark.reference_runner.profiling import AllocationWindow, KernelWindow
from trainmark.reference_runner.sampler import Phase, Sampler, measure_idle_power
from trainmark.reference_runner.stepping import StepMeter
from trainmark.spec.bundle import BundleWriter
from trainmark.spec.errors import SensorUnavailable, TrainmarkError


@dataclass(frozen=True)
class RankPlace:
    """Where this process sits in the job, as torchrun's environment says (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world: int = 1
    node: int = 0

    @classmethod
    def from_environment(cls) -> RankPlace:
        return cls(
            rank=int(os.environ.get("RANK", 0)),
            world_size=int(os.environ.get("WORLD_SIZE", 1)),
            local_rank=int(os.environ.get("LOCAL_RANK", 0)),
            local_world=int(os.environ.get("LOCAL_WORLD_SIZE", 1)),
            node=int(os.environ.get("GROUP_RANK", 0)),
        )

    @property
    def per_rank(self) -> int | None:
        """The rank in trace file names: every rank writes its own files when there are several."""
        return self.rank if self.world_size > 1 else None


class RankInstruments:
    """The sensors, sampler thread, profiler and allocator windows, step meter and checkpoint
    accounting of one rank, and the gathering of every rank's measurements on rank 0.

    One CPU device per node (its processes share it), one GPU per rank; one power sampler per
    node (its first process) reads every device of the node.
    """

    def __init__(
        self,
        backend: DeviceBackend,
        place: RankPlace,
        config,
        *,
        flop_count_step: int | None = None,
        flop_scale: int = 1,
    ) -> None:
        self.backend = backend
        self.place = place
        self.config = config
        self.flop_count_step = flop_count_step
        self.flop_scale = flop_scale
        gpu = backend.kind == "gpu"
        self.device_index = place.node * place.local_world + place.local_rank if gpu else place.node
        self.shares_device = not gpu and place.local_world > 1
        self.meters, self.energy_reason = [], None
        if place.local_rank == 0:
            for index in range(self.device_index, self.device_index + (place.local_world if gpu else 1)):
                try:
                    self.meters.append(backend.power_meter(index))
                except SensorUnavailable as error:
                    self.meters, self.energy_reason = [], str(error)
                    break
        self.probe = backend.memory_probe(self.device_index)
        self.idle: dict[int, tuple[float, str]] = {}
        self.meter: StepMeter | None = None
        self.started_at_ns = self.ended_at_ns = 0

    # ------------------------------------------------------------ before the run

    @property
    def measures_idle(self) -> bool:
        """Whether `measure_idle` will take time: an energy sensor and idle_seconds."""
        return bool(self.meters) and bool(self.config.idle_seconds)

    def measure_idle(self) -> None:
        """The idle-power baseline over idle_seconds, with nothing running (no sensor: nothing)."""
        self.idle = measure_idle_power(self.meters, self.config.idle_seconds, self.config.sample_rate_hz)

    def open(self, writer: BundleWriter, run_id: str) -> StepMeter:
        """Open this rank's traces of `run_id` and set up the sampler and windows; the step meter."""
        config, place, backend = self.config, self.place, self.backend
        self.writer, self.run_id = writer, run_id
        self.phase = Phase()
        self.sampler = Sampler(
            config.sample_rate_hz,
            self.phase,
            self.meters,
            [self.probe],
            writer.open_trace(run_id, "power_sample", place.per_rank) if self.meters else None,
            writer.open_trace(run_id, "memory_sample", place.per_rank),
            place.node,
            place.rank,
        )
        on_cuda = backend.torch_device.type == "cuda"
        profiled = place.rank == 0  # the windows run on rank 0 only
        kernel_window = KernelWindow(config.profile_first_step, config.profile_steps if profiled else 0, on_cuda)
        allocation_window = AllocationWindow(
            config.profile_first_step + config.profile_steps, config.allocation_steps if profiled else 0, on_cuda
        )
        self.measurements = RankMeasurements(
            rank=place.rank,
            node=place.node,
            local_rank=place.local_rank,
            device=self.device_index,
            shares_device=self.shares_device,
            peak_method=backend.peak_method,
            peak_source=backend.peak_source,
            peak_tool=backend.peak_tool,
            peak_reason=backend.peak_unavailable_reason(),
        )
        self.meter = StepMeter(
            backend,
            self.phase,
            writer,
            run_id,
            self.measurements,
            place.per_rank,
            config.warmup_steps,
            kernel_window,
            allocation_window,
            flop_count_step=self.flop_count_step,
            flop_scale=self.flop_scale,
        )
        return self.meter

    def start(self) -> None:
        """The run starts now: its start time, and the sampler thread."""
        self.started_at_ns = time.time_ns()
        self.sampler.start()

    # ------------------------------------------------------------ during the run

    @contextlib.contextmanager
    def in_phase(self, name: str):
        """Tag the sampler's readings with `name` (checkpoint, evaluation, ...) for the block."""
        self.phase.value = name
        try:
            yield
        finally:
            self.phase.value = "other"

    @contextlib.contextmanager
    def checkpoint(self, path: str | os.PathLike, step: int):
        """Measure saving a checkpoint after `step`: the seconds the block takes (device
        synchronized first, files flushed to disk after) and the size of `path` (a file, or every
        file under a folder). Rank 0 reports it."""
        self.backend.synchronize()
        with self.in_phase("checkpoint"):
            began = time.perf_counter_ns()
            yield
            target = Path(path)
            if not target.exists():
                raise TrainmarkError(f"run.checkpoint({str(path)!r}): nothing was saved there")
            files = [target] if target.is_file() else [item for item in target.rglob("*") if item.is_file()]
            for item in files:
                with item.open("rb") as handle:
                    os.fsync(handle.fileno())
            seconds = (time.perf_counter_ns() - began) / 1e9
        if self.place.rank == 0:
            size = sum(item.stat().st_size for item in files)
            self.measurements.checkpoints.append(CheckpointSave(step=step, size_bytes=size, duration_s=seconds))

    # ------------------------------------------------------------ after the run

    def stop(self, *, wait_for_ranks: bool = True) -> None:
        """The run ends now: wait for every rank (when asked and there are several), stop the
        sampler, close the traces and sensors."""
        self.phase.value = "other"
        if wait_for_ranks and self.place.world_size > 1:
            dist.barrier()
        self.sampler.stop()
        self.ended_at_ns = time.time_ns()
        self.meter.close()
        for trace in (self.sampler.power_trace, self.sampler.memory_trace):
            if trace is not None:
                trace.close()
        for meter in self.meters:
            meter.close()

    def gather(self, run_id: str, seed: int | None, planned_steps: int) -> WorkerResult | None:
        """Every rank's measurements, gathered on rank 0 (a collective: every rank calls it); None
        on the other ranks."""
        measurements = self.measurements
        measurements.add_sampler(self.sampler, self.idle, self.energy_reason, self.probe, self.meters)
        measurements.device_block = self.backend.describe(self.device_index, self.place.node)
        measurements.device_software = self.backend.software()
        measurements.host = metadata.host(self.place.node)
        measurements.stages_marked = sorted(self.meter.stages_marked)
        gathered = [measurements]
        if self.place.world_size > 1:
            gathered = [None] * self.place.world_size
            dist.gather_object(measurements, gathered if self.place.rank == 0 else None, dst=0)
        if self.place.rank != 0:
            return None
        return WorkerResult(
            run_id=run_id,
            seed=seed,
            started_at_ns=self.started_at_ns,
            ended_at_ns=self.ended_at_ns,
            planned_steps=planned_steps,
            world_size=self.place.world_size,
            ranks=gathered,
            sampler_errors=list(self.sampler.errors),
        )
