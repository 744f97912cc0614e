"""Power, energy and memory sensors behind small interfaces, with record and replay.

A `PowerMeter` reads one device's power and/or cumulative energy; a `MemoryProbe` reads one
process's or device's memory. The real implementations are thin wrappers around NVML (NVIDIA
GPUs), AMD SMI (AMD GPUs), the Linux powercap (RAPL) files, torch.cuda and psutil.
`RecordingPowerMeter` writes what a real meter reads to a file; `ReplayPowerMeter` plays such a file back, so everything above the sensors (the
sampler, the energy metrics, the bundle) runs and is tested on machines without the hardware.
A sensor that does not exist raises `SensorUnavailable` with the reason the bundle records.
"""

from __future__ import annotations

import json
import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from trainmark.spec.errors import SensorUnavailable

POWERCAP = Path("/sys/class/powercap")


@dataclass(frozen=True)
class ChannelSpec:
    """What a methodology channel says about a sensor stream."""

    name: str
    record_type: str
    fields: tuple[str, ...]
    method: str
    source: str
    tool: str
    domain: str | None = None

    def as_channel(self, target_rate_hz: float) -> dict:
        """The methodology.channels entry."""
        channel = {
            "name": self.name,
            "record_type": self.record_type,
            "fields": list(self.fields),
            "method": self.method,
            "source": self.source,
            "tool": self.tool,
            "target_rate_hz": target_rate_hz,
        }
        if self.domain:
            channel["domain"] = self.domain
        return channel


@dataclass(frozen=True)
class PowerReading:
    """One read of a power meter: watts now and/or joules since the counter's origin."""

    power_w: float | None
    energy_j: float | None


class PowerMeter(ABC):
    """Power and energy of one device (a GPU, or a CPU package for RAPL)."""

    device: int
    power_channel: ChannelSpec | None
    energy_channel: ChannelSpec | None

    @abstractmethod
    def read(self) -> PowerReading:
        """Read the meter once (called from the sampler thread)."""

    def close(self) -> None:  # noqa: B027 - optional hook: most meters hold nothing to release
        """Release the meter."""


class MemoryProbe(ABC):
    """Memory of one process or device."""

    device: int
    channel: ChannelSpec

    @abstractmethod
    def read(self) -> dict[str, int]:
        """Field name (allocated_bytes, reserved_bytes, used_bytes, resident_bytes) -> bytes."""


# ---------------------------------------------------------------- NVML (NVIDIA GPUs)


def _nvml():
    try:
        import pynvml
    except ImportError:
        raise SensorUnavailable("nvidia-ml-py is not installed (pip install 'trainmark[runner]')") from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        raise SensorUnavailable(f"NVML is not available ({error}): no NVIDIA driver on this machine") from None
    return pynvml


def nvml_tool() -> str:
    from importlib.metadata import version

    return f"nvidia-ml-py {version('nvidia-ml-py')}"


class NvmlPowerMeter(PowerMeter):
    """nvmlDeviceGetPowerUsage (mW) and nvmlDeviceGetTotalEnergyConsumption (mJ since driver load)."""

    def __init__(self, local_index: int, device: int) -> None:
        self.pynvml = _nvml()
        self.handle = self.pynvml.nvmlDeviceGetHandleByIndex(local_index)
        self.device = device
        tool = nvml_tool()
        self.power_channel = ChannelSpec(
            "nvml_power",
            "power_sample",
            ("power_w",),
            "sampled",
            "nvmlDeviceGetPowerUsage (milliwatts)",
            tool,
            "device",
        )
        try:
            self.pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
            self.energy_channel = ChannelSpec(
                "nvml_energy",
                "power_sample",
                ("energy_j",),
                "counter",
                "nvmlDeviceGetTotalEnergyConsumption (millijoules since driver load)",
                tool,
                "device",
            )
        except self.pynvml.NVMLError:
            self.energy_channel = None  # pre-Volta GPUs have no energy counter

    def read(self) -> PowerReading:
        power = self.pynvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0
        energy = self.pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1000.0 if self.energy_channel else None
        return PowerReading(power, energy)


# ---------------------------------------------------------------- AMD SMI (AMD GPUs under ROCm)


def _amdsmi():
    try:
        import amdsmi
    except ImportError:
        raise SensorUnavailable(
            "amdsmi is not installed (it ships with ROCm: pip install /opt/rocm/share/amd_smi)"
        ) from None
    try:
        amdsmi.amdsmi_init()
    except amdsmi.AmdSmiException as error:
        raise SensorUnavailable(f"AMD SMI is not available ({error}): no AMD GPU driver on this machine") from None
    return amdsmi


def amdsmi_tool() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"amdsmi {version('amdsmi')}"
    except PackageNotFoundError:
        return "amdsmi (version not recorded by its installer)"


