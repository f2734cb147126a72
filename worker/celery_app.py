"""The worker's Celery application: the broker client's configuration with the task modules, and
the worker's logging."""

from __future__ import annotations

from typing import Any

from celery.signals import setup_logging

from adapters.broker import create_celery
from core.observability.json_logs import configure_logging
from core.settings import get_settings


@setup_logging.connect
def _configure_logging(**_kwargs: Any) -> None:
    # Connected, so Celery leaves logging to us: JSON lines like the API's.
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_format == "json")


celery_app = create_celery(get_settings(), include=("worker.tasks", "worker.webhooks"))
