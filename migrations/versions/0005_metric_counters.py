"""metric counters: /metrics reads running totals instead of scanning every build

Revision ID: 0005_metric_counters
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.observability.metrics import recount

revision: str = "0005_metric_counters"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "metric_counters",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_metric_counters")),
    )
    # The totals of the builds recorded so far, once; from here on they are kept as builds end.
    recount(op.get_bind())


def downgrade() -> None:
    op.drop_table("metric_counters")
