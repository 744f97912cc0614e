"""The registry's store: the one place that reads and writes its database and blobs.

A submission is an archive that passes validation (models, rules, full JSON Schema) and is
scored; then its files go to the blob store (content-addressed, so idempotent) and every row is
written in one transaction, so a failure at any point leaves the database as it was.
Submissions are write-once and identified by the bundle id: the same bundle twice is the same
submission. A correction is a new bundle whose manifest names the one it supersedes.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import and_, insert, or_, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, select
from trainmark.registry.blobs import BlobChanged, BlobStore
from trainmark.registry.calibrations import CalibrationInvalid, recompute
from trainmark.registry.database import engine_for, is_sqlite, normalize_url, require_current
from trainmark.registry.imports import verify_import
from trainmark.registry.tables import (
    MISSING_LOW,
    ApiKey,
    AuditEvent,
    CalibrationRow,
    FileBlob,
    RateBucket,
    RegistryFinding,
    RunMetric,
    RunRow,
    ScoreRecord,
    Series,
    Submission,
)
from trainmark.scorer.provenance import devices_match
from trainmark.scorer.score import ScoreReport, score_bundle
from trainmark.scorer.series import SeriesCollector
from trainmark.spec import models
from trainmark.spec.archive import ArchiveLimits, open_bundle, pack
from trainmark.spec.errors import BundleInvalid, BundleUnreadable, TrainmarkError
from trainmark.spec.findings import Finding, Severity
from trainmark.spec.jsontext import canonical_json

KEY_PREFIX = "tmk_"
EFFICIENCY_METRICS = ("steps_per_second", "flops_per_joule", "energy_per_step")
SORTS = ("rank", "score", "trust", "created_at", "submitter")
PRECISIONS = tuple(models.PrecisionPolicy.__members__)
FILTER_TEXT = re.compile(r"^[\w .,()+/:&'@#-]{1,256}\Z")
MAX_PAGE = 100
MAX_WORKLOAD_CHARS = 800
WORKLOAD_TEXT = re.compile(r"^[^\x00-\x1f\x7f]{1,800}\Z")
"""A workload filter: any printable text (model and dataset names are free text) up to the column's length."""
MAX_DEVICE_COUNT = 1_048_576
"""The most devices a board filter names (the standard numbers devices below 2**20)."""
MAX_CURSOR_CHARS = 1024


