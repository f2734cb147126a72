"""/metrics in the Prometheus text format (no token: scrapers are configured by operators)."""

from __future__ import annotations

import platform
from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from app.deps import EngineDep
from core.db import session_scope
from core.observability.metrics import Snapshot, outcome_counts, snapshot, worker_load
from core.supply_chain.provenance import builder_version

router = APIRouter(tags=["health"])
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class _BuildCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        with session_scope(self._engine) as session:
            data = snapshot(session)
        yield from _families(data)


class _CountersCollector(Collector):
    """Counters kept in the database (incremented as builds end) and the workers' load."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        with session_scope(self._engine) as session:
            outcomes = outcome_counts(session)
            workers = worker_load(session)
        finished = CounterMetricFamily(
            "imagebuilder_builds_finished",
            "Builds that ended, by final status and error code.",
            labels=["status", "error_code"],
        )
        for status, code, count in sorted(outcomes):
            finished.add_metric([status, code], count)
        yield finished
        running = GaugeMetricFamily(
            "imagebuilder_worker_running_builds",
            "Builds running on each worker.",
            labels=["worker"],
        )
        beat = GaugeMetricFamily(
            "imagebuilder_worker_heartbeat_age_seconds",
            "Time since the freshest heartbeat of a build running on each worker.",
            labels=["worker"],
        )
        for load in workers:
            running.add_metric([load.worker], load.running)
            beat.add_metric([load.worker], load.last_heartbeat_seconds)
        yield running
        yield beat


class _InfoCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        info = InfoMetricFamily("imagebuilder_build", "The running imagebuilder's version.")
        info.add_metric(
            [], {"version": builder_version(), "python_version": platform.python_version()}
        )
        yield info


def _families(data: Snapshot) -> Iterator[Metric]:
    builds = GaugeMetricFamily(
        "imagebuilder_builds", "Builds by current status.", labels=["status"]
    )
    for status, count in sorted(data.builds_by_status.items()):
        builds.add_metric([status], count)
    yield builds
    yield GaugeMetricFamily(
        "imagebuilder_queue_depth",
        "Builds waiting to start.",
        value=data.builds_by_status["queued"],
    )
    yield GaugeMetricFamily(
        "imagebuilder_running_builds", "Builds running now.", value=data.builds_by_status["running"]
    )
    yield GaugeMetricFamily(
        "imagebuilder_oldest_queued_seconds",
        "How long the oldest queued build has waited.",
        value=data.oldest_queued_seconds,
    )
    phases = HistogramMetricFamily(
        "imagebuilder_phase_duration_seconds", "Time spent in each build phase.", labels=["phase"]
    )
    for phase, histogram in sorted(data.phase_seconds.items()):
        phases.add_metric([phase], histogram.cumulative(), histogram.total)
    yield phases
    uploads = HistogramMetricFamily("imagebuilder_upload_bytes", "Size of uploaded archives.")
    uploads.add_metric([], data.upload_bytes.cumulative(), data.upload_bytes.total)
    yield uploads
    yield CounterMetricFamily(
        "imagebuilder_log_bytes", "Bytes of build log stored.", value=data.log_bytes_total
    )


@router.get(
    "/metrics", response_class=Response, responses={200: {"content": {PROMETHEUS_TEXT: {}}}}
)
def metrics(request: Request, engine: EngineDep) -> Response:
    """Builds by status, finished builds by status and error code, queue depth, running builds
    per worker, phase durations, upload sizes, log bytes, HTTP requests, build info."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_BuildCollector(engine))
    registry.register(_CountersCollector(engine))
    registry.register(_InfoCollector())
    body = generate_latest(registry) + generate_latest(request.app.state.http_metrics.registry)
    return Response(body, media_type=PROMETHEUS_TEXT)
