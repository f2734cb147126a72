"""Per-owner limits: submission rate (429 + Retry-After) and fair scheduling of queued builds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.main import create_app
from core.builds.scheduling import claim_next
from core.db import session_scope
from core.models import Build
from core.settings import MiB, Settings
from core.status import BuildStatus
from core.transitions import transition
from tests.conftest import ADMIN_TOKEN, zip_project
from tests.factories import queued_build


def claim(engine: Engine, ticket: str, cap: int) -> tuple[str | None, bool]:
    with session_scope(engine) as session:
        result = claim_next(session, ticket=ticket, max_running_per_owner=cap, worker="w")
    return result.build_id, result.wait


def owner_of(engine: Engine, build_id: str) -> str:
    with session_scope(engine) as session:
        return session.get_one(Build, build_id).owner


class TestFairScheduling:
    def test_an_owner_with_a_burst_does_not_starve_another(self, engine: Engine) -> None:
        burst = [queued_build(engine, owner="alice") for _ in range(4)]
        bobs = queued_build(engine, owner="bob")
        first, _ = claim(engine, burst[0], cap=2)
        second, _ = claim(engine, burst[1], cap=2)
        # Alice went first (oldest); then Bob, served least recently, before Alice's second.
        assert (first, second) == (burst[0], bobs)
        third, _ = claim(engine, burst[2], cap=2)
        assert third == burst[1]

    def test_owners_at_their_cap_wait(self, engine: Engine) -> None:
        alice = [queued_build(engine, owner="alice") for _ in range(2)]
        assert claim(engine, alice[0], cap=1) == (alice[0], False)
        # Alice's second build must wait for her first: the ticket is to be tried again.
        assert claim(engine, alice[1], cap=1) == (None, True)
        with session_scope(engine) as session:
            transition(session, alice[0], BuildStatus.SUCCEEDED)
        assert claim(engine, alice[1], cap=1) == (alice[1], False)

    def test_nothing_queued_is_nothing_to_do(self, engine: Engine) -> None:
        build_id = queued_build(engine)
        with session_scope(engine) as session:
            transition(session, build_id, BuildStatus.CANCELLED)
        assert claim(engine, build_id, cap=2) == (None, False)


class TestSubmissionRate:
    def test_over_the_rate_is_429_with_retry_after_for_that_owner_only(
        self, settings: Settings, sqlite_engine: Engine, redis_url: str
    ) -> None:
        limited = settings.model_copy(update={"submissions_per_minute": 2})
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with TestClient(create_app(limited)) as client:
            alice = client.post("/api/v1/tokens", json={"owner": "alice"}, headers=admin).json()
            as_alice = {"Authorization": f"Bearer {alice['token']}"}
            data = zip_project("passing")

            def submit(headers: dict[str, str]) -> int:
                response = client.post(
                    "/api/v1/builds", files={"source": ("p.zip", data)}, headers=headers
                )
                if response.status_code == 429:
                    assert response.json()["code"] == "rate_limited"
                    assert 1 <= int(response.headers["retry-after"]) <= 60
                return response.status_code

            assert [submit(as_alice) for _ in range(3)] == [202, 202, 429]
            assert submit(admin) == 202  # another owner is not affected
            build_id = client.get("/api/v1/builds", headers=as_alice).json()["items"][0]["id"]
            rebuilt = client.post(f"/api/v1/builds/{build_id}/rebuild", headers=as_alice)
            assert rebuilt.status_code == 429

    def test_rejected_uploads_and_plans_count_against_the_rate(
        self, settings: Settings, sqlite_engine: Engine, redis_url: str
    ) -> None:
        limited = settings.model_copy(update={"submissions_per_minute": 3})
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with TestClient(create_app(limited)) as client:
            alice = client.post("/api/v1/tokens", json={"owner": "alice"}, headers=admin).json()
            client.headers["Authorization"] = f"Bearer {alice['token']}"
            broken = client.post("/api/v1/builds", files={"source": ("p.zip", b"not a zip")})
            assert broken.status_code == 400
            plan = client.post("/api/v1/plan", files={"source": ("p.zip", b"not a zip either")})
            assert plan.status_code == 400
            refused = client.post(
                "/api/v1/builds",
                content=b"x",
                headers={"Content-Type": "application/zip", "Content-Length": str(10**12)},
            )
            assert refused.status_code == 413
            valid = client.post(
                "/api/v1/builds", files={"source": ("p.zip", zip_project("passing"))}
            )
            assert valid.status_code == 429
            assert valid.json()["code"] == "rate_limited"
            assert 1 <= int(valid.headers["retry-after"]) <= 60


class TestBodyLimit:
    def test_an_unauthenticated_oversized_json_body_is_refused_before_it_is_read(
        self, settings: Settings, sqlite_engine: Engine, redis_url: str
    ) -> None:
        app = create_app(settings)
        pulled: list[int] = []

        async def body(chunks: int) -> AsyncIterator[bytes]:
            for number in range(chunks):
                pulled.append(number)
                yield b"[" * MiB

        async def send(declared: bool) -> httpx.Response:
            headers = {"Content-Type": "application/json"}
            if declared:
                headers["Content-Length"] = str(200 * MiB)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app), base_url="http://api"
            ) as client:
                return await client.post("/api/v1/tokens", content=body(200), headers=headers)

        declared = asyncio.run(send(declared=True))
        assert declared.status_code == 413
        assert declared.headers["content-type"].startswith("application/problem+json")
        assert declared.json()["code"] == "request_too_large"
        assert pulled == []
        # Without a length: refused at the first chunk past the limit, long before 200 MiB.
        streamed = asyncio.run(send(declared=False))
        assert streamed.status_code == 413
        assert streamed.json()["code"] == "request_too_large"
        assert len(pulled) <= 3

    def test_small_json_bodies_still_work(
        self, settings: Settings, sqlite_engine: Engine, redis_url: str
    ) -> None:
        with TestClient(create_app(settings)) as client:
            created = client.post(
                "/api/v1/tokens",
                json={"owner": "carol"},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
            assert created.status_code == 201