class SubmissionRejected(TrainmarkError):
    """A submission the registry will not store. `code` says why (a refusal code, or the code of
    the finding behind it); the HTTP API maps codes to statuses (registry/api_shared.py), the store
    knows nothing of HTTP."""

    def __init__(self, message: str, code: str = "submission-refused", findings: list[Finding] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.findings = findings or []


def store_unwritable(error: OSError) -> SubmissionRejected:
    """The refusal when the registry's own folders cannot be written (its path is not shown)."""
    return SubmissionRejected(
        f"the registry cannot write its blob store ({error.strerror or type(error).__name__}); "
        "nothing was stored; its operator must make the blob folder writable or free space",
        "store-unwritable",
    )


def bundle_invalid(error: BundleInvalid) -> SubmissionRejected:
    """The refusal of a bundle that cannot be read as one: the error's code and place, as a finding."""
    finding = Finding(
        error.code, Severity.ERROR, error.message, file=error.file, line=error.line, pointer=error.pointer
    )
    return SubmissionRejected(f"{finding.location()}: {error.message}", error.code, [finding])


class QueryInvalid(TrainmarkError):
    """A leaderboard query with a filter, sort or cursor the registry does not accept."""


@dataclass(frozen=True)
class RegistryLimits:
    """How much an upload may hold. max_upload_bytes: the archive; the rest: its contents."""

    max_upload_bytes: int = 256 * 1024 * 1024
    max_unpacked_bytes: int = 4 * 1024**3
    max_members: int = 20_000

    def archive_limits(self) -> ArchiveLimits:
        return ArchiveLimits(self.max_upload_bytes, self.max_unpacked_bytes, self.max_members)


@dataclass
class SubmitOutcome:
    """What happened to a submission."""

    id: str
    created: bool
    score: float
    ranked: bool
    findings: list[dict]

    def as_dict(self) -> dict:
        return {"id": self.id, "score": self.score, "ranked": self.ranked, "findings": self.findings}


@dataclass(frozen=True)
class BoardQuery:
    """A leaderboard query: whitelisted filters and sorts, and a cursor. Validated when built."""

    metric: str = "steps_per_second"
    sort: str = "rank"
    workload: str | None = None
    device_model: str | None = None
    device_count: int | None = None
    precision: str | None = None
    parameters_min: float | None = None
    parameters_max: float | None = None
    submitter: str | None = None
    include_unranked: bool = False
    limit: int = 20
    cursor: str | None = None

    def __post_init__(self) -> None:
        if self.metric not in EFFICIENCY_METRICS:
            raise QueryInvalid(f"metric must be one of {', '.join(EFFICIENCY_METRICS)}, not {self.metric!r}")
        if self.sort not in SORTS:
            raise QueryInvalid(f"sort must be one of {', '.join(SORTS)}, not {self.sort!r}")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise QueryInvalid(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        for name in ("device_model", "submitter"):
            value = getattr(self, name)
            if value is not None and not FILTER_TEXT.match(value):
                raise QueryInvalid(
                    f"{name} may hold letters, digits, spaces and . , ( ) + / : & ' @ # - "
                    f"(at most 256), not {value[:40]!r}"
                )
        if self.workload is not None and not WORKLOAD_TEXT.match(self.workload):
            raise QueryInvalid(
                f"workload may hold printable text of at most {MAX_WORKLOAD_CHARS} characters "
                f"(model / dataset / precision, as the board's rows show it), not {self.workload[:40]!r}"
            )
        if not 1 <= self.limit <= MAX_PAGE:
            raise QueryInvalid(f"limit must be between 1 and {MAX_PAGE}")
        if self.device_count is not None and not 1 <= self.device_count <= MAX_DEVICE_COUNT:
            raise QueryInvalid(f"device_count must be between 1 and {MAX_DEVICE_COUNT}")
        for name in ("parameters_min", "parameters_max"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise QueryInvalid(f"{name} must be a finite number")


@dataclass
class BoardPage:
    rows: list[dict]
    next_cursor: str | None
    query: BoardQuery = field(default_factory=BoardQuery)


def _now() -> datetime:
    return datetime.now(UTC)


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _fingerprint(*parts) -> str:
    return hashlib.sha256(canonical_json(list(parts))).hexdigest()


def _insert_rows(session: Session, table: type, rows: list[dict]) -> None:
    """Many rows of one table in one executemany (an empty list inserts nothing). Through the
    connection, not the ORM: the ORM's bulk insert splits the rows by which of their values are
    None, 42 statements for the demo bundle's 174 metrics (a round trip each on PostgreSQL).
    Every row must carry the same keys."""
    if rows:
        session.connection().execute(insert(table.__table__), rows)


def _lock_key(fingerprint: str) -> int:
    """A PostgreSQL advisory lock key (a signed 64-bit integer) from a hex fingerprint."""
    return int(fingerprint[:16], 16) - (1 << 63)


TRUST_SORT = {"measured": 3, "imported": 2, "declared": 1, "synthetic": 0}
"""Trust tiers in the order the board's `trust` sort shows them."""


def workload_of(manifest: models.Manifest) -> str:
    """What the board ranks within: model (or MLPerf benchmark) / dataset / precision."""
    precision = manifest.model.precision_policy
    return " / ".join(
        (manifest.model.name, manifest.dataset.name or "dataset not named", str(getattr(precision, "value", precision)))
    )


def board_fields(report: ScoreReport, manifest: models.Manifest, verified: bool | None = None) -> dict:
    """The submission columns the workload board needs, from a score report and its manifest. An
    import whose importer the registry could not run again (`verified` None) counts as declared."""
    from trainmark.scorer.provenance import provenance_of

    provenance = report.provenance or provenance_of(manifest)
    if provenance == "imported" and verified is not True:
        provenance = "declared"
    statistics = report.statistics
    time_to_train = statistics["time_to_train"].headline if "time_to_train" in statistics else None
    energy = statistics["total_energy"].headline if time_to_train is not None and "total_energy" in statistics else None
    return {
        "workload": workload_of(manifest)[:800],
        "provenance": provenance,
        "trust_sort": TRUST_SORT[provenance],
        "time_to_train": time_to_train,
        "energy_to_train": energy,
        "not_ranked_because": "; ".join(f"{gate.code}: {gate.message}" for gate in report.gates if not gate.passed),
    }


MISSING_LABELS = {
    "missing-sensor": "energy",
    "channel-absent": "trace channels",
    "too-few-runs": "3+ runs",
}
"""What a board entry lacks, by the code of the finding that says so (the board's `missing` column)."""


def _missing(report: ScoreReport) -> str:
    """What a board entry lacks, in a few words, from its findings' codes."""
    codes = [finding.code for finding in report.findings]
    labels = {MISSING_LABELS[code] for code in codes if code in MISSING_LABELS}
    absent = codes.count("reporting-field-absent")
    if absent:
        labels.add(f"{absent} reporting field{'s' if absent > 1 else ''}")
    return ", ".join(sorted(labels))


def efficiency_columns(statistics: dict) -> dict:
    """The board's efficiency columns from a report's run statistics: each metric's headline, its
    conservative 95 % bound, and the never-NULL sort value of that bound (a missing one sorts last)."""

    def of(name: str, attribute: str) -> float | None:
        return getattr(statistics[name], attribute) if name in statistics else None

    sps_low, fpj_low, eps_high = (
        of("steps_per_second", "ci95_low"),
        of("flops_per_joule", "ci95_low"),
        of("energy_per_step", "ci95_high"),
    )
    return {
        "steps_per_second": of("steps_per_second", "headline"),
        "steps_per_second_low": sps_low,
        "steps_per_second_sort": sps_low if sps_low is not None else MISSING_LOW,
        "flops_per_joule": of("flops_per_joule", "headline"),
        "flops_per_joule_low": fpj_low,
        "flops_per_joule_sort": fpj_low if fpj_low is not None else MISSING_LOW,
        "energy_per_step": of("energy_per_step", "headline"),
        "energy_per_step_high": eps_high,
        "energy_per_step_sort": -eps_high if eps_high is not None else MISSING_LOW,  # higher sorts first
    }


UNBELIEVED_CODES = frozenset({"too-regular", "duplicate-run"})
"""Findings that say a bundle's runs are too good to be true (rubric r2 II.4, II.5): its efficiency
bounds are shown but do not rank it (they sort as missing, after every believed bound)."""


def score_columns(report: ScoreReport, verified: bool | None) -> dict:
    """Every submission column that follows from a score report: what a rescore rewrites."""
    efficiency = efficiency_columns(report.statistics)
    if any(finding.code in UNBELIEVED_CODES for finding in report.findings):
        # A copy or a constant is not a measurement: ranking it by its (narrow) interval would put it
        # above the honest bundles of its workload, though its score is below theirs.
        for name in ("steps_per_second_sort", "flops_per_joule_sort", "energy_per_step_sort"):
            efficiency[name] = MISSING_LOW
    return {
        "rubric_version": report.rubric_version,
        "ranked": report.ranked,
        "score": report.score,
        "fidelity": report.fidelity,
        "completeness": report.completeness,
        "confidence": report.confidence,
        "badges": ",".join(report.badges),
        "missing": _missing(report),
        **efficiency,
        **board_fields(report, report.manifest, verified),
    }


def _stored_run_pointer(session: Session, submission_id: str, run_id: str) -> str:
    """The finding pointer manifest.json#/runs/<index> of a stored run (runs are stored in manifest order)."""
    run_ids = session.exec(select(RunRow.run_id).where(RunRow.submission_id == submission_id).order_by(RunRow.id)).all()
    return f"manifest.json#/runs/{list(run_ids).index(run_id)}"


class Store:
    """The registry's database and blob store."""

    def __init__(self, url: str, blobs: Path, limits: RegistryLimits = RegistryLimits()) -> None:
        self.url = normalize_url(url)
        self.engine = engine_for(self.url)
        self.write_engine = engine_for(self.url, writer=True) if is_sqlite(self.url) else self.engine
        require_current(self.engine, url)
        self.blobs = BlobStore(blobs)
        self.limits = limits
        # SQLite has one writer; serialize this process's writes (others wait on the busy timeout).
        self._write_lock = threading.Lock() if is_sqlite(self.url) else contextlib.nullcontext()

    def close(self) -> None:
        self.engine.dispose()
        self.write_engine.dispose()

    # ------------------------------------------------------------ keys and audit

    def create_key(self, name: str) -> str:
        """A new API key; only its hash is stored, so this is the only time it is seen."""
        if not name.strip():
            raise TrainmarkError("a key needs a name (who it is for)")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._write_lock, Session(self.write_engine) as session:
            record = ApiKey(name=name, prefix=key[:12], key_hash=_hash_key(key), created_at=_now())
            session.add(record)
            session.flush()
            session.add(AuditEvent(at=_now(), key_id=record.id, action="key-created", detail=name))
            session.commit()
        return key

    def list_keys(self) -> list[dict]:
        """Every API key: id, name, prefix (the key's first characters), when made, whether revoked."""
        with Session(self.engine) as session:
            keys = session.exec(select(ApiKey).order_by(ApiKey.id)).all()
        return [
            {
                "id": key.id,
                "name": key.name,
                "prefix": key.prefix,
                "created_at": key.created_at.isoformat(),
                "revoked": key.revoked,
            }
            for key in keys
        ]

    def revoke_key(self, which: str) -> dict:
        """Revoke a key named by its id or its prefix (as `list_keys` shows them); from then on it
        is refused. Revoking a revoked key changes nothing. Raises TrainmarkError when no key, or
        more than one, matches."""
        with self._write_lock, Session(self.write_engine) as session:
            statement = (
                select(ApiKey).where(ApiKey.id == int(which))
                if which.isdigit() and len(which) < 10
                else select(ApiKey).where(ApiKey.prefix == which[:16])
            )
            matches = session.exec(statement.with_for_update()).all()
            if len(matches) != 1:
                raise TrainmarkError(
                    f"{'no key' if not matches else 'more than one key'} matches {which[:40]!r}; "
                    "name it by the id `trainmark keys list` shows"
                )
            key = matches[0]
            if not key.revoked:
                key.revoked = True
                session.add(key)
                self.audit(session, "key-revoked", key.id, None, key.name)
                session.commit()
            return {"id": key.id, "name": key.name, "prefix": key.prefix, "revoked": True}

    def verify_key(self, key: str | None) -> int | None:
        """The id of a valid, unrevoked key, compared in constant time; None otherwise."""
        if not key or not key.startswith(KEY_PREFIX) or len(key) > 128:
            return None
        digest = _hash_key(key)
        with Session(self.engine) as session:
            candidates = session.exec(select(ApiKey).where(ApiKey.prefix == key[:12])).all()
        for candidate in candidates:
            if hmac.compare_digest(candidate.key_hash, digest) and not candidate.revoked:
                return candidate.id
        return None

    def take_submission(self, key_id: int, per_minute: float, now: float | None = None) -> float:
        """Take one submission from the key's allowance: 0.0 when taken, else the seconds until
        one is free. A token bucket of `per_minute` tokens, refilled continuously, kept in the
        database so that every server process shares it; the read and the write are one
        transaction that holds the key's row (BEGIN IMMEDIATE on SQLite, FOR UPDATE on PostgreSQL)."""
        now = time.time() if now is None else now
        for attempt in range(2):
            try:
                with self._write_lock, Session(self.write_engine) as session:
                    bucket = session.get(RateBucket, key_id, with_for_update=True)
                    if bucket is None:
                        bucket = RateBucket(key_id=key_id, tokens=per_minute, updated_at=now)
                    elapsed = max(0.0, now - bucket.updated_at)  # a clock set back refills nothing
                    tokens = min(per_minute, bucket.tokens + elapsed * per_minute / 60.0)
                    wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) * 60.0 / per_minute
                    bucket.tokens = tokens - 1.0 if wait == 0.0 else tokens
                    bucket.updated_at = max(now, bucket.updated_at)
                    session.add(bucket)
                    session.commit()
                    return wait
            except IntegrityError:
                if attempt:  # another process made the key's bucket first: it is there to lock now
                    raise
        raise AssertionError("unreachable")

    def _key_name(self, key_id: int | None) -> str:
        """Who submitted, for a bundle that does not say: the key's name, or "anonymous" (local)."""
        if key_id is None:
            return "anonymous"
        with Session(self.engine) as session:
            key = session.get(ApiKey, key_id)
        return key.name if key else "anonymous"

    def audit(
        self, session: Session, action: str, key_id: int | None, submission_id: str | None, detail: str | None = None
    ) -> None:
        session.add(AuditEvent(at=_now(), key_id=key_id, action=action, submission_id=submission_id, detail=detail))

    # ------------------------------------------------------------ submitting

    def submit(self, bundle: Path, key_id: int | None = None) -> SubmitOutcome:
        """Validate, score and store an opened bundle (a directory: an archive is opened at the
        boundary, `opened_upload`); the same bundle again returns the same id.

        A refusal leaves the store as it was (blobs are written only once the bundle is accepted,
        and those written for a submission that then fails are removed) and is audited.
        """
        try:
            try:
                return self._submit(bundle, key_id)
            except OSError as error:  # the store's own folders (blobs, archives), not the bundle
                raise store_unwritable(error) from None
        except SubmissionRejected as rejected:
            self.audit_refusal(key_id, rejected)
            raise

    def _submit(self, root: Path, key_id: int | None) -> SubmitOutcome:
        series = SeriesCollector()
        try:
            report = score_bundle(root, full_jsonschema=True, observer=series)
        except BundleUnreadable as error:
            raise SubmissionRejected(f"not a readable bundle ({error})", "bundle-unreadable") from None
        except BundleInvalid as error:
            raise bundle_invalid(error) from None
        self._refuse_invalid(report)
        manifest = report.manifest
        verified, how = verify_import(root, manifest)
        if verified is False:
            raise SubmissionRejected(how, "import-unverified")
        existing = self._existing(report.bundle_id)
        if existing is not None:
            with self._write_lock, Session(self.write_engine) as session:
                self.audit(session, "resubmitted", key_id, report.bundle_id)
                session.commit()
            return existing
        if manifest.supersedes:
            with Session(self.engine) as session:
                self._check_supersede(session, manifest.supersedes, key_id)  # again under lock on insert
        report = self._with_registry_calibration(report)
        written: list[str] = []
        archive_written = False
        try:
            # The archive first, then the blobs, each verified against its digest as it is copied: a
            # file that changed since it was validated (a directory still being written) is refused.
            archive_written = self.blobs.put_archive(report.bundle_id, root)
            manifest_blob = self._put_blobs(root, manifest, written)
            return self._insert(report, manifest_blob, series, key_id, verified)
        except BlobChanged as changed:
            self._discard(written, report.bundle_id if archive_written else None)
            raise SubmissionRejected(str(changed), "bundle-changed") from None
        except BaseException:
            self._discard(written, report.bundle_id if archive_written else None)
            raise

    def _put_blobs(self, root: Path, manifest: models.Manifest, written: list[str]) -> tuple[str, int]:
        """Every file of the bundle into the blob store (the digests this call wrote are appended to
        `written`); returns the manifest's own blob (digest, size)."""
        for entry in manifest.files:
            if self.blobs.put_file(root / entry.path, entry.sha256):
                written.append(entry.sha256)
        manifest_bytes = (root / "manifest.json").read_bytes()
        manifest_digest, created = self.blobs.put_bytes(manifest_bytes)
        if created:
            written.append(manifest_digest)
        return manifest_digest, len(manifest_bytes)

    def _discard(self, digests: list[str], archive_of: str | None) -> None:
        """Remove the blobs (and archive) a failed submission wrote, unless a submission that
        landed meanwhile references them."""
        if not digests and archive_of is None:
            return
        with Session(self.engine) as session:
            referenced = (
                set(session.exec(select(FileBlob.sha256).where(FileBlob.sha256.in_(digests)))) if digests else set()
            )
            landed = archive_of is not None and session.get(Submission, archive_of) is not None
        for digest in digests:
            if digest not in referenced:
                self.blobs.remove(digest)
        if archive_of is not None and not landed:
            self.blobs.remove_archive(archive_of)

    def audit_refusal(self, key_id: int | None, rejected: SubmissionRejected) -> None:
        """Every refusal leaves an audit record (its status, code and message)."""
        detail = f"{rejected.code}: {rejected}"[:2000]
        try:
            with self._write_lock, Session(self.write_engine) as session:
                self.audit(session, "refused", key_id, None, detail)
                session.commit()
        except SQLAlchemyError:
            # The database itself is failing: the refusal stands; the server's log has it.
            logging.getLogger(__name__).exception("could not audit a refusal: %s", detail)

    @staticmethod
    def _refuse_invalid(report: ScoreReport) -> None:
        # A bundle that breaks the standard is refused; one that follows it but fails a scoring gate
        # (summary; r2's physics and provenance) is stored, shown, and not ranked.
        failed = [gate for gate in report.gates if not gate.passed and gate.code in ("integrity", "validity", "finite")]
        if failed:
            errors = [finding for finding in report.findings if finding.severity is Severity.ERROR][:50]
            raise SubmissionRejected(
                "the bundle breaks the standard ("
                + "; ".join(f"{gate.code}: {gate.message}" for gate in failed)
                + "); see the findings, or run trainmark validate",
                errors[0].code if errors else failed[0].code,
                errors,
            )

    def _existing(self, bundle_id: str) -> SubmitOutcome | None:
        with Session(self.engine) as session:
            row = session.get(Submission, bundle_id)
            if row is None:
                return None
            record = session.get(ScoreRecord, (bundle_id, row.rubric_version))
            findings = json.loads(record.report)["findings"] if record else []
            return SubmitOutcome(bundle_id, False, row.score, row.ranked, findings)

    def _insert(
        self,
        report: ScoreReport,
        manifest_blob: tuple[str, int],
        series: SeriesCollector,
        key_id: int | None,
        verified: bool | None = None,
    ) -> SubmitOutcome:
        """Write every row of an accepted submission in one transaction."""
        bundle_id = report.bundle_id
        manifest = report.manifest
        submission = self._submission_row(report, key_id, verified)
        runs = self._run_rows(report)
        with self._write_lock, Session(self.write_engine) as session:
            try:
                if manifest.supersedes:
                    self._supersede(session, manifest.supersedes, key_id)
                session.add(submission)
                session.flush()  # the parent row first: these tables declare no ORM relationships to order by
                for _, row in runs:
                    session.add(row)
                session.add(
                    ScoreRecord(
                        submission_id=bundle_id,
                        rubric_version=report.rubric_version,
                        report=json.dumps(report.as_dict()),
                    )
                )
                session.flush()
                # The many small rows go in as one executemany each, not as ORM objects.
                _insert_rows(session, RunMetric, _metric_rows(runs))
                _insert_rows(session, FileBlob, _file_rows(bundle_id, manifest, manifest_blob))
                _insert_rows(session, Series, _series_rows(bundle_id, series))
                self._duplicate_runs(session, bundle_id, [row for _, row in runs])
                self.audit(session, "submitted", key_id, bundle_id, f"score {report.score:.3f}")
                session.commit()
            except IntegrityError:
                session.rollback()  # the same bundle, landed a moment ago by another writer
                existing = self._existing(bundle_id)
                if existing is None:
                    raise
                self.audit(session, "resubmitted", key_id, bundle_id)
                session.commit()
                return existing
        return SubmitOutcome(bundle_id, True, report.score, report.ranked, report.as_dict()["findings"])

    def _submission_row(self, report: ScoreReport, key_id: int | None, verified: bool | None) -> Submission:
        """The board's row of a new submission: who, what, on what, and its score columns."""
        manifest = report.manifest
        devices = manifest.system.devices
        return Submission(
            id=report.bundle_id,
            created_at=_now(),
            key_id=key_id,
            submitter=manifest.submitter.name if manifest.submitter else self._key_name(key_id),
            description=manifest.description,
            supersedes=manifest.supersedes,
            schema_version=manifest.schema_version,
            producer=f"{manifest.producer.name} {manifest.producer.version}",
            model_name=manifest.model.name,
            device_model=devices[0].model,
            device_count=len(devices),
            precision=manifest.model.precision_policy,
            parameters=manifest.model.parameters_total.value,
            run_count=len(manifest.runs),
            bundle_bytes=sum(entry.size_bytes for entry in manifest.files),
            **score_columns(report, verified),
        )

    @staticmethod
    def _run_rows(report: ScoreReport) -> list[tuple[models.Run, RunRow]]:
        """Each run with its row, fingerprinted three ways for the duplicate check across submissions."""
        manifest = report.manifest
        trace_digests: dict[str, list[str]] = {}
        for entry in manifest.files:
            if entry.run_id is not None and entry.record_type != "document":
                trace_digests.setdefault(entry.run_id, []).append(entry.sha256)
        runs = []
        for run in manifest.runs:
            values = sorted(
                (m.name, m.scope, m.device, m.node, m.rank, m.value) for m in run.metrics if m.value is not None
            )
            traces = sorted(trace_digests.get(run.run_id, []))
            row = RunRow(
                submission_id=report.bundle_id,
                run_id=run.run_id,
                seed=run.seed,
                status=run.status,
                started_at=run.started_at,
                ended_at=run.ended_at,
                trace_fingerprint=_fingerprint(traces) if traces else None,
                value_fingerprint=_fingerprint(run.started_at.isoformat(), values),
                content_fingerprint=report.run_fingerprints.get(run.run_id),
            )
            runs.append((run, row))
        return runs

    def _supersede(self, session: Session, old_id: str, key_id: int | None) -> None:
        old = self._check_supersede(session, old_id, key_id, lock=True)
        old.current = False
        session.add(old)

    @staticmethod
    def _check_supersede(session: Session, old_id: str, key_id: int | None, lock: bool = False) -> Submission:
        old = session.get(Submission, old_id, with_for_update=lock)
        if old is None:
            raise SubmissionRejected(
                f"the bundle supersedes {old_id}, which this registry does not have", "supersedes-unknown"
            )
        if old.key_id != key_id:
            raise SubmissionRejected(f"only the key that submitted {old_id} may supersede it", "supersedes-foreign")
        if not old.current:
            raise SubmissionRejected(
                f"{old_id} is already superseded; supersede the newest of its chain", "supersedes-superseded"
            )
        return old

    def _duplicate_runs(self, session: Session, bundle_id: str, rows: list[RunRow]) -> None:
        """Runs submitted before (same trace digests, same start and values, or the same trace content
        once time offsets are removed): a finding on both sides."""
        if not is_sqlite(self.url):
            # Two transactions with a fingerprint in common would each miss the other's uncommitted
            # runs: the second waits here until the first commits, then sees its rows (READ
            # COMMITTED reads each statement afresh). SQLite writers are serialized already.
            # Locks are taken in one order (unnest keeps the sorted array's order), so they
            # cannot deadlock.
            keys = sorted(
                {
                    _lock_key(fingerprint)
                    for row in rows
                    for fingerprint in (row.value_fingerprint, row.trace_fingerprint, row.content_fingerprint)
                    if fingerprint
                }
            )
            session.connection().execute(
                text("SELECT pg_advisory_xact_lock(key) FROM unnest(CAST(:keys AS bigint[])) AS key"), {"keys": keys}
            )
        values = [row.value_fingerprint for row in rows]
        traces = [row.trace_fingerprint for row in rows if row.trace_fingerprint]
        contents = [row.content_fingerprint for row in rows if row.content_fingerprint]
        earlier_runs = session.exec(
            select(
                RunRow.submission_id,
                RunRow.run_id,
                RunRow.trace_fingerprint,
                RunRow.value_fingerprint,
                RunRow.content_fingerprint,
            )
            .where(
                or_(
                    RunRow.value_fingerprint.in_(values),
                    RunRow.trace_fingerprint.in_(traces),
                    RunRow.content_fingerprint.in_(contents),
                ),
                RunRow.submission_id != bundle_id,
            )
            .order_by(RunRow.id)
        ).all()  # one query for all the runs, in the order they were submitted
        findings = []
        for index, row in enumerate(rows):  # rows are in the manifest's order of runs
            earlier = [
                (submission, run, other_traces, other_values)
                for submission, run, other_traces, other_values, other_content in earlier_runs
                if other_values == row.value_fingerprint
                or (row.trace_fingerprint and other_traces == row.trace_fingerprint)
                or (row.content_fingerprint and other_content == row.content_fingerprint)
            ]
            for other_submission, other_run, other_traces, other_values in earlier:
                what = (
                    "identical traces"
                    if row.trace_fingerprint and other_traces == row.trace_fingerprint
                    else "the same start time and values"
                    if other_values == row.value_fingerprint
                    else "the same trace content once time offsets are removed"
                )
                findings.append(
                    dict(
                        submission_id=bundle_id,
                        code="duplicate-run",
                        severity="warning",
                        pointer=f"manifest.json#/runs/{index}",
                        message=f"run {row.run_id} has {what} as run {other_run} of submission {other_submission}",
                    )
                )
                findings.append(
                    dict(
                        submission_id=other_submission,
                        code="duplicate-run",
                        severity="warning",
                        pointer=_stored_run_pointer(session, other_submission, other_run),
                        message=f"run {other_run} has {what} as run {row.run_id} of submission {bundle_id}",
                    )
                )
        _insert_rows(session, RegistryFinding, findings)

    # ------------------------------------------------------------ calibrations

    def add_calibration(self, document, key_id: int | None = None) -> tuple[dict, bool]:
        """Hold a calibration: check its document, compute its verdict from the readings (a stated
        verdict is refused, never trusted) and store both; (the calibration, whether it is new).
        Raises SubmissionRejected (code `calibration-invalid`) for a document it will not hold.
        Submissions scored from then on (and every one after `trainmark registry rescore`) earn
        Calibrated from it when it covers exactly their devices and passes."""
        try:
            verdict = recompute(document)
        except CalibrationInvalid as invalid:
            rejected = SubmissionRejected(str(invalid), invalid.code)
            self.audit_refusal(key_id, rejected)
            raise rejected from None
        devices = verdict.document["devices"]
        models_named = sorted({device["model"] for device in devices})
        row = CalibrationRow(
            id=verdict.id,
            created_at=_now(),
            key_id=key_id,
            configuration=verdict.document["configuration"],
            device_summary=f"{len(devices)} x {', '.join(models_named)}"[:512],
            document=json.dumps(verdict.document),
            deviations=json.dumps(verdict.deviations),
            passed=verdict.passed,
        )
        with self._write_lock, Session(self.write_engine) as session:
            if session.get(CalibrationRow, verdict.id) is not None:
                return self.calibration(verdict.id), False
            session.add(row)
            self.audit(session, "calibration-added", key_id, None, f"{verdict.id} passed={verdict.passed}")
            try:
                session.commit()
            except IntegrityError:  # the same calibration, held a moment ago by another writer
                return self.calibration(verdict.id), False
        return self.calibration(verdict.id), True

    def calibration(self, calibration_id: str) -> dict | None:
        """One held calibration: its devices, configuration, readings and the registry's verdict."""
        with Session(self.engine) as session:
            row = session.get(CalibrationRow, calibration_id[:64])
        return _calibration_dict(row) if row is not None else None

    def calibrations(self) -> list[dict]:
        """Every held calibration, newest first."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(CalibrationRow).order_by(CalibrationRow.created_at.desc(), CalibrationRow.id)
            ).all()
        return [_calibration_dict(row) for row in rows]

    def _held_calibration(self, manifest: models.Manifest) -> dict | None:
        """The newest held calibration that covers exactly the bundle's devices, or None."""
        for calibration in self.calibrations():
            if devices_match(manifest.system.devices, calibration["devices"]):
                return calibration
        return None

    def _with_registry_calibration(self, report: ScoreReport) -> ScoreReport:
        """Under a rubric that takes no self-declared calibration (r2), Calibrated comes from here
        only: the newest calibration the registry holds for exactly the bundle's devices; a ranked
        bundle earns the badge when that calibration passed. Either way a finding says which."""
        from trainmark.scorer import rubric as rubrics

        if not rubrics.rubric_of(report.rubric_version).strict or report.manifest is None:
            return report
        held = self._held_calibration(report.manifest)
        if held is None:
            return report
        badges = list(report.badges)
        if held["passed"] and report.ranked and "Calibrated" not in badges:
            badges.insert(1 if "Complete" in badges else 0, "Calibrated")
        outside = [d["name"] for d in held["deviations"] if not d["within_margin"]]
        message = (
            f"the registry holds calibration {held['id'][:16]} of these devices ({held['configuration']}): "
            + (
                "every metric within its margin, recomputed from its readings"
                if held["passed"]
                else f"{', '.join(outside)} outside the margin, recomputed from its readings: not Calibrated"
            )
            + ("" if report.ranked else "; an entry that is not ranked earns no badge")
        )
        finding = Finding(
            "calibration-held" if held["passed"] else "calibration-failed",
            Severity.INFO,
            message,
            file="manifest.json",
            pointer="/system/devices",
        )
        return dataclasses.replace(report, badges=badges, findings=[*report.findings, finding])

    # ------------------------------------------------------------ reading

    def get(self, bundle_id: str) -> dict | None:
        """Everything about one submission: summary, score, findings, runs and their metrics, series."""
        with Session(self.engine) as session:
            row = session.get(Submission, bundle_id)
            if row is None:
                return None
            score = session.get(ScoreRecord, (bundle_id, row.rubric_version))
            runs = session.exec(select(RunRow).where(RunRow.submission_id == bundle_id).order_by(RunRow.id)).all()
            metrics = {
                run.id: session.exec(select(RunMetric).where(RunMetric.run_pk == run.id).order_by(RunMetric.id)).all()
                for run in runs
            }
            findings = session.exec(
                select(RegistryFinding).where(RegistryFinding.submission_id == bundle_id).order_by(RegistryFinding.id)
            ).all()
            series = session.exec(select(Series).where(Series.submission_id == bundle_id).order_by(Series.id)).all()
            superseded_by = session.exec(select(Submission.id).where(Submission.supersedes == bundle_id)).first()
            return {
                "submission": _row_dict(row) | {"superseded_by": superseded_by},
                "score": json.loads(score.report) if score else None,
                "registry_findings": [
                    {"code": f.code, "severity": f.severity, "pointer": f.pointer, "message": f.message}
                    for f in findings
                ],
                "runs": [
                    {
                        "run_id": run.run_id,
                        "seed": run.seed,
                        "status": run.status,
                        "started_at": run.started_at.isoformat(),
                        "ended_at": run.ended_at.isoformat(),
                        "metrics": [
                            {
                                "name": m.name,
                                "scope": m.scope,
                                "device": m.device,
                                "node": m.node,
                                "rank": m.rank,
                                "value": m.value,
                                "unit": m.unit,
                                "method": m.method,
                                "unavailable_reason": m.unavailable_reason,
                            }
                            for m in metrics[run.id]
                        ],
                    }
                    for run in runs
                ],
                "series": [
                    {
                        "run_id": s.run_id,
                        "kind": s.kind,
                        "label": s.label,
                        "unit": s.unit,
                        "points": json.loads(s.points),
                    }
                    for s in series
                ],
            }

    def rescore(self, rubric_version: str | None = None) -> list[dict]:
        """Score every submission again under `rubric_version` (the current rubric when None) from its
        stored blobs; each keeps the reports of every rubric it was scored under (scores table), and
        its board row takes the new one. Returns, per submission, its id and old and new score."""
        from trainmark.scorer import rubric as rubrics

        version = rubric_version or rubrics.RUBRIC_VERSION
        rubrics.rubric_of(version)  # a clear error for an unknown version, before any work
        with Session(self.engine) as session:
            ids = list(session.exec(select(Submission.id).order_by(Submission.id)).all())
        changes = []
        for bundle_id in ids:
            with tempfile.TemporaryDirectory() as scratch:
                archive = self.rebuild_archive(bundle_id, Path(scratch))
                with open_bundle(archive, self.limits.archive_limits()) as root:
                    report = self._with_registry_calibration(score_bundle(root, version, full_jsonschema=True))
                    verified, _ = verify_import(root, report.manifest)
            with self._write_lock, Session(self.write_engine) as session:
                row = session.get(Submission, bundle_id)
                old = {"rubric_version": row.rubric_version, "score": row.score, "ranked": row.ranked}
                for name, value in score_columns(report, verified).items():
                    setattr(row, name, value)
                session.add(row)
                record = session.get(ScoreRecord, (bundle_id, report.rubric_version))
                report_json = json.dumps(report.as_dict())
                if record is None:
                    session.add(
                        ScoreRecord(submission_id=bundle_id, rubric_version=report.rubric_version, report=report_json)
                    )
                else:
                    record.report = report_json
                    session.add(record)
                self.audit(
                    session,
                    "rescored",
                    None,
                    bundle_id,
                    f"{old['rubric_version']} {old['score']} -> {report.rubric_version} {report.score}",
                )
                session.commit()
            changes.append(
                {
                    "id": bundle_id,
                    "old": old,
                    "new": {"rubric_version": report.rubric_version, "score": report.score, "ranked": report.ranked},
                }
            )
        return changes

    def rebuild_archive(self, bundle_id: str, folder: Path) -> Path:
        """The submission as `folder/<id>.tar.gz`, rebuilt from its blobs (pack is reproducible, so
        this is byte for byte the archive the submitter's `trainmark bundle pack` makes)."""
        with Session(self.engine) as session:
            files = session.exec(select(FileBlob).where(FileBlob.submission_id == bundle_id)).all()
        if not files:
            raise KeyError(bundle_id)
        root = folder / "bundle"
        for entry in files:
            target = root / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.blobs.path(entry.sha256), target)
        archive = folder / f"{bundle_id}.tar.gz"
        pack(root, archive)
        shutil.rmtree(root)
        return archive

    def facets(self) -> dict[str, list]:
        """The values the board's filters can take now (for the page's drop-downs)."""
        with Session(self.engine) as session:
            current = Submission.current == True  # noqa: E712
            return {
                "workload": list(
                    session.exec(
                        select(Submission.workload)
                        .where(current, Submission.workload != "")
                        .distinct()
                        .order_by(Submission.workload)
                        .limit(500)
                    )
                ),
                "device_model": list(
                    session.exec(
                        select(Submission.device_model)
                        .where(current)
                        .distinct()
                        .order_by(Submission.device_model)
                        .limit(500)
                    )
                ),
                "device_count": list(
                    session.exec(
                        select(Submission.device_count)
                        .where(current)
                        .distinct()
                        .order_by(Submission.device_count)
                        .limit(100)
                    )
                ),
            }

    def leaderboard(self, query: BoardQuery) -> BoardPage:
        """One page of current submissions, ranked, filtered and paged by keyset."""
        order, keys = self._order(query)
        statement = select(Submission).where(Submission.current == True)  # noqa: E712 (SQL, not Python)
        if not query.include_unranked:
            statement = statement.where(Submission.ranked == True)  # noqa: E712
        for column, value in (
            (Submission.workload, query.workload),
            (Submission.device_model, query.device_model),
            (Submission.device_count, query.device_count),
            (Submission.precision, query.precision),
            (Submission.submitter, query.submitter),
        ):
            if value is not None:
                statement = statement.where(column == value)
        if query.parameters_min is not None:
            statement = statement.where(Submission.parameters >= query.parameters_min)
        if query.parameters_max is not None:
            statement = statement.where(Submission.parameters <= query.parameters_max)
        if query.cursor:
            statement = statement.where(self._after(keys, self._decode(query.cursor, keys)))
        with Session(self.engine) as session:
            rows = session.exec(statement.order_by(*order).limit(query.limit + 1)).all()
        page = rows[: query.limit]
        next_cursor = None
        if len(rows) > query.limit:
            last = page[-1]
            next_cursor = self._encode([_cursor_value(getattr(last, column.key)) for column, _ in keys])
        return BoardPage([_row_dict(row) for row in page], next_cursor, query)

    @staticmethod
    def _order(query: BoardQuery):
        """(ORDER BY clauses, [(column, descending)]) for a sort; the id last breaks every tie.

        `rank` (rubric r2) ranks within a workload: workloads in name order, and within one, the
        efficiency metric's conservative 95 % bound first, the transparency score breaking ties;
        a tiny CPU model is never ranked against a 70B fine-tune on steps/s."""
        bound = getattr(Submission, f"{query.metric}_sort")
        keys = {
            "rank": [(Submission.workload, False), (bound, True), (Submission.score, True)],
            "score": [(Submission.score, True)],
            "trust": [(Submission.trust_sort, True), (Submission.score, True)],
            "created_at": [(Submission.created_at, True)],
            "submitter": [(Submission.submitter, False)],
        }[query.sort]
        keys = keys + [(Submission.id, False)]
        return [column.desc() if descending else column.asc() for column, descending in keys], keys

    @staticmethod
    def _after(keys, values):
        """WHERE clause for rows after the cursor position under a mixed ascending/descending order.

        The leading range on the first key is implied by the OR, but stated, so that the database
        seeks to the position in the index instead of filtering every row before it.
        """
        clauses = []
        for index, (column, descending) in enumerate(keys):
            equal = [keys[i][0] == values[i] for i in range(index)]
            beyond = column < values[index] if descending else column > values[index]
            clauses.append(and_(*equal, beyond))
        first, descending = keys[0]
        return and_(first <= values[0] if descending else first >= values[0], or_(*clauses))

    @staticmethod
    def _encode(values: list) -> str:
        return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")

    @staticmethod
    def _decode(cursor: str, keys) -> list:
        """The cursor's values, each of its sort key's type, or QueryInvalid (a cursor is user input)."""
        values = None
        if len(cursor) <= MAX_CURSOR_CHARS:
            try:
                values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            except (ValueError, TypeError, RecursionError):
                pass
        if values is None:
            raise QueryInvalid("the cursor is not one this registry gave out; start from the first page")
        if not isinstance(values, list) or len(values) != len(keys):
            raise QueryInvalid("the cursor does not fit this sort; start from the first page")
        return [_cursor_key_value(value, column) for value, (column, _) in zip(values, keys)]

    def export(self, workload: str | None = None) -> Iterator[dict]:
        """Every current submission (ranked or not; of one workload when given), best first, a page at a time."""
        cursor = None
        while True:
            page = self.leaderboard(BoardQuery(workload=workload, include_unranked=True, limit=MAX_PAGE, cursor=cursor))
            yield from page.rows
            cursor = page.next_cursor
            if cursor is None:
                return

    def archive_for(self, bundle_id: str) -> Path:
        """The submission's .tar.gz, packed once at ingest (one accepted before archives were kept
        is packed now, once); raises KeyError when there is no such submission."""
        path = self.blobs.archive_path(bundle_id)
        if path.is_file():
            return path
        with Session(self.engine) as session:
            if session.get(Submission, bundle_id) is None:
                raise KeyError(bundle_id)
        with Session(self.engine) as session:
            files = session.exec(select(FileBlob).where(FileBlob.submission_id == bundle_id)).all()
        with self.blobs.scratch_folder("download") as scratch:
            root = Path(scratch) / "bundle"
            for entry in files:
                target = root / entry.path
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.blobs.path(entry.sha256), target)
            self.blobs.put_archive(bundle_id, root)  # packed beside its place and renamed in
        return path

    def sweep(self, grace_s: float = 3600.0) -> dict:
        """Find and remove what failed or killed writers left: partial blobs, archives and scratch
        folders of processes that are gone, and blobs and archives no submission references.
        Unreferenced blobs younger than `grace_s` are kept: another server process may be about
        to commit the submission that wrote them. Returns what was removed (counts, bytes) and
        what could not be (`errors`)."""
        removed = {"temporaries": 0, "orphan_blobs": 0, "orphan_archives": 0, "bytes": 0, "errors": []}

        def delete(path: Path) -> bool:
            try:
                size = (
                    sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
                    if path.is_dir()
                    else path.stat().st_size
                )
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except OSError as error:
                removed["errors"].append(f"{path.relative_to(self.blobs.root)}: {error.strerror}")
                return False
            removed["bytes"] += size
            return True

        for path in self.blobs.stale_temporaries(grace_s):
            removed["temporaries"] += delete(path)
        now = time.time()
        sha_root = self.blobs.root / "sha256"
        for directory in sorted(sha_root.iterdir()):
            names = [blob.name for blob in directory.iterdir() if not blob.name.startswith(".")]
            if not names:
                continue
            referenced: set[str] = set()
            with Session(self.engine) as session:
                for begin in range(0, len(names), 500):
                    referenced.update(
                        session.exec(
                            select(FileBlob.sha256)
                            .where(FileBlob.sha256.in_([directory.name + name for name in names[begin : begin + 500]]))
                            .distinct()
                        )
                    )
            for name in names:
                blob = directory / name
                if directory.name + name not in referenced and now - blob.stat().st_mtime > grace_s:
                    removed["orphan_blobs"] += delete(blob)
        archived = self.blobs.archive_ids()
        if archived:
            with Session(self.engine) as session:
                known = set(session.exec(select(Submission.id).where(Submission.id.in_(archived))))
            for bundle_id in archived:
                path = self.blobs.archive_path(bundle_id)
                if bundle_id not in known and now - path.stat().st_mtime > grace_s:
                    removed["orphan_archives"] += delete(path)
        return removed

    def counts(self) -> dict[str, int]:
        """Rows per table (tests use it to prove nothing was half-written)."""
        from sqlalchemy import func

        with Session(self.engine) as session:
            return {
                table.__tablename__: session.exec(select(func.count()).select_from(table)).one()
                for table in (Submission, RunRow, RunMetric, ScoreRecord, Series, FileBlob, RegistryFinding)
            }


