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
The loss is read (`.item()`, itself a sync) only after the step's clock stopped. Everything is
measured through `instruments.RankInstruments` (sensors, idle baseline, sampler, profiler and
allocator windows, the step meter of `stepping.py`, checkpoints, gathering the ranks), the one
measurement path that also measures a user's loop under `trainmark.track`.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the profiler's start/stop chatter on stderr

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from trainmark.reference_runner.config import RunConfig, config_from_json  # noqa: E402
from trainmark.reference_runner.data import FeedingOrder, held_out_batches, load_dataset  # noqa: E402
from trainmark.reference_runner.devices import DeviceBackend, backend_for  # noqa: E402
from trainmark.reference_runner.instruments import RankInstruments, RankPlace  # noqa: E402
from trainmark.reference_runner.model import TinyGPT  # noqa: E402
from trainmark.reference_runner.progress import ProgressWriter  # noqa: E402
from trainmark.reference_runner.scratch import scratch_folder  # noqa: E402
from trainmark.reference_runner.stepping import Step, StepMeter  # noqa: E402
from trainmark.spec import models  # noqa: E402
from trainmark.spec.bundle import BundleWriter, TraceWriter  # noqa: E402

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


@dataclass
class ParameterUpdate:
    """The optimizer's part of a step."""

    learning_rate: float
    grad_norm: torch.Tensor  # the norm before clipping (a tensor: reading it is a sync)
    updated: bool  # False when the fp16 loss scaler skipped the step


@dataclass
class StepOutcome:
    """What one optimizer step trained: its micro-batches' losses (tensors) and its update."""

    losses: list[torch.Tensor]
    update: ParameterUpdate

    @property
    def loss(self) -> float:
        """The step's loss (the sum of its micro-batches' scaled losses); reading it is a sync."""
        return float(sum(part.item() for part in self.losses))


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

    def _update(self, step: int) -> ParameterUpdate:
        """Learning rate, clip, optimizer step."""
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
        return ParameterUpdate(rate, grad_norm, updated)

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

    def step(self, step: int, measured: Step) -> StepOutcome:
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
            update = self._update(step)
        # tensors, read (as numbers) by the meter only after the step's clock stopped
        measured.loss, measured.learning_rate = losses, update.learning_rate
        measured.grad_norm, measured.updated = update.grad_norm, update.updated
        return StepOutcome(losses, update)

    def evaluate(self, dataset) -> tuple[float, float]:
        """(mean loss, next-byte accuracy) on the fixed held-out batches."""
        return evaluate(self.model, dataset, self.config, self.device, self.autocast)

    def save_checkpoint(self, path: Path, step: int) -> None:
        """Save model and optimizer state after `step` to `path`."""
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "step": step}, path)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="one trainmark reference run (started by trainmark run)")
    parser.add_argument("--config", required=True, help="the RunConfig as JSON")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--replay", type=Path, default=None, help="a GPU sensor recording to replay")
    parser.add_argument("--progress", type=Path, default=None, help="append progress lines here (rank 0)")
    return parser.parse_args(argv)


def set_up_process(config: RunConfig, place: RankPlace, replay: Path | None) -> DeviceBackend:
    """Determinism, the device backend, CPU threads and the process group of this rank."""
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    backend = backend_for(config.device, place.local_rank, config.peak_flops_per_s, replay)
    if backend.torch_device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // place.local_world))
    if place.world_size > 1:
        dist.init_process_group("nccl" if backend.torch_device.type == "cuda" else "gloo")
    return backend


