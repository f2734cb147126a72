"""The status poll's read (`GET /api/v1/builds/{id}`), the request machines send most: the
caller's token and the build in one indexed statement, then the build's history; plain rows,
no ORM objects, no write.

The token is checked in the same statement as the build is read, not remembered between
requests: a revoked token is refused by the very next poll, in every API process, at no extra
cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select

from core.access.caller import Caller
from core.access.tokens import hash_secret
from core.builds.resources import BuildFields, EventFields
from core.errors import BuildDoesNotExist
from core.models import Build, BuildEvent, Token

_BUILDS = Build.__table__
_EVENTS = BuildEvent.__table__
_TOKENS = Token.__table__

# What the build resource does not show: not read (the Dockerfile alone may be kilobytes).
_NOT_IN_THE_RESOURCE = frozenset(
    {
        "dockerfile",
        "worker",
        "heartbeat_at",
        "updated_at",
        "purged_at",
        "callback_url",
        "reuse_key",
        "project",
    }
)
_RESOURCE_COLUMNS = [column for column in _BUILDS.c if column.name not in _NOT_IN_THE_RESOURCE]

# Built once, run as Core. The build is outer-joined so that an unknown build still finds the
# token (404, not 401); build columns keep their names, the token's are prefixed.
_TOKEN_AND_BUILD = (
    select(
        _TOKENS.c.owner.label("caller_owner"),
        _TOKENS.c.admin.label("caller_admin"),
        *_RESOURCE_COLUMNS,
    )
    .select_from(_TOKENS.outerjoin(_BUILDS, _BUILDS.c.id == bindparam("build_id")))
    .where(_TOKENS.c.secret_hash == bindparam("digest"), _TOKENS.c.revoked_at.is_(None))
)
_EVENT_ROWS = (
    select(_EVENTS.c.at, _EVENTS.c.status, _EVENTS.c.phase)
    .where(_EVENTS.c.build_id == bindparam("build_id"))
    .order_by(_EVENTS.c.id)
)


@dataclass(frozen=True)
class PolledBuild:
    caller: Caller
    build: BuildFields
    events: Sequence[EventFields]


def read_polled_build(connection: Connection, secret: str, build_id: str) -> PolledBuild | None:
    """The build and its history as `secret`'s holder may see them; None when the token is
    unknown or revoked; BuildDoesNotExist when there is no such build or it is someone else's
    (the same answer, so ids cannot be probed)."""
    params = {"digest": hash_secret(secret), "build_id": build_id}
    row = connection.execute(_TOKEN_AND_BUILD, params).one_or_none()
    if row is None:
        return None
    caller = Caller(owner=row.caller_owner, admin=row.caller_admin)
    if row.id is None or not caller.can_see(row.owner):
        raise BuildDoesNotExist(build_id)
    events = connection.execute(_EVENT_ROWS, params).all()
    return PolledBuild(caller=caller, build=row, events=events)