def _metric_rows(runs: list[tuple[models.Run, RunRow]]) -> list[dict]:
    """Every run metric as a row (the runs' rows must have their ids)."""
    return [
        dict(
            run_pk=row.id,
            name=metric.name,
            scope=metric.scope,
            device=metric.device,
            node=metric.node,
            rank=metric.rank,
            value=metric.value,
            unit=metric.unit,
            method=metric.method,
            unavailable_reason=metric.unavailable_reason,
        )
        for run, row in runs
        for metric in run.metrics
    ]


def _file_rows(bundle_id: str, manifest: models.Manifest, manifest_blob: tuple[str, int]) -> list[dict]:
    """Every file of the bundle and its manifest, by blob digest."""
    return [
        dict(submission_id=bundle_id, path=entry.path, sha256=entry.sha256, size_bytes=entry.size_bytes)
        for entry in manifest.files
    ] + [dict(submission_id=bundle_id, path="manifest.json", sha256=manifest_blob[0], size_bytes=manifest_blob[1])]


def _series_rows(bundle_id: str, series: SeriesCollector) -> list[dict]:
    """The plot series the registry collected while it scored the bundle."""
    return [
        dict(
            submission_id=bundle_id,
            run_id=item["run_id"],
            kind=item["kind"],
            label=item["label"],
            unit=item["unit"],
            points=json.dumps(item["points"]),
        )
        for item in series.results()
    ]


