"""The checks the generated pydantic models do not make.

Two kinds, kept apart because the parity test treats them differently:

- `schema_rule_findings` mirrors what the schema says but pydantic does not enforce: LinkML class
  rules, class-level `any_of`, type-level patterns and offset-carrying date-times. It interprets
  the tables in spec/constraints.py (generated from the schema), so it cannot drift from the
  schema; the JSON Schema enforces the same things natively, and tests prove both agree.
- `manifest_semantic_findings` and `RecordContext` check what no schema language expresses:
  a run ends after it starts, identifiers are unique, references between blocks and from trace
  records resolve. Both validation pipelines run these.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trainmark.spec import constraints, models
from trainmark.spec.findings import Finding, Severity, json_pointer
from trainmark.spec.layout import MANIFEST_NAME
from trainmark.spec.records import DOCUMENT, RECORD_TYPES

Path = tuple  # a path of keys and indices into a JSON document


def ecma_pattern(pattern: str) -> re.Pattern:
    """Compile a JSON Schema pattern with ECMA-262 meaning of '$' (end of input only).

    Python's '$' also matches before a final newline, which would let "run1\\n" pass as an
    identifier that becomes a directory name.
    """
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _holds(condition: dict, value: Any) -> bool:
    if "value_presence" in condition:
        return (value is not None) == (condition["value_presence"] == "PRESENT")
    if "equals_string" in condition:
        return value == condition["equals_string"]
    return value is not None  # {"required": True}


def _describe(name: str, condition: dict) -> str:
    if "value_presence" in condition:
        return f"{name} is {'given' if condition['value_presence'] == 'PRESENT' else 'null or absent'}"
    if "equals_string" in condition:
        return f"{name} is {condition['equals_string']!r}"
    return f"{name} is given"


Check = Callable[[Any, Path, Callable[[Path, str], None]], None]


def _rule_check(rule: dict) -> Check:
    pre, post = rule["preconditions"], rule["postconditions"]
    when = " and ".join(_describe(name, cond) for name, cond in pre.items())
    why = f" ({rule['description']})" if rule.get("description") else ""

    def check(obj: Any, path: Path, emit: Callable[[Path, str], None]) -> None:
        if all(_holds(cond, _get(obj, name)) for name, cond in pre.items()):
            for name, cond in post.items():
                value = _get(obj, name)
                if not _holds(cond, value):
                    if "equals_string" in cond:
                        message = f"must be {cond['equals_string']!r} when {when}, not {value!r}{why}"
                    elif cond.get("value_presence") == "ABSENT":
                        message = f"must be null or absent when {when}{why}"
                    else:
                        message = f"is required when {when}{why}"
                    emit(path + (name,), message)

    return check


def _any_of_check(branches: list[dict]) -> Check:
    names = sorted({name for branch in branches for name in branch})

    def check(obj: Any, path: Path, emit: Callable[[Path, str], None]) -> None:
        if not any(all(_holds(cond, _get(obj, name)) for name, cond in branch.items()) for branch in branches):
            emit(path, f"needs at least one of {', '.join(names)}")

    return check


def _pattern_check(name: str, type_name: str) -> Check:
    regex = ecma_pattern(constraints.TYPE_PATTERNS[type_name])

    def check(obj: Any, path: Path, emit: Callable[[Path, str], None]) -> None:
        value = _get(obj, name)
        values = value if isinstance(value, list) else [value]
        for index, item in enumerate(values):
            where = path + ((name, index) if isinstance(value, list) else (name,))
            if isinstance(item, datetime):
                # A parsed date-time lost its text; its offset is what the pattern is for.
                if item.tzinfo is None:
                    emit(where, f"must carry a UTC offset (Z or +hh:mm) as {type_name} requires")
            elif isinstance(item, str) and not regex.search(item):
                emit(where, f"{item[:80]!r} does not match {type_name} ({constraints.TYPE_PATTERNS[type_name]})")

    return check


@functools.cache
def _class_checks(class_name: str) -> tuple[tuple[Check, ...], tuple[tuple[str, str], ...]]:
    checks: list[Check] = [_rule_check(rule) for rule in constraints.RULES.get(class_name, [])]
    if class_name in constraints.ANY_OF:
        checks.append(_any_of_check(constraints.ANY_OF[class_name]))
    for name, type_name in constraints.FIELD_TYPES.get(class_name, {}).items():
        checks.append(_pattern_check(name, type_name))
    children = tuple(constraints.CLASS_RANGES.get(class_name, {}).items())
    return tuple(checks), children


def schema_rule_findings(document: Any, class_name: str, *, file: str | None, line: int | None = None) -> list[Finding]:
    """Violations of rules, any_of and type patterns in a document already valid for pydantic.

    `document` is the parsed JSON (dict) or the validated model; for the manifest pass the
    parsed JSON so that date-time patterns are checked on their text.
    """
    found: list[Finding] = []

    def emit(path: Path, message: str) -> None:
        found.append(
            Finding("rule-violation", Severity.ERROR, message, file=file, line=line, pointer=json_pointer(path))
        )

    def walk(obj: Any, name: str, path: Path) -> None:
        checks, children = _class_checks(name)
        for check in checks:
            check(obj, path, emit)
        for field, child_class in children:
            value = _get(obj, field)
            if isinstance(value, list):
                for index, item in enumerate(value):
                    walk(item, child_class, path + (field, index))
            elif value is not None:
                walk(value, child_class, path + (field,))

    walk(document, class_name, ())
    return found


def has_schema_rules(class_name: str) -> bool:
    """Whether `schema_rule_findings` can find anything for this class (lets hot loops skip it)."""
    pending, seen = [class_name], set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        checks, children = _class_checks(name)
        if checks:
            return True
        pending.extend(child for _, child in children)
    return False


# ---------------------------------------------------------------- cross-field semantics

Problems = Iterator[tuple[Path, str]]
"""What a manifest check yields: (JSON pointer path into the manifest, message) per problem."""


@dataclass(frozen=True)
class ManifestCheck:
    """One named cross-field check of a manifest, with the finding code and severity it reports."""

    function: Callable[[models.Manifest], Problems]
    code: str = "rule-violation"
    severity: Severity = Severity.ERROR

    @property
    def name(self) -> str:
        return self.function.__name__

    def findings(self, manifest: models.Manifest) -> list[Finding]:
        """This check's findings on a manifest that pydantic accepted, each at manifest.json#<pointer>."""
        return [
            Finding(self.code, self.severity, message, file=MANIFEST_NAME, pointer=json_pointer(path))
            for path, message in self.function(manifest)
        ]


