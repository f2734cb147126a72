"""build reuse: the key of a build's inputs, the build whose result it took, what changed since
the project's previous build, and the claims that make identical submissions build once

Revision ID: 0009_build_reuse
Revises: 0008_package_indexes
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_build_reuse"
down_revision: str | None = "0008_package_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reuse_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("reused_from", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("project", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("changes", sa.JSON(), nullable=True))
        batch_op.create_index("ix_builds_owner_reuse_key", ["owner", "reuse_key"], unique=False)
        batch_op.create_index("ix_builds_owner_project", ["owner", "project", "id"], unique=False)
    op.create_table(
        "build_reuse_claims",
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("build_id", sa.String(length=40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner", "key", name=op.f("pk_build_reuse_claims")),
    )
    with op.batch_alter_table("build_reuse_claims", schema=None) as batch_op:
        batch_op.create_index("ix_build_reuse_claims_build_id", ["build_id"], unique=False)


def downgrade() -> None:
    op.drop_table("build_reuse_claims")
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.drop_index("ix_builds_owner_project")
        batch_op.drop_index("ix_builds_owner_reuse_key")
        batch_op.drop_column("changes")
        batch_op.drop_column("project")
        batch_op.drop_column("reused_from")
        batch_op.drop_column("reuse_key")
