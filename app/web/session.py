"""Who is using the dashboard, and proof that a state-changing request comes from its own pages.

The browser holds the user's API token in one cookie (HttpOnly, SameSite=Strict, Secure over
https) together with a random nonce drawn at login. Page JavaScript never sees the token.

CSRF, in three layers: SameSite=Strict keeps the cookie off cross-site requests; every POST must
carry a per-session token, HMAC(key=API token, message=nonce), which the pages embed and which an
attacker cannot compute without the cookie; and a browser's `Sec-Fetch-Site` saying the request
came from another site is refused outright. The login form, before any session exists, uses a
double-submit cookie instead.

The JSON API never reads this cookie: it takes only the `Authorization` header.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response
from sqlalchemy import Engine

from app.deps import EngineDep
from core.access.caller import Caller
from core.db import read_scope
from core.errors import Forbidden, Unauthenticated

SESSION_COOKIE = "ib_session"
LOGIN_COOKIE = "ib_login"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SESSION_SECONDS = 12 * 3600
MAX_TOKEN_CHARS = 512
_NONCE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
_CSRF_CONTEXT = b"imagebuilder dashboard csrf v1\x00"
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True)
class DashboardSession:
    nonce: str
    token: str

    @classmethod
    def new(cls, token: str) -> DashboardSession:
        return cls(nonce=secrets.token_urlsafe(32), token=token)

    @classmethod
    def parse(cls, value: str | None) -> DashboardSession | None:
        if not value:
            return None
        nonce, dot, token = value.partition(".")
        if not dot or not _NONCE.fullmatch(nonce) or not valid_token_text(token):
            return None
        return cls(nonce=nonce, token=token)

    @property
    def cookie_value(self) -> str:
        return f"{self.nonce}.{self.token}"

    @property
    def csrf_token(self) -> str:
        """The per-session token forms and fetch() calls send back."""
        mac = hmac.new(self.token.encode(), _CSRF_CONTEXT + self.nonce.encode(), hashlib.sha256)
        return mac.hexdigest()

    def accepts(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(
            candidate.encode(), self.csrf_token.encode()
        )


def valid_token_text(token: str) -> bool:
    """A pasted token worth looking up: bounded and printable ASCII without spaces."""
    return 0 < len(token) <= MAX_TOKEN_CHARS and all("!" <= ch <= "~" for ch in token)


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, session: DashboardSession) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session.cookie_value,
        max_age=SESSION_SECONDS,
        path="/",
        secure=is_https(request),
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=is_https(request), httponly=True, samesite="strict"
    )


def login_nonce(request: Request) -> str:
    """The login form's double-submit value: the one already in the browser, or a fresh one."""
    current = request.cookies.get(LOGIN_COOKIE, "")
    return current if _NONCE.fullmatch(current) else secrets.token_urlsafe(32)


def set_login_cookie(response: Response, request: Request, nonce: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=3600,
        path="/ui/login",
        secure=is_https(request),
        httponly=True,
        samesite="strict",
    )


def clear_login_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        LOGIN_COOKIE, path="/ui/login", secure=is_https(request), httponly=True, samesite="strict"
    )


def reject_cross_site(request: Request) -> None:
    """Refuse a state change a browser says another site started."""
    if request.headers.get("sec-fetch-site", "same-origin") in ("cross-site", "same-site"):
        raise Forbidden("Cross-site requests are refused.", code="csrf_failed")


def authenticate_token(engine: Engine, token: str) -> Caller | None:
    """The caller an API token stands for: the one place the dashboard maps a token to a caller."""
    # Imported here: core.access.tokens is the API's token store, and the dashboard follows its
    # interface.
    from core.access.tokens import authenticate

    if not valid_token_text(token):
        return None
    # A short session of its own: a request dependency's session would stay open for the whole
    # of a streamed upload.
    with read_scope(engine) as session:
        return authenticate(session, token)


def _read_session(request: Request) -> DashboardSession | None:
    return DashboardSession.parse(request.cookies.get(SESSION_COOKIE))


async def _session(request: Request) -> DashboardSession | None:
    # async: no thread hop to read a cookie.
    return _read_session(request)


def _optional_caller(request: Request, engine: EngineDep) -> Caller | None:
    session = _read_session(request)
    return None if session is None else authenticate_token(engine, session.token)


async def _required_caller(caller: Annotated[Caller | None, Depends(_optional_caller)]) -> Caller:
    if caller is None:
        raise Unauthenticated("Sign in to the dashboard first.")
    return caller


async def _require_csrf(request: Request) -> DashboardSession:
    """The session of a state-changing request that proved it comes from a dashboard page.

    fetch() calls send the token in a header; plain HTML forms (url-encoded only, so an upload's
    body is never read here) send it as a field."""
    reject_cross_site(request)
    session = _read_session(request)
    if session is None:
        raise Forbidden("The dashboard session is missing; sign in again.", code="csrf_failed")
    candidate = request.headers.get(CSRF_HEADER)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if candidate is None and media_type == _FORM_TYPES[0]:
        value = (await request.form()).get(CSRF_FIELD)
        candidate = value if isinstance(value, str) else None
    if not session.accepts(candidate):
        raise Forbidden(
            "The request lacks this session's CSRF token; reload the page and try again.",
            code="csrf_failed",
        )
    return session


PageCaller = Annotated[Caller | None, Depends(_optional_caller)]
UiCaller = Annotated[Caller, Depends(_required_caller)]
CsrfSession = Annotated[DashboardSession, Depends(_require_csrf)]
CurrentSession = Annotated[DashboardSession | None, Depends(_session)]
