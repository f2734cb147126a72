"""webhook secret rotation (replaced secrets keep signing for a grace period); counts of ended
builds by status and error code

Revision ID: 0007_webhook_rotation
Revises: 0006_submission_attempts
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_webhook_rotation"
down_revision: str | None = "0006_submission_attempts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("owner_settings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("webhook_previous_secrets", sa.JSON(), nullable=True))
    op.create_table(
        "build_outcome_counts",
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error_code", sa.String(length=100), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("status", "error_code", name=op.f("pk_build_outcome_counts")),
    )


def downgrade() -> None:
    op.drop_table("build_outcome_counts")
    with op.batch_alter_table("owner_settings", schema=None) as batch_op:
        batch_op.drop_column("webhook_previous_secrets")
