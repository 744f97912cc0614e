"""Where training runs: a CPU, a GPU (NVIDIA or AMD), or a replayed GPU recording, behind one interface.

The training loop calls `synchronize`, `reset_peak`, `peak_bytes` and `allocations` at its stage
boundaries and never asks which device it has. The CPU backend measures memory with the
kernel's resident-set high-water mark (`VmHWM` in /proc/self/status, reset through
/proc/self/clear_refs), a counter for the whole process; the CUDA backend with the caching
allocator's own statistics, and it describes the device and reads its power through its
vendor's library (`GpuVendor`: NVML for NVIDIA, AMD SMI for AMD; a ROCm GPU, which torch also
calls "cuda", is never described as NVIDIA). Peak FLOP/s come from a table of NVIDIA data-centre
GPUs (dense figures from the datasheets) or from the user's declaration; never from a guess.
"""

from __future__ import annotations

import json
import os
import platform
import re
from abc import ABC, abstractmethod
from pathlib import Path

import torch
from trainmark.reference_runner.sensors import (
    AmdSmiPowerMeter,
    CudaMemoryProbe,
    MemoryProbe,
    NvmlPowerMeter,
    PowerMeter,
    PowerReading,
    ProcessMemoryProbe,
    RaplPowerMeter,
    ReplayMemoryProbe,
    ReplayPowerMeter,
    rapl_packages,
)
from trainmark.spec.errors import SensorUnavailable

PRECISION_FORMAT = {
    "fp32": "fp32",
    "bf16_autocast": "bf16",
    "fp16_autocast": "fp16",
    "bf16": "bf16",
    "fp16": "fp16",
    "tf32": "tf32",
    "fp64": "fp64",
}
"""The number format that dominates matrix-multiply time under each precision policy."""

# Dense peak throughput (no sparsity) per number format, from NVIDIA's datasheets and whitepapers.
_H100_SXM = (
    "NVIDIA H100 Tensor Core GPU Architecture whitepaper, table 1 (H100 SXM5), dense",
    {
        "fp64": 66.9e12,
        "fp32": 66.9e12,
        "tf32": 494.7e12,
        "bf16": 989.4e12,
        "fp16": 989.4e12,
        "fp8": 1978.9e12,
        "int8": 1978.9e12,
    },
)
NVIDIA_PEAKS: list[tuple[re.Pattern, tuple[str, dict[str, float]]]] = [
    (
        re.compile(r"H200"),
        ("NVIDIA H200 Tensor Core GPU datasheet (SXM), dense (half the sparse figures)", _H100_SXM[1]),
    ),
    (
        re.compile(r"H100 PCIe"),
        (
            "NVIDIA H100 Tensor Core GPU Architecture whitepaper, table 1 (H100 PCIe), dense",
            {
                "fp64": 51.2e12,
                "fp32": 51.2e12,
                "tf32": 378e12,
                "bf16": 756e12,
                "fp16": 756e12,
                "fp8": 1513e12,
                "int8": 1513e12,
            },
        ),
    ),
    (re.compile(r"H100.*(HBM3|SXM)"), _H100_SXM),
    (
        re.compile(r"A100"),
        (
            "NVIDIA A100 Tensor Core GPU datasheet, dense",
            {"fp64": 19.5e12, "fp32": 19.5e12, "tf32": 156e12, "bf16": 312e12, "fp16": 312e12, "int8": 624e12},
        ),
    ),
    (
        re.compile(r"V100.?SXM2"),
        ("NVIDIA Tesla V100 datasheet (SXM2)", {"fp64": 7.8e12, "fp32": 15.7e12, "fp16": 125e12}),
    ),
    (
        re.compile(r"V100.?PCIE", re.IGNORECASE),
        ("NVIDIA Tesla V100 datasheet (PCIe)", {"fp64": 7e12, "fp32": 14e12, "fp16": 112e12}),
    ),
    (
        re.compile(r"L40S"),
        (
            "NVIDIA L40S datasheet, dense (half the sparse figures)",
            {"fp32": 91.6e12, "tf32": 183e12, "bf16": 362.05e12, "fp16": 362.05e12, "fp8": 733e12},
        ),
    ),
    (
        re.compile(r"\bL4\b"),
        (
            "NVIDIA L4 Tensor Core GPU datasheet, dense (half the sparse figures)",
            {"fp32": 30.3e12, "tf32": 60e12, "bf16": 121e12, "fp16": 121e12, "fp8": 242.5e12},
        ),
    ),
    (
        re.compile(r"\bA10\b"),
        (
            "NVIDIA A10 Tensor Core GPU datasheet, dense (half the sparse figures)",
            {"fp32": 31.2e12, "tf32": 62.5e12, "bf16": 125e12, "fp16": 125e12},
        ),
    ),
]


