"""The only writer of `builds.status`.

`transition()` is a compare-and-set (`UPDATE ... WHERE id = :id AND status IN (sources)`), so a
redelivered message, a racing cancel or a sweeper can never move a build twice, nor move a
terminal build at all. Every change of status or phase writes a history row with its time, from
which phase durations are derived.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from core.db import utcnow
from core.models import Build, BuildEvent
from core.observability.metrics import count_ended, count_outcome
from core.status import BuildStatus, Failure, Phase, sources_of


def transition(
    session: Session,
    build_id: str,
    target: BuildStatus,
    *,
    only_from: frozenset[BuildStatus] | None = None,
    failure: Failure | None = None,
    message: str | None = None,
    worker: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Move a build to `target` if its current status allows it; False when it did not move.

    `only_from` narrows the allowed sources (a claim is only from queued, never a re-run).
    """
    now = now or utcnow()
    sources = sources_of(target) if only_from is None else sources_of(target) & only_from
    values: dict[str, object] = {"status": target, "updated_at": now}
    if target is BuildStatus.RUNNING:
        values |= {
            "started_at": now,
            "heartbeat_at": now,
            "attempts": Build.attempts + 1,
            "worker": worker,
            "phase": Phase.PREPARING,
        }
    elif target is BuildStatus.QUEUED:
        values |= {"phase": None, "worker": None, "heartbeat_at": None}
    else:
        values |= {"finished_at": now, "phase": None}
        if failure is not None:
            values |= {"error_code": failure.code, "error_message": failure.message}
    result = session.execute(
        update(Build)
        .where(Build.id == build_id, Build.status.in_(sources))
        .values(values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    phase = Phase.PREPARING if target is BuildStatus.RUNNING else None
    session.add(
        BuildEvent(
            build_id=build_id,
            at=now,
            status=target,
            phase=phase,
            message=message or (failure.message if failure else None),
        )
    )
    if target.terminal:
        count_ended(session, build_id, target)
        count_outcome(session, target, failure.code if failure is not None else None)
    session.flush()
    return True


def enter_phase(
    session: Session, build_id: str, phase: Phase, *, now: datetime | None = None
) -> bool:
    """Record that a running build started `phase`; False if the build is no longer running."""
    now = now or utcnow()
    result = session.execute(
        update(Build)
        .where(Build.id == build_id, Build.status == BuildStatus.RUNNING)
        .values(phase=phase, updated_at=now, heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.add(BuildEvent(build_id=build_id, at=now, status=BuildStatus.RUNNING, phase=phase))
    session.flush()
    return True
