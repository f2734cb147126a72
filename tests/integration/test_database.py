"""The schema, the state machine, the log sink and the build use cases on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect, select

from core.access.caller import Caller
from core.builds.logs import LogSink, LogStream, iter_all_lines
from core.builds.service import get_build, list_builds, request_cancel
from core.db import Base, session_scope
from core.errors import BuildDoesNotExist, BuildIsTerminal, InvalidOption
from core.models import Build, BuildEvent
from core.status import BuildStatus, Failure, Phase
from core.transitions import enter_phase, transition
from tests.conftest import ROOT
from tests.factories import queued_build


def status_of(engine: Engine, build_id: str) -> BuildStatus:
    with session_scope(engine) as session:
        return session.get_one(Build, build_id).status


class TestMigrations:
    def test_creates_every_table(self, engine: Engine) -> None:
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) | {"alembic_version"} == tables

    def test_downgrade_to_nothing_and_back(self, engine: Engine) -> None:
        config = Config(str(ROOT / "alembic.ini"))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())


class TestTransition:
    def test_claim_is_a_compare_and_set(self, engine: Engine) -> None:
        build_id = queued_build(engine)
        only_queued = frozenset({BuildStatus.QUEUED})
        with session_scope(engine) as session:
            first = transition(session, build_id, BuildStatus.RUNNING, only_from=only_queued)
        with session_scope(engine) as session:
            second = transition(session, build_id, BuildStatus.RUNNING, only_from=only_queued)
        assert (first, second) == (True, False)
        with session_scope(engine) as session:
            assert session.get_one(Build, build_id).attempts == 1

    def test_concurrent_claims_let_exactly_one_win(self, engine: Engine) -> None:
        build_id = queued_build(engine)
        results: list[bool] = []

        def claim() -> None:
            with session_scope(engine) as session:
                results.append(
                    transition(
                        session,
                        build_id,
                        BuildStatus.RUNNING,
                        only_from=frozenset({BuildStatus.QUEUED}),
                    )
                )

        threads = [threading.Thread(target=claim) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == [False] * 7 + [True]

    def test_terminal_build_never_changes(self, engine: Engine) -> None:
        build_id = queued_build(engine)
        with session_scope(engine) as session:
            assert transition(session, build_id, BuildStatus.CANCELLED)
        for target in BuildStatus:
            with session_scope(engine) as session:
                assert not transition(session, build_id, target)
        assert status_of(engine, build_id) is BuildStatus.CANCELLED

    def test_records_history_with_phases_and_failure(self, engine: Engine) -> None:
        build_id = queued_build(engine)
        with session_scope(engine) as session:
            transition(session, build_id, BuildStatus.RUNNING)
            enter_phase(session, build_id, Phase.BUILDING)
            transition(
                session, build_id, BuildStatus.FAILED, failure=Failure("build_failed", "boom")
            )
        with session_scope(engine) as session:
            events = session.scalars(
                select(BuildEvent).where(BuildEvent.build_id == build_id).order_by(BuildEvent.id)
            ).all()
            build = session.get_one(Build, build_id)
            assert [(e.status, e.phase) for e in events] == [
                (BuildStatus.QUEUED, None),
                (BuildStatus.RUNNING, Phase.PREPARING),
                (BuildStatus.RUNNING, Phase.BUILDING),
                (BuildStatus.FAILED, None),
            ]
            assert (build.error_code, build.error_message) == ("build_failed", "boom")
            assert build.started_at is not None
            assert build.finished_at is not None
            assert build.finished_at >= build.started_at
            assert build.finished_at.tzinfo is not None

    def test_phase_is_not_entered_after_the_build_ended(self, engine: Engine) -> None:
        build_id = queued_build(engine)
        with session_scope(engine) as session:
            transition(session, build_id, BuildStatus.CANCELLED)
            assert not enter_phase(session, build_id, Phase.BUILDING)


class TestLogSink:
    def test_lines_are_numbered_and_readable_while_writing(self, engine: Engine) -> None:
        build_id = queued_build(engine)
        with LogSink(engine, build_id, max_bytes=1_000_000, flush_interval=0.05) as sink:
            sink.write(LogStream.BUILD, "one\ntwo\r\nthree")
            sink.flush()
            assert [line.text for line in iter_all_lines(engine, build_id)] == [
                "one",
                "two",
                "three",
            ]
            sink.write(LogStream.TEST, "four\x00")
        lines = list(iter_all_lines(engine, build_id))
        assert [line.seq for line in lines] == [1, 2, 3, 4]
        assert lines[-1].stream == "test"
        assert lines[-1].text == "four\\0"

    def test_caps_the_log_with_one_notice(self, engine: Engine) -> None:
        build_id = queued_build(engine)
        with LogSink(engine, build_id, max_bytes=100) as sink:
            for number in range(50):
                sink.write(LogStream.BUILD, f"line {number:04d}")
        lines = list(iter_all_lines(engine, build_id))
        assert "log truncated" in lines[-1].text
        assert sum(len(line.text) + 1 for line in lines[:-1]) <= 100
        with session_scope(engine) as session:
            assert session.get_one(Build, build_id).log_truncated

    def test_a_second_sink_continues_the_numbering(self, engine: Engine) -> None:
        build_id = queued_build(engine)
        with LogSink(engine, build_id, max_bytes=10_000) as sink:
            sink.write(LogStream.SYSTEM, "attempt 1")
        with LogSink(engine, build_id, max_bytes=10_000) as sink:
            sink.write(LogStream.SYSTEM, "attempt 2")
        assert [line.seq for line in iter_all_lines(engine, build_id)] == [1, 2]


class TestBuildQueries:
    def test_lists_newest_first_with_a_cursor(self, engine: Engine) -> None:
        ids = [queued_build(engine) for _ in range(5)]
        caller = Caller("alice")
        with session_scope(engine) as session:
            first = list_builds(session, caller, limit=2)
            assert [b.id for b in first.items] == ids[::-1][:2]
            assert first.next_cursor is not None
            second = list_builds(session, caller, limit=2, cursor=first.next_cursor)
            third = list_builds(session, caller, limit=2, cursor=second.next_cursor)
        assert [b.id for b in second.items] == ids[::-1][2:4]
        assert [b.id for b in third.items] == ids[::-1][4:]
        assert third.next_cursor is None

    def test_filters_by_status_and_owner(self, engine: Engine) -> None:
        mine = queued_build(engine, owner="alice")
        cancelled = queued_build(engine, owner="alice")
        queued_build(engine, owner="bob")
        with session_scope(engine) as session:
            transition(session, cancelled, BuildStatus.CANCELLED)
        with session_scope(engine) as session:
            page = list_builds(session, Caller("alice"), status=BuildStatus.QUEUED)
            assert [b.id for b in page.items] == [mine]
            everyone = list_builds(session, Caller("root", admin=True))
            assert len(everyone.items) == 3

    def test_rejects_a_forged_cursor(self, engine: Engine) -> None:
        with session_scope(engine) as session, pytest.raises(InvalidOption):
            list_builds(session, Caller("alice"), cursor="bm9wZQ")

    def test_another_owners_build_does_not_exist(self, engine: Engine) -> None:
        build_id = queued_build(engine, owner="alice")
        with session_scope(engine) as session, pytest.raises(BuildDoesNotExist):
            get_build(session, build_id, Caller("bob"))


class TestCancel:
    def test_cancels_a_queued_build_at_once(self, engine: Engine) -> None:
        build_id = queued_build(engine)
        with session_scope(engine) as session:
            request_cancel(session, session.get_one(Build, build_id))
        assert status_of(engine, build_id) is BuildStatus.CANCELLED

    def test_asks_the_worker_to_stop_a_running_build(self, engine: Engine) -> None:
        build_id = queued_build(engine)
        with session_scope(engine) as session:
            transition(session, build_id, BuildStatus.RUNNING)
        with session_scope(engine) as session:
            request_cancel(session, session.get_one(Build, build_id))
        with session_scope(engine) as session:
            build = session.get_one(Build, build_id)
            assert build.status is BuildStatus.RUNNING
            assert build.cancel_requested_at is not None

    def test_refuses_a_terminal_build(self, engine: Engine) -> None:
        build_id = queued_build(engine)
        with session_scope(engine) as session:
            transition(session, build_id, BuildStatus.CANCELLED)
        with session_scope(engine) as session, pytest.raises(BuildIsTerminal):
            request_cancel(session, session.get_one(Build, build_id))