def nvidia_peaks(model_name: str) -> tuple[str, dict[str, float]] | None:
    """(source, format -> dense peak FLOP/s) for a known NVIDIA data-centre GPU, else None."""
    for pattern, entry in NVIDIA_PEAKS:
        if pattern.search(model_name):
            return entry
    return None


def cpu_model() -> tuple[str, str]:
    """(vendor, model name) of this machine's CPU as /proc/cpuinfo (or platform) reports it."""
    vendor, model = "unknown vendor", platform.processor() or platform.machine()
    info = Path("/proc/cpuinfo")
    if info.exists():
        text = info.read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        if found:
            model = found.group(1).strip()
        found = re.search(r"^vendor_id\s*:\s*(.+)$", text, re.MULTILINE)
        if found:
            vendor = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}.get(
                found.group(1).strip(), found.group(1).strip()
            )
    return vendor, model


class DeviceBackend(ABC):
    """One process's training device."""

    kind: str
    torch_device: torch.device
    peak_method: str
    peak_source: str
    peak_tool: str

    @abstractmethod
    def synchronize(self) -> None:
        """Wait until queued device work is done (the sync point that makes a timing true)."""

    @abstractmethod
    def reset_peak(self) -> None:
        """Start a new peak-memory window."""

    @abstractmethod
    def peak_bytes(self) -> int | None:
        """Peak memory since the last reset, or None when not measurable."""

    def allocations(self) -> int | None:
        """Cumulative allocator calls, or None when the allocator keeps no count."""
        return None

    def reserved_bytes(self) -> int | None:
        """Memory held by a caching allocator now, or None."""
        return None

    @abstractmethod
    def describe(self, index: int, node: int) -> dict:
        """The manifest's system.devices entry."""

    @abstractmethod
    def power_meter(self, index: int) -> PowerMeter:
        """The device's power/energy meter, or SensorUnavailable with the reason."""

    @abstractmethod
    def memory_probe(self, index: int) -> MemoryProbe:
        """The sampler's memory probe for this process."""

    def software(self) -> dict:
        """Device-specific software fields (CUDA, driver)."""
        return {}

    def peak_unavailable_reason(self) -> str | None:
        """Why peak_bytes is None, when it is."""
        return None


# ---------------------------------------------------------------- CPU

_VM_HWM = re.compile(rb"VmHWM:\s+(\d+) kB")


