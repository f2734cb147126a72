"""/api/v1/builds: submit, inspect, list, read logs and Dockerfile, cancel, rebuild."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import ValidationError
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from app.deps import (
    BuildForCaller,
    CeleryDep,
    CurrentCaller,
    EngineDep,
    SessionDep,
    SettingsDep,
)
from app.logstream import SSE_TYPE, follow_lines, plain_lines, sse_events
from app.problems import problem_responses
from app.schemas import BuildOut, BuildPage, build_out
from app.upload import FILE_FIELD, read_upload
from core import builds as build_service
from core.auth import Caller
from core.db import session_scope
from core.errors import DockerfileNotReady, ImageBuilderError, InvalidOption
from core.options import BuildOptions
from core.retention import ensure_disk_space
from core.sources import StoredSource, accept_source, new_upload_path
from core.status import BuildStatus
from worker.dispatch import enqueue_build

router = APIRouter(prefix="/api/v1/builds", tags=["builds"])

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {
                        FILE_FIELD: {"type": "string", "format": "binary"},
                        "tag": {"type": "string"},
                        "python_version": {"type": "string"},
                        "run_tests": {"type": "boolean"},
                        "test_command": {"type": "string"},
                        "dockerfile": {"type": "string"},
                        "context_dir": {"type": "string"},
                        "build_args": {"type": "string", "description": "a JSON object of strings"},
                    },
                }
            },
            "application/zip": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


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


def _record_build(
    engine: Engine, caller: Caller, source: StoredSource, options: BuildOptions
) -> BuildOut:
    with session_scope(engine) as session:
        build = build_service.create_build(session, caller=caller, source=source, options=options)
        out = build_out(build, events=[])
    return out


@router.post(
    "",
    status_code=202,
    response_model=BuildOut,
    openapi_extra=_UPLOAD_BODY,
    responses=problem_responses(400, 413, 415, 422, 503),
)
async def submit_build(
    request: Request,
    response: Response,
    settings: SettingsDep,
    engine: EngineDep,
    celery: CeleryDep,
    caller: CurrentCaller,
    tag: str | None = None,
    python_version: str | None = None,
    run_tests: str | None = None,
    test_command: str | None = None,
    dockerfile: str | None = None,
    context_dir: str | None = None,
    build_args: str | None = None,
) -> BuildOut:
    """Upload a project (a zip) and queue a build of it.

    Send the zip as `multipart/form-data` in the file field `source`, with the options as form
    fields, or as a raw `application/zip` body with the options as query parameters. The archive
    is checked before anything is recorded; the build is queued once it is stored.
    """
    query = {
        name: value
        for name, value in {
            "tag": tag,
            "python_version": python_version,
            "run_tests": run_tests,
            "test_command": test_command,
            "dockerfile": dockerfile,
            "context_dir": context_dir,
            "build_args": build_args,
        }.items()
        if value is not None
    }
    await run_in_threadpool(ensure_disk_space, settings)
    partial = new_upload_path(settings)
    upload = await read_upload(request, partial, settings.max_upload_bytes)
    try:
        options = parse_options(query | upload.fields)
        source = await run_in_threadpool(accept_source, upload.file, upload.filename, settings)
    except ImageBuilderError:
        partial.unlink(missing_ok=True)
        raise
    build = await run_in_threadpool(_record_build, engine, caller, source, options)
    await run_in_threadpool(enqueue_build, celery, build.id)
    response.headers["Location"] = build.links.self
    return build


@router.get("", response_model=BuildPage, responses=problem_responses(422, 503))
def list_builds(
    session: SessionDep,
    caller: CurrentCaller,
    status: BuildStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=build_service.MAX_PAGE)] = 20,
    cursor: str | None = None,
) -> BuildPage:
    """The caller's builds, newest first; `next_cursor` fetches the next page."""
    page = build_service.list_builds(session, caller, status=status, limit=limit, cursor=cursor)
    return BuildPage(items=[build_out(build) for build in page.items], next_cursor=page.next_cursor)


@router.get("/{build_id}", response_model=BuildOut, responses=problem_responses(404, 503))
def get_build(build: BuildForCaller) -> BuildOut:
    """One build."""
    return build_out(build)


@router.get(
    "/{build_id}/logs",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/plain": {}, SSE_TYPE: {}}, "description": "The build log"},
        **problem_responses(404, 503),
    },
)
def get_logs(
    request: Request,
    build: BuildForCaller,
    engine: EngineDep,
    follow: bool = False,
    after: Annotated[int, Query(ge=0)] = 0,
) -> StreamingResponse:
    """The build's log as text; `follow=true` streams new lines until the build ends.

    With `Accept: text/event-stream` the same lines come as server-sent events whose ids are line
    numbers; reconnect with `Last-Event-ID` (or `?after=`) to resume without gaps or repeats.
    """
    if SSE_TYPE in request.headers.get("accept", ""):
        last_event = request.headers.get("last-event-id", "")
        start = int(last_event) if last_event.isdigit() else after
        return StreamingResponse(
            sse_events(engine, build.id, after=start, follow=True),
            media_type=SSE_TYPE,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    lines = (
        follow_lines(engine, build.id, after=after)
        if follow
        else plain_lines(engine, build.id, after=after)
    )
    return StreamingResponse(
        lines,
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{build.id}.log"'},
    )


@router.get(
    "/{build_id}/dockerfile",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}, **problem_responses(404, 503)},
)
def get_dockerfile(build: BuildForCaller) -> PlainTextResponse:
    """The Dockerfile that was built: the project's own, or the generated one."""
    if build.dockerfile is None:
        raise DockerfileNotReady(
            "The Dockerfile is not known yet: it is chosen when the build starts."
        )
    return PlainTextResponse(build.dockerfile)


@router.post(
    "/{build_id}/cancel",
    status_code=202,
    response_model=BuildOut,
    responses=problem_responses(404, 409, 503),
)
def cancel_build(build: BuildForCaller, session: SessionDep) -> BuildOut:
    """Stop a queued or running build. A running build stops within seconds."""
    build_service.request_cancel(session, build)
    session.commit()
    refreshed = build_service.get_build(
        session, build.id, Caller("system", admin=True), with_events=True
    )
    return build_out(refreshed)


@router.post(
    "/{build_id}/rebuild",
    status_code=202,
    response_model=BuildOut,
    responses=problem_responses(404, 503),
)
def rebuild_build(
    build: BuildForCaller,
    session: SessionDep,
    caller: CurrentCaller,
    celery: CeleryDep,
    response: Response,
    settings: SettingsDep,
) -> BuildOut:
    """A new build from the same stored source and options."""
    new_build = build_service.rebuild(session, build, caller, settings)
    out = build_out(new_build, events=[])
    session.commit()
    enqueue_build(celery, new_build.id)
    response.headers["Location"] = out.links.self
    return out
