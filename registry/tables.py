"""The registry's SQL tables (SQLModel). They hold summaries only; traces stay in the blob store.

Table models are not bundle models: registry/store.py converts between the two explicitly, and
nothing outside the store sees a table row. Columns the leaderboard filters or sorts on are
denormalized onto `submission`, with sort columns that are never NULL (a missing efficiency
value sorts last), so that keyset pagination stays simple and indexable.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

MISSING_LOW = -1.0e300
"""Sort value of a missing higher-is-better bound (sorts after every real value)."""


class Submission(SQLModel, table=True):
    """One accepted bundle (write-once; `current` is false once a correction supersedes it)."""

    __tablename__ = "submission"
    __table_args__ = (
        Index("ix_board_score", "current", "ranked", "score", "steps_per_second_sort", "id"),
        Index("ix_board_fpj", "current", "ranked", "score", "flops_per_joule_sort", "id"),
        Index("ix_board_eps", "current", "ranked", "score", "energy_per_step_sort", "id"),
        Index("ix_board_created", "current", "ranked", "created_at", "id"),
        # A filter on device or submitter, then the default ranking, without reading other rows.
        Index("ix_board_device", "device_model", "current", "ranked", "score", "steps_per_second_sort", "id"),
        # The board ranks within a workload (rubric r2): workload, then the metric's bound.
        Index("ix_board_workload", "current", "ranked", "workload", "steps_per_second_sort", "id"),
        Index("ix_board_submitter", "submitter", "current", "ranked", "score", "steps_per_second_sort", "id"),
    )

    id: str = Field(primary_key=True, max_length=64, description="bundle id: sha256 of the canonical manifest")
    created_at: datetime = Field(description="when the registry accepted it (UTC)")
    key_id: int | None = Field(default=None, foreign_key="api_key.id")
    submitter: str = Field(max_length=512)
    description: str | None = Field(default=None, sa_column=Column(Text))
    supersedes: str | None = Field(default=None, index=True, max_length=64)
    current: bool = Field(default=True, description="false once a later submission supersedes this one")
    schema_version: str = Field(max_length=32)
    producer: str = Field(max_length=256)
    model_name: str = Field(max_length=256)
    device_model: str = Field(max_length=256)
    device_count: int = Field(index=True)
    precision: str = Field(index=True, max_length=32)
    parameters: float | None = Field(default=None, index=True)
    run_count: int
    bundle_bytes: int
    rubric_version: str = Field(max_length=16)
    ranked: bool
    score: float
    fidelity: float
    completeness: float
    confidence: float
    badges: str = Field(default="", max_length=128)
    missing: str = Field(default="", sa_column=Column(Text))
    steps_per_second: float | None = None
    steps_per_second_low: float | None = None
    steps_per_second_sort: float = MISSING_LOW
    flops_per_joule: float | None = None
    flops_per_joule_low: float | None = None
    flops_per_joule_sort: float = MISSING_LOW
    energy_per_step: float | None = None
    energy_per_step_high: float | None = None
    energy_per_step_sort: float = MISSING_LOW  # the negated upper bound: higher sorts first
    workload: str = Field(
        default="", max_length=800, description="model / dataset or benchmark / precision: what the board ranks within"
    )
    provenance: str = Field(
        default="declared",
        max_length=16,
        description="trust tier: measured, imported, declared or synthetic (rubric r2)",
    )
    trust_sort: int = Field(default=1, description="measured 3, imported 2, declared 1, synthetic 0")
    time_to_train: float | None = Field(default=None, description="headline time to train, s (MLPerf imports)")
    energy_to_train: float | None = Field(default=None, description="headline total energy, J (MLPerf imports)")
    not_ranked_because: str = Field(
        default="",
        sa_column=Column(Text, nullable=False, server_default=""),
        description="the messages of the gates it failed; empty when ranked",
    )


class RunRow(SQLModel, table=True):
    """One run of a submission."""

    __tablename__ = "run"
    __table_args__ = (UniqueConstraint("submission_id", "run_id"),)

    id: int | None = Field(default=None, primary_key=True)
    submission_id: str = Field(foreign_key="submission.id", index=True, max_length=64)
    run_id: str = Field(max_length=64)
    seed: int | None = None
    status: str = Field(max_length=16)
    started_at: datetime
    ended_at: datetime
    trace_fingerprint: str | None = Field(
        default=None, index=True, max_length=64, description="sha256 over the run's trace digests"
    )
    value_fingerprint: str = Field(
        index=True, max_length=64, description="sha256 over the run's start time and global metric values"
    )
    content_fingerprint: str | None = Field(
        default=None, index=True, max_length=64, description="sha256 over the run's trace content, time offsets removed"
    )


class RunMetric(SQLModel, table=True):
    """One summary metric of one run."""

    __tablename__ = "run_metric"

    id: int | None = Field(default=None, primary_key=True)
    run_pk: int = Field(foreign_key="run.id", index=True)
    name: str = Field(max_length=64)
    scope: str = Field(max_length=16)
    device: int | None = None
    node: int | None = None
    rank: int | None = None
    value: float | None = None
    unit: str = Field(max_length=32)
    method: str | None = Field(default=None, max_length=16)
    unavailable_reason: str | None = Field(default=None, sa_column=Column(Text))


class ScoreRecord(SQLModel, table=True):
    """The full score report of a submission under its rubric (JSON, as trainmark score --json)."""

    __tablename__ = "score"

    submission_id: str = Field(primary_key=True, foreign_key="submission.id", max_length=64)
    rubric_version: str = Field(primary_key=True, max_length=16)
    report: str = Field(sa_column=Column(Text, nullable=False))


class RegistryFinding(SQLModel, table=True):
    """A finding only the registry can make (across submissions), e.g. a run submitted twice."""

    __tablename__ = "registry_finding"

    id: int | None = Field(default=None, primary_key=True)
    submission_id: str = Field(foreign_key="submission.id", index=True, max_length=64)
    code: str = Field(max_length=64)
    severity: str = Field(max_length=16)
    pointer: str = Field(max_length=512)
    message: str = Field(sa_column=Column(Text, nullable=False))


class Series(SQLModel, table=True):
    """A downsampled trace channel of one run, for the plots."""

    __tablename__ = "series"

    id: int | None = Field(default=None, primary_key=True)
    submission_id: str = Field(foreign_key="submission.id", index=True, max_length=64)
    run_id: str = Field(max_length=64)
    kind: str = Field(max_length=16, description="power, memory or step_time")
    label: str = Field(max_length=128)
    unit: str = Field(max_length=16)
    points: str = Field(sa_column=Column(Text, nullable=False), description="JSON [[seconds, value], ...]")


class FileBlob(SQLModel, table=True):
    """Which blob holds each file of a submission (the archive is rebuilt from these)."""

    __tablename__ = "file_blob"

    submission_id: str = Field(primary_key=True, foreign_key="submission.id", max_length=64)
    path: str = Field(primary_key=True, max_length=1024)
    sha256: str = Field(max_length=64)
    size_bytes: int


class ApiKey(SQLModel, table=True):
    """A submitter's API key: only its sha256 is stored."""

    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=256)
    prefix: str = Field(max_length=16, index=True, description="the key's first characters, to tell keys apart")
    key_hash: str = Field(unique=True, max_length=64)
    created_at: datetime
    revoked: bool = False


