"""Schemathesis against the app's own OpenAPI document, in process, on a real SQLite database and
a real Redis broker, with the admin token: no 5xx, and every response as the document declares it
(status code, content type, headers, body schema).

Random ids only ever meet 404s and random bytes are never a zip, so the database is seeded with
builds in several states (with logs, a Dockerfile, an image, test counts) and a token, and half of
the generated cases aim at those, and half of the uploads carry a real project. Examples per
operation are few so the module runs in well under a minute; CI runs it every time, so the
coverage adds up. Every operation is fuzzed and every failing one reported, not only the first.
(The operations are walked in the test: `schemathesis.pytest.from_fixture` does not work with
pytest 9.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import checks
from schemathesis.python.asgi import shutdown_lifespans
from sqlalchemy import Engine, update

from app.logstream import MAX_LINE_NUMBER
from app.main import create_app
from core.access.caller import Caller
from core.access.tokens import create_token
from core.builds.logs import LogSink, LogStream
from core.builds.options import BuildOptions
from core.builds.service import create_build
from core.db import session_scope
from core.models import Build
from core.settings import Settings
from core.sources.intake import accept_source, new_upload_path
from core.sources.receive import receive_upload
from core.sources.store import FolderStore
from core.status import BuildStatus, Failure
from core.transitions import transition
from tests.conftest import ADMIN_TOKEN, zip_project

pytestmark = [pytest.mark.redis]

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
EXAMPLES = 50
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass(frozen=True)
class Seeded:
    build_ids: list[str]
    token_ids: list[str]
    project: bytes


def seed(settings: Settings, engine: Engine) -> Seeded:
    """Builds queued, failed (log, Dockerfile) and succeeded (image, tests), and a user token."""
    project = zip_project("passing")
    uploaded = receive_upload([project], new_upload_path(settings), settings.max_upload_bytes)
    source = accept_source(uploaded, "passing.zip", settings, FolderStore(settings.sources_dir))
    ids = []
    with session_scope(engine) as session:
        for owner in ("alice", "alice", "bob"):
            build = create_build(
                session,
                caller=Caller(owner),
                source=source,
                options=BuildOptions(),
                namespace=settings.image_namespace,
            )
            ids.append(build.id)
        token = create_token(session, owner="carol").token.id
    queued, failed, succeeded = ids
    with LogSink(engine, failed, max_bytes=100_000) as sink:
        sink.write(LogStream.SYSTEM, "[imagebuilder] phase: building")
        sink.write(LogStream.BUILD, "#1 \x1b[31mERROR\x1b[0m: é\x00 ☃")
    with session_scope(engine) as session:
        for build_id in (failed, succeeded):
            transition(session, build_id, BuildStatus.RUNNING, worker="fuzz")
            session.execute(
                update(Build).where(Build.id == build_id).values(dockerfile="FROM scratch\n")
            )
        transition(
            session,
            failed,
            BuildStatus.FAILED,
            failure=Failure("tests_failed", "Tests failed: 1 failed, 1 passed"),
        )
        session.execute(
            update(Build)
            .where(Build.id == succeeded)
            .values(
                image_id="sha256:" + "ab" * 32,
                image_size_bytes=123_456,
                tests={
                    "command": "python -m pytest",
                    "exit_code": 0,
                    "passed": 4,
                    "failed": 0,
                    "errors": 0,
                    "skipped": 1,
                },
            )
        )
        transition(session, succeeded, BuildStatus.SUCCEEDED)
    return Seeded(build_ids=[queued, failed, succeeded], token_ids=[token], project=project)


@pytest.fixture
def api(settings: Settings, sqlite_engine: Engine, redis_url: str) -> Iterator[tuple[Any, Seeded]]:
    seeded = seed(settings, sqlite_engine)
    app = create_app(settings)
    yield schemathesis.openapi.from_asgi("/openapi.json", app), seeded
    # Schemathesis keeps an application's lifespan running for the rest of the process.
    shutdown_lifespans()


def aim(case: schemathesis.Case[Any], data: st.DataObject, seeded: Seeded) -> None:
    """Point half of the cases at seeded resources and real uploads; never follow a log (the
    response would stay open until the build ends)."""
    known = {"build_id": seeded.build_ids, "token_id": seeded.token_ids}
    for name, ids in known.items():
        if case.path_parameters and name in case.path_parameters and data.draw(st.booleans()):
            case.path_parameters[name] = data.draw(st.sampled_from(ids))
    if case.query and "follow" in case.query:
        case.query["follow"] = "false"
    if case.query and isinstance(case.query.get("after"), int):
        case.query["after"] = min(case.query["after"], MAX_LINE_NUMBER)
    if case.media_type == "application/zip" and data.draw(st.booleans()):
        case.body = seeded.project
    elif isinstance(case.body, dict) and "source" in case.body and data.draw(st.booleans()):
        case.body["source"] = seeded.project  # type: ignore[assignment]


def fuzz(operation: Any, seeded: Seeded) -> None:
    @given(case=operation.as_strategy(), data=st.data())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case[Any], data: st.DataObject) -> None:
        aim(case, data, seeded)
        case.call_and_validate(headers=AUTH, checks=CHECKS)

    run()


def test_every_operation_conforms_to_the_openapi_document(api: tuple[Any, Seeded]) -> None:
    schema, seeded = api
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 13
    failures: dict[str, str] = {}
    for operation in operations:
        try:
            fuzz(operation, seeded)
        except Exception as exc:  # the falsifying example, with its request and response
            failures[operation.label] = str(exc)
    assert not failures, "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())


class TestFoundByFuzzing:
    """Bugs this fuzzer found once; kept as regression tests."""

    def test_log_after_past_the_integer_range_is_rejected(
        self, settings: Settings, sqlite_engine: Engine, redis_url: str
    ) -> None:
        failed = seed(settings, sqlite_engine).build_ids[1]
        with TestClient(create_app(settings), headers=AUTH) as client:
            response = client.get(f"/api/v1/builds/{failed}/logs?after={MAX_LINE_NUMBER + 1}")
        assert response.status_code == 422

    def test_log_events_after_a_huge_last_event_id_end_cleanly(
        self, settings: Settings, sqlite_engine: Engine, redis_url: str
    ) -> None:
        failed = seed(settings, sqlite_engine).build_ids[1]
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(10**30)}
        with TestClient(create_app(settings), headers=AUTH) as client:
            response = client.get(f"/api/v1/builds/{failed}/logs", headers=headers)
        assert response.status_code in (200, 422)
