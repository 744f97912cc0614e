"""`TrainmarkCallback` for Hugging Face `transformers.Trainer`: one optimizer step of the Trainer is one
measured step of `trainmark.track`.

    trainer = Trainer(model=model, args=args, train_dataset=data,
                      callbacks=[TrainmarkCallback(submitter="me", sequence_length=128)])

What it sees: the model's forward (a forward hook marks the forward phase, counts the samples
and tokens of `input_ids` and keeps the loss the model returns); the time from the end of a
forward to the next forward or to the optimizer is the backward phase (it holds the loss
scaling and gradient clipping the Trainer does there); the optimizer phase runs from
`on_pre_optimizer_step` to `on_optimizer_step`.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import TrainerCallback

from trainmark.reference_runner.track import Run, track


class TrainmarkCallback(TrainerCallback):
    """Measure a `Trainer` run into a bundle. Keyword arguments are `trainmark.track`'s; `model`
    defaults to the Trainer's model and `batch_size` to per_device_train_batch_size x
    gradient_accumulation_steps (this process's samples per optimizer step)."""

    def __init__(self, **track_arguments: Any) -> None:
        self.track_arguments = track_arguments
        self.run: Run | None = None
        self._hooks: list = []
        self._losses: list[torch.Tensor] = []
        self._samples = 0
        self._tokens = 0

    # ------------------------------------------------------------ the model's forward

    def _before_forward(self, module, args, kwargs) -> None:
        step = self.run.meter.current if self.run is not None else None
        if step is None or not module.training:
            return
        step.switch_phase("forward")
        inputs = kwargs.get("input_ids", args[0] if args else None)
        if isinstance(inputs, torch.Tensor):
            self._samples += inputs.shape[0]
            self._tokens += inputs.numel()

    def _after_forward(self, module, args, kwargs, output) -> None:
        step = self.run.meter.current if self.run is not None else None
        if step is None or not module.training:
            return
        loss = output.get("loss") if hasattr(output, "get") else getattr(output, "loss", None)
        if isinstance(loss, torch.Tensor):
            self._losses.append(loss.detach())
        step.switch_phase("backward")

    # ------------------------------------------------------------ the Trainer's events

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        arguments = dict(self.track_arguments)
        arguments.setdefault("model", model)
        arguments.setdefault("batch_size", args.per_device_train_batch_size * args.gradient_accumulation_steps)
        arguments.setdefault("gradient_accumulation_steps", args.gradient_accumulation_steps)
        arguments.setdefault("seed", args.seed)
        if optimizer is not None:
            arguments.setdefault("optimizer", optimizer)
        if getattr(model, "config", None) is not None:
            arguments.setdefault("name", getattr(model.config, "model_type", None) or type(model).__name__)
            if getattr(model.config, "is_encoder_decoder", False):
                arguments.setdefault("architecture_family", "encoder_decoder_transformer")
        for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):  # the name changed in 5.x
            if hasattr(type(model), name):
                arguments.setdefault("activation_checkpointing", bool(getattr(model, name)))
                break
        self.run = track(**arguments)
        self.run.__enter__()
        target = arguments["model"]
        self._hooks = [
            target.register_forward_pre_hook(self._before_forward, with_kwargs=True),
            target.register_forward_hook(self._after_forward, with_kwargs=True),
        ]

    def on_step_begin(self, args, state, control, **kwargs):
        self._losses, self._samples, self._tokens = [], 0, 0
        self.run.begin_step()

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.run.meter.current.switch_phase("optimizer")

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.run.meter.current.switch_phase(None)

    def on_step_end(self, args, state, control, **kwargs):
        step = self.run.meter.current
        if self._losses:
            step.loss = torch.stack([loss.float() for loss in self._losses]).mean()
        self.run.end_step(
            samples=self._samples or None,
            tokens=self._tokens if self._tokens and self.run.config.sequence_length else None,
        )

    def on_train_end(self, args, state, control, **kwargs):
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        run, self.run = self.run, None
        run.__exit__(None, None, None)
