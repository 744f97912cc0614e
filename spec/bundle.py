"""Bundle directories: reading the manifest, writing traces and manifests, finalizing killed runs.

Writers append one JSON line per record and flush it at once, so a process killed at any
moment leaves every completed record on disk (the operating system holds what was flushed;
a power cut can still lose the last second). `manifest.draft.json` holds everything known when
a run starts; `finalize` turns a directory left by a killed producer into a valid bundle whose
unfinished runs have status `interrupted`.

Every live `BundleWriter` holds a shared lock (flock) on the bundle directory, released when it
is closed or its process ends, however it ends; `finalize` takes the lock exclusively, so it
refuses while any writer (the launcher, a training process) is still alive.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import pydantic
from trainmark.spec import SCHEMA_VERSION, models
from trainmark.spec.derive import StepStatistics, read_lines, step_metrics, trace_end_unix_ns
from trainmark.spec.errors import BundleInvalid, SchemaVersionUnsupported, TrainmarkError
from trainmark.spec.findings import Finding, Severity, findings_from_pydantic
from trainmark.spec.jsontext import canonical_json, load_document, read_bounded
from trainmark.spec.layout import DRAFT_NAME, MANIFEST_NAME, role_of, trace_path
from trainmark.spec.records import JSON_LINES_TYPES, RECORD_TYPES
from trainmark.spec.rules import manifest_semantic_findings, schema_rule_findings

HASH_CHUNK_BYTES = 1 << 20


# ---------------------------------------------------------------- reading


def bundle_id(manifest_document: dict) -> str:
    """A bundle's id: sha256 of its manifest in RFC 8785 canonical form."""
    return hashlib.sha256(canonical_json(manifest_document)).hexdigest()


def check_schema_version(document: Any) -> None:
    """Raise `SchemaVersionUnsupported` unless this trainmark can read the declared version.

    Same major version and a minor version no newer than ours: later minors may add fields this
    version would refuse as unknown.
    """
    declared = document.get("schema_version") if isinstance(document, dict) else None
    if not isinstance(declared, str):
        return  # reported as a schema violation by the model
    parts = declared.split(".")
    ours = [int(part) for part in SCHEMA_VERSION.split(".")]
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        return
    major, minor = int(parts[0]), int(parts[1])
    if major != ours[0]:
        raise SchemaVersionUnsupported(
            f"the bundle follows schema {declared}; this trainmark reads {ours[0]}.x "
            f"(up to {SCHEMA_VERSION}); use a trainmark release for schema {major}.x"
        )
    if minor > ours[1]:
        raise SchemaVersionUnsupported(
            f"the bundle follows schema {declared}, newer than this trainmark's {SCHEMA_VERSION}; "
            "upgrade trainmark (pip install -U trainmark)"
        )


def manifest_findings(
    document: Any, raw: bytes, *, schema_rules: bool = True
) -> tuple[models.Manifest | None, list[Finding]]:
    """Validate a parsed manifest (its bytes too): the model, the schema rules, the semantics.

    `schema_rules=False` when the compiled JSON Schema already accepted the document: the rules
    are the schema's own if/then, so it has checked them.
    """
    try:
        manifest = models.Manifest.model_validate_json(raw)
    except pydantic.ValidationError as error:
        return None, findings_from_pydantic(error, file=MANIFEST_NAME)
    found = schema_rule_findings(document, "Manifest", file=MANIFEST_NAME) if schema_rules else []
    found += manifest_semantic_findings(manifest)
    return manifest, found


