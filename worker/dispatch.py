"""Sending build messages. A failed send is logged, not raised: the build row is already committed
and the sweeper re-sends queued builds whose message never arrived."""

from __future__ import annotations

import logging

from celery import Celery
from opentelemetry.trace import SpanKind

from core import tracing
from worker.celery_app import RUN_BUILD

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
