"""Celery tasks: ids in, the database out. A user's failing build is a result, never a retry."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from celery import Celery, Task
from opentelemetry.trace import SpanKind

from adapters.broker import RUN_BUILD, SWEEP, enqueue_build
from core.db import get_engine
from core.observability import tracing
from core.settings import Settings, get_settings
from worker.celery_app import celery_app
from worker.runner import docker_factory_for, execute_build, sweep


def _requeue(app: Celery, build_id: str, countdown: float) -> bool:
    return enqueue_build(app, build_id, countdown=countdown)


@celery_app.task(name=RUN_BUILD, bind=True)
def run_build(self: Task, build_id: str) -> str | None:  # type: ignore[type-arg]
    # Custom message headers arrive as attributes of the request.
    headers = {key: getattr(self.request, key, None) for key in ("traceparent", "tracestate")}
    return run_traced(build_id, headers, get_settings())


def run_traced(build_id: str, headers: Mapping[str, object], settings: Settings) -> str | None:
    """The task's work, in the trace the message's headers carry."""
    tracing.configure(settings)
    span = tracing.tracer().start_as_current_span(
        f"{RUN_BUILD} process",
        context=tracing.context_from(headers),
        kind=SpanKind.CONSUMER,
        attributes={"messaging.system": "celery", "imagebuilder.ticket": build_id},
    )
    with span as current:
        status = execute_build(
            build_id,
            settings,
            get_engine(settings),
            docker_factory_for(settings),
            functools.partial(_requeue, celery_app),
        )
        current.set_attribute("imagebuilder.status", "none" if status is None else status.value)
    return None if status is None else status.value


@celery_app.task(name=SWEEP)
def sweep_builds() -> dict[str, list[str]]:
    settings = get_settings()
    report = sweep(
        settings,
        get_engine(settings),
        docker_factory_for(settings),
        functools.partial(_requeue, celery_app),
    )
    return {"requeued": report.requeued, "resent": report.resent, "failed": report.failed}
