"""How an upload or a rebuild becomes a queued build: the one path the API and the dashboard share,
so limits and checks apply to both alike."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from celery import Celery
from fastapi import Request
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from adapters.broker import enqueue_build
from app.upload_body import read_upload
from core.access.caller import Caller
from core.access.namespaces import check_user_tag
from core.builds import service as build_service
from core.builds.options import BuildOptions
from core.builds.resources import BuildOut, build_out
from core.builds.retention import ensure_disk_space
from core.db import session_scope
from core.errors import ImageBuilderError, InvalidOption
from core.models import Build
from core.observability import tracing
from core.settings import Settings
from core.sources.intake import StoredSource, accept_source, new_upload_path
from core.sources.store import source_store

FieldsHook = Callable[[dict[str, str]], dict[str, str]]


def parse_options(raw: dict[str, str]) -> BuildOptions:
    """Options from form fields or query parameters (all strings), validated."""
    values: dict[str, Any] = {key: value for key, value in raw.items() if value != ""}
    if "build_args" in values:
        try:
            values["build_args"] = json.loads(values["build_args"])
        except json.JSONDecodeError as exc:
            raise InvalidOption("build_args must be a JSON object of strings") from exc
    try:
        return BuildOptions.model_validate(values)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'options'}: {error['msg']}"
            for error in exc.errors()
        )
        raise InvalidOption(details) from exc


def given(**options: str | None) -> dict[str, str]:
    """The options a request gave as query parameters (None: not given)."""
    return {name: value for name, value in options.items() if value is not None}


def admit(engine: Engine, settings: Settings, caller: Caller) -> None:
    """Refuse before reading a byte: a full disk (503) or an owner over its rate (429). The
    attempt is counted whether or not the upload is then accepted."""
    ensure_disk_space(settings)
    with session_scope(engine) as session:
        build_service.check_submission_rate(session, caller, settings.submissions_per_minute)


def _record(
    engine: Engine, settings: Settings, caller: Caller, source: StoredSource, options: BuildOptions
) -> BuildOut:
    with session_scope(engine) as session:
        build = build_service.create_build(
            session,
            caller=caller,
            source=source,
            options=options,
            namespace=settings.image_namespace,
        )
        return build_out(build, events=[])


async def submit_upload(
    request: Request,
    *,
    settings: Settings,
    engine: Engine,
    celery: Celery,
    caller: Caller,
    options: dict[str, str],
    fields_hook: FieldsHook | None = None,
) -> BuildOut:
    """Stream the request's zip to disk, check it and the options, record the build (committed),
    then queue it. `options` (query parameters) are overridden by form fields."""
    with tracing.tracer().start_as_current_span("builds.submit") as span:
        build = await _submit(request, settings, engine, celery, caller, options, fields_hook)
        span.set_attribute("imagebuilder.build_id", build.id)
        span.set_attribute("imagebuilder.upload_bytes", build.source.size_bytes)
    return build


async def _submit(
    request: Request,
    settings: Settings,
    engine: Engine,
    celery: Celery,
    caller: Caller,
    options: dict[str, str],
    fields_hook: FieldsHook | None,
) -> BuildOut:
    await run_in_threadpool(admit, engine, settings, caller)
    partial = new_upload_path(settings)
    upload = await read_upload(request, partial, settings.max_upload_bytes)
    try:
        fields = fields_hook(upload.fields) if fields_hook else upload.fields
        parsed = parse_options(options | fields)
        if parsed.tag is not None:
            check_user_tag(parsed.tag, owner=caller.owner, namespace=settings.image_namespace)
        store = source_store(settings, engine)
        source = await run_in_threadpool(
            accept_source, upload.file, upload.filename, settings, store
        )
    except ImageBuilderError:
        partial.unlink(missing_ok=True)
        raise
    build = await run_in_threadpool(_record, engine, settings, caller, source, parsed)
    # anyio runs it with a copy of this context: the message joins the submit span's trace.
    await run_in_threadpool(enqueue_build, celery, build.id)
    return build


def rebuild(
    session: Session, build: Build, *, caller: Caller, settings: Settings, celery: Celery
) -> BuildOut:
    """A new build from `build`'s stored source and options, committed, then queued."""
    build_service.check_submission_rate(session, caller, settings.submissions_per_minute)
    new_build = build_service.rebuild(session, build, caller, settings)
    out = build_out(new_build, events=[])
    session.commit()
    enqueue_build(celery, new_build.id)
    return out
