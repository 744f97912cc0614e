"""`trainmark import mlperf`: an MLPerf Training result folder as a bundle.

Reads `result_<i>.txt` (one run each), `power/result_<i>/node_<j>.txt` and `sw_<k>.txt`,
`scaling.json`, and a system description JSON. Real logs are messy; nothing here assumes they
are not. Text before `:::MLLOG` is ignored; a line that does not parse, metadata that is not
an object, a repeated event, a missing `power_measurement_stop`, an empty or placeholder system
field, a required field the logs do not give: each becomes a `source.issues` entry with the file
and line, and the scorer turns it into a finding. The originals are kept byte for byte under
`source/`, unknown keys included.

Time to train and energy follow MLCommons' own tools: time to train is `run_stop - run_start`
of the first such events; a node's energy is `conversion_eff x sum_i P_i (t_i - t_(i-1))` from
`power_measurement_start` (each reading times the interval since the one before), rescaled by
time to train / (`power_measurement_stop` - `power_measurement_start`).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from trainmark.spec import SCHEMA_VERSION, models, producer_version
from trainmark.spec.bundle import BundleWriter
from trainmark.spec.errors import TrainmarkError
from trainmark.spec.metrics import measured, unavailable

FORMAT = "MLPerf Training result logs (:::MLLOG lines) with MLPerf power logs"
NOT_LOGGED = "not in MLPerf logs"
LOGGER = "MLPerf mllog (the logger's version is not in the log)"
POWER_LOGGER = "MLPerf power logging (the meter and its software are not in the log)"
_TOKEN = ":::MLLOG "

# MLPerf benchmark -> (architecture family, dataset); the logs name only the benchmark.
BENCHMARKS = {
    "llama2_70b_lora": ("decoder_transformer", "GovReport (SCROLLS)"),
    "gpt3": ("decoder_transformer", "C4"),
    "llama31_405b": ("decoder_transformer", "C4"),
    "llama31_8b": ("decoder_transformer", "C4"),
    "bert": ("encoder_transformer", "Wikipedia 2020/01/01"),
    "resnet": ("convolutional", "ImageNet 2012"),
    "ssd": ("convolutional", "OpenImages"),
    "retinanet": ("convolutional", "OpenImages"),
    "maskrcnn": ("convolutional", "COCO 2017"),
    "unet3d": ("convolutional", "KiTS19"),
    "rnnt": ("recurrent", "LibriSpeech"),
    "stable_diffusion": ("diffusion", "LAION-400M-filtered"),
    "dlrm_dcnv2": ("other", "Criteo 4TB multi-hot"),
    "gnn": ("other", "IGBH-Full"),
}
# Keys whose meaning the importer knows (mapped, or deliberately not needed).
KNOWN_KEYS = {
    "cache_clear", "init_start", "init_stop", "run_start", "run_stop", "block_start", "block_stop", "epoch_start",
    "epoch_stop", "eval_start", "eval_stop", "eval_accuracy", "eval_samples", "train_samples", "train_loss",
    "tracked_stats", "seed", "global_batch_size", "local_batch_size", "gradient_accumulation_steps",
    "submission_benchmark", "submission_org", "submission_division", "submission_status", "submission_platform",
    "submission_poc_name", "submission_poc_email", "sequence_length", "max_sequence_length", "opt_name",
    "opt_learning_rate_decay_schedule", "weights_initialization", "power_measurement_start",
    "power_measurement_stop", "conversion_eff", "power_reading", "interconnect_power_est", "init_checkpoint_step",
}
_HYPERPARAMETER = re.compile(r"^(opt|lars|lamb|sgd|adam|lora|model|dropout|label_smoothing|warmup)")


@dataclass
class Event:
    """One :::MLLOG event and where it was."""

    key: str
    value: Any
    time_ms: int
    metadata: dict
    line: int


@dataclass
class Log:
    """The events of one file, and the problems met reading it."""

    path: str  # bundle path of the kept original
    events: list[Event] = field(default_factory=list)
    issues: list[dict] = field(default_factory=list)

    def issue(self, code: str, message: str, line: int | None = None, pointer: str | None = None) -> None:
        entry = {"code": code, "file": self.path, "message": message}
        if line is not None:
            entry["line"] = line
        if pointer:
            entry["pointer"] = pointer
        self.issues.append(entry)

    def first(self, key: str) -> Event | None:
        found = [event for event in self.events if event.key == key]
        for extra in found[1:]:
            self.issue("duplicate-event", f"{key} occurs again; the first (line {found[0].line}) is used",
                       line=extra.line)
        return found[0] if found else None

    def all(self, key: str) -> list[Event]:
        return [event for event in self.events if event.key == key]


def _unique_pairs(pairs):
    keys = [key for key, _ in pairs]
    result = dict(pairs)
    result["__duplicate_keys__"] = sorted({key for key in keys if keys.count(key) > 1})
    return result


def read_log(file: Path, bundle_path: str) -> Log:
    """Every :::MLLOG event of a file; text before the token (rank prefixes, shell noise) is ignored."""
    log = Log(bundle_path)
    for number, raw in enumerate(file.read_bytes().decode("utf-8", errors="replace").splitlines(), start=1):
        index = raw.find(_TOKEN)
        if index < 0:
            continue
        try:
            data = json.loads(raw[index + len(_TOKEN):], object_pairs_hook=_unique_pairs)
        except ValueError as error:
            log.issue("unparseable-line", f"an :::MLLOG line that is not JSON ({error}); skipped", line=number)
            continue
        if not isinstance(data, dict):
            log.issue("unparseable-line", "an :::MLLOG line whose JSON is not an object; skipped", line=number)
            continue
        if data.pop("__duplicate_keys__", None):
            log.issue("unparseable-line", "a repeated key in one event; the last value is used", line=number)
        key, time_ms, metadata = data.get("key"), data.get("time_ms"), data.get("metadata", {})
        if not isinstance(key, str):
            log.issue("type-mismatch", f"key is {type(key).__name__}, not a string; event skipped", line=number,
                      pointer="/key")
            continue
        if isinstance(time_ms, float) and time_ms.is_integer():
            time_ms = int(time_ms)
        if not isinstance(time_ms, int) or isinstance(time_ms, bool):
            log.issue("type-mismatch", f"time_ms of {key} is {type(time_ms).__name__}, not an integer; event "
                      "skipped", line=number, pointer="/time_ms")
            continue
        if isinstance(metadata, dict):
            metadata.pop("__duplicate_keys__", None)
        else:
            log.issue("type-mismatch", f"metadata of {key} is {type(metadata).__name__}, not an object; its fields "
                      "(host, status, samples_count, ...) are lost", line=number, pointer="/metadata")
            metadata = {}
        log.events.append(Event(key, data.get("value"), time_ms, metadata, number))
    return log


def _iso(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        else None


def _bytes(text: str) -> int | None:
    """'2 TB', '180 GB', '64GB' as bytes (decimal units, the way the descriptions write them)."""
    found = re.fullmatch(r"\s*([\d.]+)\s*([KMGTP])i?B\s*", text or "")
    if not found:
        return None
    return int(float(found.group(1)) * 1000 ** "KMGTP".index(found.group(2)) * 1000)


@dataclass
class PowerFile:
    """One node's (or switch's) power log for one run."""

    log: Log
    host: str
    start_ms: int
    stop_ms: int
    efficiency: float
    current_type: str | None
    readings: list[tuple[int, float]]
    switch: bool

    def energy_j(self, time_to_train_ms: int) -> float:
        """MLCommons' formula: eff x sum P_i (t_i - t_(i-1)) from the start, rescaled to time to train."""
        total, previous = 0.0, self.start_ms
        for time_ms, watts in self.readings:
            total += watts * (time_ms - previous) / 1000.0
            previous = time_ms
        return self.efficiency * total * time_to_train_ms / (self.stop_ms - self.start_ms)


