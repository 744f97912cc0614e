"""Sensor sampling off the training thread, at a declared rate, on a monotonic clock.

The sampler thread reads every power meter and memory probe once per tick, writes one trace
record per channel and device (flushed at once), and keeps the running totals the run's
summary needs: power values for mean, median, peak and per-phase means, energy-counter
increases, memory maxima, and each stream's timestamps for its achieved rate. The training
loop tells it what phase it is in through a shared `Phase` holder (a str assignment, atomic
under the GIL).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from trainmark.reference_runner.sensors import MemoryProbe, PowerMeter
from trainmark.spec import models
from trainmark.spec.bundle import TraceWriter

PHASES = {
    name: models.Phase(name)
    for name in ("data_loading", "forward", "backward", "optimizer", "checkpoint", "evaluation", "idle", "other")
}


class Phase:
    """What the training loop is doing now; written by the loop, read by the sampler."""

    def __init__(self) -> None:
        self.value = "other"


@dataclass
class StreamTotals:
    """Running totals of one channel for one device."""

    count: int = 0
    first_ns: int | None = None
    last_ns: int | None = None

    def tick(self, time_ns: int) -> None:
        self.count += 1
        if self.first_ns is None:
            self.first_ns = time_ns
        self.last_ns = time_ns

    @property
    def achieved_rate_hz(self) -> float | None:
        """(n - 1) / (last - first), the standard's definition."""
        if self.count < 2 or self.last_ns == self.first_ns:
            return None
        return (self.count - 1) / ((self.last_ns - self.first_ns) / 1e9)


@dataclass
class DevicePower:
    """What one device's meter showed during a run."""

    power: StreamTotals = field(default_factory=StreamTotals)
    energy: StreamTotals = field(default_factory=StreamTotals)
    samples: list[tuple[int, float, str]] = field(default_factory=list)  # (time_ns, watts, phase)
    energy_increase_j: float = 0.0
    energy_decreases: int = 0
    last_energy_j: float | None = None

    def add(self, time_ns: int, power_w: float | None, energy_j: float | None, phase: str) -> None:
        if power_w is not None:
            self.power.tick(time_ns)
            self.samples.append((time_ns, power_w, phase))
        if energy_j is not None:
            self.energy.tick(time_ns)
            if self.last_energy_j is not None:
                if energy_j < self.last_energy_j:
                    self.energy_decreases += 1
                else:
                    self.energy_increase_j += energy_j - self.last_energy_j
            self.last_energy_j = energy_j


@dataclass
class DeviceMemory:
    """What one probe showed during a run."""

    stream: StreamTotals = field(default_factory=StreamTotals)
    maxima: dict[str, int] = field(default_factory=dict)

    def add(self, time_ns: int, reading: dict[str, int]) -> None:
        self.stream.tick(time_ns)
        for name, value in reading.items():
            if value > self.maxima.get(name, -1):
                self.maxima[name] = value


class Sampler(threading.Thread):
    """Reads the sensors every 1/rate seconds until stopped; writes and totals the readings."""

    def __init__(
        self,
        rate_hz: float,
        phase: Phase,
        meters: list[PowerMeter],
        probes: list[MemoryProbe],
        power_trace: TraceWriter | None,
        memory_trace: TraceWriter | None,
        node: int,
        rank: int,
    ) -> None:
        super().__init__(name="trainmark-sampler", daemon=True)
        self.period_s = 1.0 / rate_hz
        self.phase = phase
        self.meters = meters
        self.probes = probes
        self.power_trace = power_trace
        self.memory_trace = memory_trace
        self.node = node
        self.rank = rank
        self.power = {meter.device: DevicePower() for meter in meters}
        self.memory = {probe.device: DeviceMemory() for probe in probes}
        self.errors: list[str] = []
        self._stop_event = threading.Event()

    def sample_once(self) -> None:
        phase = self.phase.value
        phase_enum = PHASES[phase]
        for meter in self.meters:
            now = time.time_ns()
            reading = meter.read()
            self.power[meter.device].add(now, reading.power_w, reading.energy_j, phase)
            if self.power_trace is not None:
                if reading.power_w is not None:
                    self.power_trace.append(
                        models.PowerSample(
                            time_unix_ns=now,
                            channel=meter.power_channel.name,
                            device=meter.device,
                            node=self.node,
                            phase=phase_enum,
                            power_w=reading.power_w,
                        )
                    )
                if reading.energy_j is not None:
                    self.power_trace.append(
                        models.PowerSample(
                            time_unix_ns=now,
                            channel=meter.energy_channel.name,
                            device=meter.device,
                            node=self.node,
                            phase=phase_enum,
                            energy_j=reading.energy_j,
                        )
                    )
        for probe in self.probes:
            now = time.time_ns()
            reading = probe.read()
            self.memory[probe.device].add(now, reading)
            if self.memory_trace is not None:
                self.memory_trace.append(
                    models.MemorySample(
                        time_unix_ns=now,
                        channel=probe.channel.name,
                        device=probe.device,
                        rank=self.rank,
                        phase=phase_enum,
                        **reading,
                    )
                )

    def run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop_event.is_set():
            try:
                self.sample_once()
            except Exception as error:  # a sensor failing mid-run must not kill training
                self.errors.append(f"{type(error).__name__}: {error}")
                if len(self.errors) > 100:
                    return
            next_tick += self.period_s
            delay = next_tick - time.monotonic()
            if delay < 0:  # overran: take the next tick from now rather than bursting
                next_tick = time.monotonic()
                delay = 0.0
            self._stop_event.wait(delay)

    def stop(self) -> None:
        """Take a last sample (so the streams reach the run's end) and stop the thread."""
        self._stop_event.set()
        self.join()
        self.sample_once()


def measure_idle_power(meters: list[PowerMeter], seconds: float, rate_hz: float) -> dict[int, tuple[float, str]]:
    """Mean power of each device over `seconds` with nothing running: (watts, method).

    An energy counter gives its increase over the window (method counter); without one, the
    mean of polled power (method sampled). Nothing is written to the traces: this happens
    before the run's window opens.
    """
    if not meters or seconds <= 0:
        return {}
    sampler = Sampler(rate_hz, Phase(), meters, [], None, None, node=0, rank=0)
    sampler.phase.value = "idle"
    sampler.start()
    time.sleep(seconds)
    sampler.stop()
    idle = {}
    for device, totals in sampler.power.items():
        window_s = ((totals.energy.last_ns or 0) - (totals.energy.first_ns or 0)) / 1e9
        if totals.energy.count >= 2 and window_s > 0:
            idle[device] = (totals.energy_increase_j / window_s, "counter")
        elif totals.samples:
            idle[device] = (sum(watts for _, watts, _ in totals.samples) / len(totals.samples), "sampled")
    return idle
