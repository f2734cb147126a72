"""Celery tasks: ids in, the database out. A user's failing build is a result, never a retry."""

from __future__ import annotations

import functools

from celery import Celery

from core.db import get_engine
from core.settings import get_settings
from worker.celery_app import RUN_BUILD, SWEEP, celery_app
from worker.dispatch import enqueue_build
from worker.runner import docker_factory_for, execute_build, sweep


def _requeue(app: Celery, build_id: str, countdown: float) -> bool:
    return enqueue_build(app, build_id, countdown=countdown)


@celery_app.task(name=RUN_BUILD)
def run_build(build_id: str) -> str | None:
    settings = get_settings()
    status = execute_build(
        build_id,
        settings,
        get_engine(settings),
        docker_factory_for(settings),
        functools.partial(_requeue, celery_app),
    )
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
