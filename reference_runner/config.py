"""The runner's configuration: one typed object, validated when built, with presets.

Every knob has a documented meaning; a bad value is refused with a message that names the knob
and says what to change. A config file (TOML or YAML) may set any knob; command-line flags
override the file; presets are just named starting points.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml
from trainmark.spec.errors import TrainmarkError


class ConfigInvalid(TrainmarkError):
    """A configuration value that cannot work; the message names the knob."""


PRECISIONS = ("fp32", "bf16_autocast", "fp16_autocast")
OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("constant", "cosine")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training configuration (one bundle).

    Model: n_layer, n_embd (width), n_head, vocab_size, sequence_length (tokens per sample).
    Batch: global_batch_size = micro_batch_size x gradient_accumulation_steps x world size; the
    global batch is what is trained, and gradient_accumulation_steps 0 (the default) derives the
    accumulation from it once the world size is known (`for_world`).
    Length: max_steps optimizer steps (or epochs over the dataset when max_steps is 0).
    precision: fp32 | bf16_autocast | fp16_autocast (with loss scaling; CUDA only).
    seed: the model's initialization (each run of a bundle gets its own); data_seed: the order
    the data is fed in, the same for every run so that the dataset snapshot is one stream.
    checkpoint_every: save a checkpoint every N optimizer steps (0: never).
    warmup_steps: leading steps flagged warm-up and left out of throughput statistics.
    profile_first_step / profile_steps: the torch.profiler window (kernel breakdown);
    allocation_steps: the following steps, profiled for allocator events (0: none).
    sample_rate_hz: rate of the power and memory samplers; idle_seconds: idle baseline
    measured before each run where an energy sensor exists.
    peak_flops_per_s: a peak to compute utilization against when the device table has none
    (e.g. a CPU); declared by the user and reported as such.
    """

    name: str = "custom"
    n_layer: int = 4
    n_embd: int = 128
    n_head: int = 4
    vocab_size: int = 256
    sequence_length: int = 128
    dropout: float = 0.0
    global_batch_size: int = 16
    micro_batch_size: int = 16
    gradient_accumulation_steps: int = 0
    max_steps: int = 80
    epochs: float = 0.0
    optimizer: str = "adamw"
    learning_rate: float = 3e-3
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.95
    momentum: float = 0.9
    lr_schedule: str = "constant"
    lr_warmup_steps: int = 0
    min_learning_rate: float = 0.0
    grad_clip: float = 1.0
    precision: str = "fp32"
    activation_checkpointing: bool = False
    checkpoint_every: int = 0
    device: str = "auto"
    seed: int = 1234
    data_seed: int = 0
    deterministic: bool = False
    data: str | None = None
    eval_fraction: float = 0.1
    warmup_steps: int = 5
    profile_first_step: int = 10
    profile_steps: int = 3
    allocation_steps: int = 2
    sample_rate_hz: float = 10.0
    idle_seconds: float = 5.0
    peak_flops_per_s: float = 0.0
    ambient_temperature_c: float | None = None
    cooling_method: str | None = None
    submitter: str | None = None

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise ConfigInvalid("; ".join(problems))

    def _problems(self):
        for knob in (
            "n_layer",
            "n_embd",
            "n_head",
            "vocab_size",
            "sequence_length",
            "global_batch_size",
            "micro_batch_size",
        ):
            if getattr(self, knob) < 1:
                yield f"{knob} must be at least 1 (got {getattr(self, knob)})"
        if self.gradient_accumulation_steps < 0:
            yield (
                f"gradient_accumulation_steps must not be negative (got {self.gradient_accumulation_steps}; "
                "0 derives it from global_batch_size)"
            )
        elif self.micro_batch_size >= 1 and self.global_batch_size % self.micro_batch_size:
            yield (
                f"global_batch_size ({self.global_batch_size}) must be a multiple of micro_batch_size "
                f"({self.micro_batch_size})"
            )
        elif self.micro_batch_size * self.gradient_accumulation_steps > self.global_batch_size:
            yield (
                f"micro_batch_size x gradient_accumulation_steps ({self.micro_batch_size} x "
                f"{self.gradient_accumulation_steps}) exceeds global_batch_size ({self.global_batch_size})"
            )
        if self.n_head >= 1 and self.n_embd % self.n_head:
            yield f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})"
        if self.vocab_size < 256 and self.vocab_size >= 1:
            yield f"vocab_size must be at least 256: the data is byte-level (got {self.vocab_size})"
        if self.max_steps < 0 or self.epochs < 0:
            yield "max_steps and epochs must not be negative"
        if self.max_steps == 0 and self.epochs == 0:
            yield "set max_steps (optimizer steps) or epochs (passes over the data)"
        if self.optimizer not in OPTIMIZERS:
            yield f"optimizer must be one of {', '.join(OPTIMIZERS)} (got {self.optimizer!r})"
        if self.lr_schedule not in SCHEDULES:
            yield f"lr_schedule must be one of {', '.join(SCHEDULES)} (got {self.lr_schedule!r})"
        if self.precision not in PRECISIONS:
            yield f"precision must be one of {', '.join(PRECISIONS)} (got {self.precision!r})"
        if self.device not in DEVICES:
            yield f"device must be one of {', '.join(DEVICES)} (got {self.device!r})"
        if self.precision == "fp16_autocast" and self.device == "cpu":
            yield "precision fp16_autocast needs a CUDA device (loss scaling on CPU is not supported); use bf16_autocast"
        if not 0 < self.learning_rate < 10:
            yield f"learning_rate must be in (0, 10) (got {self.learning_rate})"
        if not 0 <= self.dropout < 1:
            yield f"dropout must be in [0, 1) (got {self.dropout})"
        if not 0 < self.eval_fraction < 0.5:
            yield f"eval_fraction must be in (0, 0.5) (got {self.eval_fraction})"
        if self.checkpoint_every < 0:
            yield "checkpoint_every must not be negative (0 disables checkpoints)"
        if self.warmup_steps < 0 or self.profile_first_step < 0 or self.profile_steps < 0 or self.allocation_steps < 0:
            yield "warmup_steps, profile_first_step, profile_steps and allocation_steps must not be negative"
        if self.profile_steps and self.profile_first_step < self.warmup_steps:
            yield (
                f"profile_first_step ({self.profile_first_step}) must come after the warm-up "
                f"({self.warmup_steps} steps): the profiler window must not overlap warm-up"
            )
        if not 0 < self.sample_rate_hz <= 1000:
            yield f"sample_rate_hz must be in (0, 1000] (got {self.sample_rate_hz})"
        if self.idle_seconds < 0:
            yield "idle_seconds must not be negative"
        if self.peak_flops_per_s < 0:
            yield "peak_flops_per_s must not be negative (0: unknown)"
        if not 0 <= self.seed < 2**53 or not 0 <= self.data_seed < 2**53:
            yield "seed and data_seed must be in [0, 2**53)"
        if self.cooling_method not in (None, "air", "direct_liquid", "immersion", "hybrid"):
            yield f"cooling_method must be air, direct_liquid, immersion or hybrid (got {self.cooling_method!r})"

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def for_world(self, world_size: int) -> RunConfig:
        """This configuration on `world_size` processes, its gradient accumulation resolved so that
        micro_batch_size x gradient_accumulation_steps x world_size is exactly global_batch_size."""
        per_step = self.micro_batch_size * world_size
        if self.global_batch_size % per_step:
            raise ConfigInvalid(
                f"global_batch_size ({self.global_batch_size}) cannot be split into micro-batches of "
                f"{self.micro_batch_size} on {world_size} process(es): it must be a multiple of micro_batch_size "
                f"x world size ({per_step})"
            )
        derived = self.global_batch_size // per_step
        if self.gradient_accumulation_steps not in (0, derived):
            raise ConfigInvalid(
                f"gradient_accumulation_steps ({self.gradient_accumulation_steps}) x micro_batch_size "
                f"({self.micro_batch_size}) x world size ({world_size}) is not global_batch_size "
                f"({self.global_batch_size}): set gradient_accumulation_steps={derived}, or 0 to derive it"
            )
        return dataclasses.replace(self, gradient_accumulation_steps=derived)

    def with_overrides(self, **overrides: Any) -> RunConfig:
        """A copy with some knobs changed (validated again)."""
        unknown = set(overrides) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigInvalid(f"unknown knob(s): {', '.join(sorted(unknown))}; see `trainmark run --help`")
        return dataclasses.replace(self, **overrides)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS: dict[str, RunConfig] = {
    # Finishes a run in well under a minute on 2 CPU cores: what `make demo` and CI train.
    "tiny": RunConfig(
        name="tiny",
        n_layer=4,
        n_embd=128,
        n_head=4,
        sequence_length=128,
        global_batch_size=16,
        micro_batch_size=16,
        max_steps=80,
        learning_rate=3e-3,
        idle_seconds=5.0,
    ),
    # Minutes on a CPU, seconds on a GPU.
    "small": RunConfig(
        name="small",
        n_layer=6,
        n_embd=384,
        n_head=6,
        sequence_length=256,
        global_batch_size=32,
        micro_batch_size=16,
        max_steps=200,
        learning_rate=1e-3,
        lr_schedule="cosine",
        lr_warmup_steps=20,
        min_learning_rate=1e-4,
        weight_decay=0.1,
    ),
    # GPT-2 small (124M with a 50304-entry embedding): the calibration baseline, for GPUs.
    "gpt2-125m": RunConfig(
        name="gpt2-125m",
        n_layer=12,
        n_embd=768,
        n_head=12,
        vocab_size=50304,
        sequence_length=1024,
        global_batch_size=32,
        micro_batch_size=16,
        max_steps=100,
        learning_rate=6e-4,
        weight_decay=0.1,
        lr_schedule="cosine",
        lr_warmup_steps=10,
        min_learning_rate=6e-5,
        precision="bf16_autocast",
        profile_first_step=20,
    ),
}


