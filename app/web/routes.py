"""The dashboard: pages at /, /login and /builds/{id}; their cookie-authenticated helpers at /ui/.

Pages render on the server; a little JavaScript (app/web/static) refreshes fragments, follows the
log over server-sent events and uploads. Everything here reuses the API's core functions; only
the credential differs (a cookie, see app.web.session, instead of the Authorization header).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from app import submission
from app.deps import (
    CeleryDep,
    EngineDep,
    FollowerSlots,
    LogHubDep,
    SessionDep,
    SettingsDep,
    load_build,
)
from app.logstream import SSE_TYPE, last_event_id, plain_lines, sse_events
from app.quotas import holding_async
from app.submission import submit_upload
from app.web.session import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    CsrfSession,
    CurrentSession,
    DashboardSession,
    PageCaller,
    UiCaller,
    authenticate_token,
    clear_login_cookie,
    clear_session_cookie,
    login_nonce,
    reject_cross_site,
    set_login_cookie,
    set_session_cookie,
)
from app.web.view import STATIC_DIR, STATIC_PREFIX, build_args_field, templates
from core.access.caller import Caller
from core.builds import service as build_service
from core.builds.resources import build_out, build_summary_out
from core.db import utcnow
from core.errors import BuildDoesNotExist, BuildIsTerminal, DockerfileNotReady
from core.models import Build
from core.settings import SUPPORTED_PYTHON_VERSIONS
from core.status import BuildStatus

PAGE_SIZE = 25

# No inline script or style anywhere: the pages load /ui/static files only.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Pages carry the session's CSRF token and the caller's builds: keep them out of caches.
    "Cache-Control": "no-store",
}


class DashboardRoute(APIRoute):
    """Adds the security headers to every dashboard response."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_headers(request: Request) -> Response:
            response = await handler(request)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return with_headers


class DashboardStatic(StaticFiles):
    """The dashboard's CSS and JavaScript: revalidated on each load, never sniffed."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-cache"
        return response


router = APIRouter(route_class=DashboardRoute, include_in_schema=False)


def install(app: FastAPI) -> None:
    """Serve the dashboard from `app`: its routes and its static files."""
    app.include_router(router)
    app.mount(STATIC_PREFIX, DashboardStatic(directory=STATIC_DIR), name="dashboard-static")


def _to_login() -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


def _context(
    caller: Caller | None, session: DashboardSession | None, **values: Any
) -> dict[str, Any]:
    return {
        "caller": caller,
        "csrf": session.csrf_token if session is not None else "",
        "now": utcnow(),
        **values,
    }


def _ui_build(build_id: str, engine: EngineDep, caller: UiCaller) -> Build:
    return load_build(engine, build_id, caller)


UiBuild = Annotated[Build, Depends(_ui_build)]


# --- Signing in and out -----------------------------------------------------------------------


def _login_page(request: Request, error: str | None, status_code: int = 200) -> Response:
    nonce = login_nonce(request)
    response = templates.TemplateResponse(
        request,
        "login.html",
        _context(None, None, login_csrf=nonce, error=error),
        status_code=status_code,
    )
    set_login_cookie(response, request, nonce)
    return response


@router.get("/login")
def login_page(request: Request, caller: PageCaller) -> Response:
    if caller is not None:
        return RedirectResponse("/", status_code=303)
    return _login_page(request, None)


@router.post("/ui/login")
async def login(request: Request, engine: EngineDep) -> Response:
    """Check a pasted API token and keep it in the session cookie. Only the form body counts:
    a token in the query string is never read."""
    reject_cross_site(request)
    form = await request.form()
    token, sent_nonce = form.get("token"), form.get(CSRF_FIELD)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not (
        isinstance(sent_nonce, str)
        and expected
        and hmac.compare_digest(sent_nonce.encode(), expected.encode())
    ):
        return _login_page(request, "The sign-in form expired; please try again.", 403)
    caller = None
    if isinstance(token, str):
        caller = await run_in_threadpool(authenticate_token, engine, token.strip())
    if caller is None or not isinstance(token, str):
        return _login_page(request, "That token is not valid, or it was revoked.", 401)
    response = RedirectResponse("/", status_code=303)
    set_session_cookie(response, request, DashboardSession.new(token.strip()))
    clear_login_cookie(response, request)
    return response


@router.post("/ui/logout")
def logout(request: Request, _session: CsrfSession) -> Response:
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response, request)
    return response


# --- The build list ---------------------------------------------------------------------------


def _list_context(
    session: SessionDep, caller: Caller, status: BuildStatus | None, cursor: str | None
) -> dict[str, Any]:
    page = build_service.list_builds(session, caller, status=status, limit=PAGE_SIZE, cursor=cursor)
    query = {"status": status.value if status else None, "cursor": cursor}
    older = {"status": query["status"], "cursor": page.next_cursor}
    return {
        "builds": [build_summary_out(build) for build in page.items],
        "status": status,
        "statuses": list(BuildStatus),
        "next_cursor": page.next_cursor,
        "refresh_url": "/ui/builds?" + urlencode({k: v for k, v in query.items() if v}),
        "older_query": urlencode({k: v for k, v in older.items() if v}),
    }


@router.get("/")
def build_list(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    caller: PageCaller,
    dashboard: CurrentSession,
    status: BuildStatus | None = None,
    cursor: str | None = None,
) -> Response:
    if caller is None:
        return _to_login()
    context = _context(
        caller,
        dashboard,
        python_versions=SUPPORTED_PYTHON_VERSIONS,
        max_upload_bytes=settings.max_upload_bytes,
        **_list_context(session, caller, status, cursor),
    )
    return templates.TemplateResponse(request, "list.html", context)


@router.get("/ui/builds")
def build_list_fragment(
    request: Request,
    session: SessionDep,
    caller: UiCaller,
    dashboard: CurrentSession,
    status: BuildStatus | None = None,
    cursor: str | None = None,
) -> Response:
    """The list page's table, for its periodic refresh."""
    context = _context(caller, dashboard, **_list_context(session, caller, status, cursor))
    return templates.TemplateResponse(request, "_list.html", context)


