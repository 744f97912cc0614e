"""What the manifest says about the machine, the software, the code and the set-up.

Everything here is read from the system (or taken from the configuration, and then marked as
declared); a field that cannot be read is left out, never filled with a placeholder.
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
from importlib import metadata as importlib_metadata
from pathlib import Path

import torch
from trainmark.reference_runner.config import RunConfig
from trainmark.reference_runner.data import Dataset, FeedingOrder
from trainmark.reference_runner.model import ANALYTICAL_SOURCE, TinyGPT, parameter_counts
from trainmark.spec import SCHEMA_VERSION, producer_version

PACKAGES_DIGEST_METHOD = (
    "sha256 of the sorted 'name==version' lines of importlib.metadata.distributions(), one per line"
)
MIXED_PRECISION = {
    "fp32": None,
    "bf16_autocast": "torch.autocast({device}, dtype=torch.bfloat16)",
    "fp16_autocast": "torch.autocast({device}, dtype=torch.float16) + torch.amp.GradScaler",
}
CLOCK = {
    "timestamps": "time.time_ns(), the system clock, UTC",
    "durations": "time.perf_counter_ns(), monotonic, read after the device synchronizes",
}


def packages_digest() -> tuple[str, int]:
    """(sha256, count) of the installed distributions, as PACKAGES_DIGEST_METHOD says."""
    lines = sorted(
        {
            f"{dist.metadata['Name'].lower()}=={dist.version}"
            for dist in importlib_metadata.distributions()
            if dist.metadata["Name"]
        }
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest(), len(lines)


def os_name() -> str | None:
    release = Path("/etc/os-release")
    if release.exists():
        for line in release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    return platform.platform() or None


def host(node: int) -> dict:
    """This machine as a system.hosts entry."""
    import psutil
    from trainmark.reference_runner.devices import cpu_model

    entry: dict = {
        "node": node,
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model()[1],
        "cpu_threads": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
    }
    cores = psutil.cpu_count(logical=False)
    if cores:
        entry["cpu_cores"] = cores
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if affinity:
        entry["cpu_cores_used"] = len(affinity)
    if torch.cuda.is_available():
        entry["accelerators"] = torch.cuda.device_count()
    return entry


def software(config: RunConfig, world_size: int, device_fields: dict, device_label: str) -> dict:
    import psutil

    digest, count = packages_digest()
    device_fields = dict(device_fields)
    libraries = [{"name": "psutil", "version": psutil.__version__}, *device_fields.pop("libraries", [])]
    block = {
        "framework": {"name": "pytorch", "version": torch.__version__},
        "python_version": platform.python_version(),
        "kernel_version": platform.release(),
        "compiler": "eager (no torch.compile)",
        "distributed_backend": ("nccl" if device_label == "cuda" else "gloo")
        if world_size > 1
        else "none (one process)",
        "libraries": libraries,
        "packages_digest": digest,
        "packages_digest_method": PACKAGES_DIGEST_METHOD,
        "packages_count": count,
        **device_fields,
    }
    name = os_name()
    if name:
        block["os_name"] = name
    mixed = MIXED_PRECISION.get(config.precision)
    if mixed:
        block["mixed_precision_implementation"] = mixed.format(device=repr(device_label))
    try:
        block["libraries"].append({"name": "nvidia-ml-py", "version": importlib_metadata.version("nvidia-ml-py")})
    except importlib_metadata.PackageNotFoundError:
        pass
    return block


def code(where: Path | None = None) -> dict:
    """The repository state (GitPython) of the training code in `where` (default: the reference
    runner's own folder), or why there is none."""
    here = (where or Path(__file__)).resolve()
    here = here if here.is_dir() else here.parent
    try:
        import git

        repo = git.Repo(here, search_parent_directories=True)
        head = repo.head.commit
    except Exception as error:  # no git, not a checkout, or a repository without commits
        return {
            "unavailable_reason": f"the training code ({here}) is not in a git checkout with commits "
            f"({type(error).__name__}); it is trainmark {producer_version()}"
        }
    block = {
        "repository": next((remote.url for remote in repo.remotes), str(Path(repo.working_tree_dir))),
        "commit": head.hexsha,
        "dirty": repo.is_dirty(untracked_files=True),
    }
    if not repo.head.is_detached:
        block["branch"] = repo.active_branch.name
    tags = sorted(tag.name for tag in repo.tags if tag.commit == head)
    if tags:
        block["tags"] = tags
    return block


def environment(config: RunConfig, declared_with: str = "trainmark run --ambient-temperature-c") -> dict:
    """Ambient temperature and cooling as the person declared them (`declared_with` says how)."""
    if config.ambient_temperature_c is None:
        temperature = {
            "value": None,
            "unit": "Cel",
            "unavailable_reason": f"not declared ({declared_with}) and trainmark "
            "reads no room or inlet temperature sensor",
        }
    else:
        temperature = {
            "value": config.ambient_temperature_c,
            "unit": "Cel",
            "method": "declared",
            "source": "declared by the person who started the run",
            "tool": declared_with,
        }
    block = {"ambient_temperature": temperature}
    if config.cooling_method:
        block.update(cooling_method=config.cooling_method, cooling_source="declared by the person who started the run")
    return block


def parameter_metrics(model: torch.nn.Module) -> dict:
    """The model block's parameter counts, counted from `model` (tied weights once)."""
    total, trainable = parameter_counts(model)
    tool = f"torch {torch.__version__}"
    return {
        "parameters_total": {
            "value": float(total),
            "unit": "{parameter}",
            "method": "counter",
            "source": "sum(p.numel()) over the model's unique parameters (tied weights once)",
            "tool": tool,
        },
        "parameters_trainable": {
            "value": float(trainable),
            "unit": "{parameter}",
            "method": "counter",
            "source": "the same, for parameters with requires_grad",
            "tool": tool,
        },
    }


def model_block(config: RunConfig) -> dict:
    with torch.device("meta"):
        model = TinyGPT(config)
    return {
        "name": config.name,
        "architecture_family": "decoder_transformer",
        **parameter_metrics(model),
        "precision_policy": config.precision,
        "activation_checkpointing": config.activation_checkpointing,
        "layers": config.n_layer,
        "hidden_size": config.n_embd,
        "attention_heads": config.n_head,
        "vocab_size": config.vocab_size,
        "context_length": config.sequence_length,
        "description": "decoder-only transformer after nanoGPT: pre-norm blocks, GELU MLP, tied output head",
    }


def training_block(config: RunConfig, world_size: int, planned_steps: int) -> dict:
    hyperparameters = [
        {"name": "learning_rate", "value": config.learning_rate},
        {"name": "weight_decay", "value": config.weight_decay},
        {"name": "grad_clip_norm", "value": config.grad_clip},
    ]
    if config.optimizer == "adamw":
        hyperparameters += [{"name": "beta1", "value": config.beta1}, {"name": "beta2", "value": config.beta2}]
    else:
        hyperparameters.append({"name": "momentum", "value": config.momentum})
    schedule = (
        {"name": "constant"}
        if config.lr_schedule == "constant"
        else {
            "name": "linear warm-up then cosine decay",
            "warmup_steps": config.lr_warmup_steps,
            "hyperparameters": [{"name": "min_learning_rate", "value": config.min_learning_rate}],
        }
    )
    block = {
        "global_batch_size": config.global_batch_size,
        "micro_batch_size": config.micro_batch_size,
        "gradient_accumulation_steps": config.for_world(world_size).gradient_accumulation_steps,
        "sequence_length": config.sequence_length,
        "optimizer": {"name": {"adamw": "AdamW", "sgd": "SGD"}[config.optimizer], "hyperparameters": hyperparameters},
        "lr_schedule": schedule,
        "max_steps": planned_steps,
        "world_size": world_size,
        "parallelism": {"strategy": "DDP" if world_size > 1 else "single process", "data_parallel": world_size},
        "deterministic": config.deterministic,
        "warmup_steps_excluded": config.warmup_steps,
        "data_loader_workers": 0,
    }
    if config.epochs:
        block["epochs"] = config.epochs
    if config.checkpoint_every:
        block["checkpoint_interval_steps"] = config.checkpoint_every
    return block


def dataset_block(dataset: Dataset, order: FeedingOrder, planned_steps: int) -> dict:
    return {
        "name": dataset.name,
        "snapshot_id": order.snapshot(planned_steps),
        "snapshot_method": "sha256 of the uint8 input tokens of every global batch, in feeding order, for the "
        "planned steps (every run feeds this stream; see reference_runner/data.py)",
        "source": dataset.source,
        "preprocessing": "byte-level: every byte is a token (vocabulary 256)",
        "sharding": "rank r takes the r-th block of micro-batches of each global batch",
        "size_bytes": dataset.size_bytes,
        "size_tokens": dataset.size_bytes,
        "size_samples": dataset.sequences,
    }


def methodology(config: RunConfig, channels: list[dict], idle_measured: bool, energy_reason: str | None) -> dict:
    tools = [{"name": "trainmark", "version": producer_version()}, {"name": "torch", "version": torch.__version__}]
    for channel in channels:
        name, _, version = channel["tool"].rpartition(" ")
        if name and not any(tool["name"] == name for tool in tools) and not name.startswith("trainmark replay"):
            tools.append({"name": name, "version": version})
    if idle_measured:
        idle = {
            "method": "baseline_before_run",
            "window_s": config.idle_seconds,
            "description": f"each device's power over {config.idle_seconds:g} s with nothing running, before "
            "each run (from the energy counter where there is one); net energy = total energy - "
            "idle power x the energy counter's window",
        }
    else:
        idle = {"method": "none", "description": energy_reason or "idle power was not measured"}
    block = {
        "tools": tools,
        "channels": channels,
        "clock": dict(CLOCK),
        "idle_subtraction": idle,
        "flop_counting": f"analytical: {ANALYTICAL_SOURCE}; counted: torch.utils.flop_counter.FlopCounterMode over "
        "one micro-batch (forward and backward) of a meta-device copy, x micro-batches per step",
        "notes": f"reference runner of trainmark {producer_version()}, bundle schema {SCHEMA_VERSION}",
    }
    if config.profile_steps:
        block["profiler"] = {
            "tool": f"torch.profiler {torch.__version__.split('+')[0]}",
            "first_step": config.profile_first_step,
            "steps": config.profile_steps + config.allocation_steps,
            "options": ["default activities for the kernel window", "profile_memory for the allocation window"]
            if config.allocation_steps
            else ["default activities"],
        }
    return block
