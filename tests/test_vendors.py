"""GPU vendors behind one interface: probed from the torch build, NVIDIA through NVML, AMD through
AMD SMI; a ROCm GPU (which torch calls "cuda") is never described as NVIDIA. AMD SMI is absent
here, so its meter runs against a recording of what amdsmi returns (the record/replay rule for
absent hardware); the replayed meter carries the recording's name into every channel."""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch
from trainmark.reference_runner import devices, sensors
from trainmark.reference_runner.sensors import PowerReading, RecordingPowerMeter, ReplayPowerMeter
from trainmark.spec.errors import SensorUnavailable


def test_the_vendor_is_probed_from_the_torch_build(monkeypatch):
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    assert devices.probe_gpu_vendor().name == "NVIDIA"
    monkeypatch.setattr(torch.version, "hip", "6.2.41133", raising=False)
    vendor = devices.probe_gpu_vendor()
    assert vendor.name == "AMD" and isinstance(vendor, devices.AmdGpus)


def test_a_rocm_gpu_is_never_described_as_nvidia(monkeypatch):
    monkeypatch.setattr(torch.version, "hip", "6.2.41133", raising=False)
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # not installed: the description still says AMD
    vendor = devices.probe_gpu_vendor()
    description = vendor.describe(0, 3, 1)
    assert description == {"index": 3, "node": 1, "local_index": 0, "kind": "gpu", "vendor": "AMD", "model": "AMD GPU"}
    assert "nvidia" not in json.dumps(description).lower()
    assert vendor.software() == {"libraries": [{"name": "ROCm HIP", "version": "6.2.41133"}]}
    with pytest.raises(SensorUnavailable, match="amdsmi is not installed"):
        vendor.power_meter(0, 3)


class _AmdSmiRecording(types.ModuleType):
    """What amdsmi 6.x returned on an MI300X, replayed: socket power in W and an energy accumulator
    with its resolution in microjoules."""

    class AmdSmiException(Exception):
        pass

    def __init__(self, readings: list[tuple[int, int]]) -> None:
        super().__init__("amdsmi")
        self.readings = readings
        self.reads = 0

    def amdsmi_init(self):
        return None

    def amdsmi_get_processor_handles(self):
        return ["gpu-0", "gpu-1"]

    def amdsmi_get_power_info(self, handle):
        return {
            "current_socket_power": self.readings[min(self.reads, len(self.readings) - 1)][0],
            "average_socket_power": "N/A",
            "power_limit": 750,
        }

    def amdsmi_get_energy_count(self, handle):
        watts, accumulator = self.readings[min(self.reads, len(self.readings) - 1)]
        self.reads += 1
        return {"energy_accumulator": accumulator, "counter_resolution": 15.3, "timestamp": 0}


def test_the_amd_smi_meter_converts_watts_and_the_energy_accumulator(monkeypatch, tmp_path):
    recording = _AmdSmiRecording([(410, 1_000_000), (420, 2_000_000)])
    monkeypatch.setitem(sys.modules, "amdsmi", recording)
    meter = devices.AmdGpus().power_meter(1, 5)
    recording.reads = 0  # the meter probed the counter once when it was made
    assert (meter.device, meter.power_channel.name, meter.energy_channel.name) == (5, "amdsmi_power", "amdsmi_energy")
    assert "current_socket_power" in meter.power_channel.source and meter.energy_channel.method == "counter"
    recorded = RecordingPowerMeter(meter, tmp_path / "amd.jsonl")
    first, second = recorded.read(), recorded.read()
    recorded.close()
    assert first == PowerReading(410.0, 15.3) and second == PowerReading(420.0, 30.6)
    lines = [json.loads(line) for line in (tmp_path / "amd.jsonl").read_text().splitlines()]
    assert lines == [
        {"device": 5, "power_w": 410.0, "energy_j": 15.3},
        {"device": 5, "power_w": 420.0, "energy_j": 30.6},
    ]
    replay = ReplayPowerMeter(
        [PowerReading(line["power_w"], line["energy_j"]) for line in lines], 5, "amd.jsonl", "amdsmi", 10.0
    )
    assert replay.energy_channel.tool == "trainmark replay of amd.jsonl"
    assert replay.read().power_w == 410.0


def test_an_amd_gpu_that_amd_smi_does_not_list_is_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "amdsmi", _AmdSmiRecording([(400, 0)]))
    with pytest.raises(SensorUnavailable, match="AMD SMI sees 2 GPU"):
        sensors.AmdSmiPowerMeter(4, 4)
