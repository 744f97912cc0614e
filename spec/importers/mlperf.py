"""`trainmark import mlperf`: an MLPerf Training result folder as a bundle, with MLCommons' own figures.

Reads every `result_*.txt` (one run each; the run id is the file's stem), the power logs of each run
under `power/<stem>/node_*.txt` and `sw_*.txt`, `scaling.json`, and a system description JSON. Real
logs are messy; nothing here assumes they are not. Every problem met becomes a `SourceIssue` (once per
file and kind, with a count) that the scorer turns into a finding, and the originals are kept byte for
byte under `source/`.

Two sets of figures come out, side by side and never mixed:
- what MLCommons reports for the result (olympic time to train and energy, times the scaling
  factor), computed by its published rules (`mlperf_summarizer`), in `source.reported`;
- trainmark's own runs and their metrics, which the scorer's statistics use. A byte-identical copy of
  a result file (`result_X_raw_06.txt` beside `result_X_06.txt`) counts in the official figure, as
  MLCommons counts it, and not as a second run of trainmark's.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainmark.spec import models, producer_version
from trainmark.spec.errors import TrainmarkError
from trainmark.spec.importers import mlperf_summarizer as summarizer
from trainmark.spec.importers.base import BundleImport
from trainmark.spec.importers.mlperf_log import Log, number, read_log
from trainmark.spec.importers.mlperf_system import cooling_block, software_block, system_block

FORMAT = "MLPerf Training result logs (:::MLLOG lines) with MLPerf power logs"
IMPORTER = "trainmark import mlperf"
NOT_LOGGED = "not in MLPerf logs"
LOGGER = "MLPerf mllog (the logger's version is not in the log)"
POWER_LOGGER = "MLPerf power logging (the meter and its software are not in the log)"
RULES_TOOL = "MLCommons' result summarizer rules (mlperf_logging), as reimplemented by trainmark"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_POWER_W = 10_000_000  # the standard's bounds of a power sample (PowerSample.power_w, time_unix_ns)
FIRST_SAMPLE_MS, LAST_SAMPLE_MS = 946_684_800_000, 4_102_444_800_000

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
    "rgat": ("other", "IGBH-Full"),
}
# Keys whose meaning the importer knows (mapped, or deliberately not needed).
KNOWN_KEYS = {
    "cache_clear",
    "init_start",
    "init_stop",
    "run_start",
    "run_stop",
    "block_start",
    "block_stop",
    "epoch_start",
    "epoch_stop",
    "eval_start",
    "eval_stop",
    "eval_accuracy",
    "eval_samples",
    "train_samples",
    "train_loss",
    "tracked_stats",
    "seed",
    "global_batch_size",
    "local_batch_size",
    "gradient_accumulation_steps",
    "submission_benchmark",
    "submission_org",
    "submission_division",
    "submission_status",
    "submission_platform",
    "submission_poc_name",
    "submission_poc_email",
    "sequence_length",
    "max_sequence_length",
    "opt_name",
    "opt_learning_rate_decay_schedule",
    "weights_initialization",
    "power_measurement_start",
    "power_measurement_stop",
    "conversion_eff",
    "power_reading",
    "interconnect_power_est",
    "init_checkpoint_step",
}
_HYPERPARAMETER = re.compile(r"^(opt|lars|lamb|sgd|adam|lora|model|dropout|label_smoothing|warmup)")


def _natural(path: Path) -> list:
    """result_2 before result_10: digits compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _iso(time_ms: float) -> str:
    return datetime.fromtimestamp(time_ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _utc(time_ms: float) -> datetime:
    """A millisecond Unix time as an aware UTC datetime, to the millisecond."""
    return datetime.fromtimestamp(round(time_ms) / 1000, tz=UTC)


def _ns(time_ms: float) -> int:
    return int(round(time_ms * 1_000_000))


@dataclass
class PowerLog:
    """One node's or switch's power log of one run."""

    log: Log
    position: int  # node index (nodes by position in name order) or switch index
    switch: bool
    host: str | None
    window: summarizer.NodeWindow | None  # nodes only
    current_type: str | None
    readings: list[tuple[float, float]]  # (time_ms, watts) of every numeric power_reading, in time order


def _read_power(file: Path, session: BundleImport, relative: str, position: int, switch: bool) -> PowerLog:
    log = read_log(file, session.keep(file, relative), session.issue)
    efficiency = log.first("conversion_eff")
    current = efficiency.metadata.get("measurement_type") if efficiency else None
    hosts = sorted({str(e.metadata["host"]) for e in log.all("power_reading") if e.metadata.get("host")})
    if len(hosts) > 1:
        log.issue(
            "type-mismatch",
            f"power readings name {len(hosts)} hosts ({', '.join(hosts[:4])}); one log is one node",
            pointer="/metadata/host",
        )
    readings, numeric = [], 0
    for event in log.events:
        if event.key == "power_reading":
            watts = number(event.value)
            if watts is None:
                log.issue(
                    "type-mismatch",
                    f"power_reading value {event.value!r} is not a number; skipped",
                    line=event.line,
                    pointer="/value",
                    repeated="reading-type",
                )
                continue
            numeric += 1
            if not 0 <= watts <= MAX_POWER_W or not FIRST_SAMPLE_MS <= event.time_ms <= LAST_SAMPLE_MS:
                log.issue(
                    "type-mismatch",
                    f"power_reading of {watts!r} W at time_ms {event.time_ms!r} is outside "
                    "the standard's bounds (0 to 10 MW, years 2000 to 2100): not in the trace (MLCommons' "
                    "formula still counts it)",
                    line=event.line,
                    pointer="/value",
                    repeated="reading-bounds",
                )
                continue
            readings.append((event.time_ms, watts))
    readings.sort(key=lambda reading: reading[0])
    window = None
    if not switch:
        window = summarizer.node_window(log)
        if window.start_ms is None:
            log.issue("missing-event", "no power_measurement_start: MLCommons' formula has no window, no energy")
        elif not window.stop_logged:
            log.issue(
                "missing-event",
                "no power_measurement_stop: the window ends at the last reading, as MLCommons' summarizer does",
            )
        elif window.stop_ms == window.start_ms:
            log.issue(
                "undefined-value",
                "power_measurement_stop is at power_measurement_start's time: the window "
                "has zero length and MLCommons' energy (which divides by it) is undefined",
            )
        outside = numeric - window.counted
        if window.start_ms is not None and outside:
            log.issue(
                "excluded-data",
                f"{outside} power_reading(s) outside power_measurement_start..stop: kept in "
                "the trace, not counted in the energy (MLCommons counts only readings inside the window)",
            )
        if efficiency is None:
            log.issue("assumed-value", "no conversion_eff: 1.0 is assumed, as MLCommons' summarizer does")
    else:
        if readings:
            log.issue(
                "excluded-data",
                f"{len(readings)} power_reading line(s) in a switch log: kept as their own "
                "channel, never added to the energy (MLCommons counts only a switch's interconnect_power_est)",
            )
        if not log.all("interconnect_power_est"):
            log.issue(
                "missing-event", "no interconnect_power_est: this switch adds no energy, as in MLCommons' summarizer"
            )
    log.flush_issues()
    log.events = [event for event in log.events if event.key != "power_reading"]  # kept once, in `readings`
    return PowerLog(
        log,
        position,
        switch,
        hosts[0] if hosts else None,
        window,
        current if current in ("AC", "DC") else None,
        readings,
    )


@dataclass
class ResultFile:
    """One result_*.txt: its log, its power logs, and how the summarizer scores it."""

    stem: str
    log: Log
    power: list[PowerLog]
    duplicate_of: str | None
    score: summarizer.RunScore


def _read_result(file: Path, session: BundleImport, result_dir: Path, seen: dict[str, str]) -> ResultFile:
    stem = file.stem
    log = read_log(file, session.keep(file, file.name), session.issue)
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    duplicate_of = seen.get(digest)
    if duplicate_of is None:
        seen[digest] = stem
    else:
        log.issue(
            "duplicate-file",
            f"byte-identical to source/{duplicate_of}.txt: MLCommons' summarizer counts "
            "every result_*.txt, so the official figure counts it; trainmark's runs count it once",
        )
    power_dir = result_dir / "power" / stem
    power: list[PowerLog] = []
    if power_dir.is_dir():
        nodes = sorted((p for p in power_dir.glob("node_*.txt") if not p.is_dir()), key=_natural)
        switches = sorted((p for p in power_dir.glob("sw_*.txt") if not p.is_dir()), key=_natural)
        for position, path in enumerate(nodes):
            power.append(_read_power(path, session, f"power/{stem}/{path.name}", position, False))
        for position, path in enumerate(switches):
            power.append(_read_power(path, session, f"power/{stem}/{path.name}", position, True))
        for other in sorted(set(power_dir.iterdir()) - set(nodes) - set(switches)):
            if other.is_file():
                kept = session.keep(other, f"power/{stem}/{other.name}")
                session.issue(
                    "excluded-data",
                    kept,
                    "neither node_*.txt nor sw_*.txt: MLCommons' summarizer does not read it; kept, not imported",
                )
    ttt_ms, dropped_reason = summarizer.time_to_train(log)
    score = summarizer.RunScore(stem, ttt_ms, dropped_reason)
    if (result_dir / "power").is_dir():
        if not any(not p.switch for p in power):
            score.energy_reason = f"no power/{stem}/node_*.txt for this run, although the result has a power/ folder"
        elif ttt_ms is not None:
            _official_energy(score, power, ttt_ms)
    return ResultFile(stem, log, power, duplicate_of, score)


def _official_energy(score: summarizer.RunScore, power: list[PowerLog], ttt_ms: float) -> None:
    nodes = [p for p in power if not p.switch]
    total = 0.0
    for node in nodes:
        joules, reason = summarizer.node_energy_j(node.window, ttt_ms, node.log.path)
        if joules is None:
            score.energy_reason = reason
            return
        total += joules
    for switch in (p for p in power if p.switch):
        joules = summarizer.switch_energy_j(switch.log, ttt_ms)
        if joules is None:
            score.energy_reason = f"the interconnect_power_est of {switch.log.path} gives no usable energy"
            return
        total += joules
    score.energy_j = total


def _read_json(file: Path, session: BundleImport, relative: str) -> tuple[Any, str]:
    path = session.keep(file, relative)
    try:
        return json.loads(file.read_bytes()), path
    except ValueError as error:
        session.issue("unparseable-line", path, f"not JSON ({error}); not used")
        return None, path


def import_mlperf(
    result_dir: Path,
    out: Path,
    system_json: Path | None = None,
    benchmark: str | None = None,
    origin: str | None = None,
) -> str:
    """Write the MLPerf result folder `result_dir` as a bundle in `out`; return its id.

    Nothing is left at `out` when the import fails.
    """
    result_dir = Path(result_dir)
    results = sorted(result_dir.glob("result_*.txt"), key=_natural)
    if not results:
        raise TrainmarkError(f"{result_dir} has no result_<i>.txt files: not an MLPerf result folder")
    for file in results:
        if not _RUN_ID.match(file.stem):
            raise TrainmarkError(
                f"{file}: the run id would be its stem {file.stem!r}, which is not a bundle "
                "identifier (letters, digits, '.', '_', '-', at most 64); rename the file"
            )
    if system_json is None and (result_dir / "system.json").is_file():
        system_json = result_dir / "system.json"
    with BundleImport(Path(out), IMPORTER, FORMAT) as session:
        system, system_path = _read_json(system_json, session, "system.json") if system_json else (None, None)
        if system is not None and not isinstance(system, dict):
            session.issue("type-mismatch", system_path, "not a JSON object; not used")
            system = None
        scaling = None
        if (result_dir / "scaling.json").is_file():
            content, scaling_path = _read_json(result_dir / "scaling.json", session, "scaling.json")
            scaling = number(content.get("scaling_factor")) if isinstance(content, dict) else None
            if scaling is None:
                session.issue(
                    "type-mismatch",
                    scaling_path,
                    "no numeric scaling_factor in it; 1.0 is used",
                    pointer="/scaling_factor",
                )
        seen: dict[str, str] = {}
        files = [_read_result(file, session, result_dir, seen) for file in results]
        return _write(
            session, files, system, system_path, scaling, benchmark, origin, has_power=(result_dir / "power").is_dir()
        )


def _reported(files: list[ResultFile], benchmark: str, scaling: float | None, has_power: bool) -> list[models.Metric]:
    """MLCommons' official figures for this result, as metrics of `source.reported`."""
    result = summarizer.olympic([f.score for f in files], benchmark, has_power)
    factor = scaling if scaling is not None else 1.0
    k = summarizer.max_dropped_scores(benchmark)
    selection = (
        f"olympic mean over result_*.txt: sorted by time to train, the {k} fastest and {k} slowest dropped "
        f"(a run without a successful run_stop is dropped and counts as a slowest), times scaling.json's "
        f"scaling_factor ({factor!r})"
    )
    note = (
        f"what MLCommons reports for this result; runs kept: {', '.join(result.kept) or 'none'}; dropped as not "
        f"converged or unreadable: {', '.join(result.dropped) or 'none'}"
    )
    metrics = []
    if result.time_to_train_min is None:
        metrics.append(
            models.Metric(name="time_to_train", scope="global", unit="s", value=None, unavailable_reason=result.reason)
        )
    else:
        metrics.append(
            models.Metric(
                name="time_to_train",
                scope="global",
                unit="s",
                value=result.time_to_train_min * factor * 60,
                method="derived",
                source=f"run_stop - run_start, {selection}; MLCommons publishes it in minutes (value / 60)",
                tool=RULES_TOOL,
                note=note,
            )
        )
    if result.energy_j is None:
        metrics.append(
            models.Metric(
                name="total_energy", scope="global", unit="J", value=None, unavailable_reason=result.energy_reason
            )
        )
    else:
        metrics.append(
            models.Metric(
                name="total_energy",
                scope="global",
                unit="J",
                value=result.energy_j * factor,
                method="derived",
                source="per run: sum over power/<stem>/node_*.txt of conversion_eff x sum P_i (t_i - t_(i-1)) inside "
                "power_measurement_start..stop x time to train / window, plus sw_*.txt conversion_eff x "
                f"interconnect_power_est x time to train; mean over the runs the time to train's {selection}",
                tool=RULES_TOOL,
                note=note,
            )
        )
    return metrics


def _write(
    session: BundleImport,
    files: list[ResultFile],
    system: dict | None,
    system_path: str | None,
    scaling: float | None,
    benchmark: str | None,
    origin: str | None,
    has_power: bool,
) -> str:
    first = files[0].log

    def value_of(key: str) -> Any:
        event = next((e for f in files for e in f.log.events if e.key == key), None)
        return event.value if event else None

    benchmark = benchmark or value_of("submission_benchmark") or "unknown"
    family, dataset_name = BENCHMARKS.get(benchmark, ("other", None))
    description_file = system_path or first.path
    system_described, accelerators = _system(session, files, system, value_of("submission_platform"), description_file)
    global_batch = number(value_of("global_batch_size"))
    if global_batch is None:
        session.issue("assumed-value", first.path, "no global_batch_size event: 1 is assumed")
    world_size = max(1, accelerators)
    session.issue(
        "assumed-value",
        first.path,
        f"world_size is {world_size}, one process per accelerator as MLPerf submissions run; the logs do not say",
    )

    runs = [f for f in files if f.duplicate_of is None]
    hyperparameters = _hyperparameters(runs)
    optimizer = models.Optimizer(
        name=_optimizer_name(session, first, value_of, hyperparameters), hyperparameters=hyperparameters
    )

    channels: dict[str, models.Channel] = {}
    run_entries = [_run_entry(run, session, global_batch, channels) for run in runs]

    dataset = models.Dataset(
        name=dataset_name or f"the {benchmark} dataset",
        unavailable_reason=f"{NOT_LOGGED}: MLPerf fixes the dataset by rule; the logs carry no digest of what was fed",
    )
    train_samples = number(value_of("train_samples"))
    if train_samples:
        dataset.size_samples = int(train_samples)
    training = _training(value_of, global_batch, world_size, optimizer)

    organisation = value_of("submission_org")
    parameters = [models.Hyperparameter(name="scaling_factor", value=scaling)] if scaling is not None else None
    blocks = {
        "created_at": _iso(max(stop_ms for _, stop_ms in run_entries)),
        "description": f"MLPerf Training result: {benchmark} by {organisation or 'an unnamed submitter'} "
        f"({value_of('submission_division') or 'division not logged'}, "
        f"{value_of('submission_status') or 'status not logged'}), imported by trainmark from the "
        "submitter's own logs",
        "submitter": models.Submitter(name=str(organisation), organization=str(organisation)) if organisation else None,
        "system": system_described,
        "software": software_block(system, lambda c, m: session.issue(c, description_file, m)),
        "model": models.Model(
            name=benchmark,
            architecture_family=family,
            precision_policy="undeclared",
            parameters_total=models.Measurement(value=None, unit="{parameter}", unavailable_reason=NOT_LOGGED),
            parameters_trainable=models.Measurement(value=None, unit="{parameter}", unavailable_reason=NOT_LOGGED),
        ),
        "training": training,
        "dataset": dataset,
        "code": models.Code(
            unavailable_reason=f"{NOT_LOGGED}: the training code is in the submitter's results repository"
        ),
        "environment": models.Environment(
            ambient_temperature=models.Measurement(value=None, unit="Cel", unavailable_reason=NOT_LOGGED),
            **cooling_block(system),
        ),
        "methodology": models.Methodology(
            tools=[models.NamedVersion(name="MLPerf mllog", version="not in the logs")],
            channels=list(channels.values()),
            clock=models.ClockDescription(
                timestamps="time_ms of each :::MLLOG event (Unix milliseconds, the submitter's clocks)",
                durations="differences of time_ms",
            ),
            idle_subtraction=models.IdleSubtraction(method="none", description="MLPerf does not measure idle power"),
            notes="converted by trainmark import mlperf; the originals are under source/; MLCommons' own figures "
            "are in source.reported",
        ),
        "runs": [entry for entry, _ in run_entries],
        "source": session.provenance(
            origin=origin, parameters=parameters, reported=_reported(files, benchmark, scaling, has_power)
        ),
    }
    return session.finish(blocks)


def _system(
    session: BundleImport, files: list[ResultFile], system: dict | None, platform: str | None, description_file: str
) -> tuple[models.System, int]:
    """(system, accelerators): the system description, with a node more for each power log beyond it."""
    described, accelerators = system_block(
        system, platform, lambda code, message: session.issue(code, description_file, message)
    )
    power_nodes = max((len([p for p in f.power if not p.switch]) for f in files), default=0)
    if power_nodes > described.node_count:
        session.issue(
            "assumed-value",
            description_file,
            f"the power logs have {power_nodes} node files, the system "
            f"description {described.node_count} node(s): {power_nodes} nodes are assumed",
        )
        described.hosts = described.hosts + [
            models.Host(node=node) for node in range(described.node_count, power_nodes)
        ]
        described.node_count = power_nodes
    return described, accelerators


def _hyperparameters(runs: list[ResultFile]) -> list[models.Hyperparameter]:
    """The first run's numeric hyperparameters; every other unmapped key is an unknown-key issue of its log."""
    hyperparameters: list[models.Hyperparameter] = []
    for run in runs:
        for event in run.log.events:
            if event.key in KNOWN_KEYS:
                continue
            if _HYPERPARAMETER.match(event.key) and number(event.value) is not None:
                if run is runs[0] and not any(h.name == event.key for h in hyperparameters):
                    hyperparameters.append(models.Hyperparameter(name=event.key, value=float(event.value)))
            else:
                run.log.issue(
                    "unknown-key",
                    f"{event.key} is not mapped; the original keeps it",
                    line=event.line,
                    repeated=f"unknown:{event.key}",
                )
        run.log.flush_issues()
    return hyperparameters


def _optimizer_name(
    session: BundleImport, first: Log, value_of: Callable[[str], Any], hyperparameters: list[models.Hyperparameter]
) -> str:
    """opt_name, else the optimizer its hyperparameters' prefix names, else 'unknown' with an issue."""
    name = value_of("opt_name")
    if not isinstance(name, str):
        prefixes = {"opt_adamw": "AdamW", "opt_lamb": "LAMB", "lars_": "LARS", "opt_adam": "Adam", "sgd_": "SGD"}
        name = next(
            (name for prefix, name in prefixes.items() if any(h.name.startswith(prefix) for h in hyperparameters)), None
        )
    if name is None:
        session.issue("incomplete-source", first.path, "the optimizer is not named")
        return "unknown"
    return name


def _training(
    value_of: Callable[[str], Any], global_batch: float | None, world_size: int, optimizer: models.Optimizer
) -> models.Training:
    """The training block from the logged batch size, accumulation, sequence length and schedule."""
    training = models.Training(global_batch_size=int(global_batch or 1), world_size=world_size, optimizer=optimizer)
    accumulation = number(value_of("gradient_accumulation_steps"))
    if accumulation:
        training.gradient_accumulation_steps = int(accumulation)
    sequence_length = number(value_of("sequence_length") or value_of("max_sequence_length"))
    if sequence_length:
        training.sequence_length = int(sequence_length)
    schedule = value_of("opt_learning_rate_decay_schedule")
    if isinstance(schedule, str) and schedule.strip():
        training.lr_schedule = models.LrSchedule(name=schedule)
    return training


def _channel(channels: dict[str, models.Channel], power: PowerLog) -> str:
    """The channel of one node's or switch's log: one per node position (or switch), named uniquely."""
    base = f"mlperf_switch_{power.position}_power" if power.switch else f"mlperf_node_{power.position}_power"
    efficiency = power.window.efficiency if power.window else None
    times = [time_ms for time_ms, _ in power.readings]
    gaps = sorted(b - a for a, b in zip(times, times[1:]) if b > a)
    rate = 1000 / statistics.median(gaps) if gaps else None
    described = f"{'switch' if power.switch else 'node'} log {Path(power.log.path).name}" + (
        f" (host {power.host})" if power.host else ""
    )
    channel = models.Channel(
        name=base,
        record_type="power_sample",
        fields=["power_w"],
        method="sampled",
        source="power_reading events of the MLPerf power logs (watts)",
        tool=POWER_LOGGER,
        domain="interconnect" if power.switch else "node",
        conversion_efficiency=efficiency,
        current_type=power.current_type,
        target_rate_hz=rate,
        description=f"{described}; MLPerf logs declare no sampling rate, the target rate is the median interval of "
        "the readings"
        + ("; not part of MLCommons' energy, which counts the switch's interconnect_power_est" if power.switch else ""),
    )
    name, suffix = base, 1
    while name in channels and (channels[name].conversion_efficiency, channels[name].current_type) != (
        channel.conversion_efficiency,
        channel.current_type,
    ):
        suffix += 1
        name = f"{base}_{suffix}"
    if name not in channels:
        channel.name = name
        channels[name] = channel
    return name


def _run_entry(
    run: ResultFile, session: BundleImport, global_batch: float | None, channels: dict[str, models.Channel]
) -> tuple[models.Run, float]:
    log = run.log
    start, stop = log.first("run_start"), log.first("run_stop")
    events = sorted(log.events, key=lambda event: event.time_ms)
    if not events:
        raise TrainmarkError(f"{log.path} has no :::MLLOG events: not an MLPerf result log")
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
    tool, trainmark = LOGGER, f"trainmark {producer_version()}"
    time_to_train_ms = stop_ms - start_ms
    metrics = [
        models.Metric(
            name="run_duration",
            scope="global",
            unit="s",
            value=time_to_train_ms / 1000,
            method="derived",
            source="runs[].ended_at - runs[].started_at",
            tool=trainmark,
        )
    ]
    if stop is not None and start is not None:
        metrics.append(
            models.Metric(
                name="time_to_train",
                scope="global",
                unit="s",
                value=time_to_train_ms / 1000,
                method="derived",
                source=f"run_stop.time_ms - run_start.time_ms in {log.path} (MLPerf's time to train)",
                tool=tool,
            )
        )
    samples = number(stop.metadata.get("samples_count")) if stop else None
    throughput = [
        number(e.value.get("throughput"))
        for e in log.all("tracked_stats")
        if isinstance(e.value, dict) and number(e.value.get("throughput")) is not None
    ]
    if throughput:
        metrics.append(
            models.Metric(
                name="samples_per_second",
                scope="global",
                unit="{sample}/s",
                value=statistics.fmean(throughput),
                method="declared",
                source=f"mean of tracked_stats.throughput in {log.path}, as the submission's software reported it",
                tool=tool,
            )
        )
    elif samples and time_to_train_ms:
        metrics.append(
            models.Metric(
                name="samples_per_second",
                scope="global",
                unit="{sample}/s",
                value=samples / (time_to_train_ms / 1000),
                method="derived",
                source=f"run_stop samples_count / time to train in {log.path} (evaluation included)",
                tool=tool,
            )
        )
    quality = [e for e in log.all("eval_accuracy") if number(e.value) is not None]
    if quality:
        metrics.append(
            models.Metric(
                name="final_quality",
                scope="global",
                unit="1",
                value=float(quality[-1].value),
                method="declared",
                source=f"the last eval_accuracy in {log.path} (the benchmark's quality metric)",
                tool=tool,
            )
        )
    for name, unit in (
        ("flops_per_step_analytical", "{flop}"),
        ("flops_per_step_counted", "{flop}"),
        ("peak_memory", "By"),
        ("peak_memory_forward", "By"),
        ("peak_memory_backward", "By"),
        ("peak_memory_optimizer", "By"),
        ("allocations_per_step", "{allocation}/{step}"),
        ("steps_per_second", "{step}/s"),
    ):
        metrics.append(models.Metric(name=name, scope="global", unit=unit, value=None, unavailable_reason=NOT_LOGGED))

    sampling = _power(run, session, time_to_train_ms, samples, channels, metrics)
    blocks = _blocks(log, global_batch)
    if blocks:
        with session.writer.open_trace(run.stem, "epoch") as trace:
            for block in blocks:
                trace.append(block)
    seed = log.first("seed")
    entry = models.Run(
        run_id=run.stem,
        started_at=_utc(start_ms),
        ended_at=_utc(stop_ms),
        status=status,
        status_reason=reason,
        metrics=metrics,
        sampling=sampling or None,
        seed=int(seed.value)
        if seed is not None
        and number(seed.value) is not None
        and float(seed.value).is_integer()
        and 0 <= seed.value < 2**53
        else None,
    )
    return entry, stop_ms


def _power(
    run: ResultFile,
    session: BundleImport,
    time_to_train_ms: float,
    samples: float | None,
    channels: dict[str, models.Channel],
    metrics: list[models.Metric],
) -> list[models.ChannelRate]:
    """The run's power samples (every reading, raw timestamps) and energy metrics (MLCommons' formula)."""
    trainmark = f"trainmark {producer_version()}"
    if not any(not p.switch for p in run.power):  # no node log: no energy (a switch's estimate alone is not one)
        reason = run.score.energy_reason or "this result has no MLPerf power logs"
        metrics.append(
            models.Metric(name="total_energy", scope="global", unit="J", value=None, unavailable_reason=reason)
        )
        return []
    sampling: list[models.ChannelRate] = []
    total, undefined, modeled = 0.0, None, False
    with session.writer.open_trace(run.stem, "power_sample", flush_each=False) as trace:
        for power in run.power:
            name = _channel(channels, power)
            readings = power.readings
            node = None if power.switch else power.position
            if readings:  # the first through the model, which checks the shape; the rest formatted like it
                time_ms, watts = readings[0]
                trace.append(models.PowerSample(time_unix_ns=_ns(time_ms), channel=name, node=node, power_w=watts))
                head = f'{{"time_unix_ns":%d,"channel":"{name}",' + ("" if node is None else f'"node":{node},')
                trace.append_serialized([head % round(t * 1_000_000) + f'"power_w":{w!r}}}' for t, w in readings[1:]])
            if readings:
                span_s = (readings[-1][0] - readings[0][0]) / 1000
                sampling.append(
                    models.ChannelRate(
                        channel=name,
                        sample_count=len(readings),
                        achieved_rate_hz=(len(readings) - 1) / span_s if span_s > 0 else None,
                    )
                )
            if power.switch:
                joules = summarizer.switch_energy_j(power.log, time_to_train_ms)
                if joules is None:
                    undefined = undefined or f"the interconnect_power_est of {power.log.path} gives no usable energy"
                elif power.log.all("interconnect_power_est"):
                    total += joules
                    modeled = True
                    metrics.append(
                        models.Metric(
                            name="total_energy",
                            scope="interconnect",
                            unit="J",
                            value=joules,
                            method="modeled",
                            source=f"conversion_eff x interconnect_power_est x time to train in {power.log.path} (a "
                            "constant power estimate, MLCommons' formula)",
                            tool=POWER_LOGGER,
                        )
                    )
                continue
            joules, reason = summarizer.node_energy_j(power.window, time_to_train_ms, power.log.path)
            if joules is None:
                undefined = undefined or reason
                metrics.append(
                    models.Metric(
                        name="total_energy",
                        scope="node",
                        node=power.position,
                        unit="J",
                        value=None,
                        unavailable_reason=reason,
                    )
                )
                continue
            total += joules
            metrics.append(
                models.Metric(
                    name="total_energy",
                    scope="node",
                    node=power.position,
                    unit="J",
                    value=joules,
                    method="sampled",
                    source="conversion_eff x sum of power_reading x (t - previous t) inside power_measurement_start.."
                    f"stop in time order, x time to train / measurement window, in {power.log.path} (MLCommons' "
                    "formula)",
                    tool=POWER_LOGGER,
                )
            )
            inside = [w for t, w in readings if power.window.start_ms <= t <= power.window.stop_ms]
            if inside:
                metrics.append(
                    models.Metric(
                        name="power_mean",
                        scope="node",
                        node=power.position,
                        unit="W",
                        value=statistics.fmean(inside),
                        method="sampled",
                        source=f"mean power_reading inside the measurement window in "
                        f"{power.log.path} (before conversion_eff)",
                        tool=POWER_LOGGER,
                    )
                )
    if undefined:
        metrics.append(
            models.Metric(name="total_energy", scope="global", unit="J", value=None, unavailable_reason=undefined)
        )
        return sampling
    metrics.append(
        models.Metric(
            name="total_energy",
            scope="global",
            unit="J",
            value=total,
            method="derived" if modeled else "sampled",
            source="sum over the nodes' total_energy"
            + (" and the switches' modeled interconnect energy" if modeled else "")
            + " (MLCommons' run energy)",
            tool=trainmark,
        )
    )
    if samples:
        metrics.append(
            models.Metric(
                name="energy_per_sample",
                scope="global",
                unit="J/{sample}",
                value=total / samples,
                method="derived",
                source="total_energy / run_stop samples_count",
                tool=trainmark,
            )
        )
    return sampling


def _blocks(log: Log, global_batch: float | None) -> list[models.EpochRecord]:
    """MLPerf blocks as epoch records, where samples_count says how many steps they hold."""
    starts, records = log.all("block_start"), []
    stops = log.all("block_stop")
    for index, start in enumerate(starts):
        stop = next((s for s in stops if s.time_ms >= start.time_ms), None)
        before = number(start.metadata.get("samples_count"))
        after = number(stop.metadata.get("samples_count")) if stop else None
        if stop is None or before is None or after is None or not global_batch or after < before:
            continue
        losses = [
            float(e.value)
            for e in log.all("train_loss")
            if start.time_ms <= e.time_ms <= stop.time_ms and number(e.value) is not None
        ]
        record = {
            "epoch": index,
            "rank": 0,
            "start_unix_ns": _ns(start.time_ms),
            "duration_s": (stop.time_ms - start.time_ms) / 1000,
            "steps": int(round((after - before) / global_batch)),
            "samples": int(after - before),
        }
        if losses:
            record["train_loss_mean"] = statistics.fmean(losses)
        records.append(models.EpochRecord(**record))
    if starts and not records:
        log.issue("incomplete-source", "blocks carry no samples_count on both ends: not converted to epoch records")
    return records