def _duplicates(items: list, key: Callable[[Any], Any]) -> Iterator[tuple[int, Any]]:
    seen: dict[Any, int] = {}
    for index, item in enumerate(items):
        value = key(item)
        if value in seen:
            yield index, value
        else:
            seen[value] = index


def hosts_are_one_per_node(manifest: models.Manifest) -> Problems:
    """system.hosts lists each node of 0..node_count-1 once."""
    hosts, node_count = manifest.system.hosts, manifest.system.node_count
    for index, value in _duplicates(hosts, lambda host: host.node):
        yield ("system", "hosts", index, "node"), f"node {value} is listed twice"
    for index, host in enumerate(hosts):
        if host.node >= node_count:
            yield (
                ("system", "hosts", index, "node"),
                f"node {host.node} is outside 0..{node_count - 1} (system.node_count)",
            )
    if len(hosts) != node_count:
        yield ("system", "hosts"), f"{len(hosts)} hosts listed but node_count is {node_count}; list one per node"


def devices_are_unique_and_placed(manifest: models.Manifest) -> Problems:
    """Device indices are unique and every device sits on a node of the system."""
    devices, node_count = manifest.system.devices, manifest.system.node_count
    for index, value in _duplicates(devices, lambda device: device.index):
        yield ("system", "devices", index, "index"), f"device index {value} is used twice"
    for index, device in enumerate(devices):
        if device.node >= node_count:
            yield (
                ("system", "devices", index, "node"),
                f"node {device.node} is outside 0..{node_count - 1} (system.node_count)",
            )


def parameter_counts_agree(manifest: models.Manifest) -> Problems:
    """Parameter counts are in {parameter}, and no more are trainable than there are."""
    for field in ("parameters_total", "parameters_trainable"):
        measurement = getattr(manifest.model, field)
        if measurement.unit != "{parameter}":
            yield ("model", field, "unit"), f"must be '{{parameter}}', not {measurement.unit!r}"
    total, trainable = manifest.model.parameters_total.value, manifest.model.parameters_trainable.value
    if total is not None and trainable is not None and trainable > total:
        yield (
            ("model", "parameters_trainable", "value"),
            f"{trainable:g} trainable parameters exceed the {total:g} in total",
        )


def ambient_temperature_in_celsius(manifest: models.Manifest) -> Problems:
    """environment.ambient_temperature is in Cel."""
    unit = manifest.environment.ambient_temperature.unit
    if unit != "Cel":
        yield ("environment", "ambient_temperature", "unit"), f"must be 'Cel', not {unit!r}"


