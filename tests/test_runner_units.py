"""The runner's parts without training: configuration, data, FLOPs, devices, sensors."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import time

import pytest
import torch
from trainmark.reference_runner.config import PRESETS, ConfigInvalid, RunConfig, build_config
from trainmark.reference_runner.data import FeedingOrder, builtin_corpus, load_dataset
from trainmark.reference_runner.devices import CpuBackend, nvidia_peaks
from trainmark.reference_runner.model import (
    TinyGPT,
    analytical_flops_per_step,
    counted_flops_per_step,
    parameter_counts,
)
from trainmark.reference_runner.sensors import (
    PowerReading,
    RaplPowerMeter,
    RecordingPowerMeter,
    ReplayPowerMeter,
    rapl_packages,
)
from trainmark.spec.errors import SensorUnavailable

# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"n_embd": 130, "n_head": 4}, "n_embd (130) must be divisible by n_head (4)"),
        ({"precision": "fp8"}, "precision must be one of fp32, bf16_autocast, fp16_autocast"),
        ({"precision": "fp16_autocast", "device": "cpu"}, "fp16_autocast needs a CUDA device"),
        ({"micro_batch_size": 32}, "global_batch_size (16) must be a multiple of micro_batch_size (32)"),
        ({"micro_batch_size": 8, "gradient_accumulation_steps": 4}, "(8 x 4) exceeds global_batch_size (16)"),
        ({"gradient_accumulation_steps": -1}, "gradient_accumulation_steps must not be negative"),
        ({"learning_rate": 0}, "learning_rate must be in (0, 10)"),
        ({"max_steps": 0}, "set max_steps (optimizer steps) or epochs"),
        ({"profile_first_step": 2}, "must come after the warm-up"),
        ({"vocab_size": 100}, "vocab_size must be at least 256"),
        ({"sample_rate_hz": 0}, "sample_rate_hz must be in (0, 1000]"),
    ],
)
def test_bad_values_are_refused_naming_the_knob(overrides, message):
    with pytest.raises(ConfigInvalid) as error:
        build_config("tiny", overrides=overrides)
    assert message in str(error.value)


def test_unknown_knob_and_wrong_type():
    with pytest.raises(ConfigInvalid, match="unknown knob.*n_layers"):
        build_config("tiny", overrides={"n_layers": 3})
    with pytest.raises(ConfigInvalid, match="max_steps must be int, not 'many'"):
        build_config("tiny", overrides={"max_steps": "many"})
    with pytest.raises(ConfigInvalid, match="unknown preset 'huge'"):
        build_config("huge")


def test_config_file_then_overrides(tmp_path):
    (tmp_path / "run.toml").write_text("[run]\nmax_steps = 12\nlearning_rate = 0.001\ndeterministic = true\n")
    (tmp_path / "run.yaml").write_text("max_steps: 14\nprecision: bf16_autocast\n")
    toml = build_config("tiny", tmp_path / "run.toml", {"max_steps": "20"})
    assert (toml.max_steps, toml.learning_rate, toml.deterministic, toml.n_layer) == (20, 0.001, True, 4)
    yaml_config = build_config(None, tmp_path / "run.yaml")
    assert (yaml_config.max_steps, yaml_config.precision, yaml_config.name) == (14, "bf16_autocast", "tiny")
    (tmp_path / "bad.toml").write_text("max_steps = [")
    with pytest.raises(ConfigInvalid, match="not valid TOML"):
        build_config("tiny", tmp_path / "bad.toml")


def test_the_global_batch_is_what_trains_and_accumulation_follows_from_it():
    config = build_config("tiny", overrides={"micro_batch_size": 4})
    assert config.gradient_accumulation_steps == 0  # derived once the world size is known
    assert config.for_world(1).gradient_accumulation_steps == 4
    assert config.for_world(2).gradient_accumulation_steps == 2
    assert config.for_world(2).for_world(2) == config.for_world(2)
    with pytest.raises(ConfigInvalid, match=r"cannot be split into micro-batches of 4 on 3 process\(es\).*\(12\)"):
        config.for_world(3)
    explicit = build_config("tiny", overrides={"micro_batch_size": 4, "gradient_accumulation_steps": 2})
    assert explicit.for_world(2).gradient_accumulation_steps == 2
    with pytest.raises(ConfigInvalid, match="set gradient_accumulation_steps=4, or 0 to derive it"):
        explicit.for_world(1)


def test_presets_are_valid_and_tiny_is_small():
    assert set(PRESETS) == {"tiny", "small", "gpt2-125m"}
    tiny = PRESETS["tiny"]
    assert tiny.max_steps * tiny.global_batch_size * tiny.sequence_length < 300_000


# ---------------------------------------------------------------- data


def test_builtin_corpus_is_fixed_and_learnable_text():
    corpus = builtin_corpus()
    assert len(corpus) == 1 << 20
    assert hashlib.sha256(corpus).hexdigest() == hashlib.sha256(builtin_corpus()).hexdigest()
    assert b"+" in corpus[:200] or b" plus " in corpus[:200]
    assert corpus.decode().count("\n") > 50_000


def test_feeding_order_and_snapshot_are_deterministic():
    dataset = load_dataset(None, 128, 0.1)
    first, second = FeedingOrder(dataset, 16, 0), FeedingOrder(dataset, 16, 0)
    assert torch.equal(first.sequences_of_step(3), second.sequences_of_step(3))
    assert first.snapshot(10) == second.snapshot(10) != FeedingOrder(dataset, 16, 1).snapshot(10)
    inputs, targets = first.tokens_of(first.sequences_of_step(0))
    assert inputs.shape == (16, 128) and torch.equal(inputs[:, 1:], targets[:, :-1])
    digest = hashlib.sha256()
    for step in range(2):
        for start in first.sequences_of_step(step).tolist():
            digest.update(dataset.train[start * 128 : (start + 1) * 128].numpy().tobytes())
    assert first.snapshot(2) == digest.hexdigest()


def test_ranks_split_each_global_batch():
    order = FeedingOrder(load_dataset(None, 64, 0.1), 8, 0)
    rank0 = torch.cat([inputs for inputs, _ in order.micro_batches(0, 0, 2, 2, 2)])
    rank1 = torch.cat([inputs for inputs, _ in order.micro_batches(0, 1, 2, 2, 2)])
    every = order.tokens_of(order.sequences_of_step(0))[0]
    assert torch.equal(torch.cat([rank0, rank1]), every)


def test_text_data_from_a_file_or_folder(tmp_path):
    (tmp_path / "a.txt").write_text("hello world\n" * 2000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("second file\n" * 2000)
    single = load_dataset(str(tmp_path / "a.txt"), 32, 0.1)
    folder = load_dataset(str(tmp_path), 32, 0.1)
    assert single.size_bytes == 24000 and folder.size_bytes == 48000
    with pytest.raises(Exception, match="too small"):
        load_dataset(str(tmp_path / "a.txt"), 30000, 0.1)


# ---------------------------------------------------------------- model and FLOPs


@pytest.mark.parametrize("checkpointing", [False, True])
@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_analytical_and_counted_flops_agree(preset, checkpointing):
    config = build_config(preset, overrides={"activation_checkpointing": checkpointing})
    analytical, counted = analytical_flops_per_step(config), counted_flops_per_step(config)
    assert abs(analytical - counted) / counted < 0.01


def test_parameter_count_counts_tied_weights_once():
    config = PRESETS["tiny"]
    total, trainable = parameter_counts(TinyGPT(config))
    embedding = config.vocab_size * config.n_embd
    assert total == trainable == sum(p.numel() for p in TinyGPT(config).parameters())
    assert total < sum(p.numel() for p in TinyGPT(config).state_dict().values())  # the head shares the embedding
    assert embedding < total


def test_gpt2_preset_has_gpt2_small_size():
    with torch.device("meta"):
        total, _ = parameter_counts(TinyGPT(PRESETS["gpt2-125m"]))
    assert 124_000_000 < total < 125_000_000


# ---------------------------------------------------------------- devices and sensors


@pytest.mark.parametrize(
    "name, bf16",
    [
        ("NVIDIA H100 80GB HBM3", 989.4e12),
        ("NVIDIA H100 PCIe", 756e12),
        ("NVIDIA H200", 989.4e12),
        ("NVIDIA A100-SXM4-80GB", 312e12),
        ("NVIDIA A100 80GB PCIe", 312e12),
        ("NVIDIA L4", 121e12),
        ("NVIDIA A10", 125e12),
        ("NVIDIA L40S", 362.05e12),
    ],
)
def test_peak_table(name, bf16):
    source, table = nvidia_peaks(name)
    assert table["bf16"] == bf16 and "datasheet" in source or "whitepaper" in source


@pytest.mark.parametrize("name", ["NVIDIA GeForce RTX 4090", "Tesla T4", "AMD Instinct MI300X", "NVIDIA H100 NVL"])
def test_unknown_devices_have_no_peak(name):
    assert nvidia_peaks(name) is None


def test_cpu_peak_memory_is_the_kernel_high_water_mark():
    backend = CpuBackend()
    assert backend.peak_unavailable_reason() is None
    backend.reset_peak()
    before = backend.peak_bytes()
    block = bytearray(64 * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])  # touch every page
    grown = backend.peak_bytes()
    del block
    backend.reset_peak()
    assert grown - before >= 60 * 1024 * 1024
    assert backend.peak_bytes() < grown


def test_cpu_without_rapl_says_why(tmp_path):
    with pytest.raises(SensorUnavailable, match="does not exist"):
        rapl_packages(tmp_path / "missing")
    (tmp_path / "intel-rapl:0").mkdir()
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("5")
    (tmp_path / "intel-rapl:0" / "energy_uj").chmod(0)
    if not __import__("os").access(tmp_path / "intel-rapl:0" / "energy_uj", __import__("os").R_OK):
        with pytest.raises(SensorUnavailable, match="not readable"):
            rapl_packages(tmp_path)


def test_rapl_counter_is_unwrapped(tmp_path):
    package = tmp_path / "intel-rapl:0"
    package.mkdir()
    (package / "max_energy_range_uj").write_text("1000000")
    meter = RaplPowerMeter(package, device=0)
    joules = []
    for microjoules in (900_000, 950_000, 20_000, 80_000):  # wraps once between the 2nd and 3rd read
        (package / "energy_uj").write_text(str(microjoules))
        joules.append(meter.read().energy_j)
    assert joules == pytest.approx([0.9, 0.95, 1.02, 1.08])
    assert meter.energy_channel.method == "counter" and rapl_packages(tmp_path) == [package]


def test_record_then_replay(tmp_path):
    class Fake:
        device, power_channel, energy_channel = 3, None, None

        def __init__(self):
            self.values = iter([(100.0, 10.0), (110.0, 21.0), (120.0, 33.0)])

        def read(self):
            return PowerReading(*next(self.values))

        def close(self):
            pass

    recorder = RecordingPowerMeter(Fake(), tmp_path / "rec.jsonl")
    [recorder.read() for _ in range(3)]
    recorder.close()
    lines = [json.loads(line) for line in (tmp_path / "rec.jsonl").read_text().splitlines()]
    replay = ReplayPowerMeter(
        [PowerReading(line["power_w"], line["energy_j"]) for line in lines], 3, "rec", "nvml", rate_hz=100.0
    )
    played = []
    for _ in range(6):
        played.append(replay.read())
        time.sleep(0.012)
    energies = [reading.energy_j for reading in played]
    assert played[0] == PowerReading(100.0, 10.0)
    assert {reading.power_w for reading in played} <= {100.0, 110.0, 120.0}
    assert all(b > a for a, b in zip(energies, energies[1:]))  # the counter never runs backwards, cycles included
    assert energies[-1] > 33.0  # past the end of the recording, the counter carries on
    assert replay.energy_channel.tool == "trainmark replay of rec"


def test_runconfig_json_round_trip():
    config = build_config("small", overrides={"seed": 9})
    assert RunConfig(**json.loads(json.dumps(config.as_dict()))) == config
    assert not math.isnan(config.learning_rate)


def test_an_interrupted_run_that_does_not_stop_is_terminated_then_killed(monkeypatch):
    import subprocess
    import sys

    from trainmark.reference_runner import launch

    from tests.processes import default_sigint

    monkeypatch.setattr(launch, "INTERRUPT_GRACE_S", 0.6)
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time\n"
            "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\ntime.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert stubborn.stdout.readline().strip() == "ready"
    launch._stop(stubborn)
    assert stubborn.returncode == -9  # neither SIGINT nor SIGTERM ended it
    polite = subprocess.Popen(
        [sys.executable, "-c", "print('ready', flush=True)\nimport time\ntime.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    assert polite.stdout.readline().strip() == "ready"
    launch._stop(polite)
    assert polite.returncode == -2  # ended by its KeyboardInterrupt (Python exits as if by SIGINT)


@pytest.mark.parametrize("device", ["auto", "cpu"])
def test_fp16_is_refused_on_a_cpu_whatever_the_device_says(tmp_path, device):
    import torch
    from trainmark.reference_runner.config import ConfigInvalid, build_config
    from trainmark.reference_runner.launch import run_bundle
    from trainmark.reference_runner.sweep import grid

    if device == "auto" and torch.cuda.is_available():
        pytest.skip("auto picks the GPU here; the refusal is for machines without one")
    with pytest.raises(ConfigInvalid, match="fp16_autocast needs a CUDA device"):
        config = build_config("tiny", None, {"precision": "fp16_autocast", "device": device})
        run_bundle(config, 1, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything was written
    with pytest.raises(ConfigInvalid, match="nothing was trained"):
        grid("tiny", None, {"device": device}, [("precision", ["fp32", "fp16_autocast"])])


def test_stale_scratch_folders_of_dead_processes_are_swept_and_no_others(tmp_path):
    from trainmark.reference_runner.scratch import sweep_stale_scratch

    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead, alive = int(finished.stdout), os.getpid()
    for name in (
        f"trainmark-run-{dead}-abc",
        f"trainmark-checkpoint-{dead}-def",
        f"trainmark-run-{alive}-ghi",
        "trainmark-bundle-xyz",
        f"other-run-{dead}-x",
    ):
        (tmp_path / name).mkdir()
    removed = sweep_stale_scratch(tmp_path)
    assert sorted(path.name for path in removed) == [f"trainmark-checkpoint-{dead}-def", f"trainmark-run-{dead}-abc"]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        ["trainmark-bundle-xyz", f"other-run-{dead}-x", f"trainmark-run-{alive}-ghi"]
    )


# ---------------------------------------------------------------- the measurement path and its result


def test_one_rank_measured_through_the_instruments_round_trips_through_json_as_typed_objects(tmp_path):
    from trainmark.reference_runner.instruments import RankInstruments, RankPlace
    from trainmark.reference_runner.measurements import CheckpointSave, WorkerResult
    from trainmark.spec import models
    from trainmark.spec.bundle import BundleWriter

    config = build_config(
        "tiny",
        overrides={
            "idle_seconds": 0,
            "warmup_steps": 1,
            "profile_first_step": 1,
            "profile_steps": 1,
            "allocation_steps": 1,
            "sample_rate_hz": 50,
        },
    )
    instruments = RankInstruments(CpuBackend(), RankPlace(), config)
    meter = instruments.open(BundleWriter.create(tmp_path / "bundle"), "run-1")
    weights = torch.nn.Linear(32, 32)
    instruments.start()
    for index in range(4):
        with meter.step(8, None) as step:
            with step.phase("forward"):
                loss = weights(torch.randn(8, 32)).square().mean()
            with step.phase("backward"):
                loss.backward()
            step.loss = loss.detach()
        if index == 2:
            with instruments.checkpoint(tmp_path / "state.pt", index):
                torch.save(weights.state_dict(), tmp_path / "state.pt")
    instruments.stop()
    result = instruments.gather("run-1", 7, 4)

    rank = result.ranks[0]
    assert (rank.steps, rank.measured, rank.stages_marked) == (4, 1, ["backward", "forward"])  # warm-up 1, windows 2
    assert rank.checkpoints == [
        CheckpointSave(
            step=2, size_bytes=(tmp_path / "state.pt").stat().st_size, duration_s=rank.checkpoints[0].duration_s
        )
    ]
    assert isinstance(rank.kernel_breakdown, models.KernelBreakdown) and rank.kernel_breakdown.first_step == 1
    assert rank.memory.channel == "process_rss" and rank.memory.count >= 1
    assert rank.final_loss == pytest.approx(loss.item())
    assert WorkerResult.from_json(result.to_json()) == result


def test_the_allocation_window_places_allocator_events_in_their_step():
    """The profiler's trace starts at the end of its start-up, which is slow in a fresh process (the
    first profiler takes up to seconds): its events must still land inside the step that made them,
    on trainmark's clock. Run in a fresh interpreter, where that start-up is slowest."""
    check = """
import time, torch
from trainmark.reference_runner.profiling import AllocationWindow
window = AllocationWindow(first_step=0, steps=1, on_cuda=False)
window.before_step(0)
start_ns = time.time_ns()
time.sleep(0.002)  # a step's own work around its allocations
tensors = [torch.empty(4096) for _ in range(5)]
time.sleep(0.002)
end_ns = time.time_ns()
window.after_step(0, start_ns, end_ns)
events = window.events(rank=0, device=0)
allocs = [event for event in events if event.action == "alloc"]
assert len(allocs) >= 5, events
assert all(start_ns <= event.time_unix_ns <= end_ns and event.step == 0 for event in allocs), (start_ns, end_ns, allocs)
assert window.allocations_per_step(events) >= 5
"""
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
