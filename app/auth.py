"""Bearer-token authentication for /api routes. Tokens are read from the Authorization header only
(FastAPI's HTTPBearer, which also declares the scheme in the OpenAPI document): never from a query
string, where they would end up in logs and browser history."""

from __future__ import annotations

import hmac

from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from core.auth import Caller
from core.db import session_scope
from core.errors import Forbidden, Unauthenticated
from core.settings import Settings
from core.tokens import BOOTSTRAP_OWNER, authenticate

# auto_error=False: a missing or non-bearer header is our own 401 problem, not FastAPI's.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An imagebuilder token: `Authorization: Bearer <token>`.",
)


def caller_from_credentials(
    credentials: HTTPAuthorizationCredentials | None, engine: Engine, settings: Settings
) -> Caller:
    secret = credentials.credentials.strip() if credentials is not None else None
    if not secret:
        raise Unauthenticated("Send a token: 'Authorization: Bearer <token>'.")
    bootstrap = settings.bootstrap_token
    # Checked without the database too, so the operator's token works even if storing it at
    # start-up failed (the database was not up yet).
    if bootstrap is not None and hmac.compare_digest(
        secret.encode(), bootstrap.get_secret_value().encode()
    ):
        return Caller(owner=BOOTSTRAP_OWNER, admin=True)
    with session_scope(engine) as session:
        caller = authenticate(session, secret)
    if caller is None:
        raise Unauthenticated("The token is unknown or revoked.")
    return caller


def require_admin(caller: Caller) -> Caller:
    if not caller.admin:
        raise Forbidden("This route needs an admin token.")
    return caller