def parallelism_matches_world_size(manifest: models.Manifest) -> Problems:
    """The product of the parallel degrees given is the world size."""
    parallel, world_size = manifest.training.parallelism, manifest.training.world_size
    if parallel is None:
        return
    degrees = [
        degree
        for degree in (
            parallel.data_parallel,
            parallel.tensor_parallel,
            parallel.pipeline_parallel,
            parallel.context_parallel,
        )
        if degree is not None
    ]
    product = 1
    for degree in degrees:
        product *= degree
    if degrees and product != world_size:
        yield (
            ("training", "parallelism"),
            f"data x tensor x pipeline x context parallel = {product}, but world_size is {world_size}",
        )


def batch_sizes_multiply(manifest: models.Manifest) -> Problems:
    """micro batch x accumulation steps x data parallel = global batch, where all are given."""
    training = manifest.training
    parallel = training.parallelism
    if (
        parallel is not None
        and parallel.data_parallel
        and training.micro_batch_size
        and training.gradient_accumulation_steps
        and parallel.data_parallel * training.micro_batch_size * training.gradient_accumulation_steps
        != training.global_batch_size
    ):
        yield (
            ("training", "global_batch_size"),
            f"micro batch {training.micro_batch_size} x accumulation "
            f"{training.gradient_accumulation_steps} x data parallel {parallel.data_parallel} "
            f"!= global batch {training.global_batch_size}",
        )


def channels_are_unique_and_feed_records(manifest: models.Manifest) -> Problems:
    """Channel names are unique; a channel feeds a channel-fed record type (spec/records.py), by its fields."""
    channels = manifest.methodology.channels
    for index, value in _duplicates(channels, lambda channel: channel.name):
        yield ("methodology", "channels", index, "name"), f"channel {value!r} is defined twice"
    for index, channel in enumerate(channels):
        row = RECORD_TYPES.get(channel.record_type)
        if row is None or not row.channel_fed:
            fed = " or ".join(name for name, row in RECORD_TYPES.items() if row.channel_fed)
            yield (
                ("methodology", "channels", index, "record_type"),
                f"channels feed {fed} records, not {channel.record_type}",
            )
            continue
        record_fields = row.model.model_fields
        for field_index, field in enumerate(channel.fields):
            if field not in record_fields:
                yield (
                    ("methodology", "channels", index, "fields", field_index),
                    f"{channel.record_type} has no field {field!r}",
                )


def runs_are_unique_and_end_after_start(manifest: models.Manifest) -> Problems:
    """Run ids are unique and no run ends before it starts."""
    for index, value in _duplicates(manifest.runs, lambda run: run.run_id):
        yield ("runs", index, "run_id"), f"run id {value!r} is used twice"
    for run_index, run in enumerate(manifest.runs):
        comparable = run.started_at.tzinfo is not None and run.ended_at.tzinfo is not None  # else a pattern finding
        if comparable and run.ended_at < run.started_at:
            yield (
                ("runs", run_index, "ended_at"),
                f"the run ends ({run.ended_at.isoformat()}) before it starts ({run.started_at.isoformat()})",
            )


def _references(
    manifest: models.Manifest, where: Path, *, device: int | None, node: int | None, rank: int | None
) -> Problems:
    """A device, node and rank that a run's block names exist in the system and the world."""
    node_count, world_size = manifest.system.node_count, manifest.training.world_size
    if device is not None and device not in {d.index for d in manifest.system.devices}:
        yield where + ("device",), f"device {device} is not in system.devices"
    if node is not None and node >= node_count:
        yield where + ("node",), f"node {node} is outside 0..{node_count - 1}"
    if rank is not None and rank >= world_size:
        yield where + ("rank",), f"rank {rank} is outside the world size {world_size}"


def ranks_are_placed_once_on_known_hardware(manifest: models.Manifest) -> Problems:
    """runs[].ranks places each rank once, inside the world size, on a known node and device."""
    node_count, world_size = manifest.system.node_count, manifest.training.world_size
    device_indices = {device.index for device in manifest.system.devices}
    for run_index, run in enumerate(manifest.runs):
        for index, value in _duplicates(run.ranks or [], lambda placement: placement.rank):
            yield ("runs", run_index, "ranks", index, "rank"), f"rank {value} is placed twice"
        for index, placement in enumerate(run.ranks or []):
            where = ("runs", run_index, "ranks", index)
            if placement.rank >= world_size:
                yield where + ("rank",), f"rank {placement.rank} is outside the world size {world_size}"
            if placement.node >= node_count:
                yield where + ("node",), f"node {placement.node} is outside 0..{node_count - 1}"
            if placement.device is not None and placement.device not in device_indices:
                yield where + ("device",), f"device {placement.device} is not in system.devices"


