"""Write the example bundles in spec/examples/valid/ (`make examples`).

SYNTHETIC DATA. These bundles show the standard with realistic shapes and magnitudes: a
2 x H100 data-parallel GPT-2 (124M) run with NVML power and energy counters, and a CPU run of a
tiny transformer with no energy sensor. The numbers are generated here from a fixed seed (step
times, power by training phase, allocator and kernel profiles in the proportions such runs
show); they are not measurements, and every bundle says so in its description. Summaries are
computed from the generated traces with the standard's definitions, so the bundles are
internally consistent. Output is byte-for-byte reproducible; a test regenerates and compares.
"""

from __future__ import annotations

import hashlib
import math
import random
import shutil
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from trainmark.spec import SCHEMA_VERSION, models
from trainmark.spec import metrics as metric_objects
from trainmark.spec.bundle import BundleWriter

VALID_DIR = Path(__file__).resolve().parent / "valid"
GENERATOR = "spec/examples/generate.py"


def _round(value: float, digits: int = 6) -> float:
    """Round to `digits` significant digits (keeps the files short and stable)."""
    if value == 0:
        return 0.0
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _ns(moment: datetime) -> int:
    return int(round(moment.timestamp() * 1e6)) * 1000


def _hex(label: str, length: int = 64) -> str:
    return hashlib.sha256(label.encode()).hexdigest()[:length]


def metric(
    name: str,
    unit: str,
    value: float,
    method: str,
    source: str,
    tool: str,
    scope: str = "global",
    note: str | None = None,
    **target: int,
) -> dict:
    """A measured metric object, its value rounded like the rest of the example."""
    return metric_objects.measured(name, unit, _round(value), method, source, tool, scope=scope, note=note, **target)


def missing(name: str, unit: str, reason: str, scope: str = "global", **target: int) -> dict:
    """A metric that could not be measured: null with the reason."""
    return metric_objects.unavailable(name, unit, reason, scope=scope, **target)


@dataclass(frozen=True)
class Phase:
    """One stretch of the training loop: what it was doing, from when to when (seconds from t0)."""

    name: str
    start_s: float
    end_s: float


@dataclass
class StepTiming:
    step: int
    start_s: float
    data_s: float
    forward_s: float
    backward_s: float
    optimizer_s: float
    warmup: bool
    profiled: bool

    @property
    def duration_s(self) -> float:
        return self.data_s + self.forward_s + self.backward_s + self.optimizer_s

    def phases(self) -> list[Phase]:
        t = self.start_s
        out = []
        for name, length in (
            ("data_loading", self.data_s),
            ("forward", self.forward_s),
            ("backward", self.backward_s),
            ("optimizer", self.optimizer_s),
        ):
            out.append(Phase(name, t, t + length))
            t += length
        return out


def step_timeline(
    rng: random.Random,
    steps: int,
    mean_step_s: float,
    split: tuple[float, float, float, float],
    warmup: int,
    profiled: range,
    setup_s: float,
    first_step_s: float,
) -> list[StepTiming]:
    """Back-to-back steps with realistic jitter; the first step pays for autotuning and caching.

    Each run also gets its own speed (about 1 % between runs), as real runs do.
    """
    timeline, t = [], setup_s
    mean_step_s *= rng.gauss(1.0, 0.01)
    for step in range(steps):
        total = rng.gauss(mean_step_s, mean_step_s * 0.02)
        if step == 0:
            total = first_step_s
        elif step < warmup:
            total *= 1.25
        if step in profiled:
            total *= 1.15  # the profiler's own cost
        data, forward, backward, _ = (total * share for share in split)
        optimizer = total - data - forward - backward
        timeline.append(StepTiming(step, t, data, forward, backward, optimizer, step < warmup, step in profiled))
        t += total + rng.uniform(0.0002, 0.0008)
    return timeline


def phase_at(timeline: list[StepTiming], t: float) -> str:
    """The training phase at `t` seconds from t0 ('other' before the first and after the last step)."""
    for timing in timeline:
        if timing.start_s <= t < timing.start_s + timing.duration_s:
            for phase in timing.phases():
                if phase.start_s <= t < phase.end_s:
                    return phase.name
    return "other"


def sample_times(rng: random.Random, end_s: float, rate_hz: float) -> list[float]:
    """Sampler ticks at `rate_hz` with scheduling jitter, from t0 to `end_s`."""
    period, ticks, t = 1.0 / rate_hz, [], 0.0
    while t <= end_s:
        ticks.append(max(0.0, t + rng.uniform(-0.002, 0.004)))
        t += period
    return ticks


def achieved_rate(times_s: list[float]) -> float | None:
    """Samples per second: (n - 1) / (last - first)."""
    return (len(times_s) - 1) / (times_s[-1] - times_s[0]) if len(times_s) > 1 else None


def measured(timeline: list[StepTiming]) -> list[StepTiming]:
    """Steps that count for throughput (not warm-up, not profiled)."""
    return [timing for timing in timeline if not timing.warmup and not timing.profiled]


# ---------------------------------------------------------------- GPU example

GPU = {
    "model_name": "NVIDIA H100 80GB HBM3",
    "memory_bytes": 85520809984,
    "peak": [
        ("bf16", 989.4e12, False),
        ("bf16", 1978.9e12, True),
        ("fp16", 989.4e12, False),
        ("tf32", 494.7e12, False),
        ("fp32", 66.9e12, False),
        ("fp64", 66.9e12, False),
        ("fp8", 1978.9e12, False),
    ],
    "power_w": {"other": 118.0, "data_loading": 310.0, "forward": 612.0, "backward": 668.0, "optimizer": 431.0},
    "idle_w": 71.5,
}
NVML_TOOL = "nvidia-ml-py 12.570.86"
TORCH_TOOL = "torch 2.13.0"
GPT2_PARAMETERS = 124_439_808
GPU_STEPS, GPU_WARMUP, GPU_PROFILED = 60, 5, range(10, 13)
GPU_TOKENS_PER_STEP = 64 * 1024
GPU_FLOPS_ANALYTICAL = 6 * GPT2_PARAMETERS * GPU_TOKENS_PER_STEP + 12 * 12 * 768 * 1024 * GPU_TOKENS_PER_STEP
GPU_FLOPS_COUNTED = 5.5597e13


def _gpu_memory_profile(phase: str, progress: float) -> int:
    """Bytes held by live tensors on one GPU during a phase (`progress` 0..1 within it)."""
    states = 124_439_808 * 16  # fp32 weights, grads and two Adam moments
    activations = 13.6e9
    if phase == "forward":
        return int(states + activations * progress)
    if phase == "backward":
        return int(states + activations * (1 - progress) + 0.4e9)
    if phase == "optimizer":
        return int(states + 0.25e9)
    return int(states + 0.05e9)


