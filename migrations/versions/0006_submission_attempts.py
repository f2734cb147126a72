"""submission attempts: the per-owner rate counts rejected uploads and /plan calls too

Revision ID: 0006_submission_attempts
Revises: 0005_metric_counters
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_submission_attempts"
down_revision: str | None = "0005_metric_counters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "submission_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submission_attempts")),
    )
    with op.batch_alter_table("submission_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_submission_attempts_owner_at", ["owner", "at"], unique=False)


def downgrade() -> None:
    op.drop_table("submission_attempts")
