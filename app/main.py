"""The FastAPI application factory; `uvicorn --factory app.main:app_factory` serves it."""

from __future__ import annotations

from fastapi import FastAPI

from app import problems
from app.routes import builds, health
from core.db import get_engine
from core.settings import Settings, get_settings
from worker.celery_app import create_celery


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="imagebuilder",
        version="1",
        summary="Upload a Python project, get a tested Docker image.",
    )
    app.state.settings = settings
    app.state.engine = get_engine(settings)
    app.state.celery = create_celery(settings)
    problems.install(app)
    app.include_router(builds.router)
    app.include_router(health.router)
    return app


def app_factory() -> FastAPI:
    return create_app()