def _gpu_manifest_blocks() -> dict:
    devices = []
    for index in range(2):
        devices.append(
            {
                "index": index,
                "node": 0,
                "local_index": index,
                "kind": "gpu",
                "vendor": "NVIDIA",
                "model": GPU["model_name"],
                "uuid": f"GPU-{_hex(f'gpu{index}', 8)}-{_hex(f'gpu{index}b', 4)}",
                "memory_bytes": GPU["memory_bytes"],
                "memory_type": "HBM3",
                "peak_flops": [
                    {
                        "format": fmt,
                        "flops_per_s": value,
                        "sparse": sparse,
                        "source": "NVIDIA H100 Tensor Core GPU datasheet, SXM5 column",
                    }
                    for fmt, value, sparse in GPU["peak"]
                ],
                "max_graphics_clock_mhz": 1980.0,
                "max_memory_clock_mhz": 2619.0,
                "power_limit_w": 700.0,
                "driver_version": "570.124.06",
                "firmware_version": "96.00.99.00.01",
            }
        )
    return {
        "system": {
            "system_name": "example lab node (2 x H100 SXM of an 8-GPU HGX board)",
            "node_count": 1,
            "hosts": [
                {
                    "node": 0,
                    "cpu_model": "Intel(R) Xeon(R) Platinum 8480+",
                    "cpu_sockets": 2,
                    "cpu_cores": 112,
                    "cpu_threads": 224,
                    "cpu_cores_used": 32,
                    "memory_bytes": 2164246528000,
                    "accelerators": 8,
                }
            ],
            "devices": devices,
            "interconnect": {
                "intra_node": "NVLink 4 via NVSwitch, 900 GB/s per GPU",
                "inter_node": "none (single node)",
                "topology": "HGX H100 8-GPU baseboard",
            },
        },
        "software": {
            "framework": {"name": "pytorch", "version": "2.13.0"},
            "python_version": "3.11.7",
            "os_name": "Ubuntu 22.04.4 LTS",
            "kernel_version": "5.15.0-105-generic",
            "cuda_version": "12.8",
            "cudnn_version": "9.7.0",
            "nccl_version": "2.26.2",
            "accelerator_driver_version": "570.124.06",
            "compiler": "eager (no torch.compile)",
            "mixed_precision_implementation": "torch.autocast(device_type='cuda', dtype=torch.bfloat16)",
            "distributed_backend": "nccl",
            "libraries": [{"name": "nvidia-ml-py", "version": "12.570.86"}],
            "packages_digest": _hex("gpu-packages"),
            "packages_digest_method": "sha256 of sorted 'name==version' lines of importlib.metadata.distributions()",
            "packages_count": 187,
        },
        "model": {
            "name": "gpt2-124m",
            "architecture_family": "decoder_transformer",
            "parameters_total": {
                "value": float(GPT2_PARAMETERS),
                "unit": "{parameter}",
                "method": "counter",
                "source": "sum(p.numel() for p in model.parameters())",
                "tool": TORCH_TOOL,
            },
            "parameters_trainable": {
                "value": float(GPT2_PARAMETERS),
                "unit": "{parameter}",
                "method": "counter",
                "source": "sum(p.numel() for p in model.parameters() if p.requires_grad)",
                "tool": TORCH_TOOL,
            },
            "precision_policy": "bf16_autocast",
            "activation_checkpointing": False,
            "layers": 12,
            "hidden_size": 768,
            "attention_heads": 12,
            "vocab_size": 50257,
            "context_length": 1024,
        },
        "training": {
            "global_batch_size": 64,
            "micro_batch_size": 16,
            "gradient_accumulation_steps": 2,
            "sequence_length": 1024,
            "optimizer": {
                "name": "AdamW",
                "hyperparameters": [
                    {"name": "learning_rate", "value": 6e-4},
                    {"name": "weight_decay", "value": 0.1},
                    {"name": "beta1", "value": 0.9},
                    {"name": "beta2", "value": 0.95},
                    {"name": "eps", "value": 1e-8},
                ],
            },
            "lr_schedule": {
                "name": "linear warmup + cosine decay",
                "warmup_steps": 10,
                "hyperparameters": [{"name": "min_learning_rate", "value": 6e-5}],
            },
            "max_steps": GPU_STEPS,
            "world_size": 2,
            "parallelism": {"strategy": "DDP", "data_parallel": 2},
            "deterministic": False,
            "data_loader_workers": 4,
            "warmup_steps_excluded": GPU_WARMUP,
        },
        "dataset": {
            "name": "openwebtext-10k",
            "snapshot_id": _hex("openwebtext-10k tokens"),
            "snapshot_method": "sha256 of the uint16 GPT-2 token ids in feeding order, all ranks concatenated",
            "source": "https://huggingface.co/datasets/stas/openwebtext-10k",
            "preprocessing": "GPT-2 BPE (tiktoken gpt2), documents joined with <|endoftext|>",
            "sharding": "contiguous blocks of 1024 tokens, rank r takes blocks r, r+2, ...",
            "size_tokens": 9_035_582,
            "size_bytes": 18_071_164,
        },
    }


