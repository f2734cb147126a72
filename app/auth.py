"""Bearer-token authentication for /api routes. Tokens are read from the Authorization header only
(FastAPI's HTTPBearer, which also declares the scheme in the OpenAPI document): never from a query
string, where they would end up in logs and browser history."""

from __future__ import annotations

import hmac

from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from core.access.caller import Caller
from core.access.tokens import authenticate, ensure_bootstrap_token
from core.db import read_scope, session_scope
from core.errors import Forbidden, Unauthenticated
from core.settings import Settings

# auto_error=False: a missing or non-bearer header is our own 401 problem, not FastAPI's.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An imagebuilder token: `Authorization: Bearer <token>`.",
)


def bearer_secret(credentials: HTTPAuthorizationCredentials | None) -> str:
    """The token a request carries; Unauthenticated when it carries none."""
    secret = credentials.credentials.strip() if credentials is not None else None
    if not secret:
        raise Unauthenticated("Send a token: 'Authorization: Bearer <token>'.")
    return secret


def caller_from_credentials(
    credentials: HTTPAuthorizationCredentials | None, engine: Engine, settings: Settings
) -> Caller:
    secret = bearer_secret(credentials)
    with read_scope(engine) as session:
        caller = authenticate(session, secret)
    if caller is None and _is_bootstrap(secret, settings):
        # Start-up could not store it (the database was not up yet): store it now. A
        # bootstrap token that was revoked stays revoked, like any other.
        with session_scope(engine) as session:
            token = ensure_bootstrap_token(session, secret)
            if token.revoked_at is None:
                caller = Caller(owner=token.owner, admin=True)
    if caller is None:
        raise Unauthenticated("The token is unknown or revoked.")
    return caller


def _is_bootstrap(secret: str, settings: Settings) -> bool:
    bootstrap = settings.bootstrap_token
    return bootstrap is not None and hmac.compare_digest(
        secret.encode(), bootstrap.get_secret_value().encode()
    )


def require_admin(caller: Caller) -> Caller:
    if not caller.admin:
        raise Forbidden("This route needs an admin token.")
    return caller
