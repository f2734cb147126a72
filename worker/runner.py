"""Running and sweeping builds, independent of Celery (the tasks are thin wrappers around these).

`execute_build` claims a queued build (compare-and-set: a duplicate message finds nothing to do),
runs the pipeline and always leaves the build terminal or, for an infrastructure fault with
attempts left, handed back to the queue. `sweep` repairs what crashed processes leave behind.
"""

from __future__ import annotations

import functools
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, select, update

from adapters.docker import DockerEngine, DockerUnavailable
from core.builds.logs import LogSink, LogStream
from core.builds.retention import purge_expired
from core.builds.scheduling import claim_next
from core.db import session_scope, utcnow
from core.models import Build
from core.observability.json_logs import logging_for_build
from core.settings import Settings
from core.sources.store import source_store
from core.status import BuildStatus, Failure
from core.transitions import transition
from worker.pipeline import Pipeline, Result, finish, worker_name
from worker.webhooks import enqueue_webhooks

log = logging.getLogger(__name__)

Requeue = Callable[[str, float], object]
DockerFactory = Callable[[], DockerEngine]

RETRY_DELAY_SECONDS = 10.0
WAIT_FOR_SLOT_SECONDS = 5.0


def docker_factory_for(settings: Settings) -> DockerFactory:
    """Docker engines for this deployment: its CLI, its instance label."""
    return functools.partial(DockerEngine, settings.docker_cli, instance=settings.instance_id)


def execute_build(
    build_id: str,
    settings: Settings,
    engine: Engine,
    docker_factory: DockerFactory,
    requeue: Requeue,
) -> BuildStatus | None:
    """Claim the fairest queued build (see core.builds.scheduling; `build_id` is the message's
    ticket) and
    run it to its end. None when there was nothing to run; a ticket whose owners are all at their
    cap is re-sent later."""
    with session_scope(engine) as session:
        claim = claim_next(
            session,
            ticket=build_id,
            max_running_per_owner=settings.max_running_per_owner,
            worker=worker_name(),
        )
    if claim.build_id is None:
        if claim.wait:
            requeue(build_id, WAIT_FOR_SLOT_SECONDS)
        return None
    with logging_for_build(claim.build_id):
        return _run_claimed(claim.build_id, settings, engine, docker_factory, requeue)


def _run_claimed(
    build_id: str,
    settings: Settings,
    engine: Engine,
    docker_factory: DockerFactory,
    requeue: Requeue,
) -> BuildStatus:
    log.info("build claimed by %s", worker_name())
    pipeline: Pipeline | None = None
    docker_engine: DockerEngine | None = None
    try:
        with LogSink(engine, build_id, max_bytes=settings.max_log_bytes) as sink:
            try:
                docker_engine = docker_factory()
                pipeline = Pipeline(settings, engine, docker_engine, build_id)
                result = pipeline.run(sink)
            except DockerUnavailable as exc:
                sink.write(LogStream.SYSTEM, f"[imagebuilder] the Docker daemon failed: {exc}")
                sink.flush()
                return _retry_or_fail(
                    engine, settings, build_id, Failure("docker_unavailable", str(exc)), requeue
                )
            except Exception:
                log.exception("build %s crashed", build_id)
                sink.write(
                    LogStream.SYSTEM, "[imagebuilder] internal error; the operators are told"
                )
                result = Result(
                    BuildStatus.ERROR, Failure("internal_error", "The build service failed.")
                )
        finish(engine, build_id, result)
        enqueue_webhooks(build_id, settings=settings, engine=engine)
        log.info(
            "build ended %s%s", result.status, f" ({result.failure.code})" if result.failure else ""
        )
        return result.status
    finally:
        if pipeline is not None:
            pipeline.cleanup()
        if docker_engine is not None:
            docker_engine.close()