def write_gpu_example(root: Path) -> None:
    """The 2 x H100 GPT-2 example: 3 runs of 60 steps, NVML power and energy, CUDA memory."""
    rng = random.Random(20261102)
    writer = BundleWriter.create(root)
    base = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    blocks = _gpu_manifest_blocks()
    channels = [
        {
            "name": "nvml_power",
            "record_type": "power_sample",
            "fields": ["power_w"],
            "method": "sampled",
            "source": "nvmlDeviceGetPowerUsage (milliwatts, driver-averaged over about 1 s on H100)",
            "tool": NVML_TOOL,
            "target_rate_hz": 10.0,
            "domain": "device",
        },
        {
            "name": "nvml_energy",
            "record_type": "power_sample",
            "fields": ["energy_j"],
            "method": "counter",
            "source": "nvmlDeviceGetTotalEnergyConsumption (millijoules since driver load)",
            "tool": NVML_TOOL,
            "target_rate_hz": 10.0,
            "domain": "device",
        },
        {
            "name": "cuda_memory",
            "record_type": "memory_sample",
            "fields": ["allocated_bytes", "reserved_bytes"],
            "method": "sampled",
            "source": "torch.cuda.memory_allocated / torch.cuda.memory_reserved",
            "tool": TORCH_TOOL,
            "target_rate_hz": 10.0,
        },
    ]
    runs = []
    for run_index in range(3):
        run_id = f"run-{run_index + 1}"
        seed = 1234 + run_index
        t0 = base + timedelta(minutes=15 * run_index)
        timeline = step_timeline(
            rng,
            GPU_STEPS,
            0.0716,
            (0.025, 0.305, 0.585, 0.085),
            GPU_WARMUP,
            GPU_PROFILED,
            setup_s=0.45,
            first_step_s=1.62,
        )
        end_s = timeline[-1].start_s + timeline[-1].duration_s + 0.25
        ended = t0 + timedelta(seconds=end_s)
        rank_timelines = {
            0: timeline,
            1: [
                StepTiming(
                    t.step,
                    t.start_s + rng.uniform(0.0001, 0.0006),
                    t.data_s * 1.04,
                    t.forward_s,
                    t.backward_s,
                    t.optimizer_s,
                    t.warmup,
                    t.profiled,
                )
                for t in timeline
            ],
        }
        losses = [_round(10.95 - 3.1 * (1 - math.exp(-step / 22)) + rng.gauss(0, 0.04), 5) for step in range(GPU_STEPS)]
        step_peaks: dict[int, list[int]] = {}
        step_allocations = []
        for rank, rank_timeline in rank_timelines.items():
            peaks = []
            with writer.open_trace(run_id, "step", rank=rank) as trace:
                for timing in rank_timeline:
                    peak = int(2.0e9 + 13.6e9 + 0.4e9 + rng.uniform(0, 40e6))
                    allocations = 1874 + rng.randint(-6, 6) if timing.step else 2650
                    peaks.append(peak)
                    if rank == 0:
                        step_allocations.append((timing, allocations))
                    trace.append(
                        models.StepRecord(
                            step=timing.step,
                            rank=rank,
                            epoch=timing.step // 30,
                            start_unix_ns=_ns(t0 + timedelta(seconds=timing.start_s)),
                            duration_s=_round(timing.duration_s),
                            data_loading_s=_round(timing.data_s),
                            forward_s=_round(timing.forward_s),
                            backward_s=_round(timing.backward_s),
                            optimizer_s=_round(timing.optimizer_s),
                            samples=32,
                            tokens=32 * 1024,
                            loss=losses[timing.step],
                            learning_rate=_round(6e-4 * min(1.0, (timing.step + 1) / 10)),
                            updated=True,
                            warmup=timing.warmup or None,
                            profiled=timing.profiled or None,
                            peak_memory_bytes=peak,
                            allocations=allocations,
                        )
                    )
            step_peaks[rank] = peaks
            with writer.open_trace(run_id, "epoch", rank=rank) as trace:
                for epoch in range(2):
                    chunk = rank_timeline[epoch * 30 : (epoch + 1) * 30]
                    trace.append(
                        models.EpochRecord(
                            epoch=epoch,
                            rank=rank,
                            start_unix_ns=_ns(t0 + timedelta(seconds=chunk[0].start_s)),
                            duration_s=_round(chunk[-1].start_s + chunk[-1].duration_s - chunk[0].start_s),
                            steps=len(chunk),
                            samples=32 * len(chunk),
                            tokens=32 * 1024 * len(chunk),
                            train_loss_mean=_round(statistics.fmean(losses[epoch * 30 : (epoch + 1) * 30]), 5),
                            eval_loss=_round(losses[(epoch + 1) * 30 - 1] + 0.06, 5) if rank == 0 else None,
                        )
                    )

        # Power: both GPUs sampled by rank 0's NVML sampler; the energy counter integrates the
        # true power exactly, the polled power is noisy, as on real hardware.
        ticks = sample_times(rng, end_s, 10.0)
        energy_origin = {0: 1.873e8, 1: 1.911e8}
        power_by_device: dict[int, list[tuple[float, float, str]]] = {0: [], 1: []}
        counter_by_device: dict[int, list[tuple[float, float]]] = {0: [], 1: []}
        scales = {0: 1.0, 1: 0.985}
        phases = {
            device: [
                (phase.start_s, phase.end_s, GPU["power_w"][phase.name] * scales[device])
                for timing in rank_timelines[device]
                for phase in timing.phases()
            ]
            for device in (0, 1)
        }
        energy = dict(energy_origin)
        last_t = {0: 0.0, 1: 0.0}
        cursor = {0: 0, 1: 0}
        with writer.open_trace(run_id, "power_sample", rank=0) as trace:
            for t in ticks:
                for device in (0, 1):
                    # exact integral of the piecewise-constant true power from the last tick to t
                    stretches, other_w = phases[device], GPU["power_w"]["other"] * scales[device]
                    while last_t[device] < t:
                        while cursor[device] < len(stretches) and stretches[cursor[device]][1] <= last_t[device]:
                            cursor[device] += 1
                        current = stretches[cursor[device]] if cursor[device] < len(stretches) else None
                        if current is not None and current[0] <= last_t[device]:
                            segment_end, watts = min(t, current[1]), current[2]
                        else:
                            segment_end = min(t, current[0]) if current is not None else t
                            watts = other_w
                        energy[device] += watts * (segment_end - last_t[device])
                        last_t[device] = segment_end
                    phase = phase_at(rank_timelines[device], t)
                    watts = GPU["power_w"][phase] * scales[device] + rng.gauss(0, 9.0)
                    moment = _ns(t0 + timedelta(seconds=t))
                    trace.append(
                        models.PowerSample(
                            time_unix_ns=moment,
                            channel="nvml_power",
                            device=device,
                            node=0,
                            phase=models.Phase(phase),
                            power_w=_round(watts, 5),
                        )
                    )
                    trace.append(
                        models.PowerSample(
                            time_unix_ns=moment,
                            channel="nvml_energy",
                            device=device,
                            node=0,
                            phase=models.Phase(phase),
                            energy_j=round(energy[device], 3),
                        )
                    )
                    power_by_device[device].append((t, watts, phase))
                    counter_by_device[device].append((t, round(energy[device], 3)))

        memory_ticks = {rank: sample_times(rng, end_s, 10.0) for rank in (0, 1)}
        for rank in (0, 1):
            with writer.open_trace(run_id, "memory_sample", rank=rank) as trace:
                for t in memory_ticks[rank]:
                    phase = phase_at(rank_timelines[rank], t)
                    progress = 0.5
                    for timing in rank_timelines[rank]:
                        for stretch in timing.phases():
                            if stretch.start_s <= t < stretch.end_s:
                                progress = (t - stretch.start_s) / max(stretch.end_s - stretch.start_s, 1e-9)
                    allocated = (
                        _gpu_memory_profile(phase, progress) if t >= rank_timelines[rank][0].start_s else int(0.51e9)
                    )
                    reserved = 18_253_611_008 if t >= rank_timelines[rank][0].start_s else 2_147_483_648
                    trace.append(
                        models.MemorySample(
                            time_unix_ns=_ns(t0 + timedelta(seconds=t)),
                            channel="cuda_memory",
                            device=rank,
                            rank=rank,
                            phase=models.Phase(phase),
                            allocated_bytes=allocated,
                            reserved_bytes=reserved,
                        )
                    )

        # Allocator events over steps 20-21 on rank 0 (torch.cuda.memory._record_memory_history).
        with writer.open_trace(run_id, "allocator_event", rank=0) as trace:
            allocated = 124_439_808 * 16
            for timing in timeline[20:22]:
                moment = t0 + timedelta(seconds=timing.start_s)
                sizes = [50_331_648, 201_326_592, 25_165_824, 100_663_296, 6_291_456]
                live = []
                for index in range(24):
                    size = sizes[index % len(sizes)]
                    allocated += size
                    live.append(size)
                    moment += timedelta(microseconds=900 + 37 * index)
                    trace.append(
                        models.AllocatorEvent(
                            time_unix_ns=_ns(moment),
                            rank=0,
                            device=0,
                            step=timing.step,
                            action=models.AllocatorAction.alloc,
                            size_bytes=size,
                            allocated_bytes=allocated,
                            reserved_bytes=18_253_611_008,
                        )
                    )
                for size in reversed(live):
                    allocated -= size
                    moment += timedelta(microseconds=650)
                    trace.append(
                        models.AllocatorEvent(
                            time_unix_ns=_ns(moment),
                            rank=0,
                            device=0,
                            step=timing.step,
                            action=models.AllocatorAction.free,
                            size_bytes=size,
                            allocated_bytes=allocated,
                            reserved_bytes=18_253_611_008,
                        )
                    )

        profiled_steps = [timing for timing in timeline if timing.profiled]
        kernel_total = sum(timing.duration_s for timing in profiled_steps) * 0.93
        shares = {
            "matmul": 0.574,
            "attention": 0.171,
            "normalization": 0.036,
            "elementwise": 0.092,
            "optimizer": 0.041,
            "data_movement": 0.031,
            "communication": 0.045,
            "other": 0.010,
        }
        calls = {
            "matmul": 1107,
            "attention": 216,
            "normalization": 450,
            "elementwise": 2214,
            "optimizer": 18,
            "data_movement": 621,
            "communication": 12,
            "other": 96,
        }
        writer.write_kernel_breakdown(
            run_id,
            models.KernelBreakdown(
                rank=0,
                device=0,
                tool="torch.profiler 2.13.0 (CUPTI)",
                time_basis=models.KernelTimeBasis.device_self_time,
                first_step=GPU_PROFILED.start,
                steps=len(GPU_PROFILED),
                total_time_s=_round(kernel_total),
                categories=[
                    models.KernelCategoryTime(
                        category=models.KernelCategory(name), time_s=_round(kernel_total * share), calls=calls[name]
                    )
                    for name, share in shares.items()
                ],
                top_kernels=[
                    models.KernelTime(
                        name="sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64_cublas",
                        category=models.KernelCategory.matmul,
                        time_s=_round(kernel_total * 0.231),
                        calls=297,
                    ),
                    models.KernelTime(
                        name="flash_bwd_dq_dk_dv_loop_seqk_parallel_kernel",
                        category=models.KernelCategory.attention,
                        time_s=_round(kernel_total * 0.112),
                        calls=72,
                    ),
                    models.KernelTime(
                        name="sm90_xmma_gemm_bf16bf16_bf16f32_f32_nt_n_tilesize256x128x64_cublas",
                        category=models.KernelCategory.matmul,
                        time_s=_round(kernel_total * 0.104),
                        calls=216,
                    ),
                    models.KernelTime(
                        name="flash_fwd_kernel",
                        category=models.KernelCategory.attention,
                        time_s=_round(kernel_total * 0.059),
                        calls=72,
                    ),
                    models.KernelTime(
                        name="ncclDevKernel_AllReduce_Sum_f32_RING_LL",
                        category=models.KernelCategory.communication,
                        time_s=_round(kernel_total * 0.045),
                        calls=12,
                    ),
                ],
            ),
            rank=0,
        )

        runs.append(
            _gpu_run_entry(
                run_id,
                seed,
                t0,
                ended,
                timeline,
                rank_timelines,
                step_peaks,
                step_allocations,
                losses,
                power_by_device,
                counter_by_device,
                ticks,
                memory_ticks,
                shares,
            )
        )

    document = {
        "schema_version": SCHEMA_VERSION,
        "producer": {"name": "trainmark example generator", "version": f"{GENERATOR} (schema {SCHEMA_VERSION})"},
        "provenance": "synthetic",  # made up to illustrate the standard: never ranked
        "created_at": _iso(base + timedelta(hours=1)),
        "description": (
            "SYNTHETIC EXAMPLE, not a measurement: the shape of a 2 x H100 data-parallel GPT-2 (124M) "
            f"run with NVML counters, generated by {GENERATOR} to illustrate the standard."
        ),
        "submitter": {"name": "trainmark examples", "organization": "trainmark project"},
        **blocks,
        "code": {
            "repository": "https://github.com/trainmark/trainmark",
            "commit": _hex("example commit", 40),
            "branch": "main",
            "dirty": False,
            "tags": ["v0.1.0"],
        },
        "environment": {
            "ambient_temperature": {
                "value": 24.5,
                "unit": "Cel",
                "method": "declared",
                "source": "machine-room inlet thermostat, read by the submitter",
                "tool": "run configuration (environment.ambient_temperature_c)",
            },
            "cooling_method": "air",
            "cooling_source": "declared by the submitter",
        },
        "methodology": {
            "tools": [
                {"name": "nvidia-ml-py", "version": "12.570.86"},
                {"name": "torch", "version": "2.13.0"},
                {"name": "torch.profiler", "version": "2.13.0"},
            ],
            "channels": channels,
            "clock": {
                "timestamps": "time.time_ns(), system clock, UTC",
                "durations": "time.perf_counter_ns(), monotonic, after torch.cuda.synchronize()",
                "synchronization": "chrony (NTP)",
            },
            "idle_subtraction": {
                "method": "baseline_before_run",
                "window_s": 5.0,
                "description": "mean NVML power of each GPU over 5 s with no work, before each run; "
                "net energy = total energy - idle power x run duration",
            },
            "flop_counting": (
                "analytical: 6 N T + 12 L d s T (Kaplan et al. 2020, with the attention term of "
                "Chowdhery et al. 2022, appendix B); counted: torch.utils.flop_counter.FlopCounterMode "
                "on one step of a meta-device copy"
            ),
            "profiler": {
                "tool": "torch.profiler 2.13.0",
                "first_step": GPU_PROFILED.start,
                "steps": len(GPU_PROFILED),
                "options": ["activities=CPU,CUDA"],
            },
            "notes": "Synthetic example data; see the description.",
        },
        "runs": runs,
    }
    writer.finish(document)


