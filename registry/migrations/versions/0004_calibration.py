"""Registry-held calibrations (rubric r2's Calibrated badge), revision 4.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 20:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calibration",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("configuration", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column("device_summary", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("deviations", sa.Text(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["key_id"], ["api_key.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_calibration_created_at", "calibration", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_calibration_created_at", table_name="calibration")
    op.drop_table("calibration")
