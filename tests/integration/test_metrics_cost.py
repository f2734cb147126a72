"""/metrics reads running totals: right figures, the same cost with 100,000 builds as with 10."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, insert
from sqlalchemy.orm import Session

from core.builds.logs import LogSink, LogStream
from core.db import make_engine, session_scope, utcnow
from core.models import Build, BuildEvent
from core.observability.metrics import Snapshot, recount, snapshot
from core.status import BuildStatus, Phase
from core.transitions import enter_phase, transition
from tests.conftest import migrate, test_settings
from tests.factories import queued_build, stored_source


def ended_build(engine: Engine, status: BuildStatus, *, size: int, log_lines: int = 0) -> str:
    build_id = queued_build(engine, source=stored_source(size_bytes=size))
    start = utcnow()
    with session_scope(engine) as session:
        transition(session, build_id, BuildStatus.RUNNING, now=start)
        enter_phase(session, build_id, Phase.BUILDING, now=start + timedelta(seconds=3))
        enter_phase(session, build_id, Phase.TESTING, now=start + timedelta(seconds=40))
    if log_lines:
        with LogSink(engine, build_id, max_bytes=1_000_000) as sink:
            for number in range(log_lines):
                sink.write(LogStream.BUILD, f"line {number}")
    with session_scope(engine) as session:
        transition(session, build_id, status, now=start + timedelta(seconds=41))
    return build_id


def read(engine: Engine) -> Snapshot:
    with session_scope(engine) as session:
        return snapshot(session)


def comparable(data: Snapshot) -> dict[str, Any]:
    return {
        "builds": data.builds_by_status,
        "phases": {name: (h.cumulative(), h.total) for name, h in data.phase_seconds.items()},
        "uploads": (data.upload_bytes.cumulative(), data.upload_bytes.total),
        "log_bytes": data.log_bytes_total,
    }


class TestFigures:
    def test_totals_follow_builds_as_they_are_created_and_end(self, engine: Engine) -> None:
        ended_build(engine, BuildStatus.SUCCEEDED, size=500, log_lines=10)
        ended_build(engine, BuildStatus.FAILED, size=2_000_000)
        queued_build(engine, source=stored_source(size_bytes=20_000))
        running = queued_build(engine, source=stored_source(size_bytes=100))
        with session_scope(engine) as session:
            transition(session, running, BuildStatus.RUNNING)
        data = read(engine)
        assert data.builds_by_status["succeeded"] == 1
        assert data.builds_by_status["failed"] == 1
        assert data.builds_by_status["queued"] == 1
        assert data.builds_by_status["running"] == 1
        assert data.upload_bytes.observations == 4
        assert data.upload_bytes.total == 500 + 2_000_000 + 20_000 + 100
        assert dict(data.upload_bytes.cumulative())["1024.0"] == 2
        preparing = data.phase_seconds["preparing"]
        assert (preparing.observations, preparing.total) == (2, 6.0)
        assert dict(preparing.cumulative())["2.0"] == 0
        assert dict(preparing.cumulative())["5.0"] == 2
        assert data.phase_seconds["building"].total == 2 * 37.0
        assert data.phase_seconds["testing"].observations == 2
        assert data.log_bytes_total == sum(len(f"line {n}") + 1 for n in range(10))

    def test_a_recount_from_the_rows_agrees_with_the_running_totals(self, engine: Engine) -> None:
        ended_build(engine, BuildStatus.SUCCEEDED, size=500, log_lines=5)
        ended_build(engine, BuildStatus.ERROR, size=70_000)
        queued_build(engine)
        kept = comparable(read(engine))
        with engine.begin() as connection:
            recount(connection)
        assert comparable(read(engine)) == kept


def scrape_counting(engine: Engine) -> tuple[Snapshot, int, int]:
    """A scrape, with the SQLite virtual machine's steps (rows visited, in effect) and the
    statements it took."""
    counts = {"steps": 0, "statements": 0}

    def step() -> int:
        counts["steps"] += 1
        return 0

    def statement(*_args: Any) -> None:
        counts["statements"] += 1

    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert isinstance(raw, sqlite3.Connection)
        raw.set_progress_handler(step, 1)
        event.listen(engine, "before_cursor_execute", statement)
        try:
            with Session(connection) as session:
                data = snapshot(session)
        finally:
            event.remove(engine, "before_cursor_execute", statement)
            raw.set_progress_handler(None, 1)
    return data, counts["steps"], counts["statements"]


def database_with(tmp_path: Path, ended: int) -> Engine:
    """A database holding `ended` terminal builds with their history, inserted in bulk."""
    settings = test_settings(tmp_path)
    settings.data_dir.mkdir(parents=True)
    migrate(settings.sqlalchemy_url)
    engine = make_engine(settings.sqlalchemy_url)
    now = utcnow()
    builds, events = [], []
    for number in range(ended):
        build_id = f"b_{number:026d}"
        builds.append(
            {
                "id": build_id,
                "owner": "alice",
                "status": BuildStatus.SUCCEEDED,
                "created_at": now,
                "updated_at": now,
                "finished_at": now,
                "source_filename": "p.zip",
                "source_size_bytes": 1000 + number,
                "source_sha256": "0" * 64,
                "source_files": 1,
                "options": {},
                "log_bytes": 10,
            }
        )
        events += [
            {
                "build_id": build_id,
                "at": now,
                "status": BuildStatus.RUNNING,
                "phase": Phase.BUILDING,
            },
            {"build_id": build_id, "at": now, "status": BuildStatus.SUCCEEDED, "phase": None},
        ]
    with engine.begin() as connection:
        connection.execute(insert(Build), builds)
        connection.execute(insert(BuildEvent), events)
    with session_scope(engine) as session:
        session.execute(insert(Build), [dict(builds[0], id="b_queued", status=BuildStatus.QUEUED)])
    return engine


class TestCost:
    def test_a_scrape_reads_as_much_with_100_000_builds_as_with_10(self, tmp_path: Path) -> None:
        def cost(ended: int) -> tuple[int, int]:
            engine = database_with(tmp_path / str(ended), ended)
            try:
                data, steps, statements = scrape_counting(engine)
            finally:
                engine.dispose()
            assert data.builds_by_status["queued"] == 1
            return steps, statements

        few_steps, few_statements = cost(10)
        many_steps, many_statements = cost(100_000)
        assert many_statements == few_statements <= 5
        # A scan of the builds or their events would take over 100,000 steps.
        assert many_steps < few_steps + 1_000, (few_steps, many_steps)