class CpuBackend(DeviceBackend):
    kind = "cpu"
    peak_method = "counter"
    peak_source = (
        "VmHWM of /proc/self/status (the kernel's resident-set high-water mark of the whole process, "
        "reset through /proc/self/clear_refs at each stage boundary)"
    )

    def __init__(self, declared_peak_flops: float = 0.0) -> None:
        self.torch_device = torch.device("cpu")
        self.peak_tool = f"Linux {platform.release()} procfs"
        self.declared_peak_flops = declared_peak_flops
        self._reason = None
        # Kept open: opening the two files at every stage boundary cost ten times the read itself.
        try:
            self._status = os.open("/proc/self/status", os.O_RDONLY)
            self._clear_refs = os.open("/proc/self/clear_refs", os.O_WRONLY)
            self.peak_bytes()
            self.reset_peak()
        except (OSError, AttributeError) as error:
            self._reason = f"the kernel's resident-set high-water mark cannot be read or reset here ({error})"

    def __del__(self) -> None:
        for name in ("_status", "_clear_refs"):
            if hasattr(self, name):
                os.close(getattr(self, name))

    def synchronize(self) -> None:
        pass  # CPU operators run synchronously

    def reset_peak(self) -> None:
        if self._reason is None:
            os.write(self._clear_refs, b"5")

    def peak_bytes(self) -> int | None:
        if self._reason:
            return None
        return int(_VM_HWM.search(os.pread(self._status, 16384, 0)).group(1)) * 1024

    def peak_unavailable_reason(self) -> str | None:
        return self._reason

    def describe(self, index: int, node: int) -> dict:
        vendor, model = cpu_model()
        device = {"index": index, "node": node, "kind": "cpu", "vendor": vendor, "model": model}
        if self.declared_peak_flops:
            device["peak_flops"] = [
                {
                    "format": "fp32",
                    "flops_per_s": self.declared_peak_flops,
                    "sparse": False,
                    "source": "declared by the user (trainmark run --set peak_flops_per_s=VALUE)",
                }
            ]
        return device

    def power_meter(self, index: int) -> PowerMeter:
        packages = rapl_packages()
        return RaplPowerMeter(packages[0], index) if len(packages) == 1 else _SummedRapl(packages, index)

    def memory_probe(self, index: int) -> MemoryProbe:
        return ProcessMemoryProbe(index)


class _SummedRapl(PowerMeter):
    """Several CPU packages reported as one CPU device: their counters summed."""

    def __init__(self, packages: list[Path], index: int) -> None:
        self.meters = [RaplPowerMeter(package, index) for package in packages]
        self.device = index
        self.power_channel = None
        first = self.meters[0].energy_channel
        self.energy_channel = type(first)(
            first.name,
            first.record_type,
            first.fields,
            first.method,
            " + ".join(str(m.energy_file) for m in self.meters) + " (summed)",
            first.tool,
            first.domain,
        )

    def read(self) -> PowerReading:
        return PowerReading(None, sum(meter.read().energy_j for meter in self.meters))


# ---------------------------------------------------------------- CUDA


def nvidia_device(local_index: int, index: int, node: int) -> dict:
    """A system.devices entry for an NVIDIA GPU from NVML alone (no CUDA context is created)."""
    from trainmark.reference_runner.sensors import _nvml

    device: dict = {
        "index": index,
        "node": node,
        "local_index": local_index,
        "kind": "gpu",
        "vendor": "NVIDIA",
        "model": "NVIDIA GPU",
    }
    try:
        pynvml = _nvml()
        handle = pynvml.nvmlDeviceGetHandleByIndex(local_index)
        name = pynvml.nvmlDeviceGetName(handle)
        device["model"] = name.decode() if isinstance(name, bytes) else name
        device["memory_bytes"] = pynvml.nvmlDeviceGetMemoryInfo(handle).total
        device["uuid"] = pynvml.nvmlDeviceGetUUID(handle)
        device["driver_version"] = pynvml.nvmlSystemGetDriverVersion()
        device["firmware_version"] = pynvml.nvmlDeviceGetVbiosVersion(handle)
        device["power_limit_w"] = pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0
        device["max_graphics_clock_mhz"] = float(pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_GRAPHICS))
        device["max_memory_clock_mhz"] = float(pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_MEM))
    except SensorUnavailable:
        pass  # the fields stay absent; H counts them
    peaks = nvidia_peaks(device["model"])
    if peaks:
        source, table = peaks
        device["peak_flops"] = [
            {"format": fmt, "flops_per_s": value, "sparse": False, "source": source} for fmt, value in table.items()
        ]
    return device


