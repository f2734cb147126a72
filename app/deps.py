"""Typed dependencies: settings, a database session, the caller, and a build the caller may see."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from celery import Celery
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.auth import bearer_scheme, caller_from_credentials, require_admin
from app.logstream import LogHub
from core.auth import Caller
from core.builds import get_build
from core.db import session_factory
from core.models import Build
from core.settings import Settings


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _log_hub(request: Request) -> LogHub:
    hub: LogHub = request.app.state.log_hub
    return hub


def _celery(request: Request) -> Celery:
    celery: Celery = request.app.state.celery
    return celery


def _session(engine: Annotated[Engine, Depends(_engine)]) -> Iterator[Session]:
    # Handlers that write commit explicitly (before anything is queued); anything else rolls back.
    with session_factory(engine)() as session:
        yield session


def _caller(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    engine: Annotated[Engine, Depends(_engine)],
    settings: Annotated[Settings, Depends(_settings)],
) -> Caller:
    return caller_from_credentials(credentials, engine, settings)


def _admin(caller: Annotated[Caller, Depends(_caller)]) -> Caller:
    return require_admin(caller)


SettingsDep = Annotated[Settings, Depends(_settings)]
EngineDep = Annotated[Engine, Depends(_engine)]
CeleryDep = Annotated[Celery, Depends(_celery)]
LogHubDep = Annotated[LogHub, Depends(_log_hub)]
# scope="function": the session closes when the handler returns, before a streamed body is sent,
# so no transaction stays open while a log is followed.
SessionDep = Annotated[Session, Depends(_session, scope="function")]
CurrentCaller = Annotated[Caller, Depends(_caller)]
AdminCaller = Annotated[Caller, Depends(_admin)]


def _build_for_caller(build_id: str, session: SessionDep, caller: CurrentCaller) -> Build:
    return get_build(session, build_id, caller, with_events=True)


BuildForCaller = Annotated[Build, Depends(_build_for_caller)]