def _coerce(name: str, value: Any) -> Any:
    declared = {f.name: f.type for f in fields(RunConfig)}[name]
    kind = declared.split(" |")[0]  # "float | None" -> "float"
    if value is None:
        if "None" not in declared:
            raise ConfigInvalid(f"{name} needs a value")
        return None
    try:
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "1", "yes", "on"):
                return True
            if str(value).lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError
        return str(value)
    except (TypeError, ValueError):
        raise ConfigInvalid(f"{name} must be {declared.replace('|', 'or')}, not {value!r}") from None


def load_config_file(path: Path) -> dict[str, Any]:
    """The knobs a TOML or YAML file sets (a `[run]` table or top-level keys)."""
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            document = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            document = yaml.safe_load(text)
        else:
            raise ConfigInvalid(f"{path}: config files are .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        raise ConfigInvalid(f"{path}: not valid {path.suffix[1:].upper()}: {error}") from None
    if isinstance(document, dict) and isinstance(document.get("run"), dict):
        document = document["run"]
    if not isinstance(document, dict):
        raise ConfigInvalid(f"{path}: expected a table of knobs")
    return document


def build_config(
    preset: str | None = None, config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> RunConfig:
    """Preset (default tiny), then the file's knobs, then the overrides; validated at the end."""
    if preset is not None and preset not in PRESETS:
        raise ConfigInvalid(f"unknown preset {preset!r}; presets are {', '.join(PRESETS)}")
    base = PRESETS[preset or "tiny"]
    knobs: dict[str, Any] = {}
    if config_file is not None:
        knobs.update(load_config_file(config_file))
    knobs.update({key: value for key, value in (overrides or {}).items() if value is not None})
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(knobs) - known)
    if unknown:
        raise ConfigInvalid(f"unknown knob(s): {', '.join(unknown)}; known knobs: {', '.join(sorted(known))}")
    return base.with_overrides(**{name: _coerce(name, value) for name, value in knobs.items()})


def config_from_json(text: str) -> RunConfig:
    """The config a launcher passed to a worker process."""
    return RunConfig(**json.loads(text))
