"""Build use cases shared by the API and the command line: create, find, list, cancel, rebuild.

Functions add and flush; the caller (request or task) owns the session and commits.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session, defer, selectinload

from core.access.caller import Caller
from core.access.namespaces import OwnedTag
from core.builds.options import BuildOptions
from core.db import utcnow
from core.errors import (
    BuildDoesNotExist,
    BuildIsTerminal,
    InvalidOption,
    RateLimited,
    SourceUnavailable,
)
from core.ids import new_build_id
from core.models import Build, BuildEvent, SubmissionAttempt
from core.observability.metrics import count_created
from core.settings import Settings
from core.sources.intake import StoredSource
from core.sources.store import is_stored
from core.status import BuildStatus
from core.transitions import transition

MAX_PAGE = 100


def create_build(
    session: Session,
    *,
    caller: Caller,
    source: StoredSource,
    options: BuildOptions,
    namespace: str,
    rebuild_of: str | None = None,
) -> Build:
    """A queued build of `source`. Its image is tagged in the owner's namespace: the user's tag
    (or the build id) below `<namespace>/<owner>/`."""
    build_id = new_build_id()
    image_tag = OwnedTag.for_build(caller.owner, options.tag, build_id).local(namespace)
    now = utcnow()
    build = Build(
        id=build_id,
        owner=caller.owner,
        status=BuildStatus.QUEUED,
        created_at=now,
        updated_at=now,
        source_filename=source.filename,
        source_size_bytes=source.size_bytes,
        source_sha256=source.sha256,
        source_files=source.files,
        options=options.model_dump(),
        image_tag=image_tag,
        callback_url=options.callback_url,
        rebuild_of=rebuild_of,
    )
    session.add(build)
    session.add(BuildEvent(build_id=build_id, at=now, status=BuildStatus.QUEUED))
    count_created(session, source.size_bytes)
    session.flush()
    return build


def check_submission_rate(session: Session, caller: Caller, per_minute: int) -> None:
    """Count an upload, /plan call or rebuild against `caller`'s owner, before any of its work:
    RateLimited when the owner already made `per_minute` in the last minute (accepted or not)."""
    now = utcnow()
    window_start = now - timedelta(minutes=1)
    session.execute(
        delete(SubmissionAttempt).where(
            SubmissionAttempt.owner == caller.owner, SubmissionAttempt.at <= window_start
        )
    )
    recent = session.scalars(
        select(SubmissionAttempt.at)
        .where(SubmissionAttempt.owner == caller.owner)
        .order_by(SubmissionAttempt.at)
        .limit(per_minute)
    ).all()
    if len(recent) >= per_minute:
        wait = (recent[0] - window_start).total_seconds()
        raise RateLimited(
            f"{caller.owner} made {per_minute} submissions in the last minute (rejected uploads "
            "count too); try again shortly.",
            retry_after=max(1, math.ceil(wait)),
        )
    session.add(SubmissionAttempt(owner=caller.owner, at=now))
    session.flush()


def get_build(
    session: Session, build_id: str, caller: Caller, *, with_events: bool = False
) -> Build:
    """The build if the caller may see it; otherwise exactly as if it did not exist."""
    # populate_existing: a status changed by an UPDATE in this session must show here.
    query = select(Build).where(Build.id == build_id).execution_options(populate_existing=True)
    if with_events:
        query = query.options(selectinload(Build.events))
    build = session.scalars(query).one_or_none()
    if build is None or not caller.can_see(build.owner):
        raise BuildDoesNotExist(build_id)
    return build


# Built once: the status poll's statements, run as Core (no ORM execution or statement building
# per request), which makes the poll several times cheaper.
_BUILDS = Build.__table__
_EVENTS = BuildEvent.__table__
_BUILD_ROW = select(_BUILDS).where(_BUILDS.c.id == bindparam("build_id"))
_EVENT_ROWS = (
    select(_EVENTS.c.at, _EVENTS.c.status, _EVENTS.c.phase)
    .where(_EVENTS.c.build_id == bindparam("build_id"))
    .order_by(_EVENTS.c.id)
)


def read_build(session: Session, build_id: str, caller: Caller) -> tuple[Build, list[BuildEvent]]:
    """The build and its history for the build resource, detached, read as plain rows: the path
    every status poll takes."""
    connection = session.connection()
    row = connection.execute(_BUILD_ROW, {"build_id": build_id}).one_or_none()
    if row is None or not caller.can_see(row.owner):
        raise BuildDoesNotExist(build_id)
    events = [
        BuildEvent(build_id=build_id, at=at, status=status, phase=phase)
        for at, status, phase in connection.execute(_EVENT_ROWS, {"build_id": build_id})
    ]
    return Build(**row._mapping), events


@dataclass(frozen=True)
class Page:
    items: Sequence[Build]
    next_cursor: str | None


def encode_cursor(build_id: str) -> str:
    return base64.urlsafe_b64encode(build_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidOption("cursor is not one this service returned") from exc
    if not value.startswith("b_"):
        raise InvalidOption("cursor is not one this service returned")
    return value


def list_builds(
    session: Session,
    caller: Caller,
    *,
    status: BuildStatus | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> Page:
    """The caller's builds, newest first (ids sort by creation time), without their large columns
    (plan, Dockerfile), which only the single build's resource carries."""
    query = (
        select(Build)
        .options(
            selectinload(Build.events),
            defer(Build.plan, raiseload=True),
            defer(Build.dockerfile, raiseload=True),
            defer(Build.changes, raiseload=True),
        )
        .order_by(Build.id.desc())
    )
    if not caller.admin:
        query = query.where(Build.owner == caller.owner)
    if status is not None:
        query = query.where(Build.status == status)
    if cursor is not None:
        query = query.where(Build.id < decode_cursor(cursor))
    rows = session.scalars(query.limit(limit + 1)).all()
    items = rows[:limit]
    more = len(rows) > limit
    return Page(items=items, next_cursor=encode_cursor(items[-1].id) if more else None)


def request_cancel(session: Session, build: Build) -> None:
    """Cancel a queued build at once; ask the worker of a running one to stop it."""
    # This session's copy: the caller's may have been read by another, closed session.
    build = session.get_one(Build, build.id)
    if build.status.terminal:
        raise BuildIsTerminal(f"Build {build.id} already ended as {build.status}.")
    if transition(
        session,
        build.id,
        BuildStatus.CANCELLED,
        only_from=frozenset({BuildStatus.QUEUED}),
        message="cancelled before it started",
    ):
        return
    session.execute(
        update(Build)
        .where(Build.id == build.id, Build.cancel_requested_at.is_(None))
        .values(cancel_requested_at=utcnow())
    )
    session.flush()
    session.refresh(build)
    if build.status.terminal:
        raise BuildIsTerminal(f"Build {build.id} already ended as {build.status}.")


def rebuild(session: Session, build: Build, caller: Caller, settings: Settings) -> Build:
    if not is_stored(session, settings, build.source_sha256):
        raise SourceUnavailable(
            f"The source of build {build.id} is no longer stored; upload it again."
        )
    source = StoredSource(
        filename=build.source_filename,
        size_bytes=build.source_size_bytes,
        sha256=build.source_sha256,
        files=build.source_files,
    )
    options = BuildOptions.model_validate(build.options)
    return create_build(
        session,
        caller=caller,
        source=source,
        options=options,
        namespace=settings.image_namespace,
        rebuild_of=build.id,
    )
