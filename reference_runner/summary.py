"""A run's summary metrics from every rank's measurements (rank 0 gathers them).

Definitions follow the standard (spec/derive.py, docs/scoring.md 2.4): throughput from rank 0's
measured steps; per-device figures for each device (per process when several processes share
one CPU); per-node and global aggregates as sums, marked derived; energy from counters where
the hardware has them, else the integral of polled power; a missing sensor is null with the
sensor's own reason.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime

from trainmark.reference_runner.config import RunConfig
from trainmark.reference_runner.devices import PRECISION_FORMAT
from trainmark.reference_runner.measurements import WorkerResult
from trainmark.reference_runner.model import ANALYTICAL_SOURCE
from trainmark.spec import producer_version
from trainmark.spec.metrics import measured, measured_or_unavailable, unavailable

NO_BANDWIDTH = (
    "no memory-bandwidth counter is read: DRAM traffic needs uncore performance events (root) on "
    "CPUs, or Nsight Compute / DCGM profiling metrics on NVIDIA GPUs"
)
PHASE_METRICS = {
    "power_data_loading": "data_loading",
    "power_forward": "forward",
    "power_backward": "backward",
    "power_optimizer": "optimizer",
}
ENERGY_METRICS = (
    ("total_energy", "J"),
    ("net_energy", "J"),
    ("idle_power", "W"),
    ("energy_per_step", "J/{step}"),
    ("energy_per_update", "J/{update}"),
    ("energy_per_sample", "J/{sample}"),
    ("power_mean", "W"),
    ("power_median", "W"),
    ("power_peak", "W"),
    *((name, "W") for name in PHASE_METRICS),
    ("flops_per_joule", "{flop}/J"),
    ("steps_per_kilojoule", "{step}/kJ"),
)


def iso(time_ns: int) -> str:
    """RFC 3339 UTC with microseconds, as the manifest writes times."""
    return (
        datetime.fromtimestamp(time_ns // 1000 / 1e6, tz=UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    )


def _trapezoid(samples: list) -> float:
    return sum(0.5 * (a[1] + b[1]) * (b[0] - a[0]) / 1e9 for a, b in zip(samples, samples[1:]))


def adopt_worker_view(draft: dict, result: WorkerResult) -> None:
    """Replace the draft's guesses with what the ranks reported about their devices and hosts."""
    ranks = result.ranks
    devices = {rank.device: rank.device_block for rank in ranks if rank.device_block}
    if devices:
        draft["system"]["devices"] = [devices[index] for index in sorted(devices)]
    hosts = {rank.node: rank.host for rank in ranks if rank.host}
    draft["system"]["hosts"] = [hosts.get(entry["node"], entry) for entry in draft["system"]["hosts"]]
    draft["software"].update(ranks[0].device_software)