def read_power(file: Path, bundle_path: str, switch: bool) -> PowerFile | None:
    log = read_log(file, bundle_path)
    start = log.first("power_measurement_start")
    readings = sorted(((event.time_ms, float(event.value)) for event in log.all("power_reading")
                       if _number(event.value) is not None), key=lambda reading: reading[0])
    for event in log.all("power_reading"):
        if _number(event.value) is None:
            log.issue("type-mismatch", f"power_reading value {event.value!r} is not a number; skipped",
                      line=event.line, pointer="/value")
    if start is None or not readings:
        log.issue("missing-event", "no power_measurement_start or no power_reading: no energy from this file")
        return PowerFile(log, "", 0, 0, 1.0, None, [], switch) if log.events else None
    stop = log.first("power_measurement_stop")
    stop_ms = stop.time_ms if stop else readings[-1][0]
    if stop is None:
        log.issue("missing-event", "no power_measurement_stop: the window ends at the last reading")
    efficiency_event = log.first("conversion_eff")
    efficiency = _number(efficiency_event.value) if efficiency_event else None
    if efficiency is None or not 0 < efficiency <= 1:
        log.issue("assumed-value", "no usable conversion_eff: 1.0 is assumed")
        efficiency = 1.0
    hosts = {event.metadata.get("host") for event in log.all("power_reading") if event.metadata.get("host")}
    host = sorted(hosts)[0] if hosts else Path(bundle_path).stem
    current = efficiency_event.metadata.get("measurement_type") if efficiency_event else None
    return PowerFile(log, host, start.time_ms, stop_ms, efficiency, current if current in ("AC", "DC") else None,
                     readings, switch)


