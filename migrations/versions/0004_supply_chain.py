"""supply chain

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "advisories",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("package", sa.String(length=200), nullable=False),
        sa.Column("ecosystem", sa.String(length=50), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("affected", sa.JSON(), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", "package", name=op.f("pk_advisories")),
    )
    with op.batch_alter_table("advisories", schema=None) as batch_op:
        batch_op.create_index("ix_advisories_package", ["ecosystem", "package"], unique=False)

    op.create_table(
        "advisory_imports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("advisories", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_advisory_imports")),
    )
    op.create_table(
        "owner_settings",
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("webhook_secret", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("owner", name=op.f("pk_owner_settings")),
    )
    op.create_table(
        "build_artifacts",
        sa.Column("build_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["build_id"],
            ["builds.id"],
            name=op.f("fk_build_artifacts_build_id_builds"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("build_id", "kind", name=op.f("pk_build_artifacts")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("build_id", sa.String(length=40), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["build_id"],
            ["builds.id"],
            name=op.f("fk_webhook_deliveries_build_id_builds"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_deliveries_build_id"), ["build_id"], unique=False
        )

    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("base_image", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("base_image_digest", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("vulnerabilities", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("push", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("callback_url", sa.Text(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_builds_base_image_digest"), ["base_image_digest"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_builds_base_image_digest"))
        batch_op.drop_column("callback_url")
        batch_op.drop_column("push")
        batch_op.drop_column("vulnerabilities")
        batch_op.drop_column("base_image_digest")
        batch_op.drop_column("base_image")

    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_build_id"))

    op.drop_table("webhook_deliveries")
    op.drop_table("build_artifacts")
    op.drop_table("owner_settings")
    op.drop_table("advisory_imports")
    with op.batch_alter_table("advisories", schema=None) as batch_op:
        batch_op.drop_index("ix_advisories_package")

    op.drop_table("advisories")
