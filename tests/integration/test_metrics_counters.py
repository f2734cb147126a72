"""The counters /metrics adds: builds finished by status and error code (counted when a build
ends, on SQLite and PostgreSQL), build_info, builds per worker, and HTTP requests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, delete

from app.main import create_app
from core.db import session_scope
from core.models import Build
from core.observability.metrics import outcome_counts
from core.settings import Settings
from core.status import BuildStatus, Failure
from core.transitions import transition
from tests.conftest import ADMIN_TOKEN
from tests.factories import queued_build

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def end(engine: Engine, status: BuildStatus, code: str | None = None, worker: str = "w1") -> str:
    build_id = queued_build(engine)
    failure = Failure(code, "why") if code else None
    with session_scope(engine) as session:
        transition(session, build_id, BuildStatus.RUNNING, worker=worker)
        transition(session, build_id, status, failure=failure)
    return build_id


class TestOutcomeCounter:
    def test_counts_each_end_once_whatever_happens_to_history(self, engine: Engine) -> None:
        first = end(engine, BuildStatus.FAILED, "tests_failed")
        end(engine, BuildStatus.FAILED, "tests_failed")
        end(engine, BuildStatus.SUCCEEDED)
        with session_scope(engine) as session:
            # A terminal build cannot end again: no second count.
            assert not transition(session, first, BuildStatus.ERROR, failure=Failure("x", "y"))
            session.execute(delete(Build))  # retention may drop rows; the counts stay
        with session_scope(engine) as session:
            assert sorted(outcome_counts(session)) == [
                ("failed", "tests_failed", 2),
                ("succeeded", "", 1),
            ]

    def test_a_rolled_back_transition_counts_nothing(self, engine: Engine) -> None:
        build_id = queued_build(engine)

        def cancel_then_fail() -> None:
            with session_scope(engine) as session:
                transition(session, build_id, BuildStatus.CANCELLED)
                raise RuntimeError("the transaction fails after the transition")

        with pytest.raises(RuntimeError):
            cancel_then_fail()
        with session_scope(engine) as session:
            assert outcome_counts(session) == []


@pytest.fixture
def client(settings: Settings, sqlite_engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


class TestMetricsEndpoint:
    def test_exposes_counters_info_workers_and_http(
        self, client: TestClient, sqlite_engine: Engine
    ) -> None:
        end(sqlite_engine, BuildStatus.ERROR, "docker_unavailable")
        running = queued_build(sqlite_engine)
        with session_scope(sqlite_engine) as session:
            transition(session, running, BuildStatus.RUNNING, worker="host-a")
        assert client.get("/api/v1/builds/b_missing", headers=AUTH).status_code == 404
        text = client.get("/metrics").text

        finished = samples(text, "imagebuilder_builds_finished_total")
        assert finished == {(("error_code", "docker_unavailable"), ("status", "error")): 1.0}
        (info,) = samples(text, "imagebuilder_build_info")
        assert dict(info)["version"]
        assert samples(text, "imagebuilder_worker_running_builds") == {(("worker", "host-a"),): 1.0}
        requests = samples(text, "imagebuilder_http_requests_total")
        key = (("method", "GET"), ("route", "/api/v1/builds/{build_id}"), ("status", "404"))
        assert requests[key] == 1.0
        latency = samples(text, "imagebuilder_http_request_duration_seconds_count")
        assert latency[(("method", "GET"), ("route", "/api/v1/builds/{build_id}"))] == 1.0
