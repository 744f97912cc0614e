"""`trainmark validate`: check a whole bundle, streaming every trace line.

Order of work: open the bundle (a directory, or an archive unpacked safely), read and check
the manifest (models, schema rules, cross-field semantics), then stream each listed file once,
hashing it and validating each record as it goes, and finally compare the files on disk with
the list. Every problem becomes a finding with a file, a line and a JSON pointer; the report
keeps the first `max_findings` of them and counts the rest.
"""

from __future__ import annotations

import functools
import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pydantic
from trainmark.spec import models
from trainmark.spec.archive import ArchiveLimits, open_bundle
from trainmark.spec.bundle import bundle_id, check_schema_version, manifest_findings, walk_bundle
from trainmark.spec.errors import BundleInvalid, BundleUnreadable, SchemaVersionUnsupported
from trainmark.spec.findings import Finding, Severity, findings_from_pydantic
from trainmark.spec.jsontext import MAX_DOCUMENT_BYTES, load_document, read_bounded
from trainmark.spec.layout import DRAFT_NAME, MANIFEST_NAME
from trainmark.spec.records import JSON_SCHEMA_FILES, MANIFEST_CLASS, RECORD_TYPES
from trainmark.spec.rules import RecordContext, has_schema_rules, schema_rule_findings

DEFAULT_MAX_FINDINGS = 200
MAX_LINE_BYTES = 1 << 20
"""Longest JSON Lines record accepted; real records are a few hundred bytes."""
READ_CHUNK_BYTES = 1 << 20
RECORDS_PER_BATCH = 128
"""Records checked together. Small on purpose: records alive together outlast the garbage
collector's young generations and get promoted, and then full collections walk the whole heap;
batches of 32 to 256 records were fastest, and whole 1 MiB chunks took about 1.4 x as long
in the plain pass (bench/validate.py; docs/performance.md)."""


RecordsCallback = Callable[[list[Any], "list[int | None]"], None]
"""Takes consecutive records of one file that passed their model, and their line numbers."""


class RecordObserver(Protocol):
    """Sees every record that passed its model, in the same pass as validation (the scorer uses it).

    `begin` gets the manifest once it is valid; `begin_file` returns a callback for the
    records of one listed file, or None to skip it. The callback is called with the records in
    file order, in batches of up to RECORDS_PER_BATCH, so that its per-record work can run in
    tight loops.
    """

    def begin(self, manifest: models.Manifest) -> None: ...

    def begin_file(self, entry: models.FileEntry) -> RecordsCallback | None: ...


class ObserverGroup:
    """Several observers watching the same single pass."""

    def __init__(self, *observers: RecordObserver) -> None:
        self.observers = observers

    def begin(self, manifest: models.Manifest) -> None:
        for observer in self.observers:
            observer.begin(manifest)

    def begin_file(self, entry: models.FileEntry) -> RecordsCallback | None:
        callbacks = [callback for observer in self.observers if (callback := observer.begin_file(entry))]
        if len(callbacks) <= 1:
            return callbacks[0] if callbacks else None

        def each(records: list[Any], lines: list[int | None]) -> None:
            for callback in callbacks:
                callback(records, lines)

        return each


@dataclass
class ValidationReport:
    """The outcome of validating one bundle."""

    bundle_id: str | None = None
    schema_version: str | None = None
    findings: list[Finding] = field(default_factory=list)
    findings_total: int = 0
    error_count: int = 0
    max_findings: int = DEFAULT_MAX_FINDINGS
    manifest: models.Manifest | None = None
    manifest_document: Any = None
    error_counts: Counter = field(default_factory=Counter)
    """Error findings per code, counted past the cap (gates are decided on these)."""

    @property
    def valid(self) -> bool:
        """True when no finding is an error."""
        return self.error_count == 0

    def add(self, finding: Finding) -> None:
        """Record a finding; beyond the cap it is counted but not kept."""
        self.findings_total += 1
        if finding.severity is Severity.ERROR:
            self.error_count += 1
            self.error_counts[finding.code] += 1
        if len(self.findings) < self.max_findings:
            self.findings.append(finding)

    def as_dict(self) -> dict:
        """The `trainmark validate --json` document."""
        return {
            "valid": self.valid,
            "bundle_id": self.bundle_id,
            "schema_version": self.schema_version,
            "findings": [finding.as_dict() for finding in self.findings],
            "findings_total": self.findings_total,
            "findings_cap": self.max_findings,
        }