def metrics_are_unique_and_name_known_targets(manifest: models.Manifest) -> Problems:
    """A run reports a metric once per target, and the device, node and rank it names exist."""
    for run_index, run in enumerate(manifest.runs):
        for index, value in _duplicates(run.metrics, lambda m: (m.name, m.scope, m.device, m.node, m.rank)):
            yield (
                ("runs", run_index, "metrics", index),
                f"metric {value[0]} with scope {value[1]} is reported twice for the same target",
            )
        for index, metric in enumerate(run.metrics):
            yield from _references(
                manifest,
                ("runs", run_index, "metrics", index),
                device=metric.device,
                node=metric.node,
                rank=metric.rank,
            )


def sampling_names_defined_channels(manifest: models.Manifest) -> Problems:
    """runs[].sampling names channels of methodology.channels and devices of system.devices."""
    channel_names = {channel.name for channel in manifest.methodology.channels}
    for run_index, run in enumerate(manifest.runs):
        for index, rate in enumerate(run.sampling or []):
            where = ("runs", run_index, "sampling", index)
            if rate.channel not in channel_names:
                yield where + ("channel",), f"channel {rate.channel!r} is not defined in methodology.channels"
            yield from _references(manifest, where, device=rate.device, node=None, rank=None)


def calibration_deviations_agree(manifest: models.Manifest) -> Problems:
    """Each calibration quantity is compared once, and within_margin says what the numbers say."""
    if manifest.calibration is None:
        return
    deviations = manifest.calibration.deviations
    for index, value in _duplicates(deviations, lambda deviation: deviation.name):
        yield ("calibration", "deviations", index, "name"), f"{value} is compared twice"
    for index, deviation in enumerate(deviations):
        within = abs(deviation.deviation_percent) <= deviation.margin_percent
        if deviation.within_margin != within:
            yield (
                ("calibration", "deviations", index, "within_margin"),
                f"|{deviation.deviation_percent:.4g} %| is {'within' if within else 'outside'} "
                f"the {deviation.margin_percent:.4g} % margin",
            )


def source_files_are_kept_and_listed(manifest: models.Manifest) -> Problems:
    """A converted bundle's originals live under source/ and, like its issues' files, are in files."""
    if manifest.source is None:
        return
    listed = {entry.path for entry in manifest.files}
    for index, path in enumerate(manifest.source.files or []):
        if not path.startswith("source/"):
            yield ("source", "files", index), "originals are kept under source/"
        elif path not in listed:
            yield ("source", "files", index), f"{path} is not in files"
    for index, issue in enumerate(manifest.source.issues or []):
        if issue.file not in listed:
            yield ("source", "issues", index, "file"), f"{issue.file} is not in files"


def files_are_listed_once_in_their_place(manifest: models.Manifest) -> Problems:
    """Every `files` entry is listed once, states what its record type needs, and lives with its run."""
    run_ids = {run.run_id for run in manifest.runs}
    world_size = manifest.training.world_size
    for index, value in _duplicates(manifest.files, lambda entry: entry.path):
        yield ("files", index, "path"), f"{value} is listed twice"
    for index, entry in enumerate(manifest.files):
        where = ("files", index)
        if entry.path == MANIFEST_NAME:
            yield where + ("path",), f"{MANIFEST_NAME} does not list itself"
        if entry.record_type == DOCUMENT:
            if entry.record_count is not None:
                yield where + ("record_count",), "documents have no record count; leave it out"
        else:
            if entry.record_count is None:
                yield where + ("record_count",), f"a {entry.record_type} file states its record count"
            if entry.run_id is None:
                yield where + ("run_id",), f"a {entry.record_type} file names its run"
        if entry.run_id is not None:
            if entry.run_id not in run_ids:
                yield where + ("run_id",), f"run {entry.run_id!r} is not in runs"
            elif not entry.path.startswith(f"runs/{entry.run_id}/"):
                yield where + ("path",), f"files of run {entry.run_id!r} live under runs/{entry.run_id}/"
        if entry.rank is not None and entry.rank >= world_size:
            yield where + ("rank",), f"rank {entry.rank} is outside the world size {world_size}"
        row = RECORD_TYPES.get(entry.record_type)
        if row is not None and not row.json_lines and entry.record_count not in (None, 1):
            yield where + ("record_count",), f"a {entry.record_type} file holds exactly one document"


