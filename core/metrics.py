"""What /metrics reports, read from the database: the one place every process writes to, so the
figures are the same whichever API instance is scraped.

Histograms are built from all recorded builds and phases (the rows are kept after retention), so
their counts only grow, as Prometheus expects of a histogram.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.db import utcnow
from core.models import Build, BuildEvent, BuildOutcomeCount
from core.status import BuildStatus, Phase

PHASE_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)
SIZE_BUCKETS = (1 << 10, 16 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20)


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    observations: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        self.observations += 1
        self.total += value
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[index] += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus buckets: (upper bound, count of observations at or below it), then +Inf."""
        return [(repr(float(b)), c) for b, c in zip(self.buckets, self.counts, strict=True)] + [
            ("+Inf", self.observations)
        ]


@dataclass
class Snapshot:
    builds_by_status: dict[str, int]
    phase_seconds: dict[str, Histogram]
    upload_bytes: Histogram
    log_bytes_total: int
    oldest_queued_seconds: float


def snapshot(session: Session) -> Snapshot:
    by_status = {status.value: 0 for status in BuildStatus}
    for status, count in session.execute(
        select(Build.status, func.count()).group_by(Build.status)
    ).all():
        by_status[status.value] = count
    uploads = Histogram(SIZE_BUCKETS)
    for (size,) in session.execute(select(Build.source_size_bytes)).all():
        uploads.observe(size)
    log_bytes = session.scalar(select(func.coalesce(func.sum(Build.log_bytes), 0))) or 0
    oldest = session.scalar(
        select(func.min(Build.created_at)).where(Build.status == BuildStatus.QUEUED)
    )
    waited = 0.0 if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())
    return Snapshot(
        builds_by_status=by_status,
        phase_seconds=_phase_durations(session),
        upload_bytes=uploads,
        log_bytes_total=int(log_bytes),
        oldest_queued_seconds=waited,
    )


def _phase_durations(session: Session) -> dict[str, Histogram]:
    """A phase lasts from its event to the build's next event; phases still open are skipped."""
    histograms = {phase.value: Histogram(PHASE_BUCKETS) for phase in Phase}
    events = session.execute(
        select(BuildEvent.build_id, BuildEvent.at, BuildEvent.phase).order_by(
            BuildEvent.build_id, BuildEvent.id
        )
    ).all()
    by_build: dict[str, list[tuple[datetime, Phase | None]]] = defaultdict(list)
    for build_id, at, phase in events:
        by_build[build_id].append((at, phase))
    for timeline in by_build.values():
        for (start, phase), (end, _next) in itertools.pairwise(timeline):
            if phase is not None:
                histograms[phase.value].observe((end - start).total_seconds())
    return histograms


# --- counters kept in the database ----------------------------------------------------------------


def count_outcome(session: Session, status: BuildStatus, error_code: str | None) -> None:
    """Count one ended build, in the transaction that ends it (an upsert: concurrent workers add
    up, and a rolled-back transition counts nothing)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(BuildOutcomeCount).values(
        status=status.value, error_code=error_code or "", count=1
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["status", "error_code"],
            set_={"count": BuildOutcomeCount.count + 1},
        )
    )


def outcome_counts(session: Session) -> list[tuple[str, str, int]]:
    """(status, error code or "", builds) for every outcome counted so far."""
    rows = session.execute(
        select(BuildOutcomeCount.status, BuildOutcomeCount.error_code, BuildOutcomeCount.count)
    ).all()
    return [(status, code, int(count)) for status, code, count in rows]


@dataclass(frozen=True)
class WorkerLoad:
    worker: str
    running: int
    last_heartbeat_seconds: float


def worker_load(session: Session) -> list[WorkerLoad]:
    """Per worker host: builds running there now and how long since its freshest heartbeat."""
    now = utcnow()
    rows = session.execute(
        select(Build.worker, func.count(), func.max(Build.heartbeat_at))
        .where(Build.status == BuildStatus.RUNNING, Build.worker.is_not(None))
        .group_by(Build.worker)
    ).all()
    return [
        WorkerLoad(
            worker=str(worker),
            running=int(count),
            last_heartbeat_seconds=max(0.0, (now - beat).total_seconds()) if beat else 0.0,
        )
        for worker, count, beat in rows
    ]
