"""problem+json (RFC 9457) for every error: domain errors, validation errors, and the unexpected."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError as DatabaseOperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from adapters.docker import DockerUnavailable
from core.errors import ImageBuilderError

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://imagebuilder.dev/problems/"


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    code: str


def problem_response(
    status: int, code: str, title: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = Problem(type=TYPE_BASE + code, title=title, status=status, detail=detail, code=code)
    return JSONResponse(
        body.model_dump(), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting problem+json errors."""
    return {
        status: {"model": Problem, "content": {PROBLEM_JSON: {}}, "description": "A problem"}
        for status in statuses
    }


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ImageBuilderError)
    headers = None
    if exc.retry_after is not None:
        headers = {"Retry-After": str(exc.retry_after)}
    return problem_response(exc.status, exc.code, exc.title, exc.detail, headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "body", "path"))
        parts.append(f"{where or 'request'}: {error.get('msg', 'invalid')}")
    return problem_response(422, "invalid_option", "Invalid option", "; ".join(parts))


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
    code = codes.get(exc.status_code, "http_error")
    return problem_response(
        exc.status_code, code, str(exc.detail), str(exc.detail), dict(exc.headers or {})
    )


async def _database_down(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", exc)
    return problem_response(
        503,
        "unavailable",
        "Service unavailable",
        "The database is unavailable; try again shortly.",
        {"Retry-After": "5"},
    )


async def _docker_down(_request: Request, exc: Exception) -> JSONResponse:
    # The one place a lost Docker daemon becomes an answer (exports, /plan's version check).
    log.warning("Docker daemon unavailable: %s", exc)
    return problem_response(
        503,
        "unavailable",
        "Service unavailable",
        "The Docker daemon is unavailable; try again shortly.",
        {"Retry-After": "5"},
    )


async def _no_connection_free(_request: Request, exc: Exception) -> JSONResponse:
    # Every pooled connection stayed busy for the pool's whole wait: overload, not a fault.
    log.warning("no database connection free: %s", exc)
    return problem_response(
        503,
        "unavailable",
        "Service unavailable",
        "The service is busy; try again shortly.",
        {"Retry-After": "5"},
    )


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem_response(
        500, "internal", "Internal error", "The service failed; the error was logged."
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(ImageBuilderError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DatabaseOperationalError, _database_down)
    app.add_exception_handler(PoolTimeout, _no_connection_free)
    app.add_exception_handler(DockerUnavailable, _docker_down)
    app.add_exception_handler(Exception, _unexpected)
