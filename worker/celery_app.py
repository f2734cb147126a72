"""The Celery application: Redis broker, no result backend (the database holds every outcome)."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import setup_logging

from core.logjson import configure_logging
from core.settings import Settings, get_settings

RUN_BUILD = "builds.run"
SWEEP = "builds.sweep"
QUEUE = "builds"
# Webhook deliveries have a queue (and workers) of their own: a slow receiver then never holds
# one of the build worker's slots. `celery worker -Q webhooks` consumes it.
WEBHOOK_QUEUE = "webhooks"


def create_celery(settings: Settings) -> Celery:
    app = Celery(
        "imagebuilder", broker=settings.redis_url, include=["worker.tasks", "worker.webhooks"]
    )
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


@setup_logging.connect
def _configure_logging(**_kwargs: Any) -> None:
    # Connected, so Celery leaves logging to us: JSON lines like the API's.
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_format == "json")


celery_app = create_celery(get_settings())
