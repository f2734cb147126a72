"""The broker client: the Celery application's configuration and sending build messages.

Both the API and the worker use it; only the worker (`worker.celery_app`) registers tasks. A failed
send is logged, not raised: the build row is already committed and the sweeper re-sends queued
builds whose message never arrived."""

from __future__ import annotations

import logging

from celery import Celery
from opentelemetry.trace import SpanKind

from core.observability import tracing
from core.settings import Settings

RUN_BUILD = "builds.run"
SWEEP = "builds.sweep"
QUEUE = "builds"
# Webhook deliveries have a queue (and workers) of their own: a slow receiver then never holds
# one of the build worker's slots. `celery worker -Q webhooks` consumes it.
WEBHOOK_QUEUE = "webhooks"


def create_celery(settings: Settings, *, include: tuple[str, ...] = ()) -> Celery:
    """The Celery application both sides use: the API only sends; the worker passes the modules
    that define its tasks in `include`."""
    app = Celery("imagebuilder", broker=settings.redis_url, include=list(include))
    longest_build = settings.build_timeout_seconds + 2 * settings.test_timeout_seconds
    app.conf.update(
        task_default_queue=QUEUE,
        task_routes={"webhooks.*": {"queue": WEBHOOK_QUEUE}},
        task_ignore_result=True,
        # Acknowledge on receipt: the database, not the broker, remembers unfinished builds, and
        # the sweeper re-sends what was lost. A late ack would make Redis redeliver any build
        # running past the visibility timeout.
        task_acks_late=False,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": longest_build + 3600},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        beat_schedule={
            "sweep-stale-builds": {"task": SWEEP, "schedule": settings.sweep_interval_seconds},
            "sweep-webhooks": {
                "task": "webhooks.sweep",
                "schedule": settings.sweep_interval_seconds,
            },
        },
        enable_utc=True,
    )
    return app


log = logging.getLogger(__name__)


def enqueue_build(celery: Celery, build_id: str, *, countdown: float = 0) -> bool:
    span = tracing.tracer().start_as_current_span(
        f"{RUN_BUILD} publish",
        kind=SpanKind.PRODUCER,
        attributes={"messaging.system": "celery", "imagebuilder.build_id": build_id},
    )
    with span:
        return _send(celery, build_id, countdown)


def _send(celery: Celery, build_id: str, countdown: float) -> bool:
    try:
        celery.send_task(
            RUN_BUILD,
            args=[build_id],
            countdown=countdown or None,
            retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.5},
            headers=tracing.carrier(),
        )
    except Exception as exc:  # kombu raises OperationalError and socket errors of many kinds
        log.warning("could not queue build %s now (the sweeper will re-send it): %s", build_id, exc)
        return False
    return True
