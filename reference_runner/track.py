"""`trainmark.track`: measure your own training loop, by the code that measures the reference runner.

    import trainmark

    with trainmark.track(model=model, batch_size=64, submitter="me", out="bundle/") as run:
        for inputs, targets in loader:
            with run.step(samples=64) as step:
                with step.phase("forward"):
                    loss = loss_fn(model(inputs), targets)
                with step.phase("backward"):
                    loss.backward()
                with step.phase("optimizer"):
                    opt.step(); opt.zero_grad()
                step.loss = loss.item()

The measurement is the reference runner's own, by the same code: reference_runner/instruments.py
(sensors, idle baseline, sampler thread, profiler and allocator windows, the step meter of
stepping.py, checkpoint footprint, gathering the ranks' measurements), the system and software
probe (metadata.py), the run summary (summary.py) and the bundle README (readme.py). This module
only drives them from the user's loop and infers what the loop does not declare (the model's
parameters, the optimizer, the precision). Where the bundle goes: `out=`, else the environment that
`trainmark repeat` sets (TRAINMARK_BUNDLE, TRAINMARK_RUN_ID, TRAINMARK_SEED); under `repeat` the
manifest is written by `repeat` after the last run, otherwise by this run when it ends.

Measurement boundaries: a step runs from `run.step()` entering to its exit; each phase from
`step.phase(name)` entering to its exit. Each boundary synchronizes the device (so a duration is
the device's work) and resets the peak-memory window. Loss, learning rate and the profiler's
bookkeeping are read after the step's clock stopped.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the profiler's start/stop chatter on stderr

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.optim.optimizer import register_optimizer_step_post_hook  # noqa: E402
from trainmark.reference_runner import metadata  # noqa: E402
from trainmark.reference_runner.devices import CpuBackend, CudaBackend, DeviceBackend  # noqa: E402
from trainmark.reference_runner.instruments import RankInstruments, RankPlace  # noqa: E402
from trainmark.reference_runner.measurements import WorkerResult  # noqa: E402
from trainmark.reference_runner.model import parameter_counts  # noqa: E402
from trainmark.reference_runner.readme import bundle_readme  # noqa: E402
from trainmark.reference_runner.stepping import Step, StepMeter, StepTimer  # noqa: E402
from trainmark.reference_runner.summary import RunSummary, adopt_worker_view, iso  # noqa: E402
from trainmark.spec import SCHEMA_VERSION, producer_version  # noqa: E402
from trainmark.spec.bundle import BundleWriter, close_run_from_traces  # noqa: E402
from trainmark.spec.errors import TrainmarkError  # noqa: E402
from trainmark.spec.jsontext import load_document  # noqa: E402
from trainmark.spec.layout import DRAFT_NAME, MANIFEST_NAME, trace_path  # noqa: E402

ENV_BUNDLE, ENV_RUN_ID, ENV_SEED = "TRAINMARK_BUNDLE", "TRAINMARK_RUN_ID", "TRAINMARK_SEED"
ENV_REFUSAL = "TRAINMARK_REFUSAL_FILE"
"""Where `trainmark repeat` wants to hear that a run refused to join the bundle (and why)."""

ARCHITECTURES = (
    "decoder_transformer",
    "encoder_transformer",
    "encoder_decoder_transformer",
    "mixture_of_experts",
    "convolutional",
    "recurrent",
    "state_space",
    "diffusion",
    "other",
)
PRECISIONS = ("fp32", "tf32", "bf16_autocast", "fp16_autocast", "bf16", "fp16", "fp64")
ANALYTICAL_TOKENS = (
    "6 N FLOPs per token, N the model's trainable parameters (Kaplan et al. 2020, 'Scaling Laws for "
    "Neural Language Models', sec. 2.1: forward 2 N, backward 4 N; the attention term is left out "
    "because trainmark.track does not know the model's layers and width)"
)
ANALYTICAL_SAMPLES = (
    "6 N FLOPs per sample, N the model's trainable parameters (forward 2 N, backward 4 N; exact for "
    "a network whose every weight takes part in one multiply-add per sample, such as an MLP; it "
    "undercounts weights reused within a sample, as in convolutions and recurrence)"
)
COUNTED_SOURCE = (
    "torch.utils.flop_counter.FlopCounterMode around one whole step of the training loop (the last "
    "warm-up step, so no measured step pays for it), x world size"
)
REPEAT_FIELDS = (
    ("model", "name"),
    ("model", "architecture_family"),
    ("model", "parameters_total", "value"),
    ("training", "global_batch_size"),
    ("training", "micro_batch_size"),
    ("training", "gradient_accumulation_steps"),
    ("training", "sequence_length"),
    ("training", "world_size"),
    ("system", "node_count"),
    ("system", "devices", 0, "kind"),
    ("system", "devices", 0, "vendor"),
    ("system", "devices", 0, "model"),
    ("system", "hosts", 0, "hostname"),
    ("system", "hosts", 0, "cpu_model"),
)
"""What every run of one bundle must share: the configuration and the hardware."""


@dataclass(frozen=True)
class TrackConfig:
    """What `trainmark.track` was told, validated when built (field meanings: `track`'s docstring).

    It has the attribute names of the runner's RunConfig that the shared metadata and summary
    code read (global_batch_size, sequence_length, precision, idle_seconds, ...).
    """

    batch_size: int
    world_size: int = 1
    sequence_length: int | None = None
    gradient_accumulation_steps: int = 1
    name: str = "model"
    architecture_family: str = "other"
    precision: str = "fp32"
    dataset: str | None = None
    submitter: str | None = None
    description: str | None = None
    idle_seconds: float = 5.0
    sample_rate_hz: float = 10.0
    warmup_steps: int = 5
    profile_first_step: int = 10
    profile_steps: int = 3
    allocation_steps: int = 2
    peak_flops_per_s: float = 0.0
    ambient_temperature_c: float | None = None
    cooling_method: str | None = None
    checkpoint_every: int = 0  # observed, not declared: set from run.checkpoint() calls at the end

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or self.batch_size < 1:
            problems.append(
                f"batch_size must be a whole number of samples per optimizer step, at least 1 (got {self.batch_size!r})"
            )
        if self.sequence_length is not None and (not isinstance(self.sequence_length, int) or self.sequence_length < 1):
            problems.append(
                f"sequence_length must be None (no token sequences) or at least 1 (got {self.sequence_length!r})"
            )
        if self.gradient_accumulation_steps < 1 or (
            isinstance(self.batch_size, int) and self.batch_size % self.gradient_accumulation_steps
        ):
            problems.append(
                f"gradient_accumulation_steps ({self.gradient_accumulation_steps}) must be at least 1 "
                f"and divide batch_size ({self.batch_size})"
            )
        if self.architecture_family not in ARCHITECTURES:
            problems.append(
                f"architecture_family must be one of {', '.join(ARCHITECTURES)} (got {self.architecture_family!r})"
            )
        if self.precision not in PRECISIONS:
            problems.append(
                f"precision must be one of {', '.join(PRECISIONS)}, or None to detect it (got {self.precision!r})"
            )
        if self.idle_seconds < 0:
            problems.append("idle_seconds must not be negative (0: no idle baseline)")
        if not 0 < self.sample_rate_hz <= 1000:
            problems.append(f"sample_rate_hz must be in (0, 1000] (got {self.sample_rate_hz})")
        if min(self.warmup_steps, self.profile_first_step, self.profile_steps, self.allocation_steps) < 0:
            problems.append("warmup_steps, profile_first_step, profile_steps and allocation_steps must not be negative")
        if self.profile_steps and self.profile_first_step < self.warmup_steps:
            problems.append(
                f"profile_first_step ({self.profile_first_step}) must come after the warm-up "
                f"({self.warmup_steps} steps)"
            )
        if self.peak_flops_per_s < 0:
            problems.append("peak_flops_per_s must not be negative (0: unknown)")
        if self.cooling_method not in (None, "air", "direct_liquid", "immersion", "hybrid"):
            problems.append(
                f"cooling_method must be air, direct_liquid, immersion or hybrid (got {self.cooling_method!r})"
            )
        if problems:
            raise TrainmarkError("trainmark.track: " + "; ".join(problems))

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.world_size

    @property
    def micro_batch_size(self) -> int:
        return self.batch_size // self.gradient_accumulation_steps


def _environment_int(name: str) -> int | None:
    text = os.environ.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise TrainmarkError(f"the environment variable {name}={text!r} must be a whole number") from None


def _dig(document: Any, path: tuple) -> Any:
    for key in path:
        try:
            document = document[key]
        except (KeyError, IndexError, TypeError):
            return None
    return document


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module under DDP/FSDP-style wrappers and torch.compile."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def _unwrap_optimizer(optimizer):
    """The torch optimizer under the wrappers of accelerate (`.optimizer`) and Lightning (`._optimizer`)."""
    while optimizer is not None:
        inner = getattr(optimizer, "optimizer", None) or getattr(optimizer, "_optimizer", None)
        if isinstance(optimizer, torch.optim.Optimizer) and not isinstance(inner, torch.optim.Optimizer):
            return optimizer
        if inner is None:
            raise TrainmarkError(
                f"trainmark.track(optimizer=...) got a {type(optimizer).__name__}, which is not a "
                "torch.optim.Optimizer and wraps none"
            )
        optimizer = inner
    return optimizer


def optimizer_block(optimizer: torch.optim.Optimizer) -> dict:
    """training.optimizer: the optimizer's class and its first parameter group's numeric settings."""
    hyperparameters = []
    group = optimizer.param_groups[0] if optimizer.param_groups else {}
    for name, value in group.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if name == "betas" and isinstance(value, (tuple, list)) and len(value) == 2:
            hyperparameters += [
                {"name": "beta1", "value": float(value[0])},
                {"name": "beta2", "value": float(value[1])},
            ]
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            hyperparameters.append({"name": "learning_rate" if name == "lr" else name, "value": float(value)})
    return {"name": type(optimizer).__name__, "hyperparameters": hyperparameters}


class Run:
    """A tracked training run (what `trainmark.track` returns): a context manager around the loop."""

    def __init__(
        self,
        model: torch.nn.Module,
        config: TrackConfig,
        out: Path | None,
        seed: int | None,
        optimizer: torch.optim.Optimizer | None,
        precision_declared: bool,
        counts_flops: bool,
        activation_checkpointing: bool | None,
    ) -> None:
        self.model = model
        self.config = config
        self.out_argument = out
        self.seed_argument = seed
        self.optimizer = _unwrap_optimizer(optimizer)
        self.precision_declared = precision_declared
        self.counts_flops = counts_flops
        self.activation_checkpointing = activation_checkpointing
        self.accuracy: float | None = None
        self._hooks: list = []
        self._entered = False
        self._open_step = None
        self.meter: StepMeter | None = None
        self._optimizer_block: dict | None = None

    # ------------------------------------------------------------ where the bundle goes

    @property
    def steps_done(self) -> int:
        """Optimizer steps measured so far."""
        return self.meter.steps_done if self.meter is not None else 0

    def _resolve_destination(self) -> None:
        environment_bundle = os.environ.get(ENV_BUNDLE) or None
        if self.out_argument is not None:
            if environment_bundle and Path(environment_bundle).resolve() != Path(self.out_argument).resolve():
                raise TrainmarkError(
                    f"trainmark.track(out={str(self.out_argument)!r}) but {ENV_BUNDLE} is "
                    f"{environment_bundle!r} (set by trainmark repeat): drop out= so that every "
                    "run of the repeat lands in its bundle"
                )
            self.root = Path(self.out_argument)
        elif environment_bundle:
            self.root = Path(environment_bundle)
        else:
            raise TrainmarkError(
                "trainmark.track does not know where to write the bundle: pass out='DIR', or start "
                "the script under `trainmark repeat -n 3 --out DIR -- python script.py`, which sets "
                f"{ENV_BUNDLE}, {ENV_RUN_ID} and {ENV_SEED}"
            )
        self.run_id = os.environ.get(ENV_RUN_ID) or "run-1"
        # Under `trainmark repeat` the run joins a bundle that repeat closes after its last run.
        self.managed = bool(os.environ.get(ENV_RUN_ID))
        self.seed = self.seed_argument if self.seed_argument is not None else _environment_int(ENV_SEED)

    # ------------------------------------------------------------ the manifest's blocks

    def _model_block(self) -> dict:
        core = _unwrap(self.model)
        block = {
            "name": self.config.name,
            "architecture_family": self.config.architecture_family,
            **metadata.parameter_metrics(core),
            "precision_policy": self.config.precision,
            "description": f"{type(core).__module__}.{type(core).__qualname__}, measured with trainmark.track",
        }
        if self.activation_checkpointing is not None:
            block["activation_checkpointing"] = self.activation_checkpointing
        if self.config.sequence_length:
            block["context_length"] = self.config.sequence_length
        return block

    def _training_block(self) -> dict:
        config = self.config
        wrapped = type(self.model).__name__
        strategy = (
            wrapped
            if wrapped in ("DistributedDataParallel", "FullyShardedDataParallel")
            else ("single process" if config.world_size == 1 else f"{config.world_size} processes")
        )
        if self._optimizer_block is None and self.optimizer is not None:
            self._optimizer_block = optimizer_block(self.optimizer)  # as the run starts (schedulers change it)
        optimizer = self._optimizer_block or {
            "name": "not seen: trainmark.track had not seen an optimizer step (pass optimizer=)"
        }
        block = {
            "global_batch_size": config.global_batch_size,
            "micro_batch_size": config.micro_batch_size,
            "gradient_accumulation_steps": config.gradient_accumulation_steps,
            "optimizer": optimizer,
            "world_size": config.world_size,
            "max_steps": self.steps_done,
            "parallelism": {"strategy": strategy, "data_parallel": config.world_size},
            "warmup_steps_excluded": config.warmup_steps,
        }
        if config.sequence_length:
            block["sequence_length"] = config.sequence_length
        if config.checkpoint_every:
            block["checkpoint_interval_steps"] = config.checkpoint_every
        return block

    def _dataset_block(self) -> dict:
        reason = "trainmark.track does not see the batches the loop feeds, so it takes no snapshot of them"
        if self.config.dataset:
            return {"name": self.config.dataset, "unavailable_reason": reason}
        return {"name": "not named (trainmark.track(dataset=...) names it)", "unavailable_reason": reason}

    def _software_block(self) -> dict:
        block = metadata.software(self.config, self.config.world_size, self.backend.software(), self.device.type)
        compiled = type(self.model).__name__ == "OptimizedModule"
        block["compiler"] = (
            "torch.compile"
            if compiled
            else "eager as far as trainmark.track sees (the model it was given is not a torch.compile module)"
        )
        if self.config.world_size > 1:
            block["distributed_backend"] = dist.get_backend()
        return block

    def _draft(self) -> dict:
        config = self.config
        instruments = self.instruments
        channels = [
            spec.as_channel(config.sample_rate_hz)
            for meter in instruments.meters
            for spec in (meter.power_channel, meter.energy_channel)
            if spec
        ]
        channels.append(instruments.probe.channel.as_channel(config.sample_rate_hz))
        script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] not in ("", "-c") else Path.cwd()
        methodology = metadata.methodology(
            config, channels, bool(instruments.idle) and instruments.energy_reason is None, instruments.energy_reason
        )
        methodology["flop_counting"] = (
            f"analytical: {self._analytical_source()}; counted: {COUNTED_SOURCE}"
            if self.counts_flops
            else f"analytical: {self._analytical_source()}"
        )
        methodology["notes"] = (
            f"measured with trainmark.track (trainmark {producer_version()}) around the user's own "
            f"training loop in {script.name}; bundle schema {SCHEMA_VERSION}"
        )
        node = self.place.node
        nodes = max(1, config.world_size // max(1, self.place.local_world))
        hosts = [metadata.host(index) if index == node else {"node": index} for index in range(nodes)]
        draft = {
            "schema_version": SCHEMA_VERSION,
            "producer": {"name": "trainmark", "version": producer_version()},
            "created_at": iso(time.time_ns()),
            "description": config.description
            or f"{config.name} trained by {script.name}, measured with "
            f"trainmark.track ({config.world_size} process(es))",
            "system": {
                "node_count": nodes,
                "hosts": hosts,
                "devices": [self.backend.describe(instruments.device_index, node)],
            },
            "software": self._software_block(),
            "model": self._model_block(),
            "training": self._training_block(),
            "dataset": self._dataset_block(),
            "code": metadata.code(script),
            "environment": metadata.environment(config, "trainmark.track(ambient_temperature_c=...)"),
            "methodology": methodology,
            "runs": [],
        }
        if config.submitter:
            draft["submitter"] = {"name": config.submitter}
        if config.world_size > 1:
            draft["system"]["interconnect"] = {
                "intra_node": "shared memory and loopback (one host)" if nodes == 1 else "as the cluster provides"
            }
        return draft

    def _analytical_source(self) -> str:
        return ANALYTICAL_TOKENS if self.config.sequence_length else ANALYTICAL_SAMPLES

    def analytical_flops_per_step(self) -> float:
        """6 N per token (or per sample without sequences) x the global batch (see the sources above)."""
        _, trainable = parameter_counts(_unwrap(self.model))
        units = self.config.global_batch_size * (self.config.sequence_length or 1)
        return 6.0 * trainable * units

    def _open_bundle(self) -> None:
        """Rank 0 creates the bundle (or joins the one `trainmark repeat` keeps) and opens this run."""
        draft = self._draft()
        if self.managed:
            if not self.root.is_dir():
                raise TrainmarkError(
                    f"{self.root} does not exist: under trainmark repeat the bundle folder is "
                    "created by repeat; run the script through `trainmark repeat`"
                )
            if (self.root / MANIFEST_NAME).exists():
                raise TrainmarkError(
                    f"{self.root} already has a manifest.json: that bundle is closed; choose a new --out"
                )
            writer = BundleWriter(self.root)
            if (self.root / DRAFT_NAME).exists():
                earlier = load_document((self.root / DRAFT_NAME).read_bytes(), file=DRAFT_NAME)
                self._check_same_configuration(earlier, draft)
                if any(run.get("run_id") == self.run_id for run in earlier["runs"]):
                    raise TrainmarkError(f"{self.root} already has a run {self.run_id}")
                earlier["runs"].append(
                    {
                        "run_id": self.run_id,
                        **({"seed": self.seed} if self.seed is not None else {}),
                        "started_at": iso(time.time_ns()),
                    }
                )
                draft = earlier
            else:
                draft["runs"].append(self._opened_run())
        else:
            writer = BundleWriter.create(self.root)
            draft["runs"].append(self._opened_run())
        self.writer = writer
        self.document = draft
        writer.write_draft(draft)

    def _opened_run(self) -> dict:
        entry = {"run_id": self.run_id, "started_at": iso(time.time_ns())}
        if self.seed is not None:
            entry["seed"] = self.seed
        return entry

    def _check_same_configuration(self, earlier: dict, mine: dict) -> None:
        for path in REPEAT_FIELDS:
            first, now = _dig(earlier, path), _dig(mine, path)
            if first != now:
                first_run = (earlier.get("runs") or [{}])[0].get("run_id", "the first run")
                message = (
                    f"{self.run_id} differs from {first_run} in {'/'.join(str(p) for p in path)} "
                    f"({now!r} here, {first!r} there): the runs of one bundle must share their configuration "
                    f"and hardware; measure this one into a new bundle (another --out)"
                )
                refusal = os.environ.get(ENV_REFUSAL)
                if refusal:
                    Path(refusal).write_text(message)
                raise TrainmarkError(message)

    # ------------------------------------------------------------ the run

    def __enter__(self) -> Run:
        if self._entered:
            raise TrainmarkError("a trainmark.track run is entered once; start another track() for another run")
        self._entered = True
        config = self.config
        self._resolve_destination()
        place = RankPlace.from_environment()
        if place.world_size != config.world_size:
            raise TrainmarkError(f"WORLD_SIZE is {place.world_size} but the run was set up for {config.world_size}")
        if place.world_size > 1 and not (dist.is_available() and dist.is_initialized()):
            raise TrainmarkError(
                "WORLD_SIZE is above 1 (torchrun) but torch.distributed is not initialized: call "
                "torch.distributed.init_process_group() before trainmark.track"
            )
        self.place, self.rank = place, place.rank
        parameter = next(iter(self.model.parameters()), None)
        if parameter is None:
            raise TrainmarkError("trainmark.track(model=...) got a model without parameters")
        self.device = parameter.device
        if self.device.type not in ("cuda", "cpu"):
            raise TrainmarkError(
                f"trainmark.track measures models on CPUs and GPUs that torch drives as cuda "
                f"(NVIDIA, or AMD under ROCm), not on {self.device.type}"
            )
        self.backend: DeviceBackend = (
            CudaBackend(self.device.index or 0) if self.device.type == "cuda" else CpuBackend(config.peak_flops_per_s)
        )
        # the reference runner's measurement path (reference_runner/instruments.py), driven from the user's loop
        self.instruments = RankInstruments(
            self.backend,
            place,
            config,
            flop_count_step=max(0, config.warmup_steps - 1) if self.counts_flops else None,
            flop_scale=config.world_size,
        )
        self.instruments.measure_idle()

        if self.rank == 0:
            self._open_bundle()
        if place.world_size > 1:
            dist.barrier()  # rank 0 has created the bundle before any rank opens it
        if self.rank != 0:
            self.writer = BundleWriter(self.root)  # its lock needs the folder rank 0 made
        self.meter = self.instruments.open(self.writer, self.run_id)
        if not self.counts_flops:
            self.meter.counted_reason = "not counted: trainmark.track(count_flops=False)"
        self._checkpoints_steps: list[int] = []

        # What the loop does not say, trainmark.track sees: the optimizer's steps and the precision.
        self._hooks.append(register_optimizer_step_post_hook(self._optimizer_stepped))
        if not self.precision_declared:
            self._hooks.append(self.model.register_forward_pre_hook(self._first_forward))
        self.instruments.start()
        return self

    def _optimizer_stepped(self, optimizer, args, kwargs) -> None:
        if self.optimizer is None:
            self.optimizer = optimizer
            self._optimizer_block = optimizer_block(optimizer)
        if optimizer is self.optimizer:
            step = self.meter.current
            if step is not None:
                step.updated = True
                step.learning_rate = optimizer.param_groups[0].get("lr") if optimizer.param_groups else None

    def _first_forward(self, module, args) -> None:
        device_type = self.device.type
        parameter_dtype = next(iter(module.parameters())).dtype
        if torch.is_autocast_enabled(device_type):
            dtype = torch.get_autocast_dtype(device_type)
            precision = {torch.bfloat16: "bf16_autocast", torch.float16: "fp16_autocast"}.get(dtype, "fp32")
        else:
            precision = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float64: "fp64"}.get(
                parameter_dtype, "fp32"
            )
        object.__setattr__(self.config, "precision", precision)
        self._hooks.pop().remove()  # once is enough: the hook costs nothing after the first forward

    def step(self, samples: int | None = None, tokens: int | None = None) -> StepTimer:
        """Measure one optimizer step: `with run.step() as step:` gives a `Step`
        (reference_runner/stepping.py). `samples`: what this process trained on in it (default
        batch_size); `tokens`: default samples x sequence_length (None without sequences)."""
        samples = self.config.batch_size if samples is None else samples
        if tokens is None and self.config.sequence_length:
            tokens = samples * self.config.sequence_length
        # with an optimizer known, a step is not an update until the optimizer hook says so
        return self.meter.step(samples, tokens, updated=False if self.optimizer is not None else None)

    def begin_step(self, samples: int | None = None, tokens: int | None = None) -> Step:
        """For callbacks: `run.step()` opened now and closed by `end_step`."""
        self._open_step = self.step(samples, tokens)
        return self._open_step.__enter__()

    def end_step(self, samples: int | None = None, tokens: int | None = None) -> None:
        """For callbacks: close the step `begin_step` opened; `samples`/`tokens` replace what it was
        told when they became known during the step."""
        opened, self._open_step = self._open_step, None
        if opened is None:
            raise TrainmarkError("end_step() without begin_step()")
        step = self.meter.current
        step.switch_phase(None)
        if samples is not None:
            step.samples = samples
        if tokens is not None:
            step.tokens = tokens
        opened.__exit__(None, None, None)

    @contextlib.contextmanager
    def checkpoint(self, path: str | os.PathLike):
        """Measure saving a checkpoint: `with run.checkpoint("ckpt.pt"): torch.save(state, "ckpt.pt")`.
        Records the seconds the block took (device synchronized first, file flushed to disk after)
        and the size of `path` (a file, or every file under a folder)."""
        with self.instruments.checkpoint(path, self.steps_done - 1):
            yield
        if self.rank == 0:
            self._checkpoints_steps.append(self.steps_done)

    def __exit__(self, kind, error, traceback) -> None:
        self._open_step = None  # a step a callback left open when training failed
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        self.instruments.stop(wait_for_ranks=kind is None)
        if kind is not None:
            self._close_failed(kind, error)
            return
        result = self.instruments.gather(self.run_id, self.seed, self.steps_done)
        if result is not None:
            self._close_completed(result)

    def _observed_interval(self) -> int:
        steps = self._checkpoints_steps
        if len(steps) >= 2:
            gaps = [b - a for a, b in zip(steps, steps[1:])]
            return max(1, round(sum(gaps) / len(gaps)))
        return max(1, steps[0]) if steps else 0

    def _refresh(self) -> None:
        """What became known during the run: precision, optimizer, steps, checkpoint interval."""
        object.__setattr__(self.config, "checkpoint_every", self._observed_interval())
        document = self.document
        document["model"]["precision_policy"] = self.config.precision
        document["software"] = self._software_block()
        document["training"] = self._training_block()

    def _close_completed(self, result: WorkerResult) -> None:
        self._refresh()
        adopt_worker_view(self.document, result)
        summary = TrackSummary(self, result)
        entry = summary.run_entry()
        if self.seed is None:
            entry.pop("seed")
        self.document["runs"][-1] = entry
        self._write()

    def _close_failed(self, kind, error) -> None:
        if self.rank != 0:
            return
        self._refresh()
        status = "interrupted" if issubclass(kind, KeyboardInterrupt) else "failed"
        reason = f"the training loop raised {kind.__name__}: {error}"[:2000]
        self.document["runs"][-1] = close_run_from_traces(self.root, self.document["runs"][-1], status, reason)
        self._write()

    def _write(self) -> None:
        self.document["created_at"] = iso(time.time_ns())
        if self.managed:
            self.writer.write_draft(self.document)  # trainmark repeat writes the manifest after its last run
            return
        self.writer.write_document("README.md", bundle_readme(self.document))
        _, self.bundle_id = self.writer.finish(self.document)


class TrackSummary(RunSummary):
    """The runner's run summary, told how trainmark.track counted FLOPs and what the loop reported."""

    def __init__(self, run: Run, result: WorkerResult) -> None:
        per_rank = 0 if run.config.world_size > 1 else None
        super().__init__(
            run.config,
            result,
            run.analytical_flops_per_step(),
            run.meter.flops_counted,
            trace_path(run.run_id, "step", per_rank),
            trace_path(run.run_id, "kernel_breakdown", per_rank),
        )
        self.run = run
        self.analytical_source = run._analytical_source()
        self.counted_source = COUNTED_SOURCE
        self.counted_reason = run.meter.counted_reason

    def run_entry(self) -> dict:
        entry = super().run_entry()
        replacements = {}
        if self.run.accuracy is None:
            replacements["final_accuracy"] = {
                "name": "final_accuracy",
                "unit": "1",
                "value": None,
                "scope": "global",
                "unavailable_reason": "the training loop reported no accuracy (set run.accuracy)",
            }
        else:
            replacements["final_accuracy"] = {
                "name": "final_accuracy",
                "unit": "1",
                "value": float(self.run.accuracy),
                "method": "declared",
                "source": "run.accuracy, set by the training loop",
                "tool": self.tool,
                "scope": "global",
            }
        checkpoints = self.rank0.checkpoints
        if not checkpoints:
            reason = "the training loop saved no checkpoint through run.checkpoint(path)"
            for name, unit in (("checkpoint_size", "By"), ("checkpoint_interval", "{step}"), ("checkpoint_time", "s")):
                replacements[name] = {
                    "name": name,
                    "unit": unit,
                    "value": None,
                    "scope": "global",
                    "unavailable_reason": reason,
                }
        else:
            replacements["checkpoint_interval"] = {
                "name": "checkpoint_interval",
                "unit": "{step}",
                "value": float(self.config.checkpoint_every),
                "method": "derived",
                "source": "mean number of steps between the run.checkpoint() calls",
                "tool": self.tool,
                "scope": "global",
            }
        entry["metrics"] = [
            replacements.get(metric["name"], metric) if metric.get("scope") == "global" else metric
            for metric in entry["metrics"]
        ]
        return entry


def track(
    *,
    model: torch.nn.Module,
    batch_size: int,
    sequence_length: int | None = None,
    submitter: str | None = None,
    out: str | os.PathLike | None = None,
    name: str | None = None,
    dataset: str | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    seed: int | None = None,
    precision: str | None = None,
    architecture_family: str = "other",
    gradient_accumulation_steps: int = 1,
    activation_checkpointing: bool | None = None,
    description: str | None = None,
    idle_seconds: float = 5.0,
    sample_rate_hz: float = 10.0,
    warmup_steps: int = 5,
    profile_first_step: int = 10,
    profile_steps: int = 3,
    allocation_steps: int = 2,
    count_flops: bool = True,
    peak_flops_per_s: float = 0.0,
    ambient_temperature_c: float | None = None,
    cooling_method: str | None = None,
) -> Run:
    """Measure a training loop into a bundle; use as `with trainmark.track(...) as run:`.

    model: the module being trained (on a CPU or a CUDA device; DDP-wrapped is fine).
    batch_size: samples one optimizer step of this process trains on (the global batch is
        batch_size x world size); gradient_accumulation_steps: micro-batches in it.
    sequence_length: tokens per sample, or None when the model takes no token sequences.
    submitter: who reports the bundle. out: the bundle folder (new or empty); without it the
        environment that `trainmark repeat` sets decides (TRAINMARK_BUNDLE, TRAINMARK_RUN_ID,
        TRAINMARK_SEED), and failing that a TrainmarkError says what to do.
    name, dataset, architecture_family, activation_checkpointing, description: declared facts
        for the manifest. optimizer: read for its class and settings; without it the first
        optimizer step the run sees is used. seed: the seed the script used (default
        TRAINMARK_SEED). precision: None detects it at the first forward (autocast or the
        parameters' dtype).
    idle_seconds: idle-power baseline before the run where an energy sensor exists;
    sample_rate_hz: the power and memory samplers' rate; warmup_steps: leading steps left out of
    throughput statistics; profile_first_step/profile_steps/allocation_steps: the profiler and
    allocator windows (0 steps: none); count_flops: count one warm-up step's FLOPs with
    FlopCounterMode; peak_flops_per_s: a declared peak for utilization on a CPU;
    ambient_temperature_c, cooling_method: declared environment.
    """
    if not isinstance(model, torch.nn.Module):
        raise TrainmarkError(f"trainmark.track(model=...) needs a torch.nn.Module, got {type(model).__name__}")
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    config = TrackConfig(
        batch_size=batch_size,
        world_size=world_size,
        sequence_length=sequence_length,
        gradient_accumulation_steps=gradient_accumulation_steps,
        name=name or type(_unwrap(model)).__name__,
        architecture_family=architecture_family,
        precision=precision or "fp32",
        dataset=dataset,
        submitter=submitter,
        description=description,
        idle_seconds=idle_seconds,
        sample_rate_hz=sample_rate_hz,
        warmup_steps=warmup_steps,
        profile_first_step=profile_first_step,
        profile_steps=profile_steps,
        allocation_steps=allocation_steps,
        peak_flops_per_s=peak_flops_per_s,
        ambient_temperature_c=ambient_temperature_c,
        cooling_method=cooling_method,
    )
    return Run(
        model,
        config,
        Path(out) if out is not None else None,
        seed,
        optimizer,
        precision is not None,
        count_flops,
        activation_checkpointing,
    )
