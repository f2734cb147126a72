"""The status poll (`GET /api/v1/builds/{id}`), on its lean path: the same resource and the same
errors as before, a revoked token refused at once, no worker thread needed, recorded in the
HTTP metrics; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from app.hot_reads import HOT_READ_APPLICATION
from app.main import create_app
from core.access.caller import Caller
from core.access.tokens import create_token, revoke_token
from core.builds.resources import BuildOut, build_out
from core.builds.service import get_build
from core.db import session_scope
from core.settings import Settings
from core.status import BuildStatus, Phase
from core.transitions import enter_phase, transition
from tests.conftest import ADMIN_TOKEN, migrate, test_settings
from tests.factories import queued_build

PROBLEM_JSON = "application/problem+json"


@pytest.fixture
def poll_settings(tmp_path: Path, engine: Engine, redis_url: str) -> Settings:
    """Settings for an API on the parametrized database (SQLite or PostgreSQL)."""
    url = engine.url.render_as_string(hide_password=False)
    settings = test_settings(tmp_path / "api-data", database_url=url)
    settings.data_dir.mkdir(parents=True)
    return settings


@asynccontextmanager
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as client,
    ):
        yield client


def token_for(engine: Engine, owner: str) -> tuple[str, str]:
    """A new token of `owner`: (its id, its secret)."""
    with session_scope(engine) as session:
        new = create_token(session, owner=owner)
        return new.token.id, new.secret


def running_build(engine: Engine, owner: str) -> str:
    build_id = queued_build(engine, owner=owner)
    with session_scope(engine) as session:
        transition(session, build_id, BuildStatus.RUNNING)
        enter_phase(session, build_id, Phase.BUILDING)
    return build_id


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


class TestThePollAnswers:
    def test_the_build_resource_with_its_history(
        self, engine: Engine, poll_settings: Settings
    ) -> None:
        async def scenario() -> None:
            _, secret = token_for(engine, "alice")
            build_id = running_build(engine, "alice")
            async with api(poll_settings) as client:
                response = await client.get(f"/api/v1/builds/{build_id}", headers=bearer(secret))
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/json"
            body = BuildOut.model_validate(response.json())
            assert body.id == build_id
            assert body.status is BuildStatus.RUNNING
            assert [phase.phase for phase in body.phases] == [Phase.PREPARING, Phase.BUILDING]
            # The same resource the general read makes from ORM objects.
            with session_scope(engine) as session:
                build = get_build(session, build_id, Caller("alice"), with_events=True)
                expected = build_out(build)
            assert body == expected

        asyncio.run(scenario())

    def test_a_status_change_shows_on_the_next_poll(
        self, engine: Engine, poll_settings: Settings
    ) -> None:
        async def scenario() -> None:
            _, secret = token_for(engine, "alice")
            build_id = running_build(engine, "alice")
            async with api(poll_settings) as client:
                first = await client.get(f"/api/v1/builds/{build_id}", headers=bearer(secret))
                with session_scope(engine) as session:
                    transition(session, build_id, BuildStatus.SUCCEEDED)
                second = await client.get(f"/api/v1/builds/{build_id}", headers=bearer(secret))
            assert first.json()["status"] == "running"
            assert second.json()["status"] == "succeeded"

        asyncio.run(scenario())

    def test_answered_while_every_handler_thread_is_busy(
        self, engine: Engine, poll_settings: Settings
    ) -> None:
        async def scenario() -> None:
            # The poll's read runs on the event loop: a poll is answered even when every thread of
            # the pool is taken (by slow uploads, say).
            _, secret = token_for(engine, "alice")
            build_id = running_build(engine, "alice")
            async with api(poll_settings) as client:
                limiter = anyio.to_thread.current_default_thread_limiter()
                holders = [object() for _ in range(int(limiter.total_tokens))]
                for holder in holders:
                    await limiter.acquire_on_behalf_of(holder)
                try:
                    assert limiter.available_tokens == 0
                    with anyio.fail_after(30):
                        response = await client.get(
                            f"/api/v1/builds/{build_id}", headers=bearer(secret)
                        )
                finally:
                    for holder in holders:
                        limiter.release_on_behalf_of(holder)
            assert response.status_code == 200

        asyncio.run(scenario())


class TestThePollRefuses:
    def test_a_revoked_token_on_the_very_next_poll(
        self, engine: Engine, poll_settings: Settings
    ) -> None:
        async def scenario() -> None:
            token_id, secret = token_for(engine, "alice")
            build_id = running_build(engine, "alice")
            async with api(poll_settings) as client:
                before = await client.get(f"/api/v1/builds/{build_id}", headers=bearer(secret))
                with session_scope(engine) as session:
                    revoke_token(session, token_id)
                after = await client.get(f"/api/v1/builds/{build_id}", headers=bearer(secret))
            assert before.status_code == 200
            assert after.status_code == 401
            assert after.headers["content-type"] == PROBLEM_JSON
            assert after.json()["code"] == "unauthenticated"

        asyncio.run(scenario())

    def test_no_token_or_an_unknown_one(self, engine: Engine, poll_settings: Settings) -> None:
        async def scenario() -> None:
            build_id = running_build(engine, "alice")
            async with api(poll_settings) as client:
                missing = await client.get(f"/api/v1/builds/{build_id}")
                unknown = await client.get(
                    f"/api/v1/builds/{build_id}", headers=bearer("ib_nope_" + "x" * 40)
                )
            for response in (missing, unknown):
                assert response.status_code == 401
                assert response.headers["content-type"] == PROBLEM_JSON
                assert response.json()["code"] == "unauthenticated"

        asyncio.run(scenario())

    def test_an_unknown_build_and_someone_elses_read_the_same(
        self, engine: Engine, poll_settings: Settings
    ) -> None:
        async def scenario() -> None:
            _, secret = token_for(engine, "mallory")
            alices = running_build(engine, "alice")
            async with api(poll_settings) as client:
                theirs = await client.get(f"/api/v1/builds/{alices}", headers=bearer(secret))
                unknown = await client.get("/api/v1/builds/b_nosuchbuild", headers=bearer(secret))
            for response in (theirs, unknown):
                assert response.status_code == 404
                assert response.headers["content-type"] == PROBLEM_JSON
                assert response.json()["code"] == "build_not_found"
                assert response.json()["type"].endswith("/build_not_found")

        asyncio.run(scenario())

    def test_an_admin_sees_every_build(self, engine: Engine, poll_settings: Settings) -> None:
        async def scenario() -> None:
            # The bootstrap token on its first use: not stored yet, stored by the general check.
            alices = running_build(engine, "alice")
            async with api(poll_settings) as client:
                first = await client.get(f"/api/v1/builds/{alices}", headers=bearer(ADMIN_TOKEN))
                again = await client.get(f"/api/v1/builds/{alices}", headers=bearer(ADMIN_TOKEN))
            assert first.status_code == again.status_code == 200
            assert first.json() == again.json()

        asyncio.run(scenario())


class TestThePollIsObserved:
    def test_recorded_in_the_http_metrics(self, engine: Engine, poll_settings: Settings) -> None:
        async def scenario() -> None:
            _, secret = token_for(engine, "alice")
            build_id = running_build(engine, "alice")
            async with api(poll_settings) as client:
                for _ in range(3):
                    await client.get(f"/api/v1/builds/{build_id}", headers=bearer(secret))
                await client.get("/api/v1/builds/b_nosuchbuild", headers=bearer(secret))
                scrape = await client.get("/metrics", headers=bearer(ADMIN_TOKEN))
            assert scrape.status_code == 200
            lines = scrape.text.splitlines()
            route = 'route="/api/v1/builds/{build_id}"'
            ok = [
                line
                for line in lines
                if "imagebuilder_http_requests_total" in line and route in line
            ]
            assert any('status="200"' in line and line.endswith(" 3.0") for line in ok), ok
            assert any('status="404"' in line and line.endswith(" 1.0") for line in ok), ok

        asyncio.run(scenario())


class TestPostgresConnections:
    def test_a_connection_the_server_closed_is_replaced(
        self, postgres_engine: Engine, tmp_path: Path, redis_url: str
    ) -> None:
        async def scenario() -> None:
            url = postgres_engine.url.render_as_string(hide_password=False)
            settings = test_settings(tmp_path / "api-data", database_url=url)
            settings.data_dir.mkdir(parents=True)
            _, secret = token_for(postgres_engine, "alice")
            build_id = running_build(postgres_engine, "alice")
            async with api(settings) as client:
                first = await client.get(f"/api/v1/builds/{build_id}", headers=bearer(secret))
                _terminate_hot_read_connections(url)
                second = await client.get(f"/api/v1/builds/{build_id}", headers=bearer(secret))
            assert first.status_code == 200
            assert second.status_code == 200, second.text

        asyncio.run(scenario())


def _terminate_hot_read_connections(url: str) -> None:
    """What a database restart does to the pooled connections of the poll's reads."""
    admin = create_engine(url)
    try:
        with admin.begin() as connection:
            ended = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name AND datname = current_database()"
                ),
                {"name": HOT_READ_APPLICATION},
            ).scalar_one()
    finally:
        admin.dispose()
    assert ended >= 1