def _gpu_run_entry(
    run_id,
    seed,
    t0,
    ended,
    timeline,
    rank_timelines,
    step_peaks,
    step_allocations,
    losses,
    power_by_device,
    counter_by_device,
    ticks,
    memory_ticks,
    shares,
) -> dict:
    steps_source = f"runs/{run_id}/steps.rank0.jsonl"
    kept = measured(timeline)
    duration_sum = sum(timing.duration_s for timing in kept)
    time_per_step = duration_sum / len(kept)
    steps_per_second = len(kept) / duration_sum
    run_duration = (ended - t0).total_seconds()
    trainmark = "trainmark 0.1.0"
    derived = "derived"
    metrics = [
        metric(
            "steps_per_second",
            "{step}/s",
            steps_per_second,
            derived,
            f"measured steps / sum of their duration_s in {steps_source}",
            trainmark,
        ),
        metric(
            "time_per_step",
            "s",
            time_per_step,
            derived,
            f"mean duration_s of measured steps in {steps_source}",
            trainmark,
        ),
        metric(
            "samples_per_second",
            "{sample}/s",
            64 * steps_per_second,
            derived,
            "training.global_batch_size x steps_per_second",
            trainmark,
        ),
        metric(
            "tokens_per_second",
            "{token}/s",
            GPU_TOKENS_PER_STEP * steps_per_second,
            derived,
            "global_batch_size x sequence_length x steps_per_second",
            trainmark,
        ),
    ]
    for name, attribute in (
        ("time_per_step_data_loading", "data_s"),
        ("time_per_step_forward", "forward_s"),
        ("time_per_step_backward", "backward_s"),
        ("time_per_step_optimizer", "optimizer_s"),
    ):
        metrics.append(
            metric(
                name,
                "s",
                statistics.fmean(getattr(timing, attribute) for timing in kept),
                derived,
                f"mean {attribute.replace('_s', '')}_s of measured steps in {steps_source}",
                trainmark,
            )
        )
    metrics += [
        metric("run_duration", "s", run_duration, derived, "runs[].ended_at - runs[].started_at", trainmark),
        metric(
            "steps_completed", "{step}", len(timeline), derived, f"count of step records in {steps_source}", trainmark
        ),
        metric(
            "updates_completed",
            "{update}",
            len(timeline),
            derived,
            f"count of step records with updated=true in {steps_source}",
            trainmark,
        ),
        metric(
            "flops_per_step_analytical",
            "{flop}",
            GPU_FLOPS_ANALYTICAL,
            "analytical",
            "6 N T + 12 L d s T per step (Kaplan et al. 2020; Chowdhery et al. 2022, app. B)",
            trainmark,
        ),
        metric(
            "flops_per_step_counted",
            "{flop}",
            GPU_FLOPS_COUNTED,
            "profiler",
            "torch.utils.flop_counter.FlopCounterMode over one step on a meta-device copy",
            TORCH_TOOL,
        ),
        metric(
            "flops_per_second",
            "{flop}/s",
            GPU_FLOPS_ANALYTICAL * steps_per_second,
            derived,
            "flops_per_step_analytical x steps_per_second",
            trainmark,
        ),
        metric(
            "compute_utilization",
            "%",
            100 * GPU_FLOPS_ANALYTICAL * steps_per_second / (2 * 989.4e12),
            derived,
            "flops_per_second / (2 x 989.4e12 dense bf16 peak)",
            trainmark,
        ),
    ]
    for device in (0, 1):
        per_device_flops = GPU_FLOPS_ANALYTICAL / 2 * steps_per_second
        metrics += [
            metric(
                "flops_per_second",
                "{flop}/s",
                per_device_flops,
                derived,
                "flops_per_step_analytical / world_size x steps_per_second",
                trainmark,
                scope="device",
                device=device,
            ),
            metric(
                "compute_utilization",
                "%",
                100 * per_device_flops / 989.4e12,
                derived,
                "flops_per_second (device) / 989.4e12 dense bf16 peak",
                trainmark,
                scope="device",
                device=device,
            ),
        ]
    for category, share in shares.items():
        metrics.append(
            metric(
                f"kernel_time_share_{category}",
                "%",
                100 * share,
                "profiler",
                f"categories[{category}].time_s / total_time_s in runs/{run_id}/kernels.rank0.json",
                "torch.profiler 2.13.0",
            )
        )
    for rank in (0, 1):
        metrics.append(
            metric(
                "peak_memory",
                "By",
                max(step_peaks[rank]),
                "counter",
                f"max peak_memory_bytes (torch.cuda.max_memory_allocated, reset each step) in "
                f"runs/{run_id}/steps.rank{rank}.jsonl",
                TORCH_TOOL,
                scope="device",
                device=rank,
            )
        )
    metrics.append(
        metric(
            "peak_memory",
            "By",
            max(step_peaks[0]) + max(step_peaks[1]),
            derived,
            "sum of the devices' peak_memory",
            trainmark,
            note="global = sum over devices",
        )
    )
    forward_peak = 124_439_808 * 16 + 13.6e9
    for name, value in (
        ("peak_memory_forward", forward_peak),
        ("peak_memory_backward", forward_peak + 0.4e9),
        ("peak_memory_optimizer", 124_439_808 * 16 + 0.25e9 + 2 * 124_439_808 * 4),
    ):
        for rank in (0, 1):
            metrics.append(
                metric(
                    name,
                    "By",
                    value + 1.7e6 * rank,
                    "counter",
                    "torch.cuda.max_memory_allocated, reset at each stage boundary, max over measured steps",
                    TORCH_TOOL,
                    scope="device",
                    device=rank,
                )
            )
    for name in (
        "memory_bandwidth",
        "memory_bandwidth_forward",
        "memory_bandwidth_backward",
        "memory_bandwidth_optimizer",
    ):
        metrics.append(
            missing(
                name, "By/s", "no memory-bandwidth counter was read: NVML exposes none and Nsight Compute was not run"
            )
        )
    allocations = [count for timing, count in step_allocations if not timing.warmup and not timing.profiled]
    metrics += [
        metric(
            "allocations_per_step",
            "{allocation}/{step}",
            statistics.fmean(allocations),
            derived,
            f"mean allocations (torch.cuda.memory_stats()['allocation.all.allocated'] per step) of measured "
            f"steps in {steps_source}",
            trainmark,
        ),
        metric(
            "memory_fragmentation",
            "%",
            100 * (18_253_611_008 - max(step_peaks[0])) / 18_253_611_008,
            derived,
            "(reserved - allocated) / reserved at the step with peak allocation, rank 0",
            trainmark,
        ),
        missing("checkpoint_size", "By", "no checkpoint was saved (training.checkpoint_interval_steps not set)"),
        missing("checkpoint_time", "s", "no checkpoint was saved (training.checkpoint_interval_steps not set)"),
    ]

    # energy
    device_energy = {device: counter_by_device[device][-1][1] - counter_by_device[device][0][1] for device in (0, 1)}
    window_s = ticks[-1] - ticks[0]
    total_energy = sum(device_energy.values())
    idle = {0: GPU["idle_w"], 1: GPU["idle_w"] * 0.985}
    net_energy = total_energy - sum(idle.values()) * window_s
    summed = [power_by_device[0][i][1] + power_by_device[1][i][1] for i in range(len(ticks))]
    energy_source = "difference of nvml_energy counter readings, first to last sample in the run, summed over GPUs"
    for device in (0, 1):
        watts = [w for _, w, _ in power_by_device[device]]
        metrics += [
            metric(
                "total_energy",
                "J",
                device_energy[device],
                "counter",
                "difference of nvml_energy counter readings, first to last sample in the run",
                NVML_TOOL,
                scope="device",
                device=device,
            ),
            metric(
                "idle_power",
                "W",
                idle[device],
                "sampled",
                "mean nvml_power over 5 s before the run",
                NVML_TOOL,
                scope="device",
                device=device,
            ),
            metric(
                "power_mean",
                "W",
                statistics.fmean(watts),
                "sampled",
                "mean of nvml_power samples",
                NVML_TOOL,
                scope="device",
                device=device,
            ),
            metric(
                "power_peak",
                "W",
                max(watts),
                "sampled",
                "max of nvml_power samples",
                NVML_TOOL,
                scope="device",
                device=device,
            ),
        ]
    metrics += [
        metric("total_energy", "J", total_energy, "counter", energy_source, NVML_TOOL),
        metric("idle_power", "W", sum(idle.values()), "sampled", "sum of the GPUs' idle_power", NVML_TOOL),
        metric("net_energy", "J", net_energy, derived, "total_energy - idle_power x counter window", trainmark),
        metric(
            "energy_per_step",
            "J/{step}",
            total_energy / len(timeline),
            derived,
            "total_energy / steps_completed",
            trainmark,
        ),
        metric(
            "energy_per_update",
            "J/{update}",
            total_energy / len(timeline),
            derived,
            "total_energy / updates_completed",
            trainmark,
        ),
        metric(
            "energy_per_sample",
            "J/{sample}",
            total_energy / (64 * len(timeline)),
            derived,
            "total_energy / (steps_completed x global_batch_size)",
            trainmark,
        ),
        metric(
            "power_mean",
            "W",
            statistics.fmean(summed),
            "sampled",
            "mean of nvml_power summed over GPUs per tick",
            NVML_TOOL,
        ),
        metric(
            "power_median",
            "W",
            statistics.median(summed),
            "sampled",
            "median of nvml_power summed over GPUs per tick",
            NVML_TOOL,
        ),
        metric("power_peak", "W", max(summed), "sampled", "max of nvml_power summed over GPUs per tick", NVML_TOOL),
    ]
    for name, phase in (
        ("power_data_loading", "data_loading"),
        ("power_forward", "forward"),
        ("power_backward", "backward"),
        ("power_optimizer", "optimizer"),
    ):
        tagged = [summed[i] for i in range(len(ticks)) if power_by_device[0][i][2] == phase]
        if tagged:
            metrics.append(
                metric(
                    name,
                    "W",
                    statistics.fmean(tagged),
                    "sampled",
                    f"mean of summed nvml_power over samples tagged phase={phase}",
                    NVML_TOOL,
                    note=f"{len(tagged)} samples",
                )
            )
        else:
            metrics.append(missing(name, "W", f"no power sample fell in a {phase} phase at 10 Hz"))
    metrics += [
        metric(
            "flops_per_joule",
            "{flop}/J",
            GPU_FLOPS_ANALYTICAL * len(timeline) / total_energy,
            derived,
            "flops_per_step_analytical x steps_completed / total_energy",
            trainmark,
        ),
        metric(
            "steps_per_kilojoule",
            "{step}/kJ",
            len(timeline) / (total_energy / 1000),
            derived,
            "steps_completed / (total_energy / 1000)",
            trainmark,
        ),
        metric("final_loss", "1", losses[-1], derived, f"loss of the last step record in {steps_source}", trainmark),
        missing("final_accuracy", "1", "no accuracy evaluation is defined for this language-modelling run"),
    ]
    sampling = []
    for device in (0, 1):
        power_times = [t for t, _, _ in power_by_device[device]]
        for channel in ("nvml_power", "nvml_energy"):
            sampling.append(
                {
                    "channel": channel,
                    "device": device,
                    "achieved_rate_hz": _round(achieved_rate(power_times)),
                    "sample_count": len(power_times),
                }
            )
        sampling.append(
            {
                "channel": "cuda_memory",
                "device": device,
                "achieved_rate_hz": _round(achieved_rate(memory_ticks[device])),
                "sample_count": len(memory_ticks[device]),
            }
        )
    return {
        "run_id": run_id,
        "seed": seed,
        "started_at": _iso(t0),
        "ended_at": _iso(ended),
        "status": "completed",
        "ranks": [{"rank": rank, "node": 0, "local_rank": rank, "device": rank} for rank in (0, 1)],
        "metrics": metrics,
        "sampling": sampling,
    }


