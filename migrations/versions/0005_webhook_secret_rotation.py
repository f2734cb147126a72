"""webhook secret rotation: replaced secrets keep signing for a grace period

Revision ID: 0005_webhook_rotation
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_webhook_rotation"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("owner_settings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("webhook_previous_secrets", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("owner_settings", schema=None) as batch_op:
        batch_op.drop_column("webhook_previous_secrets")
