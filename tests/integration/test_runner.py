"""Claiming, handing back and sweeping builds: what keeps every build moving to a terminal state."""

from __future__ import annotations

import functools
from datetime import timedelta

import pytest
from sqlalchemy import Engine, update

from adapters.docker import DockerEngine
from core.db import session_scope, utcnow
from core.models import Build
from core.settings import Settings
from core.status import BuildStatus
from core.transitions import transition
from tests.factories import queued_build
from worker.runner import execute_build, sweep


class Requeues:
    def __init__(self) -> None:
        self.ids: list[str] = []

    def __call__(self, build_id: str, _delay: float) -> None:
        self.ids.append(build_id)


def dead_docker(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> functools.partial[DockerEngine]:
    """A Docker engine pointed at a socket where no daemon listens."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{settings.data_dir}/no-daemon.sock")
    return functools.partial(DockerEngine, settings.docker_cli, timeout=2)


def make_running(engine: Engine, build_id: str, *, heartbeat_age: float, attempts: int = 1) -> None:
    with session_scope(engine) as session:
        transition(session, build_id, BuildStatus.RUNNING)
        session.execute(
            update(Build)
            .where(Build.id == build_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=heartbeat_age), attempts=attempts)
        )


def row(engine: Engine, build_id: str) -> Build:
    with session_scope(engine) as session:
        return session.get_one(Build, build_id)


class TestDockerDownDuringABuild:
    def test_is_handed_back_while_attempts_remain_then_error(
        self, settings: Settings, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        factory = dead_docker(monkeypatch, settings)
        requeues = Requeues()
        build_id = queued_build(sqlite_engine)
        first = execute_build(build_id, settings, sqlite_engine, factory, requeues)
        assert first is BuildStatus.QUEUED
        assert requeues.ids == [build_id]
        second = execute_build(build_id, settings, sqlite_engine, factory, requeues)
        assert second is BuildStatus.ERROR
        build = row(sqlite_engine, build_id)
        assert (build.status, build.error_code, build.attempts) == (
            BuildStatus.ERROR,
            "docker_unavailable",
            settings.max_attempts,
        )

    def test_a_cancelled_build_is_not_run(self, settings: Settings, sqlite_engine: Engine) -> None:
        build_id = queued_build(sqlite_engine)
        with session_scope(sqlite_engine) as session:
            transition(session, build_id, BuildStatus.CANCELLED)
        requeues = Requeues()
        status = execute_build(
            build_id, settings, sqlite_engine, functools.partial(DockerEngine), requeues
        )
        assert status is None
        assert row(sqlite_engine, build_id).attempts == 0


class TestSweep:
    def test_hands_back_a_build_whose_worker_stopped_beating(
        self, settings: Settings, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        build_id = queued_build(sqlite_engine)
        make_running(sqlite_engine, build_id, heartbeat_age=settings.stale_after_seconds + 5)
        requeues = Requeues()
        report = sweep(settings, sqlite_engine, dead_docker(monkeypatch, settings), requeues)
        assert report.requeued == [build_id]
        assert requeues.ids == [build_id]
        assert row(sqlite_engine, build_id).status is BuildStatus.QUEUED

    def test_fails_a_lost_build_with_no_attempts_left(
        self, settings: Settings, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        build_id = queued_build(sqlite_engine)
        make_running(
            sqlite_engine,
            build_id,
            heartbeat_age=settings.stale_after_seconds + 5,
            attempts=settings.max_attempts,
        )
        report = sweep(settings, sqlite_engine, dead_docker(monkeypatch, settings), Requeues())
        assert report.failed == [build_id]
        build = row(sqlite_engine, build_id)
        assert (build.status, build.error_code) == (BuildStatus.ERROR, "worker_lost")

    def test_a_lost_build_that_was_being_cancelled_ends_cancelled(
        self, settings: Settings, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        build_id = queued_build(sqlite_engine)
        make_running(sqlite_engine, build_id, heartbeat_age=settings.stale_after_seconds + 5)
        with session_scope(sqlite_engine) as session:
            session.execute(
                update(Build).where(Build.id == build_id).values(cancel_requested_at=utcnow())
            )
        sweep(settings, sqlite_engine, dead_docker(monkeypatch, settings), Requeues())
        assert row(sqlite_engine, build_id).status is BuildStatus.CANCELLED

    def test_leaves_a_beating_build_alone(
        self, settings: Settings, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        build_id = queued_build(sqlite_engine)
        make_running(sqlite_engine, build_id, heartbeat_age=1)
        report = sweep(settings, sqlite_engine, dead_docker(monkeypatch, settings), Requeues())
        assert report.requeued == report.failed == report.resent == []
        assert row(sqlite_engine, build_id).status is BuildStatus.RUNNING

    def test_resends_a_queued_build_once_per_interval(
        self, settings: Settings, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        build_id = queued_build(sqlite_engine)
        fresh = queued_build(sqlite_engine)
        with session_scope(sqlite_engine) as session:
            session.execute(
                update(Build)
                .where(Build.id == build_id)
                .values(updated_at=utcnow() - timedelta(seconds=settings.requeue_after_seconds + 5))
            )
        requeues = Requeues()
        factory = dead_docker(monkeypatch, settings)
        assert sweep(settings, sqlite_engine, factory, requeues).resent == [build_id]
        assert sweep(settings, sqlite_engine, factory, requeues).resent == []
        assert requeues.ids == [build_id]
        assert fresh not in requeues.ids
