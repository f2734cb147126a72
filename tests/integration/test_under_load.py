"""The API under many concurrent requests: none starves another, and followers scale."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from app.main import create_app
from app.quotas import OwnerSlots
from core.access.tokens import create_token
from core.builds.logs import LogSink, LogStream
from core.db import session_scope
from core.settings import Settings
from core.status import BuildStatus
from core.transitions import transition
from tests.conftest import migrate, test_settings
from tests.factories import queued_build


def owner_token(engine: Engine, owner: str) -> str:
    with session_scope(engine) as session:
        return create_token(session, owner=owner).secret


def finished_build(engine: Engine, owner: str, lines: int) -> str:
    build_id = queued_build(engine, owner=owner)
    with session_scope(engine) as session:
        transition(session, build_id, BuildStatus.RUNNING)
    with LogSink(engine, build_id, max_bytes=10_000_000) as sink:
        for number in range(1, lines + 1):
            sink.write(LogStream.BUILD, f"line {number}")
    with session_scope(engine) as session:
        transition(session, build_id, BuildStatus.SUCCEEDED)
    return build_id


async def served(app: FastAPI, token: str) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app),
            base_url="http://api",
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        ) as client,
    ):
        yield client


@pytest.fixture
def load_settings(tmp_path: Path) -> Settings:
    # A short pool wait: a request that had to wait for a connection fails fast instead of
    # holding the test for the default wait.
    settings = test_settings(tmp_path / "data", database_pool_timeout_seconds=3.0)
    settings.data_dir.mkdir(parents=True)
    migrate(settings.sqlalchemy_url)
    return settings


class TestConcurrentRequests:
    def test_150_concurrent_requests_are_all_answered(
        self, load_settings: Settings, redis_url: str
    ) -> None:
        app = create_app(load_settings)
        engine: Engine = app.state.engine
        token = owner_token(engine, "alice")
        build_ids = [queued_build(engine, owner="alice") for _ in range(5)]

        async def run() -> list[int]:
            async for client in served(app, token):
                polls = [client.get(f"/api/v1/builds/{build_ids[n % 5]}") for n in range(100)]
                pages = [client.get("/api/v1/builds", params={"limit": 3}) for _ in range(45)]
                health = [client.get("/healthz") for _ in range(5)]
                responses = await asyncio.gather(*polls, *pages, *health)
                return [response.status_code for response in responses]
            raise AssertionError("unreachable")

        statuses = asyncio.run(run())
        assert statuses == [200] * 150

    def test_settings_refuse_a_pool_smaller_than_the_thread_pool(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="API_THREADS"):
            test_settings(tmp_path, api_threads=40, database_pool_size=10, database_max_overflow=5)


class TestFollowers:
    def test_a_follower_of_a_finished_build_gets_the_whole_log_and_the_end(
        self, load_settings: Settings, redis_url: str
    ) -> None:
        app = create_app(load_settings)
        engine: Engine = app.state.engine
        token = owner_token(engine, "alice")
        build_id = finished_build(engine, "alice", lines=2500)

        async def run() -> list[str]:
            async for client in served(app, token):
                response = await client.get(
                    f"/api/v1/builds/{build_id}/logs", headers={"Accept": "text/event-stream"}
                )
                assert response.status_code == 200
                return response.text.split("\n\n")
            raise AssertionError("unreachable")

        events = [event for event in asyncio.run(run()) if event]
        assert events[-1] == "event: end\ndata: succeeded"
        assert [event.split("\n")[0] for event in events[:-1]] == [
            f"id: {n}" for n in range(1, 2501)
        ]
        assert app.state.log_hub.tails() == {}

    def test_followers_over_the_owner_cap_get_429(self, tmp_path: Path, redis_url: str) -> None:
        settings = test_settings(tmp_path / "data", max_followers_per_owner=2)
        settings.data_dir.mkdir(parents=True)
        migrate(settings.sqlalchemy_url)
        app = create_app(settings)
        engine: Engine = app.state.engine
        alice, bob = owner_token(engine, "alice"), owner_token(engine, "bob")
        hers = finished_build(engine, "alice", lines=3)
        his = finished_build(engine, "bob", lines=3)
        slots: OwnerSlots = app.state.follower_slots
        sse = {"Accept": "text/event-stream"}

        async def run() -> list[httpx.Response]:
            async for client in served(app, alice):
                # Two of Alice's followers are open (streams of running builds would be).
                held = [slots.take("alice"), slots.take("alice")]
                over_sse = await client.get(f"/api/v1/builds/{hers}/logs", headers=sse)
                over_follow = await client.get(f"/api/v1/builds/{hers}/logs?follow=true")
                download = await client.get(f"/api/v1/builds/{hers}/logs")
                others = await client.get(
                    f"/api/v1/builds/{his}/logs", headers={**sse, "Authorization": f"Bearer {bob}"}
                )
                for slot in held:
                    slot.release()
                again = await client.get(f"/api/v1/builds/{hers}/logs", headers=sse)
                return [over_sse, over_follow, download, others, again]
            raise AssertionError("unreachable")

        over_sse, over_follow, download, others, again = asyncio.run(run())
        for over in (over_sse, over_follow):
            assert over.status_code == 429
            assert over.headers["content-type"].startswith("application/problem+json")
            assert over.json()["code"] == "quota_exceeded"
            assert int(over.headers["retry-after"]) > 0
        # A plain download is not a follower; another owner has slots of its own.
        assert download.status_code == 200
        assert download.text == "line 1\nline 2\nline 3\n"
        assert others.status_code == 200
        assert others.text.endswith("event: end\ndata: succeeded\n\n")
        assert again.status_code == 200
        # Every stream that ended gave its slot back.
        assert slots.in_use("alice") == 0
        assert slots.in_use("bob") == 0
