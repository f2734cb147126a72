"""Database tables: builds, their status history, and their log lines."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base, UTCDateTime, utcnow
from core.status import BuildStatus, Phase


def _enum(enum_type: type[BuildStatus] | type[Phase]) -> Enum:
    # Stored as plain strings (no native ENUM type): adding a status is then a code change only.
    return Enum(
        enum_type,
        native_enum=False,
        create_constraint=False,
        length=16,
        values_callable=lambda members: [member.value for member in members],
    )


class Build(Base):
    __tablename__ = "builds"
    __table_args__ = (
        Index("ix_builds_owner_id", "owner", "id"),
        Index("ix_builds_status_updated_at", "status", "updated_at"),
        Index("ix_builds_owner_reuse_key", "owner", "reuse_key"),
        Index("ix_builds_owner_project", "owner", "project", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100))
    status: Mapped[BuildStatus] = mapped_column(_enum(BuildStatus))
    phase: Mapped[Phase | None] = mapped_column(_enum(Phase))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set when retention removed the build's log, source and image; the row itself stays.
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    source_filename: Mapped[str] = mapped_column(String(255))
    source_size_bytes: Mapped[int] = mapped_column(BigInteger)
    source_sha256: Mapped[str] = mapped_column(String(64))
    source_files: Mapped[int] = mapped_column(Integer)
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    rebuild_of: Mapped[str | None] = mapped_column(String(40))

    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(255))
    # The build host (its Docker daemon) that ran the build's latest attempt.
    host: Mapped[str | None] = mapped_column(String(255))
    dockerfile: Mapped[str | None] = mapped_column(Text)
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    image_tag: Mapped[str | None] = mapped_column(String(255))
    image_id: Mapped[str | None] = mapped_column(String(80))
    image_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    tests: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)

    # Supply chain: the base the image was built on, what a scan found, where it was pushed.
    base_image: Mapped[str | None] = mapped_column(String(255))
    base_image_digest: Mapped[str | None] = mapped_column(String(100), index=True)
    vulnerabilities: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    push: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    callback_url: Mapped[str | None] = mapped_column(Text)

    # Reuse (core/builds/reuse.py): the key of the build's inputs, and the earlier build whose
    # result it took instead of building.
    reuse_key: Mapped[str | None] = mapped_column(String(64))
    reused_from: Mapped[str | None] = mapped_column(String(40))
    # Which of the owner's projects this is (the tag's repository, else the project's name), and
    # what changed since that project's previous succeeded build (core/builds/changes.py).
    project: Mapped[str | None] = mapped_column(String(255))
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    log_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    log_lines: Mapped[int] = mapped_column(Integer, default=0)
    log_truncated: Mapped[bool] = mapped_column(default=False)

    events: Mapped[list[BuildEvent]] = relationship(
        back_populates="build", lazy="raise", order_by="BuildEvent.id"
    )


class BuildEvent(Base):
    """One row per status or phase change: the build's history, and the source of phase timings."""

    __tablename__ = "build_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    build_id: Mapped[str] = mapped_column(ForeignKey("builds.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[BuildStatus] = mapped_column(_enum(BuildStatus))
    phase: Mapped[Phase | None] = mapped_column(_enum(Phase))
    message: Mapped[str | None] = mapped_column(Text)

    build: Mapped[Build] = relationship(back_populates="events", lazy="raise")


class LogLine(Base):
    """One line of a build's log, numbered from 1 per build so readers can resume after any line."""

    __tablename__ = "log_lines"

    build_id: Mapped[str] = mapped_column(
        ForeignKey("builds.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    stream: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)


class Token(Base):
    """An API token. Only its SHA-256 is stored; the secret is shown once, at creation."""

    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100), index=True)
    admin: Mapped[bool] = mapped_column(default=False)
    prefix: Mapped[str] = mapped_column(String(32))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SourceChunk(Base):
    """One piece of a stored source when sources live in the database (core/sources/store.py)."""

    __tablename__ = "source_chunks"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReuseClaim(Base):
    """The build that builds a reuse key now: others with the same key wait for its result."""

    __tablename__ = "build_reuse_claims"

    owner: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    build_id: Mapped[str] = mapped_column(String(40), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class BuildArtifact(Base):
    """A document produced for a succeeded build: its SBOM, its provenance."""

    __tablename__ = "build_artifacts"

    build_id: Mapped[str] = mapped_column(
        ForeignKey("builds.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    content: Mapped[dict[str, Any]] = mapped_column(JSON)


class Advisory(Base):
    """One advisory of the local vulnerability database, imported from OSV JSON."""

    __tablename__ = "advisories"
    __table_args__ = (Index("ix_advisories_package", "ecosystem", "package"),)

    # One row per (advisory, affected package): an OSV record can name several packages.
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    package: Mapped[str] = mapped_column(String(200), primary_key=True)
    ecosystem: Mapped[str] = mapped_column(String(50))
    aliases: Mapped[list[str]] = mapped_column(JSON)
    summary: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16))
    # The OSV `affected` entry for this package: ranges (events) and explicit versions.
    affected: Mapped[dict[str, Any]] = mapped_column(JSON)
    modified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AdvisoryImport(Base):
    """When the advisory database was last loaded, from what: its age is shown to users."""

    __tablename__ = "advisory_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    source: Mapped[str] = mapped_column(Text)
    advisories: Mapped[int] = mapped_column(Integer)


class OwnerSettings(Base):
    """Per-owner defaults: the webhook that hears of every terminal build."""

    __tablename__ = "owner_settings"

    owner: Mapped[str] = mapped_column(String(100), primary_key=True)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    webhook_secret: Mapped[str | None] = mapped_column(String(200))
    # Replaced secrets that still sign during their grace period: [{"secret", "expires_at"}].
    webhook_previous_secrets: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)


class BuildOutcomeCount(Base):
    """How many builds ended in each status and error code: counted once, by the transition that
    ends a build, so the figure never depends on how much history is kept (a Prometheus counter
    that every process increments in the database it shares)."""

    __tablename__ = "build_outcome_counts"

    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    error_code: Mapped[str] = mapped_column(String(100), primary_key=True)  # "" when none
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class WebhookDelivery(Base):
    """One attempt to tell a callback URL that a build ended."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    build_id: Mapped[str] = mapped_column(ForeignKey("builds.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    response_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MetricCounter(Base):
    """One running total that /metrics reports (core/observability/metrics.py names them), kept up
    to date as
    builds are created and end, so a scrape reads a few dozen rows however many builds exist."""

    __tablename__ = "metric_counters"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[float] = mapped_column(Float, default=0.0)


class SubmissionAttempt(Base):
    """One upload, /plan call or rebuild an owner asked for, accepted or not: what the per-owner
    rate counts, so rejected uploads cost their sender too. Rows older than the window go."""

    __tablename__ = "submission_attempts"
    __table_args__ = (Index("ix_submission_attempts_owner_at", "owner", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class PackageIndex(Base):
    """A package index builds of an owner (or, with the reserved owner `_global`, of every owner)
    install from. The credentials are AES-GCM encrypted (core.access.secret_box), never returned."""

    __tablename__ = "package_indexes"

    owner: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Without userinfo: credentials live only in `credentials`.
    url: Mapped[str] = mapped_column(Text)
    # Replaces PyPI as the primary index (at most one per owner); otherwise an extra index.
    is_default: Mapped[bool] = mapped_column(default=False)
    # Encrypted JSON {"username", "password"}; null for an index without authentication.
    credentials: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
