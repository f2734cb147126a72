"""Liveness and readiness: no token needed."""

from __future__ import annotations

from typing import Any

import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from adapters.docker import DockerEngine, DockerUnavailable
from app.deps import EngineDep, SettingsDep
from app.problems import PROBLEM_JSON, problem_responses
from core.settings import Settings

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 2.0


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive."""
    return Health(status="ok")


def _check_database(engine: Any) -> str:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return f"unavailable: {type(exc).__name__}"
    return "ok"


def _check_broker(settings: Settings) -> str:
    client = redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=CHECK_TIMEOUT_SECONDS,
        socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"unavailable: {type(exc).__name__}"
    finally:
        client.close()
    return "ok"


def _check_docker(settings: Settings) -> str:
    if not settings.api_docker_access:
        return "ok"  # only workers talk to the build daemon; they report their own health
    try:
        engine = DockerEngine(settings.docker_cli, timeout=CHECK_TIMEOUT_SECONDS)
        try:
            engine.ping()
        finally:
            engine.close()
    except DockerUnavailable as exc:
        return f"unavailable: {exc}"
    return "ok"


@router.get("/readyz", response_model=Readiness, responses=problem_responses(503))
async def readyz(settings: SettingsDep, engine: EngineDep) -> Any:
    """Database, broker and Docker daemon reachable; a 503 says which is not."""
    checks = {
        "database": await run_in_threadpool(_check_database, engine),
        "broker": await run_in_threadpool(_check_broker, settings),
        "docker": await run_in_threadpool(_check_docker, settings),
    }
    down = [name for name, state in checks.items() if state != "ok"]
    if not down:
        return Readiness(status="ok", checks=checks)
    body = {
        "type": "https://imagebuilder.dev/problems/unavailable",
        "title": "Service not ready",
        "status": 503,
        "detail": f"Not reachable: {', '.join(down)}.",
        "code": "unavailable",
        "checks": checks,
    }
    return JSONResponse(
        body, status_code=503, media_type=PROBLEM_JSON, headers={"Retry-After": "5"}
    )