def amdsmi_handle(amdsmi, local_index: int):
    handles = amdsmi.amdsmi_get_processor_handles()
    if local_index >= len(handles):
        raise SensorUnavailable(f"AMD SMI sees {len(handles)} GPU(s), not a GPU {local_index}")
    return handles[local_index]


class AmdSmiPowerMeter(PowerMeter):
    """amdsmi_get_power_info (watts, the socket's current or else average power) and
    amdsmi_get_energy_count (an accumulator x its resolution in microjoules)."""

    def __init__(self, local_index: int, device: int) -> None:
        self.amdsmi = _amdsmi()
        self.handle = amdsmi_handle(self.amdsmi, local_index)
        self.device = device
        tool = amdsmi_tool()
        info = self.amdsmi.amdsmi_get_power_info(self.handle)
        self._power_key = next(
            (
                key
                for key in ("current_socket_power", "average_socket_power")
                if isinstance(info.get(key), (int, float))
            ),
            None,
        )
        self.power_channel = (
            ChannelSpec(
                "amdsmi_power",
                "power_sample",
                ("power_w",),
                "sampled",
                f"amdsmi_get_power_info()['{self._power_key}'] (watts)",
                tool,
                "device",
            )
            if self._power_key
            else None
        )
        try:
            self._energy_key = next(
                key
                for key in ("energy_accumulator", "power")
                if key in self.amdsmi.amdsmi_get_energy_count(self.handle)
            )
            self.energy_channel = ChannelSpec(
                "amdsmi_energy",
                "power_sample",
                ("energy_j",),
                "counter",
                f"amdsmi_get_energy_count()['{self._energy_key}'] x counter_resolution (microjoules)",
                tool,
                "device",
            )
        except (self.amdsmi.AmdSmiException, StopIteration):
            self.energy_channel = None
        if self.power_channel is None and self.energy_channel is None:
            raise SensorUnavailable("AMD SMI reports neither power nor an energy counter for this GPU")

    def read(self) -> PowerReading:
        power = float(self.amdsmi.amdsmi_get_power_info(self.handle)[self._power_key]) if self.power_channel else None
        energy = None
        if self.energy_channel:
            count = self.amdsmi.amdsmi_get_energy_count(self.handle)
            energy = count[self._energy_key] * count["counter_resolution"] / 1e6
        return PowerReading(power, energy)


# ---------------------------------------------------------------- RAPL (CPU packages, Linux powercap)


def rapl_packages(root: Path = POWERCAP) -> list[Path]:
    """The package-level RAPL domains whose energy counter this process may read."""
    if not root.is_dir():
        raise SensorUnavailable(f"no RAPL: {root} does not exist (not Linux, or no powercap driver)")
    packages = sorted(path for path in root.glob("intel-rapl:*") if path.name.count(":") == 1)
    if not packages:
        raise SensorUnavailable(f"no RAPL: {root} has no intel-rapl package domains")
    unreadable = [path for path in packages if not os.access(path / "energy_uj", os.R_OK)]
    if unreadable:
        raise SensorUnavailable(
            f"no RAPL: {unreadable[0] / 'energy_uj'} is not readable by this user "
            "(since 2020 kernels restrict it to root)"
        )
    return packages


class RaplPowerMeter(PowerMeter):
    """A package's energy_uj counter, unwrapped at max_energy_range_uj into cumulative joules."""

    def __init__(self, package: Path, device: int) -> None:
        self.energy_file = package / "energy_uj"
        self.range_uj = int((package / "max_energy_range_uj").read_text())
        self.device = device
        self.power_channel = None
        self.energy_channel = ChannelSpec(
            "rapl_energy",
            "power_sample",
            ("energy_j",),
            "counter",
            f"{self.energy_file} (microjoules, wraps at {self.range_uj})",
            "Linux powercap (intel-rapl)",
            "device",
        )
        self._last_uj: int | None = None
        self._wraps = 0

    def read(self) -> PowerReading:
        value = int(self.energy_file.read_text())
        if self._last_uj is not None and value < self._last_uj:
            self._wraps += 1
        self._last_uj = value
        return PowerReading(None, (self._wraps * self.range_uj + value) / 1e6)


# ---------------------------------------------------------------- memory


class ProcessMemoryProbe(MemoryProbe):
    """The training process's resident set (psutil), for CPU training."""

    def __init__(self, device: int) -> None:
        import psutil

        self.process = psutil.Process()
        self.device = device
        self.channel = ChannelSpec(
            "process_rss",
            "memory_sample",
            ("resident_bytes",),
            "sampled",
            "psutil.Process().memory_info().rss",
            f"psutil {psutil.__version__}",
        )

    def read(self) -> dict[str, int]:
        return {"resident_bytes": self.process.memory_info().rss}