def _retry_or_fail(
    engine: Engine, settings: Settings, build_id: str, failure: Failure, requeue: Requeue
) -> BuildStatus:
    with session_scope(engine) as session:
        attempts = session.scalar(select(Build.attempts).where(Build.id == build_id)) or 0
        if attempts < settings.max_attempts and transition(
            session, build_id, BuildStatus.QUEUED, message=f"handed back: {failure.message}"
        ):
            status = BuildStatus.QUEUED
        else:
            transition(session, build_id, BuildStatus.ERROR, failure=failure)
            status = BuildStatus.ERROR
    if status is BuildStatus.QUEUED:
        requeue(build_id, RETRY_DELAY_SECONDS)
    return status


@dataclass(frozen=True)
class SweepReport:
    requeued: list[str]
    resent: list[str]
    failed: list[str]


def sweep(
    settings: Settings, engine: Engine, docker_factory: DockerFactory, requeue: Requeue
) -> SweepReport:
    """Hand back or fail running builds whose worker stopped beating; re-send stale queued ones."""
    now = utcnow()
    stale = now - timedelta(seconds=settings.stale_after_seconds)
    requeued: list[str] = []
    failed: list[str] = []
    with session_scope(engine) as session:
        lost = session.execute(
            select(Build.id, Build.attempts, Build.cancel_requested_at).where(
                Build.status == BuildStatus.RUNNING, Build.heartbeat_at < stale
            )
        ).all()
    for build_id, attempts, cancel_requested_at in lost:
        _remove_orphans(docker_factory, build_id)
        with session_scope(engine) as session:
            if cancel_requested_at is not None:
                transition(session, build_id, BuildStatus.CANCELLED, message="worker lost")
            elif attempts < settings.max_attempts and transition(
                session, build_id, BuildStatus.QUEUED, message="worker lost; handed back"
            ):
                requeued.append(build_id)
            elif transition(
                session,
                build_id,
                BuildStatus.ERROR,
                failure=Failure("worker_lost", "The worker running this build stopped."),
            ):
                failed.append(build_id)
    resend_before = now - timedelta(seconds=settings.requeue_after_seconds)
    with session_scope(engine) as session:
        waiting = session.scalars(
            select(Build.id).where(
                Build.status == BuildStatus.QUEUED, Build.updated_at < resend_before
            )
        ).all()
        if waiting:
            # Touch them so each is re-sent at most once per interval.
            session.execute(
                update(Build)
                .where(Build.id.in_(waiting), Build.status == BuildStatus.QUEUED)
                .values(updated_at=now)
            )
    for build_id in [*requeued, *waiting]:
        requeue(build_id, 0)
    _collect_garbage(settings, engine, docker_factory)
    return SweepReport(requeued=requeued, resent=list(waiting), failed=failed)


def _collect_garbage(settings: Settings, engine: Engine, docker_factory: DockerFactory) -> None:
    """Remove what no running build needs: expired logs, sources and images (retention),
    workspaces and containers left by crashed workers."""
    with session_scope(engine) as session:
        purged = purge_expired(session, settings)
        running = set(
            session.scalars(select(Build.id).where(Build.status == BuildStatus.RUNNING)).all()
        )
    sources = source_store(settings, engine)
    for sha256 in purged.orphan_sources:
        sources.delete(sha256)
    if settings.workspaces_dir.is_dir():
        # Only old ones: a build claimed after the query above may be filling its workspace now.
        settled = time.time() - settings.stale_after_seconds
        for workspace in settings.workspaces_dir.iterdir():
            if workspace.name not in running and workspace.stat().st_mtime < settled:
                shutil.rmtree(workspace, ignore_errors=True)
    try:
        docker_engine = docker_factory()
        try:
            for image in purged.images:
                docker_engine.remove_image(image, every_tag=True)
            for container_id, build_id in docker_engine.build_containers().items():
                if build_id not in running:
                    docker_engine.remove_container(container_id)
        finally:
            docker_engine.close()
    except DockerUnavailable as exc:
        log.warning("garbage collection skipped Docker: %s", exc)


def _remove_orphans(docker_factory: DockerFactory, build_id: str) -> None:
    try:
        docker_engine = docker_factory()
        try:
            docker_engine.remove_containers({"imagebuilder.build-id": build_id})
        finally:
            docker_engine.close()
    except DockerUnavailable as exc:
        log.warning("could not remove containers of lost build %s: %s", build_id, exc)
