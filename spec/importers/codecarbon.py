"""`trainmark import codecarbon`: CodeCarbon's emissions.csv as a bundle, each energy with the method used.

CodeCarbon (https://codecarbon.io) writes one row per tracked run: duration (s), energy per
component (kWh: `cpu_energy`, `gpu_energy`, `ram_energy`, and their sum `energy_consumed`), the last
power of each (W), and the machine (CPU and GPU model and count, RAM size in GiB). A row is a run;
rows that share a `run_id` are the cumulative snapshots one run wrote as it went, and the longest is
the run.

How CodeCarbon obtained a component decides its method here, never the other way round:
- the GPU energy is NVML's (or AMD SMI's) total-energy counter: `counter`;
- the CPU energy is a counter with RAPL, Intel Power Gadget or Windows EMI, polled power with
  PowerMetrics, and an estimate from a TDP guess (and the CPU load) on a machine without sensors:
  `modeled`, never `measured`;
- the RAM energy is CodeCarbon's power model (or a constant the user set): `modeled`.
The CSV does not say which CPU method was used; CodeCarbon's log does ("CPU Tracking Method: ...").
Without the log (`log=`), the CPU energy is taken as `modeled`, the lower tier, with an issue saying
so. A component that was not tracked (no GPU) is null with the reason, never zero.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from trainmark.spec import models
from trainmark.spec.errors import TrainmarkError
from trainmark.spec.importers.base import BundleImport

FORMAT = "CodeCarbon emissions.csv (one row per tracked run)"
IMPORTER = "trainmark import codecarbon"
JOULES_PER_KWH = 3.6e6
GIB = 1024**3
REQUIRED = (
    "timestamp",
    "run_id",
    "duration",
    "cpu_energy",
    "gpu_energy",
    "ram_energy",
    "energy_consumed",
    "cpu_power",
    "gpu_power",
    "ram_power",
    "codecarbon_version",
    "cpu_count",
    "cpu_model",
    "gpu_count",
)
NOT_IN_CSV = "not in CodeCarbon's emissions.csv"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# CodeCarbon's tracking methods (the names its log prints) -> (metric method, what it is).
CPU_METHODS = {
    "RAPL": ("counter", "Intel/AMD RAPL energy counters under /sys/class/powercap, read by CodeCarbon"),
    "Power Gadget": ("counter", "Intel Power Gadget's energy counters, read by CodeCarbon"),
    "Windows EMI": ("counter", "the Windows Energy Meter Interface counters, read by CodeCarbon"),
    "PowerMetrics": ("sampled", "macOS powermetrics power samples, integrated by CodeCarbon"),
    "raspberry": ("sampled", "the Raspberry Pi PMIC's power readings, integrated by CodeCarbon"),
    "cpu_load": ("modeled", "CodeCarbon's estimate from a TDP guess scaled by the CPU load (no CPU sensor)"),
    "TDP constant": ("modeled", "CodeCarbon's estimate: the CPU's TDP x time (no CPU sensor)"),
    "User Input TDP constant": ("modeled", "CodeCarbon's estimate: a TDP the user gave x time (no CPU sensor)"),
    "global constant": ("modeled", "CodeCarbon's estimate: a default power per CPU x time (no CPU sensor)"),
}
GPU_METHODS = {
    "pynvml": ("counter", "NVML's total-energy counter (nvmlDeviceGetTotalEnergyConsumption), read by CodeCarbon"),
    "amdsmi": ("counter", "AMD SMI's energy counter, read by CodeCarbon"),
}
UNKNOWN_CPU = (
    "modeled",
    "CodeCarbon's CPU energy, method not recorded in the CSV (no log given): taken as an "
    "estimate, the lower tier, since CodeCarbon estimates from a TDP guess where there is no "
    "sensor",
)
RAM_METHOD = ("modeled", "CodeCarbon's RAM power model (or a constant the user set) x time, not a measurement")


@dataclass
class Methods:
    """The tracking methods CodeCarbon used, from its log (None: not known)."""

    cpu: str | None = None
    gpu: str | None = None
    ram: str | None = None


def read_methods(log_file: Path, session: BundleImport) -> Methods:
    """The 'CPU/GPU/RAM Tracking Method: X' lines of CodeCarbon's log (kept under source/)."""
    path = session.keep(log_file, log_file.name)
    found: dict[str, set[str]] = {"CPU": set(), "GPU": set(), "RAM": set()}
    for line in log_file.read_text(encoding="utf-8", errors="replace").splitlines():
        match = re.match(r"\s*(CPU|GPU|RAM) Tracking Method: (.+?)\s*$", line)
        if match:
            found[match.group(1)].add(match.group(2))
    methods = Methods()
    for part, values in found.items():
        if len(values) > 1:
            session.issue(
                "type-mismatch",
                path,
                f"the log names {len(values)} {part} tracking methods "
                f"({', '.join(sorted(values))}); which row used which is unknown, so none is used",
            )
        elif values:
            setattr(methods, part.lower(), values.pop())
    if methods.cpu is None and not found["CPU"]:
        session.issue(
            "incomplete-source",
            path,
            "the log has no 'CPU Tracking Method' line (it is printed at CodeCarbon's info log level)",
        )
    return methods


