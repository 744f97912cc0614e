"""`TrainmarkCallback` for Lightning: each training batch (one optimizer step) is one measured step of
`trainmark.track`.

    trainer = lightning.Trainer(max_steps=100, callbacks=[TrainmarkCallback(batch_size=32, submitter="me")])

Phases follow Lightning's hooks: forward from `on_train_batch_start` to `on_before_backward`,
backward to `on_after_backward`, optimizer from `on_before_optimizer_step` to
`on_train_batch_end` (gradient clipping happens inside it). The loss is what `training_step`
returned.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.callbacks import Callback

from trainmark.reference_runner.track import Run, track
from trainmark.spec.errors import TrainmarkError


class TrainmarkCallback(Callback):
    """Measure a Lightning `fit` into a bundle. Keyword arguments are `trainmark.track`'s; `model`
    defaults to the LightningModule and `batch_size` to the training dataloader's batch size."""

    def __init__(self, **track_arguments: Any) -> None:
        self.track_arguments = track_arguments
        self.run: Run | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.accumulate_grad_batches != 1:
            raise TrainmarkError(
                "TrainmarkCallback measures one optimizer step per batch: use "
                "accumulate_grad_batches=1, or trainmark.track in a manual loop"
            )
        arguments = dict(self.track_arguments)
        arguments.setdefault("model", pl_module)
        if "batch_size" not in arguments:
            batch_size = getattr(trainer.train_dataloader, "batch_size", None)
            if not batch_size:
                raise TrainmarkError(
                    "TrainmarkCallback cannot read the training dataloader's batch size: pass "
                    "TrainmarkCallback(batch_size=...)"
                )
            arguments["batch_size"] = batch_size
        if "optimizer" not in arguments and trainer.optimizers:
            arguments["optimizer"] = trainer.optimizers[0]
        self.run = track(**arguments)
        self.run.__enter__()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.run.begin_step().switch_phase("forward")

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self.run.meter.current.switch_phase("backward")

    def on_after_backward(self, trainer, pl_module) -> None:
        self.run.meter.current.switch_phase(None)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.run.meter.current.switch_phase("optimizer")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            self.run.meter.current.loss = loss.detach()
        self.run.end_step()

    def on_train_end(self, trainer, pl_module) -> None:
        run, self.run = self.run, None
        if run is not None:
            run.__exit__(None, None, None)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        run, self.run = self.run, None
        if run is not None:
            run.__exit__(type(exception), exception, exception.__traceback__)
