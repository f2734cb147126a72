"""Which queued build runs next: fair between owners, with a cap on each owner's running builds.

A build message is a ticket, not an order: the worker that receives one claims the fairest
queued build, which may be another owner's. Owners below their running cap come first, and among
them the one served least recently, so a burst of submissions from one owner cannot starve the
others. Each message still runs at most one build, so none is lost and none runs twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import Build
from core.status import BuildStatus
from core.transitions import transition

CANDIDATES = 200
_NEVER = datetime.min


@dataclass(frozen=True)
class Claim:
    """The build claimed (None if none); `wait` when builds are queued but every owner that has
    one is at its cap, so the ticket must be tried again later."""

    build_id: str | None
    wait: bool = False


def claim_next(session: Session, *, ticket: str, max_running_per_owner: int, worker: str) -> Claim:
    running = dict(
        session.execute(
            select(Build.owner, func.count())
            .where(Build.status == BuildStatus.RUNNING)
            .group_by(Build.owner)
        ).all()
    )
    queued = list(
        session.execute(
            select(Build.id, Build.owner)
            .where(Build.status == BuildStatus.QUEUED)
            .order_by(Build.id)
            .limit(CANDIDATES)
        ).all()
    )
    # The ticket's own build is always a candidate, even beyond the first CANDIDATES.
    if ticket not in {row.id for row in queued}:
        own = session.execute(
            select(Build.id, Build.owner).where(
                Build.id == ticket, Build.status == BuildStatus.QUEUED
            )
        ).one_or_none()
        if own is not None:
            queued.append(own)
    eligible = [row for row in queued if running.get(row.owner, 0) < max_running_per_owner]
    if not eligible:
        return Claim(None, wait=bool(queued))
    owners = {row.owner for row in eligible}
    last_served = dict(
        session.execute(
            select(Build.owner, func.max(Build.started_at))
            .where(Build.owner.in_(owners))
            .group_by(Build.owner)
        ).all()
    )
    eligible.sort(
        key=lambda row: (
            running.get(row.owner, 0),
            _naive(last_served.get(row.owner)),
            row.id,
        )
    )
    for row in eligible:
        if transition(
            session,
            row.id,
            BuildStatus.RUNNING,
            only_from=frozenset({BuildStatus.QUEUED}),
            worker=worker,
        ):
            return Claim(row.id)
    return Claim(None, wait=False)


def _naive(moment: datetime | None) -> datetime:
    # SQLite hands back naive datetimes from aggregates; compare everything without zones.
    return _NEVER if moment is None else moment.replace(tzinfo=None)