def read_manifest(root: Path) -> tuple[dict, models.Manifest]:
    """The manifest of a bundle directory as parsed JSON and as a model; raise on any error in it."""
    path = root / MANIFEST_NAME
    if not path.is_file():
        hint = " (a draft is there: run `trainmark bundle finalize`)" if (root / DRAFT_NAME).exists() else ""
        raise BundleInvalid(f"no manifest.json{hint}", file=MANIFEST_NAME, code="file-missing")
    raw = read_bounded(path, file=MANIFEST_NAME)
    document = load_document(raw, file=MANIFEST_NAME)
    check_schema_version(document)
    manifest, found = manifest_findings(document, raw)
    errors = [finding for finding in found if finding.severity is Severity.ERROR]
    if errors or manifest is None:
        first = errors[0]
        raise BundleInvalid(
            f"{first.message} ({len(errors)} error(s); `trainmark validate` lists them)",
            file=first.file,
            pointer=first.pointer,
            code=first.code,
        )
    return document, manifest


def sha256_of(path: Path) -> tuple[str, int]:
    """(hex sha256, size in bytes) of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def count_lines(path: Path) -> int:
    """Records in a JSON Lines file: newline-terminated lines plus an unterminated last one."""
    count = 0
    last = b"\n"
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (0 if last == b"\n" else 1)


def describe_file(root: Path, relative: str) -> dict:
    """The manifest `files` entry of one file, from its content and its place in the layout."""
    role = role_of(relative)
    if role is None:
        raise BundleInvalid(
            "the bundle layout has no place for this file; move it out of the bundle (see docs/standard.md, Layout)",
            file=relative,
            code="file-unlisted",
        )
    digest, size = sha256_of(root / relative)
    entry: dict[str, Any] = {"path": relative, "sha256": digest, "size_bytes": size, "record_type": role.record_type}
    row = RECORD_TYPES.get(role.record_type)
    if row is not None:
        entry["record_count"] = count_lines(root / relative) if row.json_lines else 1
    if role.run_id is not None:
        entry["run_id"] = role.run_id
    if role.rank is not None:
        entry["rank"] = role.rank
    return entry


def walk_bundle(root: Path) -> tuple[list[str], list[str]]:
    """(regular files, anything else) under `root` as sorted relative paths; links are never followed."""
    regular, unsafe = [], []
    for directory, subdirectories, files in os.walk(root, followlinks=False):
        base = Path(directory)
        for name in subdirectories:
            if (base / name).is_symlink():
                unsafe.append((base / name).relative_to(root).as_posix())
        for name in files:
            path = base / name
            relative = path.relative_to(root).as_posix()
            if path.is_symlink() or not path.is_file():
                unsafe.append(relative)
            else:
                regular.append(relative)
    return sorted(regular), sorted(unsafe)


def bundle_files(root: Path) -> list[str]:
    """Every regular file of a bundle directory except the manifest and its draft, sorted."""
    regular, unsafe = walk_bundle(root)
    if unsafe:
        raise BundleInvalid(
            "links and special files are not allowed in a bundle; replace it with a regular file",
            file=unsafe[0],
            code="file-unsafe",
        )
    return [relative for relative in regular if relative not in (MANIFEST_NAME, DRAFT_NAME)]


# ---------------------------------------------------------------- writing


def _json_text(document: dict) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(temporary, 0o644)  # mkstemp makes it private; bundle files are for reading
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _explicit_nulls(node: Any) -> Any:
    """Put `"value": null` back into measurements that have none, so a missing reading shows."""
    if isinstance(node, dict):
        node = {key: _explicit_nulls(value) for key, value in node.items()}
        if "unavailable_reason" in node and "unit" in node and "value" not in node:
            node = {"value": None, **node}
        return node
    if isinstance(node, list):
        return [_explicit_nulls(item) for item in node]
    return node


def to_document(block: Any) -> Any:
    """A model (or a structure holding models) as JSON data, nulls left out except missing readings."""
    if isinstance(block, pydantic.BaseModel):
        return _explicit_nulls(block.model_dump(mode="json", exclude_none=True))
    if isinstance(block, dict):
        return {key: to_document(value) for key, value in block.items()}
    if isinstance(block, list):
        return [to_document(item) for item in block]
    return block


class TraceWriter:
    """Appends records of one type to one JSON Lines file, one flushed line per record."""

    def __init__(self, path: Path, record_class: type[pydantic.BaseModel], flush_each: bool = True) -> None:
        self.path = path
        self.record_class = record_class
        self.count = 0
        self.flush_each = flush_each
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = path.open("ab")

    def append(self, record: pydantic.BaseModel) -> None:
        """Write one record and flush it to the operating system (unless `flush_each` is off)."""
        if not isinstance(record, self.record_class):
            raise TypeError(f"{self.path.name} takes {self.record_class.__name__}, not {type(record).__name__}")
        self._file.write(record.model_dump_json(exclude_none=True).encode() + b"\n")
        if self.flush_each:
            self._file.flush()
        self.count += 1

    def append_serialized(self, lines: list[str]) -> None:
        """Write records already serialized, one JSON object per line (for converters writing millions).

        The caller guarantees that each line is a valid record of this type, as `append` would write
        it up to number formatting; the validator reads them like any other.
        """
        if lines:
            self._file.write(("\n".join(lines) + "\n").encode())
            if self.flush_each:
                self._file.flush()
            self.count += len(lines)

    def close(self) -> None:
        """Close the file; records already appended stay."""
        self._file.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


FINALIZE_WAIT_S = 3.0
"""How long finalize waits for a writer to let go: a process that was just killed takes a moment
to close its files (its threads end one by one)."""


def _directory_lock(root: Path, exclusive: bool, wait_s: float = 0.0) -> int:
    """An open descriptor of `root` holding a flock on it: shared (writers; waits as long as an
    exclusive holder does), or exclusive (finalize: tries for `wait_s`, then raises
    BlockingIOError while a writer holds it)."""
    descriptor = os.open(root, os.O_RDONLY | os.O_DIRECTORY)  # not inherited by child processes
    try:
        if not exclusive:
            fcntl.flock(descriptor, fcntl.LOCK_SH)
            return descriptor
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return descriptor
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
    except BaseException:
        os.close(descriptor)
        raise


class BundleWriter:
    """Writes a bundle directory: traces as they come, a draft manifest, then the manifest.

    While it is open it holds a shared lock on the directory, so that `finalize` can tell a
    bundle still being written from one whose producer died; `release` (or the end of the
    process) lets go of it. `hold=False` for a writer that must not take it (finalize's own).
    """

    def __init__(self, root: Path, *, hold: bool = True) -> None:
        self.root = root
        self._lock: int | None = None  # set first: __del__ runs even when taking the lock fails
        if hold:
            self._lock = _directory_lock(root, exclusive=False)

    def release(self) -> None:
        """Let go of the directory's lock (this writer writes nothing more)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __del__(self) -> None:
        self.release()

    @classmethod
    def create(cls, root: Path) -> BundleWriter:
        """Start a bundle in `root`, which must not exist or be empty."""
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise TrainmarkError(f"{root} already exists and is not an empty directory; choose a new output path")
        root.mkdir(parents=True, exist_ok=True)
        return cls(root)

    def open_trace(
        self, run_id: str, record_type: str, rank: int | None = None, *, flush_each: bool = True
    ) -> TraceWriter:
        """A writer for one JSON Lines trace; `rank` when every rank writes its own file.

        `flush_each=False` buffers the writes: for converters, whose input survives a crash anyway.
        """
        row = RECORD_TYPES[record_type]
        if not row.json_lines:
            raise ValueError(f"{record_type} is one JSON document, not JSON Lines; write it with its own method")
        return TraceWriter(self.root / trace_path(run_id, record_type, rank), row.model, flush_each)

    def write_kernel_breakdown(self, run_id: str, breakdown: models.KernelBreakdown, rank: int | None = None) -> None:
        """Write a run's kernels.json."""
        path = self.root / trace_path(run_id, "kernel_breakdown", rank)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, _json_text(to_document(breakdown)))

    def write_document(self, relative: str, text: str) -> None:
        """Write a human-readable document (e.g. README.md) into the bundle."""
        role = role_of(relative)
        if role is None or role.record_type != "document":
            raise ValueError(f"{relative} is not a document path (*.md at the top or in runs/<run_id>/)")
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, text)

    def write_draft(self, document: dict) -> None:
        """Record everything known so far, so that `finalize` can close the bundle after a kill."""
        _atomic_write(self.root / DRAFT_NAME, _json_text(to_document(document)))

    def finish(self, document: dict) -> tuple[models.Manifest, str]:
        """Describe every file, validate, and write manifest.json; return it and the bundle id.

        `document` is the manifest without `files`. Nothing is written when it is invalid.
        """
        manifest_document = {
            **to_document(document),
            "files": [describe_file(self.root, relative) for relative in bundle_files(self.root)],
        }
        text = _json_text(manifest_document)
        manifest, found = manifest_findings(manifest_document, text.encode())
        errors = [finding for finding in found if finding.severity is Severity.ERROR]
        if errors:
            details = "; ".join(f"{finding.pointer or '/'}: {finding.message}" for finding in errors[:5])
            raise BundleInvalid(
                f"the manifest would be invalid: {details}",
                file=MANIFEST_NAME,
                pointer=errors[0].pointer,
                code=errors[0].code,
            )
        _atomic_write(self.root / MANIFEST_NAME, text)
        (self.root / DRAFT_NAME).unlink(missing_ok=True)
        return manifest, bundle_id(manifest_document)