def _dashboard_fields(fields: dict[str, str]) -> dict[str, str]:
    """The form takes build arguments as NAME=value lines; the API takes a JSON object."""
    if "build_args" in fields:
        return fields | {"build_args": build_args_field(fields["build_args"])}
    return fields


@router.post("/ui/builds", status_code=202)
async def upload(
    request: Request,
    _session: CsrfSession,
    caller: UiCaller,
    settings: SettingsDep,
    engine: EngineDep,
    celery: CeleryDep,
) -> JSONResponse:
    """The upload form's target: the same checks and steps as POST /api/v1/builds. The CSRF
    token comes in a header, so it is checked before a byte of the body is read."""
    build = await submit_upload(
        request,
        settings=settings,
        engine=engine,
        celery=celery,
        caller=caller,
        options={},
        fields_hook=_dashboard_fields,
    )
    build_id = build.id
    page = f"/builds/{build_id}"
    return JSONResponse({"id": build_id, "url": page}, status_code=202, headers={"Location": page})


# --- One build --------------------------------------------------------------------------------


@router.get("/builds/{build_id}")
def build_page(
    request: Request,
    build_id: str,
    session: SessionDep,
    caller: PageCaller,
    dashboard: CurrentSession,
) -> Response:
    if caller is None:
        return _to_login()
    try:
        build = build_service.get_build(session, build_id, caller, with_events=True)
    except BuildDoesNotExist:
        return templates.TemplateResponse(
            request, "not_found.html", _context(caller, dashboard, build_id=build_id), 404
        )
    return templates.TemplateResponse(
        request, "build.html", _context(caller, dashboard, build=build_out(build))
    )


@router.get("/ui/builds/{build_id}/summary")
def build_summary(
    request: Request, build: UiBuild, caller: UiCaller, dashboard: CurrentSession
) -> Response:
    """The detail page's status, phases, tests and image, for its refresh while the build runs."""
    context = _context(caller, dashboard, build=build_out(build))
    return templates.TemplateResponse(request, "_summary.html", context)


@router.get("/ui/builds/{build_id}/events")
async def build_events(
    request: Request,
    build: UiBuild,
    caller: UiCaller,
    engine: EngineDep,
    hub: LogHubDep,
    followers: FollowerSlots,
) -> StreamingResponse:
    """The log as server-sent events (ids are line numbers). EventSource reconnects by itself
    with Last-Event-ID, and the stream resumes after that line."""
    after = last_event_id(request)
    slot = followers.take(caller.owner)
    events = sse_events(hub, engine, build.id, after=after, finished=build.status.terminal)
    return StreamingResponse(
        holding_async(slot, events),
        media_type=SSE_TYPE,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/ui/builds/{build_id}/log")
def build_log(build: UiBuild, engine: EngineDep) -> StreamingResponse:
    """The log as a text download."""
    return StreamingResponse(
        plain_lines(engine, build.id),
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{build.id}.log"'},
    )


@router.get("/ui/builds/{build_id}/dockerfile")
def build_dockerfile(build: UiBuild) -> PlainTextResponse:
    """The Dockerfile that was built, as plain text (the page shows it with textContent)."""
    if build.dockerfile is None:
        raise DockerfileNotReady(
            "The Dockerfile is not known yet: it is chosen when the build starts."
        )
    return PlainTextResponse(build.dockerfile)


@router.post("/ui/builds/{build_id}/cancel")
def cancel(_session: CsrfSession, build: UiBuild, session: SessionDep) -> RedirectResponse:
    try:
        build_service.request_cancel(session, build)
        session.commit()
    except BuildIsTerminal:
        # Ended meanwhile: the page it returns to says how.
        session.rollback()
    return RedirectResponse(f"/builds/{build.id}", status_code=303)


@router.post("/ui/builds/{build_id}/rebuild")
def rebuild(
    _session: CsrfSession,
    build: UiBuild,
    session: SessionDep,
    caller: UiCaller,
    settings: SettingsDep,
    celery: CeleryDep,
) -> RedirectResponse:
    new_id = submission.rebuild(session, build, caller=caller, settings=settings, celery=celery).id
    return RedirectResponse(f"/builds/{new_id}", status_code=303)
