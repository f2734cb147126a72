"""API tokens: creation (the secret is returned once), hashing, authentication and revocation.

A token reads `ib_<prefix>_<secret>`; the prefix identifies it in lists and logs, the whole value
is only ever compared by its SHA-256 (tokens carry 256 random bits, so a slow hash adds nothing).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from core.access.caller import Caller
from core.db import utcnow
from core.errors import ImageBuilderError, InvalidOption
from core.ids import new_token_id
from core.models import Token

TOKEN_PREFIX = "ib_"
BOOTSTRAP_OWNER = "admin"
_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


class TokenDoesNotExist(ImageBuilderError):
    status = 404
    code = "token_not_found"
    title = "Token not found"


@dataclass(frozen=True)
class NewToken:
    token: Token
    secret: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(secret: str) -> str:
    """What identifies a token without revealing it: `ib_<prefix>` or the first 8 characters."""
    parts = secret.split("_")
    if secret.startswith(TOKEN_PREFIX) and len(parts) >= 3:
        return f"{TOKEN_PREFIX}{parts[1]}"
    return secret[:8]


def check_owner(owner: str) -> str:
    if not _OWNER.fullmatch(owner):
        raise InvalidOption(
            "owner must be 1 to 100 letters, digits, '.', '_', '@' or '-', starting with one "
            "letter or digit"
        )
    return owner


def create_token(session: Session, *, owner: str, admin: bool = False) -> NewToken:
    prefix = secrets.token_hex(4)
    secret = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = Token(
        id=new_token_id(),
        owner=check_owner(owner),
        admin=admin,
        prefix=f"{TOKEN_PREFIX}{prefix}",
        secret_hash=hash_secret(secret),
        created_at=utcnow(),
    )
    session.add(token)
    session.flush()
    return NewToken(token=token, secret=secret)


def ensure_bootstrap_token(session: Session, secret: str, *, owner: str = BOOTSTRAP_OWNER) -> Token:
    """Accept `secret` as an admin token (IMAGEBUILDER_BOOTSTRAP_TOKEN): stored hashed, once."""
    digest = hash_secret(secret)
    existing = session.scalars(select(Token).where(Token.secret_hash == digest)).one_or_none()
    if existing is not None:
        return existing
    token = Token(
        id=new_token_id(),
        owner=owner,
        admin=True,
        prefix=display_prefix(secret),
        secret_hash=digest,
        created_at=utcnow(),
    )
    session.add(token)
    session.flush()
    return token


_TOKENS = Token.__table__
# Built once, run as Core: every API request runs it.
_TOKEN_ROW = select(_TOKENS.c.owner, _TOKENS.c.admin, _TOKENS.c.secret_hash).where(
    _TOKENS.c.secret_hash == bindparam("digest"), _TOKENS.c.revoked_at.is_(None)
)


def authenticate(session: Session, secret: str) -> Caller | None:
    """The caller a token stands for; None for an unknown or revoked token."""
    digest = hash_secret(secret)
    row = session.connection().execute(_TOKEN_ROW, {"digest": digest}).one_or_none()
    # The lookup is by hash; compare again in constant time for good measure.
    if row is None or not hmac.compare_digest(row.secret_hash, digest):
        return None
    return Caller(owner=row.owner, admin=row.admin)


def list_tokens(session: Session) -> Sequence[Token]:
    return session.scalars(select(Token).order_by(Token.created_at.desc(), Token.id.desc())).all()


def revoke_token(session: Session, token_id: str) -> Token:
    token = session.get(Token, token_id)
    if token is None:
        raise TokenDoesNotExist(f"No token with id {token_id!r}.")
    session.execute(
        update(Token)
        .where(Token.id == token_id, Token.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    session.flush()
    session.refresh(token)
    return token