# ---------------------------------------------------------------- finalize


@dataclass
class FinalizeReport:
    """What `finalize` did."""

    bundle_id: str
    closed_runs: list[str] = field(default_factory=list)
    dropped_partial_lines: list[str] = field(default_factory=list)


def _drop_partial_last_line(path: Path) -> bool:
    """Cut an unterminated last line that is not complete JSON (a write cut off by the kill)."""
    size = path.stat().st_size
    if size == 0:
        return False
    with path.open("rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return False
        # Walk back to the previous newline, a block at a time.
        position = size
        while position > 0:
            step = min(HASH_CHUNK_BYTES, position)
            handle.seek(position - step)
            block = handle.read(step)
            cut = block.rfind(b"\n")
            if cut >= 0:
                position = position - step + cut + 1
                break
            position -= step
        handle.seek(position)
        tail = handle.read()
        try:
            json.loads(tail)
            handle.seek(0, os.SEEK_END)
            handle.write(b"\n")  # a complete record that only lacks its newline
            return False
        except ValueError:
            handle.truncate(position)
            return True


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def close_run_from_traces(root: Path, run: dict, status: str, reason: str) -> dict:
    """A run entry closed with `status`: it ends at the last instant its traces cover (or when it
    started), and gets the global metrics its step trace supports, next to any it already has."""
    run_id = run["run_id"]
    started_at = _utc(run["started_at"])
    statistics = StepStatistics()
    latest_ns = None
    for relative in bundle_files(root):
        role = role_of(relative)
        if role is None or role.run_id != run_id or role.record_type not in JSON_LINES_TYPES:
            continue
        end = trace_end_unix_ns(read_lines(root / relative), role.record_type)
        if end is not None:
            latest_ns = end if latest_ns is None else max(latest_ns, end)
        if role.record_type == "step":
            for line in read_lines(root / relative):
                if line.strip():
                    record = json.loads(line)
                    if record.get("rank", 0) == 0:
                        statistics.add(record)
    ended_at = datetime.fromtimestamp(latest_ns / 1e9, tz=UTC) if latest_ns is not None else started_at
    ended_at = max(ended_at, started_at)
    existing = run.get("metrics") or []
    derived = [
        metric
        for metric in step_metrics(statistics, run_id, started_at, ended_at)
        if not any(m.get("name") == metric["name"] and m.get("scope") == "global" for m in existing)
    ]
    return {
        **run,
        "ended_at": ended_at.isoformat().replace("+00:00", "Z"),
        "status": status,
        "status_reason": reason,
        "metrics": existing + derived,
    }


FINALIZE_REASON = "the producer stopped before closing the run; closed by trainmark bundle finalize"


def _reopened_draft(root: Path) -> dict:
    """The draft behind a manifest that `finalize` wrote, with the runs it closed open again, so
    that finalize can run again (after a training process outlived the first one, say). A
    manifest its producer wrote is final and is refused."""
    manifest = load_document(read_bounded(root / MANIFEST_NAME, file=MANIFEST_NAME), file=MANIFEST_NAME)
    runs = manifest.get("runs") if isinstance(manifest, dict) else None
    closed_here = [
        run
        for run in runs or []
        if isinstance(run, dict)
        and run.get("status") == "interrupted"
        and str(run.get("status_reason", "")).startswith(FINALIZE_REASON)
    ]
    if not closed_here:
        raise TrainmarkError(
            f"{root} already has a manifest.json that its producer wrote; it is final "
            "(check it with trainmark validate)"
        )
    for run in closed_here:
        for name in ("ended_at", "status", "status_reason", "metrics"):
            run.pop(name, None)
    manifest.pop("files", None)
    return manifest


def finalize(root: Path) -> FinalizeReport:
    """Turn what a killed producer left in `root` into a valid bundle.

    Runs the draft lists without a status become `interrupted`, end at their last logged
    instant, and get the metrics their traces support; a record cut off mid-write is dropped.
    Refuses while a writer still holds the bundle. May be run again on a bundle it finalized:
    the runs it closed are closed again from their traces as they are now.
    """
    try:
        lock = _directory_lock(root, exclusive=True, wait_s=FINALIZE_WAIT_S)
    except BlockingIOError:
        raise TrainmarkError(
            f"{root} is still being written (a trainmark process holds it); stop that process "
            "or wait for it to end, then finalize"
        ) from None
    except (FileNotFoundError, NotADirectoryError):
        raise TrainmarkError(f"{root} is not a bundle directory") from None
    try:
        return _finalize(root)
    finally:
        os.close(lock)


def _finalize(root: Path) -> FinalizeReport:
    draft_path = root / DRAFT_NAME
    if draft_path.is_file():
        draft = load_document(read_bounded(draft_path, file=DRAFT_NAME), file=DRAFT_NAME)
    elif (root / MANIFEST_NAME).exists():
        draft = _reopened_draft(root)
    else:
        raise TrainmarkError(
            f"{root} has no {DRAFT_NAME}: it was not left by a trainmark-compatible producer, "
            "so there is nothing to recover the metadata from"
        )
    if not isinstance(draft, dict) or not isinstance(draft.get("runs"), list):
        raise BundleInvalid("the draft has no runs list", file=DRAFT_NAME, pointer="/runs")
    files = bundle_files(root)
    report = FinalizeReport(bundle_id="")
    roles = {relative: role_of(relative) for relative in files}
    for relative, role in roles.items():
        if role is not None and role.record_type in JSON_LINES_TYPES and _drop_partial_last_line(root / relative):
            report.dropped_partial_lines.append(relative)

    run_ids = {run.get("run_id") for run in draft["runs"] if isinstance(run, dict)}
    for relative, role in roles.items():
        if role is not None and role.run_id is not None and role.run_id not in run_ids:
            raise BundleInvalid(
                f"traces of run {role.run_id!r} but the draft has no such run", file=relative, code="file-unlisted"
            )

    for index, run in enumerate(draft["runs"]):
        if not isinstance(run, dict) or run.get("status"):
            continue
        reason = FINALIZE_REASON
        dropped = [path for path in report.dropped_partial_lines if path.startswith(f"runs/{run['run_id']}/")]
        if dropped:
            reason += f" (dropped an incomplete last line in {', '.join(dropped)})"
        draft["runs"][index] = close_run_from_traces(root, run, "interrupted", reason)
        report.closed_runs.append(run["run_id"])

    draft["created_at"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    _, report.bundle_id = BundleWriter(root, hold=False).finish(draft)
    return report