class TestOverload:
    def test_no_connection_free_within_the_wait_is_a_503_problem(self, tmp_path: Path) -> None:
        # The pool's one connection, held elsewhere: a route whose reads wait for it gets "busy,
        # try again" (503 with Retry-After) after the pool's wait, not an internal error. The
        # status poll, on SQLite, has a connection of its own and still answers.
        settings = test_settings(
            tmp_path / "data",
            api_threads=1,
            database_pool_size=1,
            database_max_overflow=0,
            database_pool_timeout_seconds=0.5,
        )
        settings.data_dir.mkdir(parents=True)
        migrate(settings.sqlalchemy_url)
        app = create_app(settings)
        engine: Engine = app.state.engine
        _, secret = token_for(engine, "alice")
        build_id = running_build(engine, "alice")

        async def scenario() -> tuple[httpx.Response, httpx.Response]:
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app), base_url="http://api"
                ) as client,
            ):
                with engine.connect():
                    listed = await client.get("/api/v1/builds", headers=bearer(secret))
                    polled = await client.get(f"/api/v1/builds/{build_id}", headers=bearer(secret))
                return listed, polled

        listed, polled = asyncio.run(scenario())
        assert listed.status_code == 503
        assert listed.headers["content-type"] == PROBLEM_JSON
        assert listed.headers["retry-after"] == "5"
        assert listed.json()["code"] == "unavailable"
        assert polled.status_code == 200
