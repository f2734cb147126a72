"""One trace from the upload, through the Celery message (its headers, read back from Redis), to
each pipeline phase of a real build, captured by the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import Engine

from adapters.broker import QUEUE
from adapters.docker import DockerEngine
from app.main import create_app
from core.observability import tracing
from core.settings import Settings
from tests.conftest import ADMIN_TOKEN, require, zip_project
from worker.tasks import run_traced

pytestmark = [pytest.mark.docker, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    # The global provider can be set once per process; add our exporter to whichever is there.
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield memory
    memory.shutdown()


def message_headers(redis_url: str) -> dict[str, object]:
    client = redis.Redis.from_url(redis_url)
    (raw,) = client.lrange(QUEUE, 0, -1)
    client.close()
    headers: dict[str, object] = json.loads(raw)["headers"]
    return headers


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int | None:
    return span.context.span_id if span.context is not None else None


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    (span,) = [s for s in spans if s.name == name]
    return span


def test_the_trace_runs_from_upload_through_the_message_to_each_phase(
    settings: Settings,
    sqlite_engine: Engine,
    redis_url: str,
    docker_engine: DockerEngine,
    exporter: InMemorySpanExporter,
) -> None:
    require(docker_engine.image_exists(settings.runtime_image("3.11")), "the local base images")
    exporter.clear()
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/api/v1/builds",
            files={"source": ("passing.zip", zip_project("passing"))},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
    assert response.status_code == 202, response.text
    build_id = response.json()["id"]
    headers = message_headers(redis_url)
    assert str(headers["traceparent"]).startswith("00-")

    assert run_traced(build_id, headers, settings) == "succeeded"

    spans = exporter.get_finished_spans()
    submit = by_name(spans, "builds.submit")
    publish = by_name(spans, "builds.run publish")
    process = by_name(spans, "builds.run process")
    phases = [s for s in spans if s.name.startswith("pipeline.")]
    assert submit.context is not None
    trace_id = submit.context.trace_id
    assert {s.context.trace_id for s in (publish, process, *phases) if s.context} == {trace_id}
    assert parent_id(publish) == span_id(submit)
    assert parent_id(process) == span_id(publish)
    assert [s.name for s in sorted(phases, key=lambda s: s.start_time or 0)] == [
        "pipeline.preparing",
        "pipeline.building",
        "pipeline.testing",
        "pipeline.scanning",
    ]
    for phase in phases:
        assert parent_id(phase) == span_id(process)
        assert phase.attributes is not None
        assert phase.attributes["imagebuilder.build_id"] == build_id
    assert submit.attributes is not None
    assert submit.attributes["imagebuilder.build_id"] == build_id


def test_tracing_is_off_unless_enabled(settings: Settings) -> None:
    assert settings.tracing_enabled is False
    assert tracing.configure(settings) is False
