"""Measuring optimizer steps: the one path by which the reference loop and `trainmark.track` time them.

    meter = StepMeter(...)
    with meter.step(samples=16, tokens=2048) as step:
        with step.phase("forward"):
            ...
        step.loss = loss            # a tensor (or a list of tensors, summed) is read after the clock stops

Measurement boundaries: a step runs from `meter.step()` entering to its exit, a phase from
`step.phase(name)` entering to its exit; each boundary synchronizes the device (so a duration is
the device's work and not only the time to queue it). Peak-memory windows open at the step's
start and at the end of each phase, so a phase's peak also covers whatever ran between the
previous phase and it (the memory resident then is resident in it too), and the step's peak is
the highest of its windows: one read and one reset per phase, as few as the reference loop has
always paid. Loss, gradient norm, the step record, the profiler and allocator windows' bookkeeping
and the FLOP count happen after the step's clock stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
from trainmark.reference_runner.devices import DeviceBackend
from trainmark.reference_runner.measurements import STAGES, RankMeasurements, StageTotals
from trainmark.reference_runner.profiling import AllocationWindow, KernelWindow
from trainmark.reference_runner.sampler import Phase
from trainmark.spec import models
from trainmark.spec.bundle import BundleWriter
from trainmark.spec.errors import TrainmarkError


def _number(value) -> float | None:
    """A finite float from a number, a one-element tensor or a list of them (summed), else None."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        parts = [_number(part) for part in value]
        if not parts or None in parts:
            return None
        value = float(sum(parts))
    elif isinstance(value, torch.Tensor):
        value = value.detach().float().item()
    value = float(value)
    return value if math.isfinite(value) else None


class Step:
    """One optimizer step being measured: mark its phases with `step.phase(name)`; set `loss` (and,
    where the loop knows them, `learning_rate`, `grad_norm`, `updated`)."""

    def __init__(
        self, meter: StepMeter, index: int, samples: int | None, tokens: int | None, epoch: int | None
    ) -> None:
        self.meter = meter
        self.index = index
        self.samples = samples
        self.tokens = tokens
        self.epoch = epoch
        self.loss: float | torch.Tensor | Sequence[torch.Tensor] | None = None
        self.learning_rate: float | None = None
        self.grad_norm: float | torch.Tensor | None = None
        self.updated: bool | None = None
        self.stages = StageTotals()
        self.start_unix_ns = 0
        self.began_ns = 0
        self.other_peak: int | None = None
        self._open_phase = None

    def _note_peak(self) -> None:
        peak = self.meter.backend.peak_bytes()
        if peak is not None and (self.other_peak is None or peak > self.other_peak):
            self.other_peak = peak

    def phase(self, name: str) -> PhaseTimer:
        """Time one stage of the step: data_loading, forward, backward or optimizer (repeatable:
        micro-batches add up); use as `with step.phase("forward"):`. The device is synchronized at
        both ends."""
        if name not in STAGES:
            raise TrainmarkError(f"step.phase({name!r}): a phase is one of {', '.join(STAGES)}")
        return PhaseTimer(self, name)

    def switch_phase(self, name: str | None) -> None:
        """For callbacks, which cannot hold a `with` block: end the phase now open (if any) and
        start `name` (None: start none)."""
        if self._open_phase is not None:
            opened, self._open_phase = self._open_phase, None
            opened.__exit__(None, None, None)
        if name is not None:
            self._open_phase = self.phase(name)
            self._open_phase.__enter__()

    def peak_bytes(self) -> int | None:
        """The step's peak: the highest of its phases' and of the time between them."""
        values = [value for value in (self.stages.step_peak(), self.other_peak) if value is not None]
        return max(values) if values else None


class PhaseTimer:
    """The context manager `Step.phase` returns (a class, not a generator: it runs four times a
    step, and a generator-based one costs several times more)."""

    __slots__ = ("step", "name", "mark")

    def __init__(self, step: Step, name: str) -> None:
        self.step = step
        self.name = name
        self.mark = 0

    def __enter__(self) -> Step:
        meter = self.step.meter
        meter.backend.synchronize()
        meter.phase.value = self.name
        self.mark = time.perf_counter_ns()
        return self.step

    def __exit__(self, *exc_info: object) -> None:
        meter = self.step.meter
        backend = meter.backend
        backend.synchronize()
        self.step.stages.close(self.name, self.mark, backend.peak_bytes())
        backend.reset_peak()  # the next window opens here: what runs between phases counts in the next one
        meter.stages_marked.add(self.name)
        meter.phase.value = "other"


class StepTimer:
    """The context manager `StepMeter.step` returns: times one optimizer step, then records it."""

    __slots__ = ("meter", "step", "counter")

    def __init__(self, meter: StepMeter, step: Step) -> None:
        self.meter = meter
        self.step = step
        self.counter = None

    def __enter__(self) -> Step:
        meter, step = self.meter, self.step
        if meter.current is not None:
            raise TrainmarkError("a step inside another step: one optimizer step at a time")
        meter.kernel_window.before_step(step.index)
        meter.allocation_window.before_step(step.index)
        if step.index == meter.flop_count_step:
            from torch.utils.flop_counter import FlopCounterMode

            self.counter = FlopCounterMode(display=False)
            self.counter.__enter__()
        meter.current = step
        backend = meter.backend
        backend.synchronize()
        backend.reset_peak()
        step.start_unix_ns = time.time_ns()
        step.began_ns = time.perf_counter_ns()
        return step

    def __exit__(self, kind, error, traceback) -> None:
        meter, step, counter = self.meter, self.step, self.counter
        try:
            if kind is None:
                meter.backend.synchronize()
                duration_ns = time.perf_counter_ns() - step.began_ns
                step._note_peak()
        finally:
            meter.current = None
            if counter is not None:
                counter.__exit__(None, None, None)
        if kind is not None:
            return  # a step the loop broke off is not recorded
        # ------------------------------------------------ bookkeeping, outside the step's clock
        if counter is not None:
            meter.flops_counted = float(counter.get_total_flops()) * meter.flop_scale or None
            if meter.flops_counted is None:
                meter.counted_reason = (
                    "FlopCounterMode counted no FLOPs in the step: the model's operators are not in its registry"
                )
        meter._record(step, duration_ns, counted=counter is not None)