# ---------------------------------------------------------------- CPU example

CPU_STEPS, CPU_WARMUP, CPU_PROFILED = 80, 5, range(10, 13)
TINY_PARAMETERS = 818_176


def write_cpu_example(root: Path) -> None:
    """A tiny transformer on 2 CPU cores: 3 runs of 80 steps, no energy sensor, RSS memory."""
    rng = random.Random(20261103)
    writer = BundleWriter.create(root)
    base = datetime(2026, 11, 3, 14, 0, tzinfo=UTC)
    no_energy = "no energy sensor on this machine: /sys/class/powercap has no intel-rapl domains and there is no GPU"
    runs = []
    for run_index in range(3):
        run_id = f"run-{run_index + 1}"
        t0 = base + timedelta(minutes=5 * run_index)
        timeline = step_timeline(
            rng,
            CPU_STEPS,
            0.0935,
            (0.011, 0.318, 0.571, 0.100),
            CPU_WARMUP,
            CPU_PROFILED,
            setup_s=0.35,
            first_step_s=0.41,
        )
        end_s = timeline[-1].start_s + timeline[-1].duration_s + 0.12
        ended = t0 + timedelta(seconds=end_s)
        losses = [_round(5.55 - 2.2 * (1 - math.exp(-step / 30)) + rng.gauss(0, 0.05), 5) for step in range(CPU_STEPS)]
        with writer.open_trace(run_id, "step") as trace:
            for timing in timeline:
                trace.append(
                    models.StepRecord(
                        step=timing.step,
                        rank=0,
                        epoch=timing.step // 40,
                        start_unix_ns=_ns(t0 + timedelta(seconds=timing.start_s)),
                        duration_s=_round(timing.duration_s),
                        data_loading_s=_round(timing.data_s),
                        forward_s=_round(timing.forward_s),
                        backward_s=_round(timing.backward_s),
                        optimizer_s=_round(timing.optimizer_s),
                        samples=16,
                        tokens=16 * 128,
                        loss=losses[timing.step],
                        learning_rate=3e-3,
                        updated=True,
                        warmup=timing.warmup or None,
                        profiled=timing.profiled or None,
                    )
                )
        with writer.open_trace(run_id, "epoch") as trace:
            for epoch in range(2):
                chunk = timeline[epoch * 40 : (epoch + 1) * 40]
                trace.append(
                    models.EpochRecord(
                        epoch=epoch,
                        rank=0,
                        start_unix_ns=_ns(t0 + timedelta(seconds=chunk[0].start_s)),
                        duration_s=_round(chunk[-1].start_s + chunk[-1].duration_s - chunk[0].start_s),
                        steps=len(chunk),
                        samples=16 * len(chunk),
                        tokens=16 * 128 * len(chunk),
                        train_loss_mean=_round(statistics.fmean(losses[epoch * 40 : (epoch + 1) * 40]), 5),
                        eval_loss=_round(losses[(epoch + 1) * 40 - 1] + 0.04, 5),
                        eval_accuracy=_round(0.18 + 0.17 * epoch + rng.uniform(0, 0.01), 4),
                    )
                )
        ticks = sample_times(rng, end_s, 10.0)
        resident = []
        with writer.open_trace(run_id, "memory_sample") as trace:
            for t in ticks:
                phase = phase_at(timeline, t)
                base_rss = 412e6 if t >= timeline[0].start_s else 388e6
                rss = int(
                    base_rss + {"forward": 21e6, "backward": 34e6, "optimizer": 9e6}.get(phase, 0) + rng.uniform(0, 2e6)
                )
                resident.append(rss)
                trace.append(
                    models.MemorySample(
                        time_unix_ns=_ns(t0 + timedelta(seconds=t)),
                        channel="process_rss",
                        device=0,
                        rank=0,
                        phase=models.Phase(phase),
                        resident_bytes=rss,
                    )
                )
        kernel_total = sum(t.duration_s for t in timeline if t.profiled) * 0.97
        shares = {
            "matmul": 0.512,
            "attention": 0.143,
            "normalization": 0.058,
            "elementwise": 0.139,
            "optimizer": 0.071,
            "data_movement": 0.064,
            "communication": 0.0,
            "other": 0.013,
        }
        writer.write_kernel_breakdown(
            run_id,
            models.KernelBreakdown(
                rank=0,
                device=0,
                tool="torch.profiler 2.13.0",
                time_basis=models.KernelTimeBasis.cpu_self_time,
                first_step=CPU_PROFILED.start,
                steps=len(CPU_PROFILED),
                total_time_s=_round(kernel_total),
                categories=[
                    models.KernelCategoryTime(
                        category=models.KernelCategory(name),
                        time_s=_round(kernel_total * share) if share else 0.0,
                        calls=0 if not share else 300 + 17 * index,
                    )
                    for index, (name, share) in enumerate(shares.items())
                ],
                top_kernels=[
                    models.KernelTime(
                        name="aten::addmm",
                        category=models.KernelCategory.matmul,
                        time_s=_round(kernel_total * 0.31),
                        calls=144,
                    ),
                    models.KernelTime(
                        name="aten::_scaled_dot_product_flash_attention_for_cpu",
                        category=models.KernelCategory.attention,
                        time_s=_round(kernel_total * 0.09),
                        calls=12,
                    ),
                ],
            ),
        )
        kept = measured(timeline)
        duration_sum = sum(t.duration_s for t in kept)
        steps_per_second = len(kept) / duration_sum
        source = f"runs/{run_id}/steps.jsonl"
        trainmark = "trainmark 0.1.0"
        flops = 6 * TINY_PARAMETERS * 16 * 128 + 12 * 4 * 128 * 128 * 16 * 128
        metrics = [
            metric(
                "steps_per_second",
                "{step}/s",
                steps_per_second,
                "derived",
                f"measured steps / sum of their duration_s in {source}",
                trainmark,
            ),
            metric(
                "time_per_step",
                "s",
                duration_sum / len(kept),
                "derived",
                f"mean duration_s of measured steps in {source}",
                trainmark,
            ),
            metric(
                "samples_per_second",
                "{sample}/s",
                16 * steps_per_second,
                "derived",
                "training.global_batch_size x steps_per_second",
                trainmark,
            ),
            metric(
                "tokens_per_second",
                "{token}/s",
                16 * 128 * steps_per_second,
                "derived",
                "global_batch_size x sequence_length x steps_per_second",
                trainmark,
            ),
            metric("run_duration", "s", end_s, "derived", "runs[].ended_at - runs[].started_at", trainmark),
            metric("steps_completed", "{step}", CPU_STEPS, "derived", f"count of step records in {source}", trainmark),
            metric(
                "flops_per_step_analytical",
                "{flop}",
                flops,
                "analytical",
                "6 N T + 12 L d s T per step (Kaplan et al. 2020; Chowdhery et al. 2022, app. B)",
                trainmark,
            ),
            metric(
                "flops_per_step_counted",
                "{flop}",
                flops * 1.0127,
                "profiler",
                "torch.utils.flop_counter.FlopCounterMode over one step on a meta-device copy, with the CPU "
                "attention op registered",
                TORCH_TOOL,
            ),
            metric(
                "flops_per_second",
                "{flop}/s",
                flops * steps_per_second,
                "derived",
                "flops_per_step_analytical x steps_per_second",
                trainmark,
            ),
            missing(
                "compute_utilization",
                "%",
                "the peak FLOP/s of this CPU is not known; declare one (devices[].peak_flops) to report utilization",
            ),
            metric(
                "peak_memory",
                "By",
                max(resident),
                "sampled",
                f"max resident_bytes (psutil.Process().memory_info().rss) in runs/{run_id}/memory.jsonl",
                "psutil 7.0.0",
                scope="device",
                device=0,
            ),
            metric("peak_memory", "By", max(resident), "sampled", "the single device's peak_memory", trainmark),
        ]
        for name in ("peak_memory_forward", "peak_memory_backward", "peak_memory_optimizer"):
            metrics.append(
                missing(
                    name,
                    "By",
                    "a CPU has no allocator peak counter per stage; only the sampled resident set is reported",
                )
            )
        for category, share in shares.items():
            metrics.append(
                metric(
                    f"kernel_time_share_{category}",
                    "%",
                    100 * share,
                    "profiler",
                    f"categories[{category}].time_s / total_time_s in runs/{run_id}/kernels.json",
                    "torch.profiler 2.13.0",
                )
            )
        metrics += [
            missing(
                "memory_bandwidth", "By/s", "no memory-bandwidth counter is readable (perf uncore events need root)"
            ),
            missing("allocations_per_step", "{allocation}/{step}", "the CPU allocator keeps no allocation count"),
            missing("total_energy", "J", no_energy),
            missing("net_energy", "J", no_energy),
            missing("energy_per_step", "J/{step}", no_energy),
            missing("power_mean", "W", no_energy),
            missing("flops_per_joule", "{flop}/J", no_energy),
            metric("final_loss", "1", losses[-1], "derived", f"loss of the last step record in {source}", trainmark),
            metric(
                "final_accuracy",
                "1",
                0.35 + rng.uniform(0, 0.01),
                "derived",
                "next-byte accuracy on the held-out split after the last step",
                trainmark,
            ),
        ]
        runs.append(
            {
                "run_id": run_id,
                "seed": 7 + run_index,
                "started_at": _iso(t0),
                "ended_at": _iso(ended),
                "status": "completed",
                "ranks": [{"rank": 0, "node": 0, "local_rank": 0, "device": 0}],
                "metrics": metrics,
                "sampling": [
                    {
                        "channel": "process_rss",
                        "device": 0,
                        "achieved_rate_hz": _round(achieved_rate(ticks)),
                        "sample_count": len(ticks),
                    }
                ],
            }
        )

    document = {
        "schema_version": SCHEMA_VERSION,
        "producer": {"name": "trainmark example generator", "version": f"{GENERATOR} (schema {SCHEMA_VERSION})"},
        "provenance": "synthetic",  # made up to illustrate the standard: never ranked
        "created_at": _iso(base + timedelta(minutes=20)),
        "description": (
            "SYNTHETIC EXAMPLE, not a measurement: the shape of a tiny-transformer run on 2 CPU cores "
            f"with no energy sensor, generated by {GENERATOR} to illustrate the standard."
        ),
        "submitter": {"name": "trainmark examples", "organization": "trainmark project"},
        "system": {
            "node_count": 1,
            "hosts": [
                {
                    "node": 0,
                    "cpu_model": "AMD EPYC 7B13",
                    "cpu_sockets": 1,
                    "cpu_cores": 1,
                    "cpu_threads": 2,
                    "cpu_cores_used": 2,
                    "memory_bytes": 25769803776,
                    "accelerators": 0,
                }
            ],
            "devices": [
                {"index": 0, "node": 0, "kind": "cpu", "vendor": "AMD", "model": "AMD EPYC 7B13", "memory_type": "DDR4"}
            ],
        },
        "software": {
            "framework": {"name": "pytorch", "version": "2.13.0+cpu"},
            "python_version": "3.11.7",
            "os_name": "Debian GNU/Linux 12 (bookworm)",
            "kernel_version": "6.1.0-27-cloud-amd64",
            "compiler": "eager (no torch.compile)",
            "distributed_backend": "none (one process)",
            "packages_digest": _hex("cpu-packages"),
            "packages_digest_method": "sha256 of sorted 'name==version' lines of importlib.metadata.distributions()",
            "packages_count": 64,
        },
        "model": {
            "name": "tiny",
            "architecture_family": "decoder_transformer",
            "parameters_total": {
                "value": float(TINY_PARAMETERS),
                "unit": "{parameter}",
                "method": "counter",
                "source": "sum(p.numel() for p in model.parameters())",
                "tool": TORCH_TOOL,
            },
            "parameters_trainable": {
                "value": float(TINY_PARAMETERS),
                "unit": "{parameter}",
                "method": "counter",
                "source": "sum(p.numel() for p in model.parameters() if p.requires_grad)",
                "tool": TORCH_TOOL,
            },
            "precision_policy": "fp32",
            "activation_checkpointing": False,
            "layers": 4,
            "hidden_size": 128,
            "attention_heads": 4,
            "vocab_size": 256,
            "context_length": 128,
        },
        "training": {
            "global_batch_size": 16,
            "micro_batch_size": 16,
            "gradient_accumulation_steps": 1,
            "sequence_length": 128,
            "optimizer": {
                "name": "AdamW",
                "hyperparameters": [{"name": "learning_rate", "value": 3e-3}, {"name": "weight_decay", "value": 0.01}],
            },
            "lr_schedule": {"name": "constant"},
            "max_steps": CPU_STEPS,
            "world_size": 1,
            "parallelism": {"strategy": "single process", "data_parallel": 1},
            "deterministic": True,
            "data_loader_workers": 0,
            "warmup_steps_excluded": CPU_WARMUP,
        },
        "dataset": {
            "name": "trainmark-sample-text",
            "snapshot_id": _hex("sample text bytes"),
            "snapshot_method": "sha256 of the uint8 byte stream in feeding order",
            "source": "generated by the runner from a fixed seed",
            "preprocessing": "byte-level, no tokenizer",
            "size_bytes": 1_048_576,
        },
        "code": {
            "repository": "https://github.com/trainmark/trainmark",
            "commit": _hex("example commit", 40),
            "branch": "main",
            "dirty": False,
        },
        "environment": {
            "ambient_temperature": {
                "value": None,
                "unit": "Cel",
                "unavailable_reason": "not declared and no temperature sensor is readable on this virtual machine",
            },
        },
        "methodology": {
            "tools": [{"name": "psutil", "version": "7.0.0"}, {"name": "torch", "version": "2.13.0"}],
            "channels": [
                {
                    "name": "process_rss",
                    "record_type": "memory_sample",
                    "fields": ["resident_bytes"],
                    "method": "sampled",
                    "source": "psutil.Process().memory_info().rss",
                    "tool": "psutil 7.0.0",
                    "target_rate_hz": 10.0,
                }
            ],
            "clock": {
                "timestamps": "time.time_ns(), system clock, UTC",
                "durations": "time.perf_counter_ns(), monotonic",
            },
            "idle_subtraction": {"method": "none", "description": no_energy},
            "flop_counting": "analytical 6 N T + 12 L d s T; counted with FlopCounterMode on a meta-device copy",
            "profiler": {
                "tool": "torch.profiler 2.13.0",
                "first_step": CPU_PROFILED.start,
                "steps": len(CPU_PROFILED),
                "options": ["activities=CPU"],
            },
            "notes": "Synthetic example data; see the description.",
        },
        "runs": runs,
    }
    writer.finish(document)


EXAMPLES = {"gpu-h100-gpt2": write_gpu_example, "cpu-tiny": write_cpu_example}


def write_examples(directory: Path = VALID_DIR) -> None:
    """(Re)write every example bundle under `directory`."""
    for name, write in EXAMPLES.items():
        target = directory / name
        if target.exists():
            shutil.rmtree(target)
        write(target)


if __name__ == "__main__":
    write_examples()
    print(f"wrote {', '.join(EXAMPLES)} under {VALID_DIR}")