@functools.cache
def _list_validator(model: type[pydantic.BaseModel]) -> pydantic.TypeAdapter:
    """The models reading a JSON array of records in one call."""
    return pydantic.TypeAdapter(list[model])


def compile_validators(*, full_jsonschema: bool) -> None:
    """Build every validator a pass uses now rather than on the first bundle (the full pass's
    compiled schemas take about 0.1 s), for a process that validates many bundles."""
    for row in RECORD_TYPES.values():
        _list_validator(row.model)
    if full_jsonschema:
        from trainmark.spec.conformance import compiled_validator, validator_for

        for class_name in JSON_SCHEMA_FILES:
            validator_for(class_name)
            compiled_validator(class_name)
            if class_name != MANIFEST_CLASS:
                compiled_validator(class_name, many=True)


def _finding_of(error: BundleInvalid) -> Finding:
    return Finding(error.code, Severity.ERROR, error.message, file=error.file, line=error.line, pointer=error.pointer)


class _FileChecker:
    """Streams one listed file: digest, size, record count, and every record."""

    def __init__(
        self,
        report: ValidationReport,
        entry: dict,
        manifest: models.Manifest | None,
        full_jsonschema: bool,
        observe: RecordsCallback | None = None,
    ) -> None:
        self.report = report
        self.observe = observe
        self.path_text = entry["path"]
        record_type = entry.get("record_type")
        # A manifest the models refused is read best effort: a record_type of the wrong type is unknown.
        self.record_type = record_type if isinstance(record_type, str) else None
        self.row = RECORD_TYPES.get(self.record_type)
        self.model = self.row.model if self.row is not None else None
        self.class_name = self.model.__name__ if self.model else None
        self.check_rules = bool(self.class_name) and has_schema_rules(self.class_name)
        self.context = (
            RecordContext(manifest, self.record_type, entry.get("rank"))
            if manifest is not None and self.model is not None
            else None
        )
        self.full_jsonschema = full_jsonschema and self.model is not None
        self.seen_pointers: set[tuple[int | None, str]] = set()
        # Records the models accepted one by one, not yet checked against the manifest or shown
        # to the observer: they go as one batch at the end of each batch of lines, or before the
        # next finding (so that findings stay in the order of the lines).
        self.pending_records: list[Any] = []
        self.pending_lines: list[int | None] = []

    def _add(self, finding: Finding) -> None:
        if self.pending_records:
            self._flush()
        self.seen_pointers.add((finding.line, finding.pointer))
        self.report.add(finding)

    def _flush(self) -> None:
        records, lines = self.pending_records, self.pending_lines
        self.pending_records, self.pending_lines = [], []
        if records:
            self._accepted(records, lines)

    def check_records(self, lines: list[int], texts: list[bytes]) -> None:
        """Validate consecutive JSON Lines records (`texts`, at line numbers `lines`). In the full
        pass the compiled JSON Schema first takes the whole batch in one native call, having parsed
        each line on its own (so each is exactly one JSON value); when every record conforms, the
        schema rules are settled too (they are the schema's own if/then), the models read the
        batch in one call as well, and the references and the observers take the batch whole.
        Anything refused goes record by record, for the findings."""
        conformed = False
        if self.full_jsonschema and texts:
            from trainmark.spec.conformance import all_conform  # the JSON Schema libraries load only for the full pass

            conformed = all_conform(texts, self.class_name)
            if conformed:
                try:
                    records = _list_validator(self.model).validate_json(b"[" + b",".join(texts) + b"]")
                except pydantic.ValidationError:
                    records = None  # one the models refuse (1.0 for an integer, say): record by record below
                if records is not None:
                    self._check_members(records, texts, lines)
                    self._accepted(records, lines)
                    return
        accepted = []
        for line, data in zip(lines, texts):
            record = self.check_record(data, line, conformed, members=False)
            if record is not None:
                accepted.append((record, data, line))
        if accepted:
            self._check_members(*map(list, zip(*accepted)))
        self._flush()

    def _accepted(self, records: list[Any], lines: list[int | None]) -> None:
        """Records the models read: check their references and show them to the observer."""
        if self.context is not None:
            for line, pointer, message in self.context.problems_in(records, lines):
                self._add(
                    Finding(
                        "reference-invalid", Severity.ERROR, message, file=self.path_text, line=line, pointer=pointer
                    )
                )
        if self.observe is not None:
            self.observe(records, lines)

    def check_record(self, data: bytes, line: int | None, conformed: bool = False, members: bool = True) -> Any:
        """Validate one record (a JSON Lines line, or a whole JSON document); `conformed`: the
        compiled JSON Schema already accepted its text; `members`: check a JSON Lines record's
        members here (False: the caller checks its batch). Returns the record the models read."""
        if not data.strip():
            self._add(
                Finding(
                    "json-invalid",
                    Severity.ERROR,
                    "blank line; JSON Lines holds one record per line",
                    file=self.path_text,
                    line=line,
                )
            )
            return
        try:
            record = self.model.model_validate_json(data)
        except pydantic.ValidationError as error:
            for finding in findings_from_pydantic(error, file=self.path_text, line=line):
                self._add(finding)
            record = None
        if record is not None:
            if line is not None and members:
                self._check_members([record], [data], [line])
            if self.check_rules and not conformed:
                for finding in schema_rule_findings(record, self.class_name, file=self.path_text, line=line):
                    self._add(finding)
            self.pending_records.append(record)
            self.pending_lines.append(line)
        if self.full_jsonschema and not (conformed and record is not None):
            self._check_jsonschema(data, line, record is not None)
        return record

    def _check_members(self, records: list[pydantic.BaseModel], texts: list[bytes], lines: list[int]) -> None:
        """JSON Lines records (flat: one object of plain values each) name each member once and
        hold no U+0000 or lone surrogate: the models would take the last of two values without a
        word. Cheap on the common path, a batch at a time: a flat record with n distinct members
        has at least n - 1 commas, exactly n - 1 when no member is repeated and no string holds
        one, so a batch whose commas add up and that has no escape is clean; otherwise each of its
        records is counted, and one whose count or escapes say otherwise is parsed again."""
        joined = b"\n".join(texts)
        if b"\\u" not in joined and joined.count(b",") + len(records) == sum(
            len(record.__pydantic_fields_set__) for record in records
        ):
            return
        for record, data, line in zip(records, texts, lines):
            if b"\\u" not in data and data.count(b",") + 1 == len(record.__pydantic_fields_set__):
                continue
            try:
                load_document(data, file=self.path_text)
            except BundleInvalid as error:
                self._add(
                    Finding(
                        error.code, Severity.ERROR, error.message, file=self.path_text, line=line, pointer=error.pointer
                    )
                )

    def _check_jsonschema(self, data: bytes, line: int | None, read_by_models: bool) -> None:
        from trainmark.spec.conformance import conforms_text, jsonschema_findings

        if read_by_models and conforms_text(data, self.class_name):
            return
        try:
            instance = load_document(data, file=self.path_text)
        except BundleInvalid:
            return  # the pydantic pass reported it already
        for finding in jsonschema_findings(instance, self.class_name, file=self.path_text, line=line):
            if (finding.line, finding.pointer) not in self.seen_pointers:
                self._add(finding)

    def _report_long_line(self, line: int) -> None:
        self._add(
            Finding(
                "json-limit",
                Severity.ERROR,
                f"a line longer than {MAX_LINE_BYTES} bytes; records are one short line each",
                file=self.path_text,
                line=line,
            )
        )

    def run(self, path: Path, entry: dict) -> None:
        """Stream the file and compare it with its manifest entry."""
        digest = hashlib.sha256()
        size = 0
        records = 0
        json_lines = self.row is not None and self.row.json_lines
        document = bytearray() if self.row is not None and not self.row.json_lines else None
        remainder = b""
        skipping_long_line = False
        with path.open("rb") as handle:
            while chunk := handle.read(READ_CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
                if document is not None:
                    if len(document) <= MAX_DOCUMENT_BYTES:
                        document += chunk
                    continue
                if not json_lines:
                    continue
                lines = (remainder + chunk).split(b"\n")
                remainder = lines.pop()
                first = records + 1
                records += len(lines)
                numbers = list(range(first, records + 1))
                if skipping_long_line or max(map(len, lines), default=0) > MAX_LINE_BYTES:
                    kept_numbers, kept = [], []
                    for number, line in zip(numbers, lines):
                        if skipping_long_line:
                            skipping_long_line = False
                        elif len(line) > MAX_LINE_BYTES:
                            self._report_long_line(number)
                        else:
                            kept_numbers.append(number)
                            kept.append(line)
                    numbers, lines = kept_numbers, kept
                for begin in range(0, len(lines), RECORDS_PER_BATCH):
                    end = begin + RECORDS_PER_BATCH
                    self.check_records(numbers[begin:end], lines[begin:end])
                if len(remainder) > MAX_LINE_BYTES:
                    if not skipping_long_line:
                        self._report_long_line(records + 1)
                    skipping_long_line = True
                    remainder = b""
        if json_lines and (remainder or skipping_long_line):
            records += 1
            if not skipping_long_line:
                self.check_record(remainder, records)
        if document is not None:
            records = 1
            try:
                load_document(bytes(document), file=self.path_text)
                self.check_record(bytes(document), None)
            except BundleInvalid as error:
                self._add(_finding_of(error))
        self._flush()
        self._compare(entry, digest.hexdigest(), size, records if self.model is not None else None)

    def _compare(self, entry: dict, sha256: str, size: int, records: int | None) -> None:
        where = dict(file=self.path_text)
        if entry.get("sha256") != sha256:
            self._add(
                Finding(
                    "digest-mismatch",
                    Severity.ERROR,
                    f"sha256 is {sha256}, the manifest says {entry.get('sha256')}; the file changed "
                    "after the manifest was written",
                    **where,
                )
            )
        if entry.get("size_bytes") != size:
            self._add(
                Finding(
                    "size-mismatch",
                    Severity.ERROR,
                    f"{size} bytes, the manifest says {entry.get('size_bytes')}",
                    **where,
                )
            )
        if records is not None and entry.get("record_count") is not None and entry["record_count"] != records:
            self._add(
                Finding(
                    "record-count-mismatch",
                    Severity.ERROR,
                    f"{records} records, the manifest says {entry['record_count']}",
                    **where,
                )
            )


def _listed_entries(document: Any, manifest: models.Manifest | None) -> list[dict]:
    """The file entries to check: from the model, or best effort from raw JSON when it failed."""
    if manifest is not None:
        return [entry.model_dump() for entry in manifest.files]
    raw = document.get("files") if isinstance(document, dict) else None
    if not isinstance(raw, list):
        return []
    return [
        entry
        for entry in raw
        if isinstance(entry, dict)
        and isinstance(entry.get("path"), str)
        and ".." not in entry["path"]
        and not entry["path"].startswith("/")
    ]


def _files_on_disk(root: Path, report: ValidationReport) -> set[str]:
    regular, unsafe = walk_bundle(root)
    for relative in unsafe:
        report.add(
            Finding(
                "file-unsafe", Severity.ERROR, "a link or special file; bundles hold only regular files", file=relative
            )
        )
    return set(regular) - {MANIFEST_NAME}


def _validate_directory(
    root: Path, report: ValidationReport, full_jsonschema: bool, observer: RecordObserver | None
) -> None:
    on_disk = _files_on_disk(root, report)
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file():
        hint = "; run `trainmark bundle finalize` to close a killed run" if DRAFT_NAME in on_disk else ""
        report.add(
            Finding("file-missing", Severity.ERROR, f"the bundle has no manifest.json{hint}", file=MANIFEST_NAME)
        )
        return
    try:
        raw = read_bounded(manifest_path, file=MANIFEST_NAME)
        document = load_document(raw, file=MANIFEST_NAME)
    except BundleInvalid as error:
        report.add(_finding_of(error))
        return
    report.bundle_id = bundle_id(document)
    report.manifest_document = document
    if isinstance(document, dict) and isinstance(document.get("schema_version"), str):
        report.schema_version = document["schema_version"]
    try:
        check_schema_version(document)
    except SchemaVersionUnsupported as error:
        report.add(
            Finding(
                "schema-version-unsupported", Severity.ERROR, str(error), file=MANIFEST_NAME, pointer="/schema_version"
            )
        )
        return
    conformed = False
    if full_jsonschema:
        from trainmark.spec.conformance import compiled_accepts, jsonschema_findings  # loaded only for the full pass

        conformed = compiled_accepts(document, "Manifest")
    # What the compiled schema accepted has its schema rules checked (they are the schema's if/then).
    manifest, found = manifest_findings(document, raw, schema_rules=not conformed)
    report.manifest = manifest
    for finding in found:
        report.add(finding)
    if observer is not None and manifest is not None:
        observer.begin(manifest)
    if full_jsonschema and not (conformed and manifest is not None):
        seen = {finding.pointer for finding in found}
        for finding in jsonschema_findings(document, "Manifest", file=MANIFEST_NAME):
            if finding.pointer not in seen:
                report.add(finding)

    listed: set[str] = set()
    entry_models = {entry.path: entry for entry in manifest.files} if manifest is not None else {}
    for entry in _listed_entries(document, manifest):
        path_text = entry["path"]
        if path_text in listed:
            continue
        listed.add(path_text)
        if path_text not in on_disk:
            report.add(
                Finding("file-missing", Severity.ERROR, "listed in the manifest but not in the bundle", file=path_text)
            )
            continue
        observe = (
            observer.begin_file(entry_models[path_text]) if observer is not None and path_text in entry_models else None
        )
        _FileChecker(report, entry, manifest, full_jsonschema, observe).run(root / path_text, entry)
    for unlisted in sorted(on_disk - listed):
        hint = " (a draft left by an unfinished run)" if unlisted == DRAFT_NAME else ""
        report.add(
            Finding(
                "file-unlisted",
                Severity.ERROR,
                f"in the bundle but not listed in manifest.json files{hint}",
                file=unlisted,
            )
        )


def validate_bundle(
    path: Path,
    *,
    full_jsonschema: bool = False,
    max_findings: int = DEFAULT_MAX_FINDINGS,
    limits: ArchiveLimits = ArchiveLimits(),
    observer: RecordObserver | None = None,
) -> ValidationReport:
    """Validate the bundle at `path` (directory or .tar.gz). Bad input becomes findings, never an exception.

    An `observer` sees every record that passed its model during the same single pass.
    """
    if max_findings < 1:
        raise ValueError("max_findings must be at least 1")
    report = ValidationReport(max_findings=max_findings)
    try:
        with open_bundle(path, limits) as root:
            _validate_directory(root, report, full_jsonschema, observer)
    except BundleInvalid as error:
        report.add(_finding_of(error))
    except BundleUnreadable as error:
        report.add(Finding("bundle-unreadable", Severity.ERROR, str(error), file=path.name))
    return report
