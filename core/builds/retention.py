"""Disk hygiene: refuse uploads when the disk is nearly full, and forget old builds' bulky parts.

Retention keeps every build row (its status and history stay answerable) but deletes the log
lines of terminal builds older than `retention_days`, and tells the caller which stored sources
and images nothing else needs any more.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from core.db import utcnow
from core.errors import ServiceUnavailable
from core.models import Build, LogLine
from core.observability.metrics import count_purged
from core.settings import Settings
from core.status import TERMINAL

PURGE_BATCH = 200


def ensure_disk_space(settings: Settings) -> None:
    """Raise ServiceUnavailable (503) rather than accept an upload onto a nearly full disk."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(settings.data_dir).free
    if free < settings.min_free_disk_bytes:
        raise ServiceUnavailable(
            f"The build server is low on disk space ({free // (1024 * 1024)} MiB free); "
            "uploads resume once old builds are cleaned up.",
            retry_after=300,
        )


@dataclass(frozen=True)
class Purged:
    build_ids: list[str]
    # Stored sources no remaining build refers to: safe to delete.
    orphan_sources: list[str]
    images: list[str]


def purge_expired(session: Session, settings: Settings) -> Purged:
    """Forget the logs of terminal builds past retention; report sources and images to remove."""
    cutoff = utcnow() - timedelta(days=settings.retention_days)
    expired = session.execute(
        select(Build.id, Build.source_sha256, Build.image_id, Build.log_bytes)
        .where(
            Build.status.in_(TERMINAL),
            Build.finished_at < cutoff,
            Build.purged_at.is_(None),
        )
        .limit(PURGE_BATCH)
    ).all()
    if not expired:
        return Purged([], [], [])
    ids = [row.id for row in expired]
    count_purged(session, sum(row.log_bytes for row in expired))
    session.execute(delete(LogLine).where(LogLine.build_id.in_(ids)))
    session.execute(
        update(Build).where(Build.id.in_(ids)).values(purged_at=utcnow(), log_lines=0, log_bytes=0)
    )
    candidates = {row.source_sha256 for row in expired}
    still_used = set(
        session.scalars(
            select(Build.source_sha256).where(
                Build.source_sha256.in_(candidates), Build.purged_at.is_(None)
            )
        ).all()
    )
    # A build that reused another's result shares its image: kept while any such build is.
    expired_images = {row.image_id for row in expired if row.image_id}
    images_in_use = set(
        session.scalars(
            select(Build.image_id).where(
                Build.image_id.in_(expired_images), Build.purged_at.is_(None)
            )
        ).all()
    )
    return Purged(ids, sorted(candidates - still_used), sorted(expired_images - images_in_use))
