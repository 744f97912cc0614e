"""The registry's tables, revision 1.

Revision ID: 0001
Revises:
Create Date: 2026-11-29 14:26:52.045503
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column("prefix", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("key_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_key_prefix"), ["prefix"], unique=False)

    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("submission_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_key.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_event_at"), ["at"], unique=False)

    op.create_table(
        "submission",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("submitter", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("supersedes", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("schema_version", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("producer", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column("model_name", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column("device_model", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column("device_count", sa.Integer(), nullable=False),
        sa.Column("precision", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("parameters", sa.Float(), nullable=True),
        sa.Column("run_count", sa.Integer(), nullable=False),
        sa.Column("bundle_bytes", sa.Integer(), nullable=False),
        sa.Column("rubric_version", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("ranked", sa.Boolean(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("fidelity", sa.Float(), nullable=False),
        sa.Column("completeness", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("badges", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("missing", sa.Text(), nullable=True),
        sa.Column("steps_per_second", sa.Float(), nullable=True),
        sa.Column("steps_per_second_low", sa.Float(), nullable=True),
        sa.Column("steps_per_second_sort", sa.Float(), nullable=False),
        sa.Column("flops_per_joule", sa.Float(), nullable=True),
        sa.Column("flops_per_joule_low", sa.Float(), nullable=True),
        sa.Column("flops_per_joule_sort", sa.Float(), nullable=False),
        sa.Column("energy_per_step", sa.Float(), nullable=True),
        sa.Column("energy_per_step_high", sa.Float(), nullable=True),
        sa.Column("energy_per_step_sort", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_key.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.create_index(
            "ix_board_eps", ["current", "ranked", "score", "energy_per_step_sort", "id"], unique=False
        )
        batch_op.create_index(
            "ix_board_fpj", ["current", "ranked", "score", "flops_per_joule_sort", "id"], unique=False
        )
        batch_op.create_index(
            "ix_board_score", ["current", "ranked", "score", "steps_per_second_sort", "id"], unique=False
        )
        batch_op.create_index("ix_board_created", ["current", "ranked", "created_at", "id"], unique=False)
        batch_op.create_index(
            "ix_board_device",
            ["device_model", "current", "ranked", "score", "steps_per_second_sort", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_board_submitter",
            ["submitter", "current", "ranked", "score", "steps_per_second_sort", "id"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_submission_device_count"), ["device_count"], unique=False)
        batch_op.create_index(batch_op.f("ix_submission_parameters"), ["parameters"], unique=False)
        batch_op.create_index(batch_op.f("ix_submission_precision"), ["precision"], unique=False)
        batch_op.create_index(batch_op.f("ix_submission_supersedes"), ["supersedes"], unique=False)

    op.create_table(
        "file_blob",
        sa.Column("submission_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("path", sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submission.id"],
        ),
        sa.PrimaryKeyConstraint("submission_id", "path"),
    )
    op.create_table(
        "registry_finding",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("severity", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("pointer", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submission.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("registry_finding", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_registry_finding_submission_id"), ["submission_id"], unique=False)

    op.create_table(
        "run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("ended_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("trace_fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("value_fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submission.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("submission_id", "run_id"),
    )
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_submission_id"), ["submission_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_run_trace_fingerprint"), ["trace_fingerprint"], unique=False)
        batch_op.create_index(batch_op.f("ix_run_value_fingerprint"), ["value_fingerprint"], unique=False)

    op.create_table(
        "score",
        sa.Column("submission_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("rubric_version", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submission.id"],
        ),
        sa.PrimaryKeyConstraint("submission_id", "rubric_version"),
    )
    op.create_table(
        "series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("unit", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("points", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submission.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_series_submission_id"), ["submission_id"], unique=False)

    op.create_table(
        "run_metric",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("device", sa.Integer(), nullable=True),
        sa.Column("node", sa.Integer(), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("unit", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("method", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("unavailable_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_pk"],
            ["run.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("run_metric", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_metric_run_pk"), ["run_pk"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("run_metric", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_run_metric_run_pk"))

    op.drop_table("run_metric")
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_series_submission_id"))

    op.drop_table("series")
    op.drop_table("score")
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_run_value_fingerprint"))
        batch_op.drop_index(batch_op.f("ix_run_trace_fingerprint"))
        batch_op.drop_index(batch_op.f("ix_run_submission_id"))

    op.drop_table("run")
    with op.batch_alter_table("registry_finding", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registry_finding_submission_id"))

    op.drop_table("registry_finding")
    op.drop_table("file_blob")
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_submission_supersedes"))
        batch_op.drop_index(batch_op.f("ix_submission_precision"))
        batch_op.drop_index(batch_op.f("ix_submission_parameters"))
        batch_op.drop_index(batch_op.f("ix_submission_device_count"))
        batch_op.drop_index("ix_board_submitter")
        batch_op.drop_index("ix_board_device")
        batch_op.drop_index("ix_board_created")
        batch_op.drop_index("ix_board_score")
        batch_op.drop_index("ix_board_fpj")
        batch_op.drop_index("ix_board_eps")

    op.drop_table("submission")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_event_at"))

    op.drop_table("audit_event")
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_key_prefix"))

    op.drop_table("api_key")