def _float(row: dict, column: str, where: str, session: BundleImport, path: str, line: int) -> float | None:
    text = (row.get(column) or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        session.issue(
            "type-mismatch",
            path,
            f"{column} is {text!r}, not a number; taken as missing",
            line=line,
            pointer=f"/{column}",
            repeated=f"number:{column}",
        )
        return None
    if not math.isfinite(value) or value < 0:
        session.issue(
            "type-mismatch",
            path,
            f"{column} is {text}, not a finite non-negative number; taken as missing ({where})",
            line=line,
            pointer=f"/{column}",
            repeated=f"range:{column}",
        )
        return None
    return value


@dataclass
class Row:
    """One run of the CSV: its row, and its line in the file."""

    values: dict
    line: int


def _rows(csv_file: Path, session: BundleImport, path: str) -> list[Row]:
    text = csv_file.read_bytes().decode("utf-8-sig", errors="replace")
    reader = csv.DictReader(text.splitlines())
    missing = [column for column in REQUIRED if column not in (reader.fieldnames or [])]
    if missing:
        raise TrainmarkError(
            f"{csv_file}: not a CodeCarbon emissions.csv, the header lacks {', '.join(missing)}; "
            "pass the file CodeCarbon wrote (output_file, emissions.csv by default)"
        )
    rows = [Row(values, number) for number, values in enumerate(reader, start=2)]
    if not rows:
        raise TrainmarkError(f"{csv_file} has a header but no rows: CodeCarbon wrote no run into it")
    for row in rows:
        if None in row.values:
            session.issue(
                "unparseable-line",
                path,
                "a row with more cells than the header; the extra cells are ignored",
                line=row.line,
                repeated="extra-cells",
            )
    by_run: dict[str, list[Row]] = {}
    for row in rows:
        run_id = (row.values.get("run_id") or "").strip() or f"row_{row.line}"
        by_run.setdefault(run_id, []).append(row)
    runs = []
    for run_id, group in by_run.items():
        if len(group) > 1:
            session.issue(
                "duplicate-event",
                path,
                f"{len(group)} rows for run_id {run_id}: CodeCarbon's rows of one "
                "run are cumulative snapshots, the longest is the run",
                line=group[1].line,
            )
        longest = max(group, key=lambda row: _float(row.values, "duration", "", session, path, row.line) or 0.0)
        longest.values["run_id"] = run_id
        runs.append(longest)
    return runs


def _zone(name: str | None) -> timezone | ZoneInfo:
    if name is None:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise TrainmarkError(
            f"--timezone {name!r} is not a known time zone ({error}); give an IANA name such as Europe/Paris or UTC"
        ) from None


def import_codecarbon(
    csv_file: Path, out: Path, log: Path | None = None, timezone_name: str | None = None, origin: str | None = None
) -> str:
    """Write CodeCarbon's emissions.csv `csv_file` as a bundle in `out` (one run per run_id); return its id.

    `log` is CodeCarbon's log of the same runs (it names the CPU method); `timezone_name` the zone of the
    CSV's timestamps, which CodeCarbon writes in local time without one (UTC is assumed otherwise).
    """
    csv_file = Path(csv_file)
    zone = _zone(timezone_name)
    with BundleImport(Path(out), IMPORTER, FORMAT) as session:
        path = session.keep(csv_file, csv_file.name)
        methods = read_methods(Path(log), session) if log is not None else Methods()
        if log is None:
            session.issue(
                "incomplete-source",
                path,
                "the CSV does not say how CodeCarbon measured the CPU: its "
                "energy is taken as modeled (an estimate); pass CodeCarbon's log (--log) to say otherwise",
            )
        if timezone_name is None:
            session.issue(
                "assumed-value",
                path,
                "CodeCarbon writes timestamp in the machine's local time without a "
                "zone: UTC is assumed; pass --timezone",
            )
        rows = _rows(csv_file, session, path)
        runs = [_run(row, session, path, methods, zone) for row in rows]
        return session.finish(_blocks(rows, runs, session, path, methods, origin))


def _run(row: Row, session: BundleImport, path: str, methods: Methods, zone) -> models.Run:
    values, line = row.values, row.line
    run_id = values["run_id"]
    if not _RUN_ID.match(run_id):
        raise TrainmarkError(
            f"{path} line {line}: run_id {run_id!r} is not a bundle identifier (letters, digits, "
            "'.', '_', '-', at most 64); fix the CSV"
        )

    def number(column: str) -> float | None:
        return _float(values, column, f"run {run_id}", session, path, line)

    try:
        ended = datetime.fromisoformat(values["timestamp"].strip())
    except ValueError:
        raise TrainmarkError(
            f"{path} line {line}: timestamp {values['timestamp']!r} is not an ISO date and time; fix the CSV"
        ) from None
    ended = (ended if ended.tzinfo else ended.replace(tzinfo=zone)).astimezone(UTC)
    duration = number("duration")
    if duration is None:
        raise TrainmarkError(f"{path} line {line}: run {run_id} has no duration; fix the CSV")
    started = ended - timedelta(seconds=duration)
    tool = f"CodeCarbon {values.get('codecarbon_version') or 'version not in the CSV'}"
    metrics = [
        models.Metric(
            name="run_duration",
            scope="global",
            unit="s",
            value=duration,
            method="derived",
            source=f"duration in {path} (CodeCarbon's time.perf_counter interval)",
            tool=tool,
        )
    ]
    cpu_method, cpu_source = CPU_METHODS.get(methods.cpu, UNKNOWN_CPU) if methods.cpu else UNKNOWN_CPU
    if methods.cpu and methods.cpu not in CPU_METHODS:
        session.issue(
            "unknown-key",
            path,
            f"CPU tracking method {methods.cpu!r} is not one trainmark knows: taken as modeled",
            repeated="cpu-method",
        )
    gpus = number("gpu_count") or 0
    gpu_method = None
    if gpus:  # both of CodeCarbon's GPU backends read an energy counter; the log, or the model, says which
        gpu_method = (
            GPU_METHODS.get(methods.gpu)
            or GPU_METHODS["amdsmi" if "amd" in (values.get("gpu_model") or "").lower() else "pynvml"]
        )
    # Component energies: the CPU on its device (the last of system.devices), a single GPU on its device;
    # several GPUs (CodeCarbon sums them) and the RAM have no device, so they are in the global metric's note.
    cpu_device = int(gpus)
    parts: list[tuple[str, str, float | None, str | None]] = []  # (component, method, joules, reason)
    for component, method, source in (
        ("cpu", cpu_method, cpu_source),
        ("ram", *RAM_METHOD),
        ("gpu", *(gpu_method or ("", ""))),
    ):
        kwh = number(f"{component}_energy")
        if component == "gpu" and not gpus:
            continue  # no GPU was tracked: CodeCarbon's 0 is not a reading, and there is no GPU device
        if kwh is None:
            parts.append((component, method, None, f"{component}_energy is empty in {path}"))
            continue
        joules = kwh * JOULES_PER_KWH
        parts.append((component, method, joules, None))
        device = cpu_device if component == "cpu" else 0 if component == "gpu" and gpus == 1 else None
        if device is None:
            continue
        metrics.append(
            models.Metric(
                name="total_energy",
                scope="device",
                device=device,
                unit="J",
                value=joules,
                method=method,
                source=f"{component}_energy (kWh) x 3.6e6 in {path}",
                tool=tool,
                note=source,
            )
        )
        if duration > 0:
            metrics.append(
                models.Metric(
                    name="power_mean",
                    scope="device",
                    device=device,
                    unit="W",
                    value=joules / duration,
                    method=method,
                    source=f"{component}_energy / duration in {path}",
                    tool=tool,
                    note=source,
                )
            )
    missing = [part for part in parts if part[2] is None]
    total_kwh = number("energy_consumed")
    if missing or total_kwh is None:
        reason = "; ".join(part[3] for part in missing) or f"energy_consumed is empty in {path}"
        metrics.append(
            models.Metric(name="total_energy", scope="global", unit="J", value=None, unavailable_reason=reason)
        )
    else:
        method = "modeled" if any(part[1] == "modeled" for part in parts) else "derived"
        metrics.append(
            models.Metric(
                name="total_energy",
                scope="global",
                unit="J",
                value=total_kwh * JOULES_PER_KWH,
                method=method,
                source=f"energy_consumed (kWh) x 3.6e6 in {path}: CodeCarbon's sum of its components (x its PUE)",
                tool=tool,
                note="; ".join(f"{part[0]} {part[2]:.6g} J ({part[1]})" for part in parts)
                + ("; no GPU was tracked (gpu_count 0), so none is counted" if not gpus else "")
                + ("; an estimate as a whole, since a part is one" if method == "modeled" else ""),
            )
        )
    for name, unit in (
        ("flops_per_step_analytical", "{flop}"),
        ("peak_memory", "By"),
        ("steps_per_second", "{step}/s"),
    ):
        metrics.append(models.Metric(name=name, scope="global", unit=unit, value=None, unavailable_reason=NOT_IN_CSV))
    return models.Run(run_id=run_id, started_at=started, ended_at=ended, status="completed", metrics=metrics)


def _blocks(
    rows: list[Row], runs: list[models.Run], session: BundleImport, path: str, methods: Methods, origin: str | None
) -> dict:
    first = rows[0].values

    def text(column: str) -> str | None:
        value = (first.get(column) or "").strip()
        return value or None

    cpu_model = text("cpu_model") or "not in the CodeCarbon file"
    gpus = int(float(text("gpu_count") or 0))
    threads = int(float(text("cpu_count") or 0)) or None
    host = models.Host(node=0, cpu_model=cpu_model, cpu_threads=threads)
    ram = text("ram_total_size")
    if ram:
        host.memory_bytes = int(round(float(ram) * GIB))  # CodeCarbon's "GB" is psutil's total / 1024**3
    lowered = cpu_model.lower()
    cpu_vendor = (
        "AMD"
        if "amd" in lowered
        else "Intel"
        if "intel" in lowered
        else "Apple"
        if "apple" in lowered
        else "not in the CodeCarbon file"
    )
    if gpus:
        gpu_model = text("gpu_model") or "not in the CodeCarbon file"
        vendor = "NVIDIA" if "nvidia" in gpu_model.lower() or (methods.gpu or "pynvml") == "pynvml" else "AMD"
        devices = [
            models.Device(index=index, node=0, local_index=index, kind="gpu", vendor=vendor, model=gpu_model)
            for index in range(gpus)
        ]
    else:
        devices = []
    devices.append(models.Device(index=gpus, node=0, kind="cpu", vendor=cpu_vendor, model=cpu_model))
    for column in ("cpu_model", "codecarbon_version"):
        if text(column) is None:
            session.issue("placeholder-value", path, f"{column} is empty", line=rows[0].line, pointer=f"/{column}")
    session.issue(
        "assumed-value",
        path,
        "the training itself (batch size, processes, optimizer, model, dataset) is "
        "not in a CodeCarbon file: global_batch_size 1, world_size 1 and the names 'unknown' are "
        "placeholders",
        line=rows[0].line,
    )
    tool = f"CodeCarbon {text('codecarbon_version') or 'version not in the CSV'}"
    pue = text("pue")
    location = ", ".join(value for value in (text("region"), text("country_name")) if value)
    return {
        "created_at": max(run.ended_at for run in runs).isoformat().replace("+00:00", "Z"),
        "description": f"CodeCarbon runs of project {text('project_name') or 'not named'} (experiment "
        f"{text('experiment_id') or 'not named'}), imported by trainmark from emissions.csv",
        "system": models.System(node_count=1, hosts=[host], devices=devices),
        "software": models.Software(
            framework=models.NamedVersion(name="unknown", version="unknown"),
            python_version=text("python_version"),
            os_name=text("os"),
        ),
        "model": models.Model(
            name=text("project_name") or "unknown",
            architecture_family="other",
            precision_policy="undeclared",
            parameters_total=models.Measurement(value=None, unit="{parameter}", unavailable_reason=NOT_IN_CSV),
            parameters_trainable=models.Measurement(value=None, unit="{parameter}", unavailable_reason=NOT_IN_CSV),
        ),
        "training": models.Training(global_batch_size=1, world_size=1, optimizer=models.Optimizer(name="unknown")),
        "dataset": models.Dataset(name="unknown", unavailable_reason=NOT_IN_CSV),
        "code": models.Code(unavailable_reason=NOT_IN_CSV),
        "environment": models.Environment(
            ambient_temperature=models.Measurement(value=None, unit="Cel", unavailable_reason=NOT_IN_CSV),
            location=location or None,
        ),
        "methodology": models.Methodology(
            tools=[models.NamedVersion(name="CodeCarbon", version=text("codecarbon_version") or "not in the CSV")],
            channels=[],
            clock=models.ClockDescription(
                timestamps="timestamp of each row: the machine's local wall clock when CodeCarbon wrote it (the end "
                "of the run), without a zone",
                durations="duration of each row: CodeCarbon's time.perf_counter interval",
            ),
            idle_subtraction=models.IdleSubtraction(
                method="none", description="CodeCarbon does not subtract idle power"
            ),
            notes=f"converted by trainmark import codecarbon; CodeCarbon's tracking mode "
            f"{text('tracking_mode') or 'not in the CSV'} (process: the machine's energy scaled by the "
            f"process's share), PUE {pue or 'not in the CSV'}; CPU method "
            f"{methods.cpu or 'not known (no log)'}, RAM method {methods.ram or 'CodeCarbon RAM model'}, "
            f"{tool}",
        ),
        "runs": runs,
        "source": session.provenance(origin=origin),
    }