class AuditEvent(SQLModel, table=True):
    """Who did what, when."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(index=True)
    key_id: int | None = Field(default=None, foreign_key="api_key.id")
    action: str = Field(max_length=32)
    submission_id: str | None = Field(default=None, max_length=64)
    detail: str | None = Field(default=None, sa_column=Column(Text))


class RateBucket(SQLModel, table=True):
    """A key's submission allowance (a token bucket), kept in the database so that every server
    process in front of it shares one limit per key."""

    __tablename__ = "rate_bucket"

    key_id: int = Field(primary_key=True, foreign_key="api_key.id")
    tokens: float
    updated_at: float = Field(description="Unix seconds of the last refill (wall clock: shared between processes)")


class CalibrationRow(SQLModel, table=True):
    """A calibration the registry holds: the raw readings it was given (`document`, JSON) and the
    verdict it computed from them (`deviations`, JSON; `passed`). Write-once, named by the sha256
    of its canonical document."""

    __tablename__ = "calibration"

    id: str = Field(primary_key=True, max_length=64)
    created_at: datetime = Field(index=True, description="when the registry took it (UTC)")
    key_id: int | None = Field(default=None, foreign_key="api_key.id", description="who gave it (None: the operator)")
    configuration: str = Field(max_length=256)
    device_summary: str = Field(max_length=512, description="e.g. '2 x NVIDIA H100 80GB HBM3'")
    document: str = Field(sa_column=Column(Text, nullable=False), description="devices, configuration, readings")
    deviations: str = Field(sa_column=Column(Text, nullable=False), description="the verdict the registry computed")
    passed: bool