@dataclass
class RunLog:
    index: int
    log: Log
    power: list[PowerFile]


def _system_block(system: dict | None, platform: str | None, issues: list[dict], source_file: str) -> tuple[dict, int]:
    """(system, accelerators) from the system description, or as much as the platform name says."""
    def issue(code, message):
        issues.append({"code": code, "file": source_file, "message": message})

    if system is None:
        issue("incomplete-source", f"no system description (system.json or --system): the hardware is known only as "
                                   f"the platform name {platform or 'not logged'!r}, one device on one node")
        device = {"index": 0, "node": 0, "kind": "other_accelerator", "vendor": "not in MLPerf logs",
                  "model": platform or "not in MLPerf logs"}
        return {"node_count": 1, "hosts": [{"node": 0}], "devices": [device]}, 1

    def text(key):
        value = system.get(key)
        if isinstance(value, str) and not value.strip():
            issue("placeholder-value", f"system description field {key!r} is empty")
            return None
        return value if isinstance(value, str) else None

    def count(key):
        value = text(key)
        return int(value) if value and value.strip().isdigit() else None

    nodes = count("number_of_nodes") or 1
    if count("number_of_nodes") is None:
        issue("assumed-value", "number_of_nodes is missing or not a number: 1 node is assumed")
    per_node = count("accelerators_per_node") or 0
    host = {key: value for key, value in {
        "cpu_model": text("host_processor_model_name"), "cpu_sockets": count("host_processors_per_node"),
        "accelerators": per_node}.items() if value is not None}
    cores = count("host_processor_core_count")
    if cores and host.get("cpu_sockets"):
        host["cpu_cores"] = cores * host["cpu_sockets"]
    memory = _bytes(text("host_memory_capacity") or "")
    if memory:
        host["memory_bytes"] = memory
    model = text("accelerator_model_name") or "not in the system description"
    lowered = model.lower()
    kind = "gpu" if "gpu" in lowered or "nvidia" in lowered else "tpu" if "tpu" in lowered else \
        "hpu" if "gaudi" in lowered else "other_accelerator"
    vendor = "NVIDIA" if kind == "gpu" else "Google" if kind == "tpu" else "Intel Habana" if kind == "hpu" else \
        text("submitter") or "not in the system description"
    device = {"kind": kind, "vendor": vendor, "model": model}
    device_memory = _bytes(text("accelerator_memory_capacity") or "")
    if device_memory:
        device["memory_bytes"] = device_memory
    if text("accelerator_memory_configuration"):
        device["memory_type"] = text("accelerator_memory_configuration")
    devices = [{"index": node * per_node + local, "node": node, "local_index": local, **device}
               for node in range(nodes) for local in range(per_node)]
    if not devices:
        issue("incomplete-source", "accelerators_per_node is missing: the accelerators are not described")
        devices = [{"index": 0, "node": 0, **device}]
    block = {"system_name": text("system_name"), "node_count": nodes,
             "hosts": [{"node": node, **host} for node in range(nodes)], "devices": devices}
    interconnect = {"intra_node": text("accelerator_interconnect"), "inter_node": text("host_networking"),
                    "topology": text("host_networking_topology")}
    interconnect = {key: value for key, value in interconnect.items() if value}
    if interconnect:
        block["interconnect"] = interconnect
    return {key: value for key, value in block.items() if value is not None}, len(devices)


