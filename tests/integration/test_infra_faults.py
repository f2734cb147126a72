"""Infrastructure faults around a real build: the Docker daemon and the database going away
mid-build (through a proxy the test cuts), a full disk, and retention."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, func, select, text, update

from adapters.docker import DockerEngine
from app.main import create_app
from core.builds.logs import LogSink, LogStream
from core.db import make_engine, session_scope, utcnow
from core.models import Build, LogLine
from core.settings import Settings
from core.status import BuildStatus
from core.transitions import transition
from tests.conftest import ADMIN_TOKEN, migrate
from tests.factories import queued_build
from tests.integration.builder import Builder, builder_for
from tests.proxy import SocketProxy
from worker.runner import docker_factory_for, sweep

DOCKER_SOCKET = Path("/var/run/docker.sock")


def wait_until(condition: Callable[[], bool], seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.2)


@pytest.fixture
def builder(
    settings: Settings, sqlite_engine: Engine, docker_engine: DockerEngine
) -> Iterator[Builder]:
    yield from builder_for(settings, sqlite_engine, docker_engine)


@pytest.mark.docker
@pytest.mark.slow
class TestDockerDaemonLost:
    def test_mid_test_is_error_then_orphans_are_cleaned_and_the_next_build_works(
        self,
        settings: Settings,
        sqlite_engine: Engine,
        docker_engine: DockerEngine,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        if os.environ.get("DOCKER_HOST"):
            pytest.skip("needs the local daemon socket to put a proxy in front of it")
        proxy = SocketProxy(tmp_path / "docker.sock", DOCKER_SOCKET)
        monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'docker.sock'}")
        once = settings.model_copy(update={"max_attempts": 1})
        helper = Builder(once, sqlite_engine, docker_engine)
        try:
            build_id = helper.submit("sleepy_tests")
            runner = threading.Thread(target=helper.run, args=(build_id,))
            runner.start()
            wait_until(lambda: "no network, user" in helper.outcome(build_id).log)
            time.sleep(1)
            proxy.cut()  # the daemon "restarts": every connection drops, nothing answers
            runner.join(timeout=60)
            assert not runner.is_alive()
            outcome = helper.outcome(build_id)
            assert outcome.build.status is BuildStatus.ERROR, outcome.log
            assert outcome.build.error_code == "docker_unavailable"
            # The test container is still on the daemon; the sweeper removes it.
            monkeypatch.delenv("DOCKER_HOST")
            ours = docker_factory_for(once)()
            assert build_id in ours.build_containers().values()
            sweep(
                once,
                sqlite_engine,
                docker_factory_for(once),
                lambda *_: None,
            )
            assert build_id not in ours.build_containers().values()
            ours.close()
            proxy.restore()
            monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'docker.sock'}")
            after = helper.run(helper.submit("passing", run_tests=False))
            assert after.build.status is BuildStatus.SUCCEEDED, after.log
        finally:
            proxy.close()
            monkeypatch.delenv("DOCKER_HOST", raising=False)
            helper.cleanup()


@pytest.mark.docker
@pytest.mark.postgres
@pytest.mark.slow
class TestDatabaseLost:
    def test_worker_waits_out_an_outage_and_records_the_outcome(
        self, settings: Settings, postgres_server: str, docker_engine: DockerEngine
    ) -> None:
        schema = f"outage_{os.getpid()}"
        admin = create_engine(postgres_server)
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            connection.execute(text(f"CREATE SCHEMA {schema}"))
        real = admin.url
        proxy_port = _free_port()
        proxy = SocketProxy(
            ("127.0.0.1", proxy_port), (real.host or "127.0.0.1", real.port or 5432)
        )
        url = real.set(port=proxy_port).render_as_string(hide_password=False)
        url = f"{url}?options=-csearch_path%3D{schema}"
        migrate(url)
        engine = make_engine(url)
        helper = Builder(settings, engine, docker_engine)
        try:
            build_id = helper.submit("sleepy_tests")
            runner = threading.Thread(target=helper.run, args=(build_id,))
            runner.start()
            wait_until(lambda: "no network, user" in helper.outcome(build_id).log)
            proxy.cut()
            time.sleep(6)  # the tests finish while the database is away
            proxy.restore()
            runner.join(timeout=120)
            assert not runner.is_alive()
            outcome = helper.outcome(build_id)
            assert outcome.build.status is BuildStatus.SUCCEEDED, outcome.log
            assert "1 passed" in outcome.log  # lines written during the outage were kept
            assert outcome.build.tests is not None
            assert outcome.build.tests["passed"] == 1
        finally:
            helper.cleanup()
            engine.dispose()
            proxy.close()
            with admin.begin() as connection:
                connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            admin.dispose()

    def test_api_answers_503_quickly(self, settings: Settings) -> None:
        down = settings.model_copy(
            update={"database_url": f"postgresql+psycopg://postgres@127.0.0.1:{_free_port()}/x"}
        )
        with TestClient(
            create_app(down), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as client:
            started = time.monotonic()
            response = client.get("/api/v1/builds")
            elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "unavailable"
        assert response.headers["retry-after"]
        assert elapsed < 10


class TestDisk:
    def test_uploads_are_refused_when_the_disk_is_nearly_full(
        self, settings: Settings, sqlite_engine: Engine, redis_url: str
    ) -> None:
        full = settings.model_copy(update={"min_free_disk_bytes": 1 << 60})
        with TestClient(
            create_app(full), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as client:
            response = client.post(
                "/api/v1/builds", content=b"PK", headers={"content-type": "application/zip"}
            )
        assert response.status_code == 503
        assert response.json()["code"] == "unavailable"
        assert int(response.headers["retry-after"]) > 0
        assert not any(full.uploads_dir.glob("*")) if full.uploads_dir.exists() else True
        with session_scope(sqlite_engine) as session:
            assert session.scalar(select(func.count()).select_from(Build)) == 0

    def test_retention_forgets_old_logs_sources_and_workspaces(
        self, settings: Settings, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        old, recent = queued_build(sqlite_engine), queued_build(sqlite_engine)
        for build_id in (old, recent):
            with LogSink(sqlite_engine, build_id, max_bytes=10_000) as sink:
                sink.write(LogStream.SYSTEM, "a line")
            with session_scope(sqlite_engine) as session:
                transition(session, build_id, BuildStatus.CANCELLED)
        with session_scope(sqlite_engine) as session:
            session.execute(
                update(Build)
                .where(Build.id == old)
                .values(finished_at=utcnow() - timedelta(days=settings.retention_days + 1))
            )
            old_sha = session.get_one(Build, old).source_sha256
        settings.sources_dir.mkdir(parents=True)
        (settings.sources_dir / f"{old_sha}.zip").write_bytes(b"zip")
        leftover = settings.workspaces_dir / "b_LEFTOVER"
        leftover.mkdir(parents=True)
        os.utime(leftover, (0, 0))
        monkeypatch.setenv("DOCKER_HOST", f"unix://{settings.data_dir}/no-daemon.sock")
        sweep(settings, sqlite_engine, functools.partial(DockerEngine, timeout=2), lambda *_: None)
        with session_scope(sqlite_engine) as session:
            assert session.get_one(Build, old).purged_at is not None
            assert session.get_one(Build, recent).purged_at is None
            lines = session.scalars(select(LogLine.build_id)).all()
        assert lines == [recent]
        assert not (settings.sources_dir / f"{old_sha}.zip").exists()
        assert not leftover.exists()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
