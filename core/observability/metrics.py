"""What /metrics reports, read from the database: the one place every process writes to, so the
figures are the same whichever API instance is scraped.

A scrape costs the same with ten builds as with a million. Everything about ended builds is a
running total in `metric_counters`, added to in the transaction that creates or ends a build
(`count_created`, `count_ended`) or purges its log (`count_purged`); only the queued and running
builds, few by nature, are counted live through the status index. Histogram buckets are stored
per bucket (not cumulative), so an observation adds to one row.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.db import utcnow
from core.models import Build, BuildEvent, BuildOutcomeCount, MetricCounter
from core.status import BuildStatus, Phase

PHASE_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)
SIZE_BUCKETS = (1 << 10, 16 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20)
ACTIVE = (BuildStatus.QUEUED, BuildStatus.RUNNING)
UPLOADS = "upload_bytes"
ENDED_LOG_BYTES = "log_bytes:ended"


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


# --- keeping the totals -----------------------------------------------------------------------


def _bucket_name(histogram: str, buckets: tuple[float, ...], value: float) -> str:
    bound = next((b for b in buckets if value <= b), None)
    return f"{histogram}:le:{'+Inf' if bound is None else repr(float(bound))}"


def _observation(histogram: str, buckets: tuple[float, ...], value: float) -> dict[str, float]:
    return {
        _bucket_name(histogram, buckets, value): 1,
        f"{histogram}:count": 1,
        f"{histogram}:sum": value,
    }


def _phase_histogram(phase: str) -> str:
    return f"phase_seconds:{phase}"


def add(session: Session, amounts: Mapping[str, float]) -> None:
    """Add to counters in one statement (created on first use). Rows are written in name order,
    so two transactions adding to the same counters never deadlock on PostgreSQL."""
    rows = [{"name": name, "value": amounts[name]} for name in sorted(amounts) if amounts[name]]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(MetricCounter).values(rows)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[MetricCounter.name],
            set_={"value": MetricCounter.value + statement.excluded.value},
        )
    )


def count_created(session: Session, source_size_bytes: int) -> None:
    add(session, _observation(UPLOADS, SIZE_BUCKETS, source_size_bytes))


def _ended_amounts(
    status: BuildStatus, log_bytes: int, timeline: Iterable[tuple[datetime, Phase | None]]
) -> dict[str, float]:
    amounts: dict[str, float] = defaultdict(float)
    amounts[f"builds:{status.value}"] += 1
    amounts[ENDED_LOG_BYTES] += log_bytes
    for (start, phase), (end, _next) in itertools.pairwise(timeline):
        if phase is not None:
            seconds = (end - start).total_seconds()
            for name, amount in _observation(
                _phase_histogram(phase.value), PHASE_BUCKETS, seconds
            ).items():
                amounts[name] += amount
    return amounts


def count_ended(session: Session, build_id: str, status: BuildStatus) -> None:
    """A build just became terminal (the caller's transaction moved it): add its outcome, its
    phase durations and its log size. Reads this one build's history, by index."""
    log_bytes = session.scalar(select(Build.log_bytes).where(Build.id == build_id)) or 0
    timeline = session.execute(
        select(BuildEvent.at, BuildEvent.phase)
        .where(BuildEvent.build_id == build_id)
        .order_by(BuildEvent.id)
    ).all()
    add(session, _ended_amounts(status, log_bytes, [(at, phase) for at, phase in timeline]))


def count_purged(session: Session, log_bytes: int) -> None:
    add(session, {ENDED_LOG_BYTES: -log_bytes})


def recount(connection: Connection) -> None:
    """Set every counter from the rows themselves: once, when the counters table is created."""
    with Session(connection) as session:
        session.query(MetricCounter).delete()
        amounts: dict[str, float] = defaultdict(float)
        for (size,) in session.execute(select(Build.source_size_bytes)):
            for name, amount in _observation(UPLOADS, SIZE_BUCKETS, size).items():
                amounts[name] += amount
        ended = {
            build_id: (status, log_bytes)
            for build_id, status, log_bytes in session.execute(
                select(Build.id, Build.status, Build.log_bytes).where(Build.status.not_in(ACTIVE))
            )
        }
        timelines: dict[str, list[tuple[datetime, Phase | None]]] = defaultdict(list)
        for build_id, at, phase in session.execute(
            select(BuildEvent.build_id, BuildEvent.at, BuildEvent.phase).order_by(
                BuildEvent.build_id, BuildEvent.id
            )
        ):
            if build_id in ended:
                timelines[build_id].append((at, phase))
        for build_id, (status, log_bytes) in ended.items():
            for name, amount in _ended_amounts(status, log_bytes, timelines[build_id]).items():
                amounts[name] += amount
        add(session, amounts)
        session.flush()


# --- reading them -----------------------------------------------------------------------------


def _histogram(counters: Mapping[str, float], name: str, buckets: tuple[float, ...]) -> Histogram:
    histogram = Histogram(buckets)
    running = 0
    for index, bound in enumerate(buckets):
        running += int(counters.get(f"{name}:le:{float(bound)!r}", 0))
        histogram.counts[index] = running
    histogram.observations = int(counters.get(f"{name}:count", 0))
    histogram.total = counters.get(f"{name}:sum", 0.0)
    return histogram


def snapshot(session: Session) -> Snapshot:
    counters: dict[str, float] = {
        name: value
        for name, value in session.execute(select(MetricCounter.name, MetricCounter.value))
    }
    by_status = {
        status.value: int(counters.get(f"builds:{status.value}", 0)) for status in BuildStatus
    }
    active_log_bytes = 0
    for status, count, log_bytes in session.execute(
        select(Build.status, func.count(), func.coalesce(func.sum(Build.log_bytes), 0))
        .where(Build.status.in_(ACTIVE))
        .group_by(Build.status)
    ):
        by_status[status.value] = count
        active_log_bytes += int(log_bytes)
    oldest = session.scalar(
        select(func.min(Build.created_at)).where(Build.status == BuildStatus.QUEUED)
    )
    waited = 0.0 if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())
    return Snapshot(
        builds_by_status=by_status,
        phase_seconds={
            phase.value: _histogram(counters, _phase_histogram(phase.value), PHASE_BUCKETS)
            for phase in Phase
        },
        upload_bytes=_histogram(counters, UPLOADS, SIZE_BUCKETS),
        log_bytes_total=int(counters.get(ENDED_LOG_BYTES, 0)) + active_log_bytes,
        oldest_queued_seconds=waited,
    )


# --- counters kept in the database ----------------------------------------------------------------


def count_outcome(session: Session, status: BuildStatus, error_code: str | None) -> None:
    """Count one ended build, in the transaction that ends it (an upsert: concurrent workers add
    up, and a rolled-back transition counts nothing)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
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