def _software(system: dict | None, issues: list[dict], source_file: str) -> dict:
    framework = (system or {}).get("framework") if isinstance((system or {}).get("framework"), str) else None
    if framework and framework.strip():
        name, _, version = framework.strip().rpartition(" ")
        block = {"framework": {"name": name or framework, "version": version if name else framework}}
    else:
        issues.append({"code": "incomplete-source", "file": source_file,
                       "message": "the framework is not described; recorded as unknown"})
        block = {"framework": {"name": "unknown", "version": "unknown"}}
    if system:
        if isinstance(system.get("operating_system"), str) and system["operating_system"].strip():
            block["os_name"] = system["operating_system"]
        stack = system.get("other_software_stack")
        entries = stack if isinstance(stack, list) else [stack] if isinstance(stack, dict) else []
        for entry in entries:
            if isinstance(entry, dict):
                if entry.get("cuda_version"):
                    block["cuda_version"] = str(entry["cuda_version"])
                if entry.get("cuda_driver_version"):
                    block["accelerator_driver_version"] = str(entry["cuda_driver_version"])
    return block


def _cooling(system: dict | None) -> dict:
    text = (system or {}).get("cooling")
    if not isinstance(text, str) or not text.strip():
        return {}
    lowered = text.lower()
    method = "immersion" if "immersion" in lowered else "direct_liquid" if re.search(r"water|liquid", lowered) else \
        "air" if "air" in lowered else None
    return {"cooling_method": method, "cooling_source": f"the system description says {text!r}"} if method else {}


