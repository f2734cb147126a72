"""The FastAPI application factory; `uvicorn --factory app.main:app_factory` serves it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from sqlalchemy.exc import OperationalError

from adapters.broker import create_celery
from app import openapi, problems, web
from app.hot_reads import HotReads
from app.http_metrics import HttpMetrics, HttpMetricsMiddleware
from app.limits import BodyLimit
from app.logstream import LogHub
from app.quotas import OwnerSlots
from app.routes import builds, health, indexes, metrics, plan, supply_chain, tokens
from core.access.tokens import ensure_bootstrap_token
from core.db import get_engine, session_scope
from core.observability import tracing
from core.observability.json_logs import configure_logging
from core.settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_format == "json")
    tracing.configure(settings)
    engine = get_engine(settings)
    hot_reads = HotReads(engine, settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Blocking handlers run on this many threads, no more than the pool has connections.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        if settings.bootstrap_token is not None:
            secret = settings.bootstrap_token.get_secret_value()
            try:
                with session_scope(engine) as session:
                    ensure_bootstrap_token(session, secret)
            except OperationalError as exc:
                # Serve anyway (readyz says the database is down); the token is stored when it is
                # first used, so the operator is not locked out.
                log.warning("could not store the bootstrap token: %s", exc)
        yield
        await hot_reads.close()

    app = FastAPI(
        lifespan=lifespan,
        title="imagebuilder",
        version="1",
        summary="Upload a Python project, get a tested Docker image.",
        generate_unique_id_function=openapi.operation_id,
        # FastAPI's own OpenTelemetry (HTTP spans, metrics and logs) follows IMAGEBUILDER_TRACING
        # like ours: off, no request pays for looking up providers that are not there.
        telemetry={
            "tracing": settings.tracing_enabled,
            "metrics": settings.tracing_enabled,
            "logs": settings.tracing_enabled,
        },
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.hot_reads = hot_reads
    app.state.log_hub = LogHub(engine)
    app.state.follower_slots = OwnerSlots("live-log followers", settings.max_followers_per_owner)
    app.state.export_slots = OwnerSlots("image exports", settings.max_exports_per_owner)
    app.state.celery = create_celery(settings)
    app.state.http_metrics = HttpMetrics()
    app.add_middleware(HttpMetricsMiddleware, metrics=app.state.http_metrics)
    problems.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_body_bytes)
    app.include_router(builds.router)
    app.include_router(plan.router)
    app.include_router(supply_chain.router)
    app.include_router(tokens.router)
    app.include_router(indexes.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    openapi.install(app)
    web.install(app)  # the dashboard: pages at /, helpers and static files under /ui/
    return app


def app_factory() -> FastAPI:
    return create_app()