def amd_device(local_index: int, index: int, node: int) -> dict:
    """A system.devices entry for an AMD GPU from AMD SMI alone (no HIP context is created)."""
    from trainmark.reference_runner.sensors import _amdsmi, amdsmi_handle

    device: dict = {
        "index": index,
        "node": node,
        "local_index": local_index,
        "kind": "gpu",
        "vendor": "AMD",
        "model": "AMD GPU",
    }
    try:
        amdsmi = _amdsmi()
        handle = amdsmi_handle(amdsmi, local_index)
        asic = amdsmi.amdsmi_get_gpu_asic_info(handle)
        if asic.get("market_name"):
            device["model"] = asic["market_name"]
        device["uuid"] = amdsmi.amdsmi_get_gpu_device_uuid(handle)
        device["driver_version"] = amdsmi.amdsmi_get_gpu_driver_info(handle)["driver_version"]
        device["firmware_version"] = amdsmi.amdsmi_get_gpu_vbios_info(handle).get("version")
        device["memory_bytes"] = amdsmi.amdsmi_get_gpu_memory_total(handle, amdsmi.AmdSmiMemoryType.VRAM)
    except (SensorUnavailable, KeyError, AttributeError):
        pass  # the fields stay absent; H counts them
    return {key: value for key, value in device.items() if value is not None}


class GpuVendor(ABC):
    """Whose management library describes a GPU and reads its power: torch calls every GPU it
    drives "cuda", NVIDIA's under CUDA and AMD's under ROCm alike, so the vendor is probed."""

    name: str

    @abstractmethod
    def describe(self, local_index: int, index: int, node: int) -> dict:
        """The system.devices entry, from the vendor's library (no GPU context is created)."""

    @abstractmethod
    def power_meter(self, local_index: int, index: int) -> PowerMeter:
        """The GPU's power/energy meter, or SensorUnavailable with the reason."""

    @abstractmethod
    def software(self) -> dict:
        """The vendor's software fields (toolkit, driver)."""


class NvidiaGpus(GpuVendor):
    """NVIDIA GPUs under CUDA: NVML (nvidia-ml-py)."""

    name = "NVIDIA"

    def describe(self, local_index: int, index: int, node: int) -> dict:
        return nvidia_device(local_index, index, node)

    def power_meter(self, local_index: int, index: int) -> PowerMeter:
        return NvmlPowerMeter(local_index, index)

    def software(self) -> dict:
        fields = {"cuda_version": torch.version.cuda}
        if torch.backends.cudnn.is_available():
            version = torch.backends.cudnn.version()
            fields["cudnn_version"] = f"{version // 10000}.{version // 100 % 100}.{version % 100}"
        if hasattr(torch.cuda, "nccl"):
            fields["nccl_version"] = ".".join(str(part) for part in torch.cuda.nccl.version())
        try:
            from trainmark.reference_runner.sensors import _nvml

            fields["accelerator_driver_version"] = _nvml().nvmlSystemGetDriverVersion()
        except SensorUnavailable:
            pass
        return fields


class AmdGpus(GpuVendor):
    """AMD GPUs under ROCm (which torch calls "cuda"): AMD SMI (amdsmi)."""

    name = "AMD"

    def describe(self, local_index: int, index: int, node: int) -> dict:
        return amd_device(local_index, index, node)

    def power_meter(self, local_index: int, index: int) -> PowerMeter:
        return AmdSmiPowerMeter(local_index, index)

    def software(self) -> dict:
        fields: dict = {"libraries": [{"name": "ROCm HIP", "version": str(torch.version.hip)}]}
        try:
            from trainmark.reference_runner.sensors import _amdsmi, amdsmi_handle

            amdsmi = _amdsmi()
            fields["accelerator_driver_version"] = amdsmi.amdsmi_get_gpu_driver_info(amdsmi_handle(amdsmi, 0))[
                "driver_version"
            ]
        except (SensorUnavailable, KeyError, AttributeError):
            pass
        return fields