MANIFEST_CHECKS: list[ManifestCheck] = [
    ManifestCheck(hosts_are_one_per_node),
    ManifestCheck(devices_are_unique_and_placed),
    ManifestCheck(parameter_counts_agree),
    ManifestCheck(ambient_temperature_in_celsius),
    ManifestCheck(parallelism_matches_world_size, severity=Severity.WARNING),
    ManifestCheck(batch_sizes_multiply, severity=Severity.WARNING),
    ManifestCheck(channels_are_unique_and_feed_records),
    ManifestCheck(runs_are_unique_and_end_after_start),
    ManifestCheck(ranks_are_placed_once_on_known_hardware),
    ManifestCheck(metrics_are_unique_and_name_known_targets),
    ManifestCheck(sampling_names_defined_channels),
    ManifestCheck(calibration_deviations_agree),
    ManifestCheck(source_files_are_kept_and_listed),
    ManifestCheck(files_are_listed_once_in_their_place),
]
"""The cross-field checks of a manifest, in the order their findings are reported. A new check is a
function yielding (path, message) and one entry here (docs/contributing.md)."""


def manifest_semantic_findings(manifest: models.Manifest) -> list[Finding]:
    """Cross-field checks of a manifest that pydantic accepted: every check of `MANIFEST_CHECKS`."""
    return [finding for check in MANIFEST_CHECKS for finding in check.findings(manifest)]


class RecordContext:
    """Checks of trace records against the manifest they belong to (references only).

    Built once per file; `problems_in` runs for every batch of records, so it reads only the
    fields the record class has (asking a pydantic model for a field it lacks is slow).
    """

    def __init__(self, manifest: models.Manifest, record_type: str, file_rank: int | None) -> None:
        self.record_type = record_type
        self.file_rank = file_rank
        self.world_size = manifest.training.world_size
        self.node_count = manifest.system.node_count
        self.devices = frozenset(device.index for device in manifest.system.devices)
        self.channels = frozenset(
            channel.name for channel in manifest.methodology.channels if channel.record_type == record_type
        )
        self.all_channels = frozenset(channel.name for channel in manifest.methodology.channels)
        fields = RECORD_TYPES[record_type].model.model_fields
        self.has_rank, self.has_device = "rank" in fields, "device" in fields
        self.has_node, self.has_channel = "node" in fields, "channel" in fields
        # One sampler may record several processes' memory into its own file.
        self.rank_must_match_file = file_rank is not None and not RECORD_TYPES[record_type].ranks_share_files

    def problems_in(self, records: list[Any], lines: list[int | None]) -> list[tuple[int | None, str, str]]:
        """(line, pointer, message) for each problem in consecutive records. A screen over the
        sets of values the batch holds settles a consistent batch at once; only a batch that
        fails it is checked record by record (by `problems`, which words the findings)."""
        if self._all_consistent(records):
            return []
        return [
            (line, pointer, message)
            for record, line in zip(records, lines)
            for pointer, message in self.problems(record)
        ]

    def _all_consistent(self, records: list[Any]) -> bool:
        """True only when `problems` finds nothing in any of these records (the same checks,
        over sets of values)."""
        if self.has_rank:
            ranks = {record.rank for record in records} - {None}
            if ranks and (max(ranks) >= self.world_size or (self.rank_must_match_file and ranks != {self.file_rank})):
                return False
        if self.has_device and not {record.device for record in records} - {None} <= self.devices:
            return False
        if self.has_node:
            nodes = {record.node for record in records} - {None}
            if nodes and max(nodes) >= self.node_count:
                return False
        return not self.has_channel or {record.channel for record in records} <= self.channels

    def problems(self, record: Any) -> list[tuple[str, str]]:
        """(pointer, message) pairs for one validated record; empty when it is consistent."""
        problems: list[tuple[str, str]] = []
        if self.has_rank and record.rank is not None:
            rank = record.rank
            if rank >= self.world_size:
                problems.append(("/rank", f"rank {rank} is outside the world size {self.world_size}"))
            elif self.rank_must_match_file and rank != self.file_rank:
                problems.append(("/rank", f"rank {rank} in a file the manifest assigns to rank {self.file_rank}"))
        if self.has_device and record.device is not None and record.device not in self.devices:
            problems.append(("/device", f"device {record.device} is not in system.devices"))
        if self.has_node and record.node is not None and record.node >= self.node_count:
            problems.append(("/node", f"node {record.node} is outside 0..{self.node_count - 1}"))
        if self.has_channel and record.channel not in self.channels:
            if record.channel in self.all_channels:
                problems.append(("/channel", f"channel {record.channel!r} does not feed {self.record_type} records"))
            else:
                problems.append(("/channel", f"channel {record.channel!r} is not defined in methodology.channels"))
        return problems