class CudaMemoryProbe(MemoryProbe):
    """torch.cuda.memory_allocated and memory_reserved of one device (this process's view)."""

    def __init__(self, local_index: int, device: int) -> None:
        import torch

        self.torch = torch
        self.local_index = local_index
        self.device = device
        self.channel = ChannelSpec(
            "cuda_memory",
            "memory_sample",
            ("allocated_bytes", "reserved_bytes"),
            "sampled",
            "torch.cuda.memory_allocated / torch.cuda.memory_reserved",
            f"torch {torch.__version__}",
        )

    def read(self) -> dict[str, int]:
        return {
            "allocated_bytes": self.torch.cuda.memory_allocated(self.local_index),
            "reserved_bytes": self.torch.cuda.memory_reserved(self.local_index),
        }


# ---------------------------------------------------------------- record and replay


class RecordingPowerMeter(PowerMeter):
    """Passes reads through and appends each to a JSON Lines recording."""

    def __init__(self, inner: PowerMeter, path: Path) -> None:
        self.inner = inner
        self.device = inner.device
        self.power_channel = inner.power_channel
        self.energy_channel = inner.energy_channel
        self._file = path.open("a")

    def read(self) -> PowerReading:
        reading = self.inner.read()
        self._file.write(
            json.dumps({"device": self.device, "power_w": reading.power_w, "energy_j": reading.energy_j}) + "\n"
        )
        self._file.flush()
        return reading

    def close(self) -> None:
        self._file.close()
        self.inner.close()


class ReplayPowerMeter(PowerMeter):
    """Plays back a device's recorded readings on the real clock, then again, the counter carrying on.

    A read at t seconds after the first returns the recorded power at t (recordings are taken
    at `rate_hz`) and the recorded counter interpolated at t, so energy over a window agrees with
    power over it whatever the sampler's timing. The channels say that the values are a replay of
    the named recording, so a bundle built from them never passes for a live measurement.
    """

    def __init__(self, readings: list[PowerReading], device: int, recording: str, meter: str, rate_hz: float) -> None:
        if len(readings) < 2:
            raise SensorUnavailable(f"the recording {recording} has fewer than two readings of device {device}")
        self.readings = readings
        self.device = device
        self.rate_hz = rate_hz
        self._started: float | None = None
        energies = [reading.energy_j for reading in readings]
        self._cycle_j = (energies[-1] - energies[0] + (energies[1] - energies[0])) if None not in energies else 0.0
        tool = f"trainmark replay of {recording}"
        self.power_channel = (
            ChannelSpec(
                f"{meter}_power",
                "power_sample",
                ("power_w",),
                "sampled",
                f"replayed {meter} power readings",
                tool,
                "device",
            )
            if readings[0].power_w is not None
            else None
        )
        self.energy_channel = (
            ChannelSpec(
                f"{meter}_energy",
                "power_sample",
                ("energy_j",),
                "counter",
                f"replayed {meter} energy counter readings",
                tool,
                "device",
            )
            if readings[0].energy_j is not None
            else None
        )

    def read(self) -> PowerReading:
        now = time.monotonic()
        if self._started is None:
            self._started = now
        position = (now - self._started) * self.rate_hz
        cycle, index = divmod(int(position), len(self.readings))
        reading = self.readings[index]
        if reading.energy_j is None:
            return PowerReading(reading.power_w, None)
        following = self.readings[index + 1] if index + 1 < len(self.readings) else None
        step_j = (
            (following.energy_j - reading.energy_j)
            if following
            else (self._cycle_j - (reading.energy_j - self.readings[0].energy_j))
        )
        energy = reading.energy_j + (position - int(position)) * step_j + cycle * self._cycle_j
        return PowerReading(reading.power_w, energy)


class ReplayMemoryProbe(MemoryProbe):
    """Plays back recorded memory readings of one device on the real clock, cycling."""

    def __init__(self, readings: list[dict[str, int]], device: int, recording: str, rate_hz: float) -> None:
        if not readings:
            raise SensorUnavailable(f"the recording {recording} has no memory readings of device {device}")
        self.readings = readings
        self.device = device
        self.rate_hz = rate_hz
        self._started: float | None = None
        self.channel = ChannelSpec(
            "cuda_memory",
            "memory_sample",
            tuple(sorted(readings[0])),
            "sampled",
            "replayed torch.cuda memory readings",
            f"trainmark replay of {recording}",
        )

    def read(self) -> dict[str, int]:
        now = time.monotonic()
        if self._started is None:
            self._started = now
        return dict(self.readings[int((now - self._started) * self.rate_hz) % len(self.readings)])
