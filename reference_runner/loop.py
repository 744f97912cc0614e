"""The reference training loop: one run in one process (torchrun starts one process per rank).

    python -m trainmark.reference_runner.loop --config JSON --run-id run-1 --seed 1234 --bundle DIR --result FILE

Reads top to bottom: set up, measure idle power, start the samplers, train with every stage
timed between synchronization points, evaluate, stop the samplers, gather every rank's
measurements on rank 0, which writes the run's summary for the launcher.

Measurement boundaries in a step (each boundary synchronizes the device, so a duration is the
device's work and not only the time to queue it):
    data_loading  from the step's start until its micro-batches are on the device
    forward       each micro-batch's forward pass and loss
    backward      each micro-batch's backward pass (gradient all-reduce overlaps the last one)
    optimizer     unscale, clip, optimizer step, zero_grad
The loss is read (`.item()`, itself a sync) only after the step's clock stopped. The steps are
timed, recorded and accounted by `stepping.StepMeter`, the same code that measures a user's loop
under `trainmark.track`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the profiler's start/stop chatter on stderr

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from trainmark.reference_runner.config import RunConfig, config_from_json  # noqa: E402
from trainmark.reference_runner.data import FeedingOrder, held_out_batches, load_dataset  # noqa: E402
from trainmark.reference_runner.devices import backend_for  # noqa: E402
from trainmark.reference_runner.measurements import RankMeasurements  # noqa: E402
from trainmark.reference_runner.model import TinyGPT  # noqa: E402
from trainmark.reference_runner.profiling import AllocationWindow, KernelWindow  # noqa: E402
from trainmark.reference_runner.progress import ProgressWriter  # noqa: E402
from trainmark.reference_runner.sampler import Phase, Sampler, measure_idle_power  # noqa: E402
from trainmark.reference_runner.scratch import scratch_folder  # noqa: E402
from trainmark.reference_runner.stepping import Step, StepMeter  # noqa: E402
from trainmark.spec import models  # noqa: E402
from trainmark.spec.bundle import BundleWriter  # noqa: E402
from trainmark.spec.errors import SensorUnavailable  # noqa: E402

EVAL_BATCHES = 8


def learning_rate(config: RunConfig, step: int, total_steps: int) -> float:
    """Constant, or linear warm-up then cosine decay to min_learning_rate."""
    if config.lr_schedule == "constant":
        return config.learning_rate
    if step < config.lr_warmup_steps:
        return config.learning_rate * (step + 1) / config.lr_warmup_steps
    progress = (step - config.lr_warmup_steps) / max(1, total_steps - config.lr_warmup_steps)
    return config.min_learning_rate + 0.5 * (config.learning_rate - config.min_learning_rate) * (
        1 + math.cos(math.pi * min(1.0, progress))
    )


def make_optimizer(config: RunConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "adamw":
        return torch.optim.AdamW(
            model.parameters(),
            lr=config.learning_rate,
            weight_decay=config.weight_decay,
            betas=(config.beta1, config.beta2),
        )
    return torch.optim.SGD(
        model.parameters(), lr=config.learning_rate, momentum=config.momentum, weight_decay=config.weight_decay
    )


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset, config: RunConfig, device: torch.device, autocast) -> tuple[float, float]:
    """(mean loss, next-byte accuracy) on the fixed held-out batches."""
    model.eval()
    losses, correct, total = [], 0, 0
    for inputs, targets in held_out_batches(dataset, config.micro_batch_size, EVAL_BATCHES):
        inputs, targets = inputs.to(device), targets.to(device)
        with autocast():
            logits, loss = model(inputs, targets)
        losses.append(loss.item())
        correct += (logits.argmax(dim=-1) == targets).sum().item()
        total += targets.numel()
    model.train()
    return sum(losses) / len(losses), correct / total


class Trainer:
    """The model, its optimizer and one optimizer step, measured or bare.

    `step` is the measured step the runner records; `bare_step` does the same work with no
    measurement at all (bench/overhead.py compares the two).
    """

    def __init__(self, config: RunConfig, backend, order: FeedingOrder, rank: int, world_size: int) -> None:
        self.config = config.for_world(world_size)
        self.backend = backend
        self.device = backend.torch_device
        self.order = order
        self.rank = rank
        self.world_size = world_size
        self.model = TinyGPT(config).to(self.device)
        self.trained = torch.nn.parallel.DistributedDataParallel(self.model) if world_size > 1 else self.model
        self.optimizer = make_optimizer(config, self.model)
        self.amp_dtype = {"bf16_autocast": torch.bfloat16, "fp16_autocast": torch.float16}.get(config.precision)
        self.scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16_autocast" else None
        self.planned_steps = order.planned_steps(config.max_steps, config.epochs)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype else contextlib.nullcontext()

    def _batches(self, step: int) -> list:
        return [
            (inputs.to(self.device, non_blocking=True), targets.to(self.device, non_blocking=True))
            for inputs, targets in self.order.micro_batches(
                step, self.rank, self.world_size, self.config.micro_batch_size, self.config.gradient_accumulation_steps
            )
        ]

    def _update(self, step: int) -> tuple[float, torch.Tensor, bool]:
        """Learning rate, clip, optimizer step; (rate, gradient norm, whether the parameters changed)."""
        rate = learning_rate(self.config, step, self.planned_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        if self.scaler:
            scale_before = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            updated = self.scaler.get_scale() >= scale_before  # a lowered scale means the step was skipped
        else:
            self.optimizer.step()
            updated = True
        self.optimizer.zero_grad(set_to_none=True)
        return rate, grad_norm, updated

    def _sync_context(self, index: int, count: int):
        """Skip DDP's gradient all-reduce for all micro-batches but the last."""
        if self.world_size > 1 and index < count - 1:
            return self.trained.no_sync()
        return contextlib.nullcontext()

    def bare_step(self, step: int) -> None:
        """One optimizer step with no measurement."""
        batches = self._batches(step)
        for index, (inputs, targets) in enumerate(batches):
            with self._sync_context(index, len(batches)):
                with self.autocast():
                    _, loss = self.trained(inputs, targets)
                    loss = loss / len(batches)
                (self.scaler.scale(loss) if self.scaler else loss).backward()
        self._update(step)
        self.backend.synchronize()

    def step(self, step: int, measured: Step) -> None:
        """One measured optimizer step: its stages timed through `measured` (the StepMeter's step),
        which also gets the losses, learning rate, gradient norm and whether the parameters changed."""
        with measured.phase("data_loading"):
            batches = self._batches(step)

        losses = []
        for index, (inputs, targets) in enumerate(batches):
            with self._sync_context(index, len(batches)):
                with measured.phase("forward"):
                    with self.autocast():
                        _, loss = self.trained(inputs, targets)
                        loss = loss / len(batches)
                with measured.phase("backward"):
                    (self.scaler.scale(loss) if self.scaler else loss).backward()
            losses.append(loss.detach())

        with measured.phase("optimizer"):
            rate, grad_norm, updated = self._update(step)
        # read (as numbers) only after the step's clock stopped
        measured.loss, measured.learning_rate, measured.grad_norm, measured.updated = losses, rate, grad_norm, updated


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one trainmark reference run (started by trainmark run)")
    parser.add_argument("--config", required=True, help="the RunConfig as JSON")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--replay", type=Path, default=None, help="a GPU sensor recording to replay")
    parser.add_argument("--progress", type=Path, default=None, help="append progress lines here (rank 0)")
    args = parser.parse_args(argv)
    # SIGTERM (the launcher died, or torchrun stops its ranks) ends the run as an exit, not a sudden
    # death, so that the checkpoint folder is removed on the way out
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    # ---------------------------------------------------------------- processes and devices
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    config = config_from_json(args.config).for_world(world_size)
    local_rank, local_world = int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    node = int(os.environ.get("GROUP_RANK", 0))
    progress = ProgressWriter(args.progress if rank == 0 else None)
    progress.phase("set-up")
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    backend = backend_for(config.device, local_rank, config.peak_flops_per_s, args.replay)
    device = backend.torch_device
    if device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    if world_size > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    # One CPU device per node (its processes share it); one GPU per rank.
    device_index = node * local_world + local_rank if backend.kind == "gpu" else node
    shares_device = backend.kind == "cpu" and local_world > 1

    torch.manual_seed(args.seed)
    dataset = load_dataset(config.data, config.sequence_length, config.eval_fraction)
    order = FeedingOrder(dataset, config.global_batch_size, config.data_seed)
    trainer = Trainer(config, backend, order, rank, world_size)
    planned_steps = trainer.planned_steps

    # ---------------------------------------------------------------- sensors and traces
    writer = BundleWriter(args.bundle)
    per_rank = rank if world_size > 1 else None
    meters, energy_reason = [], None
    if local_rank == 0:  # one sampler per node reads every device of the node
        local_devices = range(device_index, device_index + (local_world if backend.kind == "gpu" else 1))
        for index in local_devices:
            try:
                meters.append(backend.power_meter(index))
            except SensorUnavailable as error:
                energy_reason = str(error)
                break
        if energy_reason:
            meters = []
    probe = backend.memory_probe(device_index)
    progress.steps = planned_steps
    if meters and config.idle_seconds:
        progress.phase("idle baseline")
    idle = measure_idle_power(meters, config.idle_seconds, config.sample_rate_hz)
    if world_size > 1:
        dist.barrier()
    phase = Phase()
    sampler = Sampler(
        config.sample_rate_hz,
        phase,
        meters,
        [probe],
        writer.open_trace(args.run_id, "power_sample", per_rank) if meters else None,
        writer.open_trace(args.run_id, "memory_sample", per_rank),
        node,
        rank,
    )
    epochs_trace = writer.open_trace(args.run_id, "epoch", per_rank)
    kernel_window = KernelWindow(
        config.profile_first_step, config.profile_steps if rank == 0 else 0, device.type == "cuda"
    )
    allocation_window = AllocationWindow(
        config.profile_first_step + config.profile_steps,
        config.allocation_steps if rank == 0 else 0,
        device.type == "cuda",
    )
    measurements = RankMeasurements(
        rank=rank,
        node=node,
        local_rank=local_rank,
        device=device_index,
        shares_device=shares_device,
        peak_method=backend.peak_method,
        peak_source=backend.peak_source,
        peak_tool=backend.peak_tool,
        peak_reason=backend.peak_unavailable_reason(),
    )
    # The launcher counts FLOPs on a meta-device copy, outside the run (reference_runner/model.py).
    meter = StepMeter(
        backend,
        phase,
        writer,
        args.run_id,
        measurements,
        per_rank,
        config.warmup_steps,
        kernel_window,
        allocation_window,
    )
    checkpoint_dir = scratch_folder("checkpoint")

    # ---------------------------------------------------------------- the run
    started_at = time.time_ns()
    sampler.start()
    micro_batches = config.gradient_accumulation_steps
    epoch_start_ns, epoch_steps, epoch_losses = time.time_ns(), 0, []
    samples = config.micro_batch_size * micro_batches
    for step in range(planned_steps):
        with meter.step(samples, samples * config.sequence_length, epoch=step // order.steps_per_epoch) as measured:
            trainer.step(step, measured)
        loss_value = float(sum(part.item() for part in measured.loss))
        duration_s = meter.last_record.duration_s
        if config.checkpoint_every and (step + 1) % config.checkpoint_every == 0 and rank == 0:
            phase.value = "checkpoint"
            measurements.checkpoints.append(
                _save_checkpoint(trainer.model, trainer.optimizer, step, Path(checkpoint_dir.name), backend)
            )
            phase.value = "other"
        epoch_steps += 1
        epoch_losses.append(loss_value)
        if (step + 1) % order.steps_per_epoch == 0 or step == planned_steps - 1:
            complete = (step + 1) % order.steps_per_epoch == 0
            duration = (time.time_ns() - epoch_start_ns) / 1e9
            eval_loss = eval_accuracy = None
            if rank == 0 and complete:
                phase.value = "evaluation"
                eval_loss, eval_accuracy = evaluate(trainer.model, dataset, config, device, trainer.autocast)
                phase.value = "other"
            epochs_trace.append(
                models.EpochRecord(
                    epoch=step // order.steps_per_epoch,
                    rank=rank,
                    start_unix_ns=epoch_start_ns,
                    duration_s=duration,
                    steps=epoch_steps,
                    samples=epoch_steps * config.micro_batch_size * micro_batches,
                    tokens=epoch_steps * config.micro_batch_size * micro_batches * config.sequence_length,
                    train_loss_mean=sum(epoch_losses) / len(epoch_losses),
                    eval_loss=eval_loss,
                    eval_accuracy=eval_accuracy,
                )
            )
            if complete:
                measurements.completed_epoch_seconds.append(duration)
            epoch_start_ns, epoch_steps, epoch_losses = time.time_ns(), 0, []
        progress.step(step, loss_value, duration_s)

    progress.phase("writing")
    if rank == 0:
        phase.value = "evaluation"
        measurements.final_eval_loss, measurements.final_accuracy = evaluate(
            trainer.model, dataset, config, device, trainer.autocast
        )
    phase.value = "other"
    if world_size > 1:
        dist.barrier()
    sampler.stop()
    ended_at = time.time_ns()
    meter.close()
    epochs_trace.close()
    for trace in (sampler.power_trace, sampler.memory_trace):
        if trace is not None:
            trace.close()
    for meter in meters:
        meter.close()
    checkpoint_dir.cleanup()

    # ---------------------------------------------------------------- gather on rank 0, summarize
    measurements.add_sampler(sampler, idle, energy_reason, probe, meters)
    measurements.device_block = backend.describe(device_index, node)
    measurements.device_software = backend.software()
    from trainmark.reference_runner.metadata import host

    measurements.host = host(node)
    gathered = [None] * world_size
    if world_size > 1:
        dist.gather_object(asdict(measurements), gathered if rank == 0 else None, dst=0)
        dist.destroy_process_group()
    else:
        gathered = [asdict(measurements)]
    if rank == 0:
        result = {
            "run_id": args.run_id,
            "seed": args.seed,
            "started_at_ns": started_at,
            "ended_at_ns": ended_at,
            "planned_steps": planned_steps,
            "world_size": world_size,
            "ranks": gathered,
            "sampler_errors": sampler.errors,
        }
        args.result.write_text(json.dumps(result))


def _save_checkpoint(model, optimizer, step: int, directory: Path, backend) -> dict:
    """Save model and optimizer state; return its size in bytes and the seconds it took."""
    backend.synchronize()
    began = time.perf_counter_ns()
    path = directory / f"step-{step}.pt"
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, path)
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
    seconds = (time.perf_counter_ns() - began) / 1e9
    size = path.stat().st_size
    path.unlink()
    return {"step": step, "bytes": size, "seconds": seconds}


if __name__ == "__main__":
    main()