def probe_gpu_vendor() -> GpuVendor:
    """The vendor of the GPUs torch drives: a ROCm build of torch (torch.version.hip) drives AMD
    GPUs, a CUDA build NVIDIA's."""
    return AmdGpus() if getattr(torch.version, "hip", None) else NvidiaGpus()


class CudaBackend(DeviceBackend):
    """A GPU that torch drives as "cuda": NVIDIA under CUDA or AMD under ROCm (`probe_gpu_vendor`)."""

    kind = "gpu"
    peak_method = "counter"
    peak_source = "torch.cuda.max_memory_allocated, reset with torch.cuda.reset_peak_memory_stats at each stage"

    def __init__(self, local_index: int, vendor: GpuVendor | None = None) -> None:
        self.vendor = vendor or probe_gpu_vendor()
        self.peak_tool = f"torch {torch.__version__}"
        torch.cuda.set_device(local_index)
        self.local_index = local_index
        self.torch_device = torch.device("cuda", local_index)

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.local_index)

    def reset_peak(self) -> None:
        torch.cuda.reset_peak_memory_stats(self.local_index)

    def peak_bytes(self) -> int | None:
        return torch.cuda.max_memory_allocated(self.local_index)

    def allocations(self) -> int | None:
        return torch.cuda.memory_stats(self.local_index).get("allocation.all.allocated")

    def reserved_bytes(self) -> int | None:
        return torch.cuda.memory_reserved(self.local_index)

    def describe(self, index: int, node: int) -> dict:
        properties = torch.cuda.get_device_properties(self.local_index)
        return {
            **self.vendor.describe(self.local_index, index, node),
            "model": properties.name,
            "memory_bytes": properties.total_memory,
        }

    def power_meter(self, index: int) -> PowerMeter:
        return self.vendor.power_meter(self.local_index, index)

    def memory_probe(self, index: int) -> MemoryProbe:
        return CudaMemoryProbe(self.local_index, index)

    def software(self) -> dict:
        return self.vendor.software()


# ---------------------------------------------------------------- replayed GPU


class ReplayGpuBackend(DeviceBackend):
    """A recorded GPU session played back while the model trains on this CPU.

    Device descriptions, NVML power and energy, and CUDA memory statistics come from the
    recording; every channel names the recording, so the bundle says it is a replay.
    """

    kind = "gpu"
    peak_method = "counter"

    def __init__(self, recording: Path) -> None:
        self.recording = recording
        self.data = json.loads(recording.read_text())
        self.torch_device = torch.device("cpu")
        self.peak_source = f"replayed torch.cuda.max_memory_allocated from {recording.name}"
        self.peak_tool = f"trainmark replay of {recording.name}"
        self._peaks = self.data["stage_peak_bytes"]
        self._peak_index = 0
        self._allocations = 0
        self._current_peak = 0

    def synchronize(self) -> None:
        pass

    def reset_peak(self) -> None:
        self._current_peak = self._peaks[self._peak_index % len(self._peaks)]
        self._peak_index += 1

    def peak_bytes(self) -> int | None:
        return self._current_peak

    def allocations(self) -> int | None:
        self._allocations += self.data["allocations_per_step"]
        return self._allocations

    def reserved_bytes(self) -> int | None:
        return self.data["reserved_bytes"]

    def describe(self, index: int, node: int) -> dict:
        return {**self.data["devices"][index % len(self.data["devices"])], "index": index, "node": node}

    def power_meter(self, index: int) -> PowerMeter:
        readings = [PowerReading(power, energy) for power, energy in self.data["nvml"][str(index)]]
        return ReplayPowerMeter(readings, index, self.recording.name, "nvml", self.data["rate_hz"])

    def memory_probe(self, index: int) -> MemoryProbe:
        readings = [
            {"allocated_bytes": allocated, "reserved_bytes": reserved}
            for allocated, reserved in self.data["cuda_memory"][str(index)]
        ]
        return ReplayMemoryProbe(readings, index, self.recording.name, self.data["rate_hz"])

    def software(self) -> dict:
        return dict(self.data.get("software", {}))