class EpochAccount:
    """Per-epoch totals of one rank, written to its epoch trace as each epoch ends (or the run
    ends inside one); rank 0 evaluates on the held-out batches after each complete epoch."""

    def __init__(self, trainer: Trainer, dataset, instruments: RankInstruments, trace: TraceWriter) -> None:
        self.trainer = trainer
        self.dataset = dataset
        self.instruments = instruments
        self.trace = trace
        self.steps_per_epoch = trainer.order.steps_per_epoch
        self._open()

    def _open(self) -> None:
        self.start_unix_ns, self.steps, self.losses = time.time_ns(), 0, []

    def after_step(self, step: int, loss: float) -> None:
        """Account a finished step; close the epoch when it was its last (or the run's last)."""
        self.steps += 1
        self.losses.append(loss)
        complete = (step + 1) % self.steps_per_epoch == 0
        if complete or step == self.trainer.planned_steps - 1:
            self._close(step // self.steps_per_epoch, complete)

    def _close(self, epoch: int, complete: bool) -> None:
        trainer, config = self.trainer, self.trainer.config
        duration = (time.time_ns() - self.start_unix_ns) / 1e9
        eval_loss = eval_accuracy = None
        if trainer.rank == 0 and complete:
            with self.instruments.in_phase("evaluation"):
                eval_loss, eval_accuracy = trainer.evaluate(self.dataset)
        samples = self.steps * config.micro_batch_size * config.gradient_accumulation_steps
        self.trace.append(
            models.EpochRecord(
                epoch=epoch,
                rank=trainer.rank,
                start_unix_ns=self.start_unix_ns,
                duration_s=duration,
                steps=self.steps,
                samples=samples,
                tokens=samples * config.sequence_length,
                train_loss_mean=sum(self.losses) / len(self.losses),
                eval_loss=eval_loss,
                eval_accuracy=eval_accuracy,
            )
        )
        if complete:
            self.instruments.measurements.completed_epoch_seconds.append(duration)
        self._open()


def train(
    trainer: Trainer,
    instruments: RankInstruments,
    meter: StepMeter,
    epochs: EpochAccount,
    progress: ProgressWriter,
    checkpoint_dir: Path,
) -> None:
    """Every planned optimizer step, measured; a checkpoint every checkpoint_every steps (rank 0)."""
    config = trainer.config
    samples = config.micro_batch_size * config.gradient_accumulation_steps
    for step in range(trainer.planned_steps):
        with meter.step(samples, samples * config.sequence_length, epoch=step // epochs.steps_per_epoch) as measured:
            outcome = trainer.step(step, measured)
        loss = outcome.loss  # read (.item(), a sync) only after the step's clock stopped
        if config.checkpoint_every and (step + 1) % config.checkpoint_every == 0 and trainer.rank == 0:
            path = checkpoint_dir / f"step-{step}.pt"
            with instruments.checkpoint(path, step):
                trainer.save_checkpoint(path, step)
            path.unlink()
        epochs.after_step(step, loss)
        progress.step(step, loss, meter.last_record.duration_s)


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    # SIGTERM (the launcher died, or torchrun stops its ranks) ends the run as an exit, not a sudden
    # death, so that the checkpoint folder is removed on the way out
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    place = RankPlace.from_environment()
    config = config_from_json(args.config).for_world(place.world_size)
    progress = ProgressWriter(args.progress if place.rank == 0 else None)
    progress.phase("set-up")

    # ---------------------------------------------------------------- processes, devices, model
    backend = set_up_process(config, place, args.replay)
    torch.manual_seed(args.seed)
    dataset = load_dataset(config.data, config.sequence_length, config.eval_fraction)
    order = FeedingOrder(dataset, config.global_batch_size, config.data_seed)
    trainer = Trainer(config, backend, order, place.rank, place.world_size)

    # ---------------------------------------------------------------- sensors and traces
    # The launcher counts FLOPs on a meta-device copy, outside the run (reference_runner/model.py).
    instruments = RankInstruments(backend, place, config)
    progress.steps = trainer.planned_steps
    if instruments.measures_idle:
        progress.phase("idle baseline")
    instruments.measure_idle()
    if place.world_size > 1:
        dist.barrier()
    writer = BundleWriter(args.bundle)
    meter = instruments.open(writer, args.run_id)
    epochs = EpochAccount(trainer, dataset, instruments, writer.open_trace(args.run_id, "epoch", place.per_rank))

    # ---------------------------------------------------------------- the run
    with scratch_folder("checkpoint") as checkpoint_dir:
        instruments.start()
        train(trainer, instruments, meter, epochs, progress, Path(checkpoint_dir))
        progress.phase("writing")
        if place.rank == 0:
            with instruments.in_phase("evaluation"):
                measurements = instruments.measurements
                measurements.final_eval_loss, measurements.final_accuracy = trainer.evaluate(dataset)
        instruments.stop()
        epochs.trace.close()

    # ---------------------------------------------------------------- gather on rank 0, hand over
    result = instruments.gather(args.run_id, args.seed, trainer.planned_steps)
    if place.world_size > 1:
        dist.destroy_process_group()
    if result is not None:
        args.result.write_text(result.to_json())


if __name__ == "__main__":
    main()
