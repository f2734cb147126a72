"""/metrics in the Prometheus text format (no token: scrapers are configured by operators)."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from app.deps import EngineDep
from core.db import session_scope
from core.metrics import Snapshot, snapshot

router = APIRouter(tags=["health"])
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class _BuildCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        with session_scope(self._engine) as session:
            data = snapshot(session)
        yield from _families(data)


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
def metrics(engine: EngineDep) -> Response:
    """Builds by status, queue depth, running builds, phase durations, upload sizes, log bytes."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_BuildCollector(engine))
    return Response(generate_latest(registry), media_type=PROMETHEUS_TEXT)
