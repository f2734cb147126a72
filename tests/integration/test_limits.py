"""Per-owner limits: submission rate (429 + Retry-After) and fair scheduling of queued builds."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.main import create_app
from core.db import session_scope
from core.models import Build
from core.scheduling import claim_next
from core.settings import Settings
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
