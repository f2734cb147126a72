"""Builds made on a base image, and rebuilding them in bulk when that base is patched.

A build records the digest of the base its image starts from (`Build.base_image_digest`). When the
base is patched, an operator lists the builds on the old digest and rebuilds them: for every owner
and tag, the newest succeeded build is rebuilt from its stored source and options, as its owner.
Functions add and flush; the caller commits, then queues the new builds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from core.access.caller import Caller
from core.builds.service import rebuild
from core.errors import SourceUnavailable, TagNotAllowed
from core.models import Build
from core.settings import Settings
from core.status import BuildStatus

MAX_REBUILDS = 500


def builds_on_base(session: Session, digest: str, *, limit: int = 100) -> Sequence[Build]:
    """Every build whose image was made on the base with `digest`, newest first."""
    return session.scalars(
        select(Build)
        .options(selectinload(Build.events))
        .where(Build.base_image_digest == digest)
        .order_by(Build.id.desc())
        .limit(limit)
    ).all()


def rebuild_candidates(session: Session, digest: str, *, limit: int) -> list[Build]:
    """The newest succeeded build per (owner, tag) on the base with `digest`."""
    builds = session.scalars(
        select(Build)
        .where(Build.base_image_digest == digest, Build.status == BuildStatus.SUCCEEDED)
        .order_by(Build.id.desc())
    ).all()
    newest: dict[tuple[str, str | None], Build] = {}
    for build in builds:
        newest.setdefault((build.owner, build.image_tag), build)
    return list(newest.values())[:limit]


@dataclass
class RebuildReport:
    queued: list[tuple[str, str]] = field(default_factory=list)  # (new build, rebuild of)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (build, why)


def rebuild_on_base(
    session: Session, settings: Settings, digest: str, *, limit: int = MAX_REBUILDS
) -> RebuildReport:
    """Queue-ready rebuilds (added, not committed) of the builds made on `digest`."""
    report = RebuildReport()
    for build in rebuild_candidates(session, digest, limit=limit):
        try:
            new = rebuild(session, build, Caller(build.owner), settings)
        except (SourceUnavailable, TagNotAllowed) as exc:
            report.skipped.append((build.id, exc.code))
            continue
        report.queued.append((new.id, build.id))
    session.flush()
    return report