def uses_cuda(device: str, replay: Path | None) -> bool:
    """Whether a run with this device setting trains on CUDA (a replay never does)."""
    return replay is None and (device == "cuda" or (device == "auto" and torch.cuda.is_available()))


def refuse_unsupported_precision(precision: str, device: str, replay: Path | None) -> None:
    """fp16 autocast trains only on CUDA (its loss scaling has no CPU path): refuse it before anything
    is written when the run would train on the CPU, whatever --device says (auto on a machine
    without CUDA, or a replay, trains on the CPU)."""
    if precision == "fp16_autocast" and not uses_cuda(device, replay):
        from trainmark.reference_runner.config import ConfigInvalid

        why = (
            "a replay trains on the CPU"
            if replay is not None
            else "--device auto found no CUDA device"
            if device == "auto"
            else f"--device is {device}"
        )
        raise ConfigInvalid(
            f"precision fp16_autocast needs a CUDA device and this run would train on the CPU "
            f"({why}); use --precision bf16_autocast or fp32"
        )


def planned_setup(
    device: str,
    replay: Path | None,
    processes_per_node: int,
    nodes: int,
    declared_peak_flops: float,
    sample_rate_hz: float,
) -> tuple[list[dict], list[dict], str | None]:
    """(system.devices, methodology.channels, why there is no energy sensor) as the workers will find them.

    Read in the launcher without creating a CUDA context; nodes other than the launcher's are
    assumed to be like it until the first run reports them.
    """
    if replay is not None:
        backend = ReplayGpuBackend(replay)
        devices = [
            backend.describe(node * processes_per_node + local, node)
            for node in range(nodes)
            for local in range(processes_per_node)
        ]
        meter, probe = backend.power_meter(0), backend.memory_probe(0)
        specs = [meter.power_channel, meter.energy_channel, probe.channel]
        return devices, [spec.as_channel(sample_rate_hz) for spec in specs if spec], None
    if uses_cuda(device, replay):
        vendor = probe_gpu_vendor()
        devices = [
            vendor.describe(local, node * processes_per_node + local, node)
            for node in range(nodes)
            for local in range(processes_per_node)
        ]
        specs, reason = [CudaMemoryProbe(0, 0).channel], None
        try:
            meter = vendor.power_meter(0, 0)
            specs += [spec for spec in (meter.power_channel, meter.energy_channel) if spec]
        except SensorUnavailable as error:
            reason = str(error)
        return devices, [spec.as_channel(sample_rate_hz) for spec in specs], reason
    cpu = CpuBackend(declared_peak_flops)
    devices = [cpu.describe(node, node) for node in range(nodes)]
    specs, reason = [ProcessMemoryProbe(0).channel], None
    try:
        specs.append(cpu.power_meter(0).energy_channel)
    except SensorUnavailable as error:
        reason = str(error)
    return devices, [spec.as_channel(sample_rate_hz) for spec in specs], reason


def backend_for(device: str, local_rank: int, declared_peak_flops: float, replay: Path | None = None) -> DeviceBackend:
    """The backend for a run: a replay when a recording is given, else CUDA or the CPU."""
    if replay is not None:
        return ReplayGpuBackend(replay)
    if uses_cuda(device, replay):
        if not torch.cuda.is_available():
            from trainmark.spec.errors import TrainmarkError

            raise TrainmarkError("device cuda was asked for but torch sees no CUDA device; use --device cpu")
        return CudaBackend(local_rank % torch.cuda.device_count())
    return CpuBackend(declared_peak_flops)