def import_mlperf(result_dir: Path, out: Path, system_json: Path | None = None,
                  benchmark: str | None = None, origin: str | None = None) -> str:
    """Write the MLPerf result folder `result_dir` as a bundle in `out`; return its id."""
    results = sorted(result_dir.glob("result_*.txt"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
    if not results:
        raise TrainmarkError(f"{result_dir} has no result_<i>.txt files: not an MLPerf result folder")
    if system_json is None and (result_dir / "system.json").is_file():
        system_json = result_dir / "system.json"
    writer = BundleWriter.create(out)
    kept: list[str] = []

    def keep(file: Path, relative: str) -> str:
        target = out / "source" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)
        kept.append(f"source/{relative}")
        return f"source/{relative}"

    issues: list[dict] = []
    system = None
    system_path = None
    if system_json is not None:
        system_path = keep(system_json, "system.json")
        try:
            system = json.loads(system_json.read_text())
        except ValueError as error:
            issues.append({"code": "unparseable-line", "file": system_path, "message": f"not JSON ({error})"})
        if system is not None and not isinstance(system, dict):
            issues.append({"code": "type-mismatch", "file": system_path, "message": "not a JSON object"})
            system = None
    scaling = None
    if (result_dir / "scaling.json").is_file():
        scaling_path = keep(result_dir / "scaling.json", "scaling.json")
        try:
            scaling = _number(json.loads((result_dir / "scaling.json").read_text()).get("scaling_factor"))
        except (ValueError, AttributeError):
            issues.append({"code": "unparseable-line", "file": scaling_path, "message": "no scaling_factor in it"})

    runs: list[RunLog] = []
    for file in results:
        index = int(re.sub(r"\D", "", file.stem))
        log = read_log(file, keep(file, file.name))
        power = []
        power_dir = result_dir / "power" / f"result_{index}"
        for power_file in sorted(power_dir.glob("*.txt")) if power_dir.is_dir() else []:
            parsed = read_power(power_file, keep(power_file, f"power/result_{index}/{power_file.name}"),
                                switch=power_file.name.startswith("sw"))
            if parsed is not None:
                power.append(parsed)
        runs.append(RunLog(index, log, power))

    first = runs[0].log
    def value_of(key):
        event = next((e for run in runs for e in run.log.events if e.key == key), None)
        return event.value if event else None

    benchmark = benchmark or value_of("submission_benchmark") or "unknown"
    family, dataset_name = BENCHMARKS.get(benchmark, ("other", None))
    platform = value_of("submission_platform")
    system_block, accelerators = _system_block(system, platform, issues, system_path or first.path)
    global_batch = _number(value_of("global_batch_size"))
    if global_batch is None:
        issues.append({"code": "assumed-value", "file": first.path,
                       "message": "no global_batch_size event: 1 is assumed"})
    world_size = max(1, accelerators)
    issues.append({"code": "assumed-value", "file": first.path,
                   "message": f"world_size is {world_size}, one process per accelerator as MLPerf submissions run; "
                              "the logs do not say"})

    hyperparameters, unknown = [], {}
    for run in runs:
        for event in run.log.events:
            if event.key in KNOWN_KEYS:
                continue
            if _HYPERPARAMETER.match(event.key) and _number(event.value) is not None:
                if run is runs[0] and not any(h["name"] == event.key for h in hyperparameters):
                    hyperparameters.append({"name": event.key, "value": float(event.value)})
            elif event.key not in unknown.get(run.log.path, {}):
                unknown.setdefault(run.log.path, {})[event.key] = event.line
    for path, keys in unknown.items():
        for key, line in keys.items():
            issues.append({"code": "unknown-key", "file": path, "line": line,
                           "message": f"{key} is not mapped; the original keeps it"})
    optimizer_name = value_of("opt_name")
    if not isinstance(optimizer_name, str):
        prefixes = {"opt_adamw": "AdamW", "opt_lamb": "LAMB", "lars_": "LARS", "opt_adam": "Adam", "sgd_": "SGD"}
        optimizer_name = next((name for prefix, name in prefixes.items()
                               if any(h["name"].startswith(prefix) for h in hyperparameters)), None)
    if optimizer_name is None:
        issues.append({"code": "incomplete-source", "file": first.path, "message": "the optimizer is not named"})
        optimizer_name = "unknown"

    node_channels: dict[tuple, str] = {}
    channels = []
    run_entries = []
    for run in runs:
        entry, power_channels = _run_entry(run, writer, global_batch, node_channels)
        channels += [channel for channel in power_channels if channel["name"] not in {c["name"] for c in channels}]
        run_entries.append(entry)
        issues += run.log.issues + [issue for power in run.power for issue in power.log.issues]

    train_samples = _number(value_of("train_samples"))
    dataset = {"name": dataset_name or f"the {benchmark} dataset", "unavailable_reason": f"{NOT_LOGGED}: MLPerf "
               "fixes the dataset by rule; the logs carry no digest of what was fed"}
    if train_samples:
        dataset["size_samples"] = int(train_samples)
    sequence_length = _number(value_of("sequence_length") or value_of("max_sequence_length"))
    training = {"global_batch_size": int(global_batch or 1), "world_size": world_size,
                "optimizer": {"name": optimizer_name, "hyperparameters": hyperparameters}}
    accumulation = _number(value_of("gradient_accumulation_steps"))
    if accumulation:
        training["gradient_accumulation_steps"] = int(accumulation)
    if sequence_length:
        training["sequence_length"] = int(sequence_length)
    schedule = value_of("opt_learning_rate_decay_schedule")
    if isinstance(schedule, str) and schedule.strip():
        training["lr_schedule"] = {"name": schedule}

    organisation = value_of("submission_org")
    document = {
        "schema_version": SCHEMA_VERSION,
        "producer": {"name": "trainmark import mlperf", "version": producer_version()},
        "created_at": _iso(max(entry["_stop_ms"] for entry in run_entries)),
        "description": f"MLPerf Training result: {benchmark} by {organisation or 'an unnamed submitter'} "
                       f"({value_of('submission_division') or 'division not logged'}, "
                       f"{value_of('submission_status') or 'status not logged'}), imported by trainmark from the "
                       "submitter's own logs",
        "system": system_block,
        "software": _software(system, issues, system_path or first.path),
        "model": {"name": benchmark, "architecture_family": family,
                  "parameters_total": {"value": None, "unit": "{parameter}", "unavailable_reason": NOT_LOGGED},
                  "parameters_trainable": {"value": None, "unit": "{parameter}", "unavailable_reason": NOT_LOGGED},
                  "precision_policy": "undeclared"},
        "training": training,
        "dataset": dataset,
        "code": {"unavailable_reason": f"{NOT_LOGGED}: the training code is in the submitter's results repository"},
        "environment": {"ambient_temperature": {"value": None, "unit": "Cel", "unavailable_reason": NOT_LOGGED},
                        **_cooling(system)},
        "methodology": {
            "tools": [{"name": "MLPerf mllog", "version": "not in the logs"}],
            "channels": channels,
            "clock": {"timestamps": "time_ms of each :::MLLOG event (Unix milliseconds, the submitter's clocks)",
                      "durations": "differences of time_ms"},
            "idle_subtraction": {"method": "none", "description": "MLPerf does not measure idle power"},
            "notes": "converted by trainmark import mlperf; the originals are under source/",
        },
        "runs": [{key: value for key, value in entry.items() if not key.startswith("_")} for entry in run_entries],
        "source": {"format": FORMAT, "importer": {"name": "trainmark import mlperf", "version": producer_version()},
                   "files": kept, "issues": issues,
                   "parameters": [{"name": "scaling_factor", "value": scaling}] if scaling is not None else []},
    }
    if origin:
        document["source"]["origin"] = origin
    if organisation:
        document["submitter"] = {"name": str(organisation), "organization": str(organisation)}
    if not document["source"]["parameters"]:
        del document["source"]["parameters"]
    _, bundle_id = writer.finish(document)
    return bundle_id


def _run_entry(run: RunLog, writer: BundleWriter, global_batch: float | None,
               node_channels: dict[tuple, str]) -> tuple[dict, list[dict]]:
    log = run.log
    run_id = f"result_{run.index}"
    start, stop = log.first("run_start"), log.first("run_stop")
    events = sorted(log.events, key=lambda event: event.time_ms)
    start_ms = start.time_ms if start else events[0].time_ms
    if start is None:
        log.issue("missing-event", "no run_start: the run starts at the first event")
    if stop is None:
        log.issue("missing-event", "no run_stop: the run did not finish, or the log is cut short")
        status, reason, stop_ms = "failed", "no run_stop event in the log", events[-1].time_ms
    else:
        stop_ms = stop.time_ms
        outcome = stop.metadata.get("status")
        status = "completed" if outcome == "success" else "failed"
        reason = None if status == "completed" else f"run_stop status {outcome!r}"
    seed_event = log.first("seed")
    tool = LOGGER
    time_to_train_ms = stop_ms - start_ms
    source = f"run_stop.time_ms - run_start.time_ms in {log.path} (MLPerf's time to train)"
    metrics = [measured("run_duration", "s", time_to_train_ms / 1000, "derived", "runs[].ended_at - runs[].started_at",
                        f"trainmark {producer_version()}")]
    if stop is not None and start is not None:
        metrics.append(measured("time_to_train", "s", time_to_train_ms / 1000, "derived", source, tool))
    samples = _number(stop.metadata.get("samples_count")) if stop else None
    throughput = [_number(e.value.get("throughput")) for e in log.all("tracked_stats")
                  if isinstance(e.value, dict) and _number(e.value.get("throughput")) is not None]
    if throughput:
        metrics.append(measured("samples_per_second", "{sample}/s", statistics.fmean(throughput), "declared",
                                f"mean of tracked_stats.throughput in {log.path}, as the submission's software "
                                "reported it", tool))
    elif samples and time_to_train_ms:
        metrics.append(measured("samples_per_second", "{sample}/s", samples / (time_to_train_ms / 1000), "derived",
                                f"run_stop samples_count / time to train in {log.path} (evaluation included)", tool))
    quality = [e for e in log.all("eval_accuracy") if _number(e.value) is not None]
    if quality:
        metrics.append(measured("final_quality", "1", float(quality[-1].value), "declared",
                                f"the last eval_accuracy in {log.path} (the benchmark's quality metric)", tool))
    for name, unit in (("flops_per_step_analytical", "{flop}"), ("flops_per_step_counted", "{flop}"),
                       ("peak_memory", "By"), ("peak_memory_forward", "By"), ("peak_memory_backward", "By"),
                       ("peak_memory_optimizer", "By"), ("allocations_per_step", "{allocation}/{step}"),
                       ("steps_per_second", "{step}/s")):
        metrics.append(unavailable(name, unit, NOT_LOGGED))

    channels = []
    node_energy: dict[str, float] = {}
    usable = [power for power in run.power if power.readings and power.stop_ms > power.start_ms]
    if usable:
        with writer.open_trace(run_id, "power_sample") as trace:
            for position, power in enumerate(sorted(usable, key=lambda p: (p.switch, p.host))):
                node = None if power.switch else _node_index(power.host, position)
                key = (power.switch, power.efficiency, power.current_type)
                name = node_channels.setdefault(key, "mlperf_switch_power" if power.switch else
                                                f"mlperf_node_power{'' if not node_channels else len(node_channels)}")
                gaps = [b[0] - a[0] for a, b in zip(power.readings, power.readings[1:]) if b[0] > a[0]]
                rate = 1000 / statistics.median(gaps) if gaps else None
                channel = {"name": name, "record_type": "power_sample", "fields": ["power_w"], "method": "sampled",
                           "source": "power_reading events of the MLPerf power logs (watts)", "tool": POWER_LOGGER,
                           "domain": "interconnect" if power.switch else "node",
                           "conversion_efficiency": power.efficiency,
                           "description": "MLPerf logs declare no sampling rate; the target rate is the median "
                                          "interval of the readings"}
                if rate:
                    channel["target_rate_hz"] = rate
                if power.current_type:
                    channel["current_type"] = power.current_type
                channels.append(channel)
                for time_ms, watts in power.readings:
                    trace.append(models.PowerSample(time_unix_ns=time_ms * 1_000_000, channel=name, node=node,
                                                    power_w=watts))
                joules = power.energy_j(time_to_train_ms)
                formula = (f"conversion_eff x sum of power_reading x (t - previous t) from power_measurement_start, "
                           f"x time to train / measurement window, in {power.log.path} (MLCommons' formula)")
                if power.switch:
                    metrics.append(measured("total_energy", "J", joules, "sampled", formula, POWER_LOGGER,
                                            scope="interconnect"))
                else:
                    metrics.append(measured("total_energy", "J", joules, "sampled", formula, POWER_LOGGER,
                                            scope="node", node=node))
                    metrics.append(measured("power_mean", "W", statistics.fmean(w for _, w in power.readings),
                                            "sampled", f"mean power_reading in {power.log.path} (before "
                                            "conversion_eff)", POWER_LOGGER, scope="node", node=node))
                node_energy[power.log.path] = joules
        total = sum(node_energy.values())
        metrics.append(measured("total_energy", "J", total, "sampled", "sum over the nodes' and switches' "
                                "total_energy (MLCommons' run energy)", f"trainmark {producer_version()}"))
        if samples:
            metrics.append(measured("energy_per_sample", "J/{sample}", total / samples, "derived",
                                    "total_energy / run_stop samples_count", f"trainmark {producer_version()}"))
    else:
        metrics.append(unavailable("total_energy", "J", "this result has no MLPerf power logs"))

    blocks = _blocks(log, global_batch)
    if blocks:
        with writer.open_trace(run_id, "epoch") as trace:
            for block in blocks:
                trace.append(block)
    entry = {"run_id": run_id, "started_at": _iso(start_ms), "ended_at": _iso(stop_ms), "status": status,
             "metrics": metrics, "_stop_ms": stop_ms}
    if seed_event is not None and _number(seed_event.value) is not None and 0 <= seed_event.value < 2 ** 53:
        entry["seed"] = int(seed_event.value)
    if reason:
        entry["status_reason"] = reason
    sampling = []
    for power in usable:
        span_s = (power.readings[-1][0] - power.readings[0][0]) / 1000
        item = {"channel": node_channels[(power.switch, power.efficiency, power.current_type)],
                "sample_count": len(power.readings)}
        if span_s > 0:
            item["achieved_rate_hz"] = (len(power.readings) - 1) / span_s
        sampling.append(item)
    if sampling:
        entry["sampling"] = sampling
    return entry, channels


def _node_index(host: str, position: int) -> int:
    found = re.search(r"(\d+)$", host or "")
    return int(found.group(1)) if found else position


def _blocks(log: Log, global_batch: float | None) -> list[models.EpochRecord]:
    """MLPerf blocks as epoch records, where samples_count says how many steps they hold."""
    starts, records = log.all("block_start"), []
    stops = log.all("block_stop")
    for index, start in enumerate(starts):
        stop = next((s for s in stops if s.time_ms >= start.time_ms), None)
        before = _number(start.metadata.get("samples_count"))
        after = _number(stop.metadata.get("samples_count")) if stop else None
        if stop is None or before is None or after is None or not global_batch or after < before:
            continue
        losses = [float(e.value) for e in log.all("train_loss")
                  if start.time_ms <= e.time_ms <= stop.time_ms and _number(e.value) is not None]
        record = {"epoch": index, "rank": 0, "start_unix_ns": start.time_ms * 1_000_000,
                  "duration_s": (stop.time_ms - start.time_ms) / 1000,
                  "steps": int(round((after - before) / global_batch)), "samples": int(after - before)}
        if losses:
            record["train_loss_mean"] = statistics.fmean(losses)
        records.append(models.EpochRecord(**record))
    if starts and not records:
        log.issue("incomplete-source", "blocks carry no samples_count on both ends: not converted to epoch records")
    return records