class RunSummary:
    """Builds one run's manifest entry from the worker's result."""

    def __init__(
        self,
        config: RunConfig,
        result: WorkerResult,
        flops_analytical: float,
        flops_counted: float,
        steps_file: str,
        kernels_file: str,
    ) -> None:
        self.config = config
        self.result = result
        self.ranks = sorted(result.ranks, key=lambda r: r.rank)
        self.rank0 = self.ranks[0]
        self.world_size = result.world_size
        self.flops_analytical = flops_analytical
        self.flops_counted = flops_counted
        self.steps_file = steps_file
        self.kernels_file = kernels_file
        self.tool = f"trainmark {producer_version()}"
        # How the FLOP counts were obtained (trainmark.track counts differently from the runner).
        self.analytical_source = ANALYTICAL_SOURCE
        self.counted_source = (
            "torch.utils.flop_counter.FlopCounterMode over one micro-batch of a meta-device copy, "
            "x micro-batches per step"
        )
        self.counted_reason: str | None = None
        self.metrics: list[dict] = []
        self.started_at, self.ended_at = iso(result.started_at_ns), iso(result.ended_at_ns)
        self.devices = {}
        for rank in self.ranks:
            self.devices.setdefault(rank.device, rank.device_block)
        self.power = {device: data for rank in self.ranks for device, data in rank.power.items()}

    @property
    def global_batch(self) -> int:
        return self.config.global_batch_size

    def add(self, metric: dict) -> None:
        self.metrics.append(metric)

    # ------------------------------------------------------------ throughput and compute

    def throughput(self) -> float | None:
        r0, derived, source = self.rank0, "derived", f"measured steps in {self.steps_file}"
        no_steps = f"no measured step: all {r0.steps} steps were warm-up or profiled"
        per_second = r0.measured / r0.measured_duration_s if r0.measured else None
        per_step = r0.measured_duration_s / r0.measured if r0.measured else None
        self.add(
            measured_or_unavailable(
                "steps_per_second",
                "{step}/s",
                per_second,
                derived,
                f"count / sum of duration_s of the {source}",
                self.tool,
                no_steps,
            )
        )
        self.add(
            measured_or_unavailable(
                "time_per_step", "s", per_step, derived, f"mean duration_s of the {source}", self.tool, no_steps
            )
        )
        self.add(
            measured_or_unavailable(
                "samples_per_second",
                "{sample}/s",
                per_second and self.global_batch * per_second,
                derived,
                "training.global_batch_size x steps_per_second",
                self.tool,
                no_steps,
            )
        )
        if self.config.sequence_length is None:
            self.add(
                unavailable(
                    "tokens_per_second", "{token}/s", "the model takes no token sequences (sequence_length is None)"
                )
            )
        else:
            self.add(
                measured_or_unavailable(
                    "tokens_per_second",
                    "{token}/s",
                    per_second and self.global_batch * self.config.sequence_length * per_second,
                    derived,
                    "global_batch_size x sequence_length x steps_per_second",
                    self.tool,
                    no_steps,
                )
            )
        marked = r0.stages_marked  # None: the runner times every stage
        for stage in ("data_loading", "forward", "backward", "optimizer"):
            if marked is not None and stage not in marked:
                self.add(
                    unavailable(
                        f"time_per_step_{stage}",
                        "s",
                        f"the training loop marked no {stage} phase (step.phase({stage!r}))",
                    )
                )
                continue
            value = r0.measured_stage_s[stage] / r0.measured if r0.measured else None
            self.add(
                measured_or_unavailable(
                    f"time_per_step_{stage}",
                    "s",
                    value,
                    derived,
                    f"mean {stage}_s of the {source}",
                    self.tool,
                    no_steps,
                )
            )
        duration = (
            datetime.fromisoformat(self.ended_at.replace("Z", "+00:00"))
            - datetime.fromisoformat(self.started_at.replace("Z", "+00:00"))
        ).total_seconds()
        self.add(measured("run_duration", "s", duration, derived, "runs[].ended_at - runs[].started_at", self.tool))
        self.add(
            measured(
                "steps_completed",
                "{step}",
                float(r0.steps),
                derived,
                f"count of step records in {self.steps_file}",
                self.tool,
            )
        )
        self.add(
            measured(
                "updates_completed",
                "{update}",
                float(r0.updates),
                derived,
                f"count of step records with updated=true in {self.steps_file}",
                self.tool,
            )
        )
        epochs = r0.completed_epoch_seconds
        self.add(
            measured_or_unavailable(
                "time_per_epoch",
                "s",
                statistics.fmean(epochs) if epochs else None,
                derived,
                "mean duration_s of the completed epochs in epochs*.jsonl",
                self.tool,
                f"no epoch completed in {r0.steps} steps",
            )
        )
        return per_second

    def compute(self, per_second: float | None) -> None:
        derived = "derived"
        self.add(
            measured(
                "flops_per_step_analytical",
                "{flop}",
                self.flops_analytical,
                "analytical",
                self.analytical_source,
                self.tool,
            )
        )
        self.add(
            measured_or_unavailable(
                "flops_per_step_counted",
                "{flop}",
                self.flops_counted,
                "profiler",
                self.counted_source,
                f"torch {self._torch_version()}",
                self.counted_reason or "the FLOPs were not counted",
            )
        )
        no_steps = "no measured step to time"
        global_flops = per_second and self.flops_analytical * per_second
        self.add(
            measured_or_unavailable(
                "flops_per_second",
                "{flop}/s",
                global_flops,
                derived,
                "flops_per_step_analytical x steps_per_second",
                self.tool,
                no_steps,
            )
        )
        number_format = PRECISION_FORMAT[self.config.precision]
        peaks, unknown = 0.0, []
        for index, block in sorted(self.devices.items()):
            share = sum(1 for rank in self.ranks if rank.device == index) / self.world_size
            device_flops = global_flops and global_flops * share
            self.add(
                measured_or_unavailable(
                    "flops_per_second",
                    "{flop}/s",
                    device_flops,
                    derived,
                    "flops_per_second x the share of ranks on this device",
                    self.tool,
                    no_steps,
                    scope="device",
                    device=index,
                )
            )
            peak = next(
                (
                    entry["flops_per_s"]
                    for entry in block.get("peak_flops", [])
                    if entry["format"] == number_format and not entry["sparse"]
                ),
                None,
            )
            if peak is None:
                unknown.append(block["model"])
                reason = f"no peak {number_format} FLOP/s is known for {block['model']}" + (
                    ": declare one with trainmark run --set peak_flops_per_s=VALUE"
                    if block["kind"] == "cpu"
                    else ": it is not in trainmark's table of NVIDIA data-centre GPUs"
                )
                self.add(unavailable("compute_utilization", "%", reason, scope="device", device=index))
                continue
            peaks += peak
            self.add(
                measured_or_unavailable(
                    "compute_utilization",
                    "%",
                    device_flops and 100 * device_flops / peak,
                    derived,
                    f"flops_per_second (device) / {peak:.6g} peak {number_format} FLOP/s (devices[].peak_flops)",
                    self.tool,
                    no_steps,
                    scope="device",
                    device=index,
                )
            )
        if unknown:
            self.add(
                unavailable(
                    "compute_utilization",
                    "%",
                    f"the peak FLOP/s of {', '.join(sorted(set(unknown)))} in {number_format} is not known",
                )
            )
        else:
            self.add(
                measured_or_unavailable(
                    "compute_utilization",
                    "%",
                    global_flops and 100 * global_flops / peaks,
                    derived,
                    "flops_per_second / the sum of the devices' peaks",
                    self.tool,
                    no_steps,
                )
            )
        breakdown = self.rank0.kernel_breakdown
        for category in (
            "matmul",
            "attention",
            "normalization",
            "elementwise",
            "optimizer",
            "data_movement",
            "communication",
            "other",
        ):
            name = f"kernel_time_share_{category}"
            if breakdown is None or not breakdown.total_time_s:
                self.add(unavailable(name, "%", "no profiler window ran (profile_steps is 0, or the run ended first)"))
                continue
            seconds = next(entry.time_s for entry in breakdown.categories if entry.category == category)
            self.add(
                measured(
                    name,
                    "%",
                    100 * seconds / breakdown.total_time_s,
                    "profiler",
                    f"categories[{category}].time_s / total_time_s in {self.kernels_file}",
                    breakdown.tool,
                )
            )

    @staticmethod
    def _torch_version() -> str:
        import torch

        return torch.__version__

    # ------------------------------------------------------------ memory

    def memory(self) -> None:
        totals_by_node: dict[int, int] = {}
        total, complete = 0, True
        for rank in self.ranks:
            target = (
                {"scope": "process", "rank": rank.rank}
                if rank.shares_device
                else {"scope": "device", "device": rank.device}
            )
            reason = rank.peak_reason or "no peak was measured"
            self.add(
                measured_or_unavailable(
                    "peak_memory",
                    "By",
                    rank.step_peak_max,
                    rank.peak_method,
                    f"the highest peak_memory_bytes of rank {rank.rank}'s step records: {rank.peak_source}",
                    rank.peak_tool,
                    reason,
                    **target,
                )
            )
            for stage in ("forward", "backward", "optimizer"):
                self.add(
                    measured_or_unavailable(
                        f"peak_memory_{stage}",
                        "By",
                        rank.stage_peak_max[stage],
                        rank.peak_method,
                        f"{rank.peak_source}; the highest over the {stage} stages of every step",
                        rank.peak_tool,
                        reason,
                        **target,
                    )
                )
            if rank.step_peak_max is None:
                complete = False
            else:
                total += rank.step_peak_max
                totals_by_node[rank.node] = totals_by_node.get(rank.node, 0) + rank.step_peak_max
        what = "processes'" if any(rank.shares_device for rank in self.ranks) else "devices'"
        if complete:
            for node, value in sorted(totals_by_node.items()):
                self.add(
                    measured(
                        "peak_memory",
                        "By",
                        float(value),
                        "derived",
                        f"sum of the node's {what} peak_memory",
                        self.tool,
                        scope="node",
                        node=node,
                        note="an upper bound: peaks need not coincide",
                    )
                )
            self.add(
                measured(
                    "peak_memory",
                    "By",
                    float(total),
                    "derived",
                    f"sum of the {what} peak_memory",
                    self.tool,
                    note="an upper bound: peaks need not coincide",
                )
            )
        for name in (
            "memory_bandwidth",
            "memory_bandwidth_forward",
            "memory_bandwidth_backward",
            "memory_bandwidth_optimizer",
        ):
            self.add(unavailable(name, "By/s", NO_BANDWIDTH))
        r0 = self.rank0
        if r0.allocation_deltas:
            self.add(
                measured(
                    "allocations_per_step",
                    "{allocation}/{step}",
                    statistics.fmean(r0.allocation_deltas),
                    "counter",
                    "mean allocations of rank 0's measured steps "
                    "(torch.cuda.memory_stats()['allocation.all.allocated'] per step)",
                    f"torch {self._torch_version()}",
                    scope="process",
                    rank=0,
                )
            )
        else:
            self.add(
                measured_or_unavailable(
                    "allocations_per_step",
                    "{allocation}/{step}",
                    r0.profiled_allocations_per_step,
                    "profiler",
                    "allocator calls ([memory] events of torch.profiler with profile_memory) per step of the "
                    "allocation window, in allocator*.jsonl",
                    f"torch.profiler {self._torch_version()}",
                    "no allocation window ran (allocation_steps is 0, or the run ended first)",
                    scope="process",
                    rank=0,
                )
            )
        if r0.reserved_at_peak:
            fragmentation = 100 * (r0.reserved_at_peak - r0.step_peak_max) / r0.reserved_at_peak
            self.add(
                measured(
                    "memory_fragmentation",
                    "%",
                    fragmentation,
                    "derived",
                    "(reserved - allocated) / reserved at rank 0's step of peak allocation "
                    "(torch.cuda.memory_reserved, max_memory_allocated)",
                    self.tool,
                    scope="process",
                    rank=0,
                )
            )
        else:
            self.add(
                unavailable(
                    "memory_fragmentation",
                    "%",
                    "the CPU allocator keeps no caching pool, so there is no reserved-but-unused memory to measure",
                )
            )
        checkpoints = r0.checkpoints
        reason = (
            "no checkpoint was saved (checkpoint_every is 0)"
            if not self.config.checkpoint_every
            else f"no checkpoint was due before the run ended (every {self.config.checkpoint_every} steps)"
        )
        self.add(
            measured_or_unavailable(
                "checkpoint_size",
                "By",
                statistics.fmean(c.size_bytes for c in checkpoints) if checkpoints else None,
                "counter",
                "size of the torch.save file (model and optimizer state)",
                f"torch {self._torch_version()}",
                reason,
            )
        )
        self.add(
            measured_or_unavailable(
                "checkpoint_interval",
                "{step}",
                float(self.config.checkpoint_every) if checkpoints else None,
                "declared",
                "checkpoint_every in the run configuration",
                self.tool,
                reason,
            )
        )
        self.add(
            measured_or_unavailable(
                "checkpoint_time",
                "s",
                statistics.fmean(c.duration_s for c in checkpoints) if checkpoints else None,
                "derived",
                "mean wall time of torch.save and fsync, after a device sync",
                self.tool,
                reason,
            )
        )

    # ------------------------------------------------------------ energy

    def energy(self, per_second: float | None) -> None:
        reasons = {rank.energy_reason for rank in self.ranks if rank.energy_reason}
        if not self.power:
            reason = "; ".join(sorted(reasons)) or "no energy sensor was read"
            for name, unit in ENERGY_METRICS:
                self.add(unavailable(name, unit, reason))
            return
        device_energy, device_windows, methods, idle_total = {}, {}, set(), 0.0
        series = []
        for device, data in sorted(self.power.items()):
            tool = data.tool
            samples = data.samples
            if data.energy_count >= 2:
                joules, method, window = data.energy_increase_j, "counter", data.energy_window_s
                source = f"{data.energy_source}: sum of the increases between readings, first to last in the run"
            elif len(samples) >= 2:
                joules, method = _trapezoid(samples), "sampled"
                window = (samples[-1][0] - samples[0][0]) / 1e9
                source = f"trapezoid integral of {data.power_source}"
            else:
                continue
            device_energy[device], device_windows[device] = joules, window
            methods.add(method)
            self.add(measured("total_energy", "J", joules, method, source, tool, scope="device", device=device))
            if data.idle:
                watts, idle_method = data.idle
                idle_total += watts
                self.add(
                    measured(
                        "idle_power",
                        "W",
                        watts,
                        idle_method,
                        f"{'energy counter increase' if idle_method == 'counter' else 'mean polled power'} "
                        f"over {self.config.idle_seconds:g} s with nothing running, before the run",
                        tool,
                        scope="device",
                        device=device,
                    )
                )
            if samples:
                watts = [sample[1] for sample in samples]
                series.append(samples)
                for name, value in (
                    ("power_mean", statistics.fmean(watts)),
                    ("power_median", statistics.median(watts)),
                    ("power_peak", max(watts)),
                ):
                    self.add(
                        measured(
                            name,
                            "W",
                            value,
                            "sampled",
                            f"{name.split('_')[1]} of {data.power_source} samples in the run",
                            tool,
                            scope="device",
                            device=device,
                        )
                    )
            else:
                self.add(
                    measured(
                        "power_mean",
                        "W",
                        joules / window,
                        "derived",
                        "total_energy / counter window",
                        self.tool,
                        scope="device",
                        device=device,
                    )
                )
        if not device_energy:
            for name, unit in ENERGY_METRICS:
                self.add(unavailable(name, unit, "the energy sensors produced fewer than two readings"))
            return
        total = sum(device_energy.values())
        method = "counter" if methods == {"counter"} else "sampled" if methods == {"sampled"} else "derived"
        steps, updates = self.rank0.steps, self.rank0.updates
        self.add(measured("total_energy", "J", total, method, "sum over devices of their total_energy", self.tool))
        if idle_total and all(self.power[d].idle for d in device_energy):
            net = total - sum(self.power[d].idle[0] * device_windows[d] for d in device_energy)
            self.add(measured("idle_power", "W", idle_total, "derived", "sum of the devices' idle_power", self.tool))
            self.add(
                measured(
                    "net_energy",
                    "J",
                    net,
                    "derived",
                    "total_energy - sum over devices of idle_power x the device's measurement window",
                    self.tool,
                )
            )
        else:
            reason = "idle power was not measured (idle_seconds is 0)"
            self.add(unavailable("idle_power", "W", reason))
            self.add(unavailable("net_energy", "J", reason))
        self.add(
            measured(
                "energy_per_step", "J/{step}", total / steps, "derived", "total_energy / steps_completed", self.tool
            )
        )
        self.add(
            measured_or_unavailable(
                "energy_per_update",
                "J/{update}",
                total / updates if updates else None,
                "derived",
                "total_energy / updates_completed",
                self.tool,
                "no step updated the parameters",
            )
        )
        self.add(
            measured(
                "energy_per_sample",
                "J/{sample}",
                total / (steps * self.global_batch),
                "derived",
                "total_energy / (steps_completed x global_batch_size)",
                self.tool,
            )
        )
        self._global_power(series)
        self.add(
            measured(
                "flops_per_joule",
                "{flop}/J",
                self.flops_analytical * steps / total,
                "derived",
                "flops_per_step_analytical x steps_completed / total_energy",
                self.tool,
            )
        )
        self.add(
            measured(
                "steps_per_kilojoule",
                "{step}/kJ",
                steps / (total / 1000),
                "derived",
                "steps_completed / (total_energy / 1000)",
                self.tool,
            )
        )

    def _global_power(self, series: list[list]) -> None:
        if not series:
            reason = "the meters are energy counters without instantaneous power readings"
            for name in ("power_median", "power_peak", *PHASE_METRICS):
                self.add(unavailable(name, "W", reason))
            self.add(
                measured(
                    "power_mean",
                    "W",
                    sum(m["value"] for m in self.metrics if m["name"] == "power_mean"),
                    "derived",
                    "sum of the devices' power_mean",
                    self.tool,
                )
            )
            return
        length = min(len(samples) for samples in series)
        summed = [sum(samples[i][1] for samples in series) for i in range(length)]
        phases = [series[0][i][2] for i in range(length)]
        note = "samples of different devices summed tick by tick"
        self.add(
            measured(
                "power_mean",
                "W",
                statistics.fmean(summed),
                "sampled",
                "mean of the devices' polled power summed per sampler tick",
                self.tool,
                note=note,
            )
        )
        self.add(
            measured(
                "power_median",
                "W",
                statistics.median(summed),
                "sampled",
                "median of the same sums",
                self.tool,
                note=note,
            )
        )
        self.add(measured("power_peak", "W", max(summed), "sampled", "highest of the same sums", self.tool, note=note))
        for name, phase in PHASE_METRICS.items():
            tagged = [value for value, tag in zip(summed, phases) if tag == phase]
            self.add(
                measured_or_unavailable(
                    name,
                    "W",
                    statistics.fmean(tagged) if tagged else None,
                    "sampled",
                    f"mean of the summed power over the ticks the sampler tagged phase={phase}",
                    self.tool,
                    f"no sampler tick fell in a {phase} phase",
                    note=f"{len(tagged)} ticks",
                )
            )

    # ------------------------------------------------------------ quality and the run entry

    def quality(self) -> None:
        r0 = self.rank0
        self.add(
            measured_or_unavailable(
                "final_loss",
                "1",
                r0.final_loss,
                "derived",
                f"loss of the last step record in {self.steps_file}",
                self.tool,
                "no step produced a finite loss",
            )
        )
        self.add(
            measured_or_unavailable(
                "final_accuracy",
                "1",
                r0.final_accuracy,
                "derived",
                "argmax next-byte accuracy on fixed batches of the held-out tail, after the last step",
                self.tool,
                "the run ended before its evaluation",
            )
        )

    def sampling(self) -> list[dict]:
        entries = []
        for device, data in sorted(self.power.items()):
            for kind in ("power", "energy"):
                channel, count, rate_hz = (
                    (data.power_channel, data.power_count, data.power_rate_hz)
                    if kind == "power"
                    else (data.energy_channel, data.energy_count, data.energy_rate_hz)
                )
                if channel and count:
                    entry = {"channel": channel, "device": device, "sample_count": count}
                    if rate_hz is not None:
                        entry["achieved_rate_hz"] = rate_hz
                    entries.append(entry)
        for rank in self.ranks:
            memory = rank.memory
            entry = {"channel": memory.channel, "device": rank.device, "sample_count": memory.count}
            if memory.rate_hz is not None:
                entry["achieved_rate_hz"] = memory.rate_hz
            entries.append(entry)
        return entries

    def run_entry(self) -> dict:
        per_second = self.throughput()
        self.compute(per_second)
        self.memory()
        self.energy(per_second)
        self.quality()
        entry = {
            "run_id": self.result.run_id,
            "seed": self.result.seed,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "status": "completed",
            "ranks": [
                {"rank": r.rank, "node": r.node, "local_rank": r.local_rank, "device": r.device} for r in self.ranks
            ],
            "metrics": self.metrics,
            "sampling": self.sampling(),
        }
        if self.result.sampler_errors:
            entry["status_reason"] = (
                f"the sampler hit {len(self.result.sampler_errors)} sensor error(s), first: "
                f"{self.result.sampler_errors[0]}"
            )
        return entry
