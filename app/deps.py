"""Typed dependencies: settings, a database session, the caller, and a build the caller may see.

Dependencies that only read app state are `async def`: FastAPI runs a plain `def` dependency on a
worker thread, and a thread hop costs far more than reading an attribute."""

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
from app.quotas import OwnerSlots
from core.access.caller import Caller
from core.builds.service import get_build
from core.db import read_scope, session_factory
from core.models import Build
from core.settings import Settings


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def _log_hub(request: Request) -> LogHub:
    hub: LogHub = request.app.state.log_hub
    return hub


async def _followers(request: Request) -> OwnerSlots:
    slots: OwnerSlots = request.app.state.follower_slots
    return slots


async def _exports(request: Request) -> OwnerSlots:
    slots: OwnerSlots = request.app.state.export_slots
    return slots


async def _celery(request: Request) -> Celery:
    celery: Celery = request.app.state.celery
    return celery


def _session(engine: Annotated[Engine, Depends(_engine)]) -> Iterator[Session]:
    # Handlers that write commit explicitly (before anything is queued); anything else rolls back.
    # Only handlers use it, never another dependency: the session's connection is then taken and
    # used inside the handler's own thread (FastAPI closes it on a thread no pool limits).
    with session_factory(engine)() as session:
        yield session


def _caller(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    engine: Annotated[Engine, Depends(_engine)],
    settings: Annotated[Settings, Depends(_settings)],
) -> Caller:
    return caller_from_credentials(credentials, engine, settings)


async def _admin(caller: Annotated[Caller, Depends(_caller)]) -> Caller:
    return require_admin(caller)


SettingsDep = Annotated[Settings, Depends(_settings)]
EngineDep = Annotated[Engine, Depends(_engine)]
CeleryDep = Annotated[Celery, Depends(_celery)]
LogHubDep = Annotated[LogHub, Depends(_log_hub)]
FollowerSlots = Annotated[OwnerSlots, Depends(_followers)]
ExportSlots = Annotated[OwnerSlots, Depends(_exports)]
# scope="function": the session closes when the handler returns, before a streamed body is sent,
# so no transaction stays open while a log is followed.
SessionDep = Annotated[Session, Depends(_session, scope="function")]
CurrentCaller = Annotated[Caller, Depends(_caller)]
AdminCaller = Annotated[Caller, Depends(_admin)]


def load_build(engine: Engine, build_id: str, caller: Caller) -> Build:
    """The build with its history, detached: read in one short session whose connection is back
    in the pool before this returns, so nothing is held while the request waits for its next
    thread or its handler."""
    with read_scope(engine) as session:
        return get_build(session, build_id, caller, with_events=True)


def _build_for_caller(build_id: str, engine: EngineDep, caller: CurrentCaller) -> Build:
    return load_build(engine, build_id, caller)


BuildForCaller = Annotated[Build, Depends(_build_for_caller)]
