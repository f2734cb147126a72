"""/api/v1/builds: submit, inspect, list, read logs and Dockerfile, cancel, rebuild."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from app import submission
from app.auth import bearer_scheme, bearer_secret, caller_from_credentials
from app.deps import (
    BuildForCaller,
    CeleryDep,
    CurrentCaller,
    EngineDep,
    FollowerSlots,
    LogHubDep,
    SessionDep,
    SettingsDep,
)
from app.hot_reads import HotReads
from app.logstream import (
    MAX_LINE_NUMBER,
    SSE_TYPE,
    follow_lines,
    last_event_id,
    plain_lines,
    sse_events,
)
from app.problems import problem_responses
from app.quotas import holding_async
from app.submission import given, submit_upload
from app.upload_body import FILE_FIELD
from core.access.caller import Caller
from core.builds import service as build_service
from core.builds.resources import BuildOut, BuildPage, build_out, build_summary_out
from core.builds.status_poll import PolledBuild, read_polled_build
from core.db import read_scope
from core.errors import DockerfileNotReady
from core.settings import Settings
from core.status import BuildStatus

router = APIRouter(prefix="/api/v1/builds", tags=["builds"])

UPLOAD_BODY: dict[str, Any] = {
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
                        "callback_url": {"type": "string"},
                        "no_cache": {"type": "boolean"},
                    },
                }
            },
            "application/zip": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "",
    status_code=202,
    response_model=BuildOut,
    openapi_extra=UPLOAD_BODY,
    responses=problem_responses(400, 401, 413, 415, 422, 429, 503),
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
    callback_url: str | None = None,
    no_cache: str | None = None,
) -> BuildOut:
    """Upload a project (a zip) and queue a build of it.

    Send the zip as `multipart/form-data` in the file field `source`, with the options as form
    fields, or as a raw `application/zip` body with the options as query parameters. The archive
    is checked before anything is recorded; the build is queued once it is stored.
    """
    query = given(
        tag=tag,
        python_version=python_version,
        run_tests=run_tests,
        test_command=test_command,
        dockerfile=dockerfile,
        context_dir=context_dir,
        build_args=build_args,
        callback_url=callback_url,
        no_cache=no_cache,
    )
    build = await submit_upload(
        request, settings=settings, engine=engine, celery=celery, caller=caller, options=query
    )
    response.headers["Location"] = build.links.self
    return build


@router.get("", response_model=BuildPage, responses=problem_responses(401, 422, 503))
def list_builds(
    engine: EngineDep,
    caller: CurrentCaller,
    status: BuildStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=build_service.MAX_PAGE)] = 20,
    cursor: str | None = None,
) -> BuildPage:
    """The caller's builds, newest first; `next_cursor` fetches the next page.

    Items leave out the large fields (`plan`, with the Dockerfile lint findings) that
    `GET /api/v1/builds/{id}` returns; the Dockerfile has its own route."""
    with read_scope(engine) as session:
        page = build_service.list_builds(session, caller, status=status, limit=limit, cursor=cursor)
        items = [build_summary_out(build) for build in page.items]
    return BuildPage(items=items, next_cursor=page.next_cursor)


def _first_use_read(
    credentials: HTTPAuthorizationCredentials | None,
    engine: Engine,
    settings: Settings,
    build_id: str,
) -> PolledBuild:
    # The token is unknown or revoked (401), or the bootstrap token on its first use, which the
    # general check stores (once) before it answers.
    caller = caller_from_credentials(credentials, engine, settings)
    with read_scope(engine) as session:
        build, events = build_service.read_build(session, build_id, caller)
    return PolledBuild(caller=caller, build=build, events=events)


async def _read_for_caller(
    request: Request, credentials: HTTPAuthorizationCredentials | None, build_id: str
) -> PolledBuild:
    """The caller and the build with its history, for the routes every poller and follower takes,
    kept lean (README "Under load"): the token check and the read are one statement, run on the
    event loop (app.hot_reads); app state is read from the request, not through a dependency
    each."""
    state = request.app.state
    reads: HotReads = state.hot_reads
    polled = await reads.run(read_polled_build, bearer_secret(credentials), build_id)
    if polled is not None:
        return polled
    return await run_in_threadpool(
        _first_use_read, credentials, state.engine, state.settings, build_id
    )


@router.get("/{build_id}", response_model=BuildOut, responses=problem_responses(401, 404, 503))
async def get_build(
    build_id: str,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    request: Request,
) -> Response:
    """One build."""
    # The route every status poll takes. The resource is serialized once (a returned model would
    # be validated again first).
    polled = await _read_for_caller(request, credentials, build_id)
    out = build_out(polled.build, polled.events)
    return Response(out.model_dump_json(), media_type="application/json")


@router.get(
    "/{build_id}/logs",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/plain": {}, SSE_TYPE: {}}, "description": "The build log"},
        **problem_responses(401, 404, 429, 503),
    },
)
async def get_logs(
    build_id: str,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    request: Request,
    engine: EngineDep,
    hub: LogHubDep,
    followers: FollowerSlots,
    follow: bool = False,
    after: Annotated[int, Query(ge=0, le=MAX_LINE_NUMBER)] = 0,
) -> StreamingResponse:
    """The build's log as text; `follow=true` streams new lines until the build ends.

    With `Accept: text/event-stream` the same lines come as server-sent events whose ids are line
    numbers; reconnect with `Last-Event-ID` (or `?after=`) to resume without gaps or repeats.
    An owner may follow a limited number of logs at once (429 `quota_exceeded` past it).
    """
    # Every follower starts here: the same lean read as a status poll.
    polled = await _read_for_caller(request, credentials, build_id)
    caller, build = polled.caller, polled.build
    finished = BuildStatus(build.status).terminal
    if SSE_TYPE in request.headers.get("accept", ""):
        start = last_event_id(request, default=after)
        slot = followers.take(caller.owner)
        return StreamingResponse(
            holding_async(slot, sse_events(hub, engine, build.id, after=start, finished=finished)),
            media_type=SSE_TYPE,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    if follow:
        slot = followers.take(caller.owner)
        lines = holding_async(slot, follow_lines(hub, build.id, after=after, finished=finished))
    else:
        lines = plain_lines(engine, build.id, after=after)
    return StreamingResponse(
        lines,
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{build.id}.log"'},
    )


@router.get(
    "/{build_id}/dockerfile",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}, **problem_responses(401, 404, 503)},
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
    responses=problem_responses(401, 404, 409, 503),
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
    responses=problem_responses(401, 404, 409, 429, 503),
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
    out = submission.rebuild(session, build, caller=caller, settings=settings, celery=celery)
    response.headers["Location"] = out.links.self
    return out
