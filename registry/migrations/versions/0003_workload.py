"""The board by workload, trust tier, time/energy to train, and runs compared by content (rubric r2), revision 3.

Existing rows get an empty workload and the `declared` tier: run `trainmark registry rescore`
after upgrading to fill them from the stored bundles.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 17:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submission") as batch:
        batch.add_column(
            sa.Column("workload", sqlmodel.sql.sqltypes.AutoString(length=800), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column(
                "provenance", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default="declared"
            )
        )
        batch.add_column(sa.Column("trust_sort", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("time_to_train", sa.Float(), nullable=True))
        batch.add_column(sa.Column("energy_to_train", sa.Float(), nullable=True))
        batch.add_column(sa.Column("not_ranked_because", sa.Text(), nullable=False, server_default=""))
        batch.create_index(
            "ix_board_workload", ["current", "ranked", "workload", "steps_per_second_sort", "id"], unique=False
        )
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("content_fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch.create_index("ix_run_content_fingerprint", ["content_fingerprint"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.drop_index("ix_run_content_fingerprint")
        batch.drop_column("content_fingerprint")
    with op.batch_alter_table("submission") as batch:
        batch.drop_index("ix_board_workload")
        for column in (
            "not_ranked_because",
            "energy_to_train",
            "time_to_train",
            "trust_sort",
            "provenance",
            "workload",
        ):
            batch.drop_column(column)
