"""Bearer-token authentication for /api routes. Tokens are read from the Authorization header only:
never from a query string, where they would end up in logs and browser history."""

from __future__ import annotations

import hmac

from fastapi import Request
from sqlalchemy import Engine

from core.auth import Caller
from core.db import read_scope
from core.errors import Forbidden, Unauthenticated
from core.settings import Settings
from core.tokens import BOOTSTRAP_OWNER, authenticate


def bearer_token(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def caller_from_request(request: Request, engine: Engine, settings: Settings) -> Caller:
    secret = bearer_token(request)
    if secret is None:
        raise Unauthenticated("Send a token: 'Authorization: Bearer <token>'.")
    bootstrap = settings.bootstrap_token
    # Checked without the database too, so the operator's token works even if storing it at
    # start-up failed (the database was not up yet).
    if bootstrap is not None and hmac.compare_digest(
        secret.encode(), bootstrap.get_secret_value().encode()
    ):
        return Caller(owner=BOOTSTRAP_OWNER, admin=True)
    with read_scope(engine) as session:
        caller = authenticate(session, secret)
    if caller is None:
        raise Unauthenticated("The token is unknown or revoked.")
    return caller


def require_admin(caller: Caller) -> Caller:
    if not caller.admin:
        raise Forbidden("This route needs an admin token.")
    return caller