class StepMeter:
    """Times, records and accounts the optimizer steps of one rank of one run.

    Writes each step's record to the run's step trace as it ends; opens and closes the profiler
    window (kernel breakdown, written by rank 0) and the allocator window around the steps they
    cover, flagging those steps `profiled`; counts the FLOPs of step `flop_count_step` with
    FlopCounterMode (x `flop_scale`, the ranks) when it is set; and keeps the totals in
    `measurements` for the run summary.
    """

    def __init__(
        self,
        backend: DeviceBackend,
        phase: Phase,
        writer: BundleWriter,
        run_id: str,
        measurements: RankMeasurements,
        per_rank: int | None,
        warmup_steps: int,
        kernel_window: KernelWindow,
        allocation_window: AllocationWindow,
        flop_count_step: int | None = None,
        flop_scale: int = 1,
    ) -> None:
        self.backend = backend
        self.phase = phase
        self.writer = writer
        self.run_id = run_id
        self.measurements = measurements
        self.per_rank = per_rank
        self.warmup_steps = warmup_steps
        self.kernel_window = kernel_window
        self.allocation_window = allocation_window
        self.flop_count_step = flop_count_step
        self.flop_scale = flop_scale
        self.flops_counted: float | None = None
        self.counted_reason = (
            "no step was counted: the run ended before its last warm-up step"
            if flop_count_step is not None
            else "the FLOPs were not counted"
        )
        self.steps_trace = writer.open_trace(run_id, "step", per_rank)
        self.stages_marked: set[str] = set()
        self.steps_done = 0
        self.current: Step | None = None
        self.last_record: models.StepRecord | None = None
        self._last_allocations = backend.allocations()

    def step(
        self, samples: int | None, tokens: int | None, epoch: int | None = None, updated: bool | None = None
    ) -> StepTimer:
        """Measure the next optimizer step: `with meter.step(samples, tokens) as step:` (a `Step`).
        `updated`: whether the parameters changed, where known before the step (the loop may set it)."""
        step = Step(self, self.steps_done, samples, tokens, epoch)
        step.updated = updated
        return StepTimer(self, step)

    def _record(self, step: Step, duration_ns: int, counted: bool) -> None:
        index, backend, measurements = step.index, self.backend, self.measurements
        allocations = backend.allocations()
        step_allocations = (
            None if allocations is None or self._last_allocations is None else allocations - self._last_allocations
        )
        self._last_allocations = allocations
        warmup = index < self.warmup_steps
        profiled = self.kernel_window.covers(index) or self.allocation_window.covers(index) or (counted and not warmup)
        seconds = {stage: (step.stages.seconds[stage] if stage in self.stages_marked else None) for stage in STAGES}
        record = models.StepRecord(
            step=index,
            rank=measurements.rank,
            epoch=step.epoch,
            start_unix_ns=step.start_unix_ns,
            duration_s=duration_ns / 1e9,
            data_loading_s=seconds["data_loading"],
            forward_s=seconds["forward"],
            backward_s=seconds["backward"],
            optimizer_s=seconds["optimizer"],
            samples=step.samples,
            tokens=step.tokens,
            loss=_number(step.loss),
            learning_rate=_number(step.learning_rate),
            grad_norm=_number(step.grad_norm),
            updated=step.updated,
            warmup=warmup or None,
            profiled=profiled or None,
            peak_memory_bytes=step.peak_bytes(),
            allocations=step_allocations,
        )
        self.steps_trace.append(record)
        self.last_record = record
        measurements.add_step(
            record, step.stages, measured=not warmup and not profiled, reserved=backend.reserved_bytes()
        )
        self.allocation_window.after_step(index, step.start_unix_ns, step.start_unix_ns + duration_ns)
        if self.kernel_window.after_step(index) and measurements.rank == 0:
            breakdown = self.kernel_window.breakdown(measurements.rank, measurements.device)
            self.writer.write_kernel_breakdown(self.run_id, breakdown, self.per_rank)
            measurements.kernel_breakdown = breakdown
        window = self.allocation_window
        if window.covers(index) and index == window.first_step + window.steps - 1:
            events = window.events(measurements.rank, measurements.device)
            with self.writer.open_trace(self.run_id, "allocator_event", self.per_rank) as trace:
                for event in events:
                    trace.append(event)
            measurements.profiled_allocations_per_step = window.allocations_per_step(events)
        self.steps_done += 1

    def close(self) -> None:
        """Close the step trace, and a profiler window the run ended inside (not reported: the
        summary says the window did not complete)."""
        self.current = None
        self.steps_trace.close()
        for window in (self.kernel_window, self.allocation_window):
            if window._profile is not None and self.steps_done < window.first_step + window.steps:
                window._profile.__exit__(None, None, None)
                window._profile = None