def _calibration_dict(row: CalibrationRow) -> dict:
    document = json.loads(row.document)
    return {
        "id": row.id,
        "created_at": row.created_at.isoformat(),
        "configuration": row.configuration,
        "device_summary": row.device_summary,
        "devices": document["devices"],
        "metrics": document["metrics"],
        "deviations": json.loads(row.deviations),
        "passed": row.passed,
    }


def _cursor_key_value(value, column):
    """A cursor value as its column's type: a finite float, a 64-bit integer, an aware datetime, or a short string."""
    kind = datetime if column.key == "created_at" else column.type.python_type
    problem = "the cursor does not fit this sort; start from the first page"
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise QueryInvalid(problem)
        try:
            number = float(value)
        except OverflowError:
            raise QueryInvalid(problem) from None
        if not math.isfinite(number):
            raise QueryInvalid(problem)
        return number
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or not -(1 << 63) <= value < (1 << 63):
            raise QueryInvalid(problem)
        return value
    if not isinstance(value, str) or len(value) > 512 or "\x00" in value:
        raise QueryInvalid(problem)
    if kind is datetime:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise QueryInvalid(problem) from None
        if moment.utcoffset() is None:
            raise QueryInvalid(problem)  # every time the registry gives out carries its offset
        return moment
    return value


def _cursor_value(value):
    return value.isoformat() if isinstance(value, datetime) else value


def _row_dict(row: Submission) -> dict:
    data = row.model_dump()
    data["created_at"] = row.created_at.isoformat()
    data["badges"] = [badge for badge in row.badges.split(",") if badge]
    for name in ("steps_per_second_sort", "flops_per_joule_sort", "energy_per_step_sort", "trust_sort", "key_id"):
        data.pop(name, None)
    return data


__all__ = [
    "BoardPage",
    "BoardQuery",
    "QueryInvalid",
    "RegistryLimits",
    "Store",
    "SubmissionRejected",
    "SubmitOutcome",
    "store_unwritable",
]
