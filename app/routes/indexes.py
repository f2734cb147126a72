"""/api/v1/owner/indexes: the private package indexes an owner's builds install from.

Credentials go in (PUT) and never come out: they are stored encrypted and reach builds only as
BuildKit secrets. Admins pass `?owner=NAME` to manage an owner's indexes, `?owner=_global` for the
indexes every owner's builds use."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from app.deps import CurrentCaller, SessionDep, SettingsDep
from app.problems import problem_responses
from core.access.package_indexes import (
    GLOBAL_SCOPE,
    delete_index,
    list_indexes,
    put_index,
    resolve_scope,
)
from core.access.secret_box import secret_box
from core.models import PackageIndex

router = APIRouter(prefix="/api/v1/owner/indexes", tags=["package indexes"])

OwnerScope = Annotated[
    str | None,
    Query(
        max_length=100,
        description=f"Admins only: the owner whose indexes to manage, or `{GLOBAL_SCOPE}` for "
        "the indexes every owner's builds use. Default: the caller's own.",
    ),
]
IndexName = Annotated[str, Path(max_length=64, description="1 to 64 of a-z, 0-9, '.', '_', '-'.")]


class IndexIn(BaseModel):
    url: str = Field(
        max_length=2000,
        description="The index's simple API (PEP 503), https://, without credentials.",
    )
    username: str | None = Field(default=None, max_length=1000)
    password: str | None = Field(
        default=None,
        max_length=1000,
        description="Stored encrypted; never returned, logged or written into a build's layers.",
    )
    default: bool = Field(
        default=False,
        description="Replace PyPI as the primary index for the owner's builds (a mirror that "
        "proxies PyPI); otherwise an extra index, searched before the default one.",
    )


class IndexOut(BaseModel):
    name: str
    owner: str = Field(description=f"The scope: an owner, or `{GLOBAL_SCOPE}`.")
    url: str
    default: bool
    has_credentials: bool
    created_at: datetime
    updated_at: datetime


def _out(row: PackageIndex) -> IndexOut:
    return IndexOut(
        name=row.name,
        owner=row.owner,
        url=row.url,
        default=row.is_default,
        has_credentials=row.credentials is not None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.put("/{name}", response_model=IndexOut, responses=problem_responses(401, 403, 422, 503))
def put(
    name: IndexName,
    body: IndexIn,
    session: SessionDep,
    caller: CurrentCaller,
    settings: SettingsDep,
    owner: OwnerScope = None,
) -> IndexOut:
    """Register (or replace) a package index. The credentials are stored encrypted and never
    returned; builds get them as a BuildKit netrc secret in the steps that install only. A
    `default` index replaces PyPI (the scope's previous default becomes an extra index)."""
    scope = resolve_scope(caller, owner)
    row = put_index(
        session,
        secret_box(settings),
        owner=scope,
        name=name,
        url=body.url,
        username=body.username,
        password=body.password,
        default=body.default,
        allow_http=settings.index_allow_http,
    )
    session.commit()
    return _out(row)


@router.get("", response_model=list[IndexOut], responses=problem_responses(401, 403, 503))
def list_all(
    session: SessionDep, caller: CurrentCaller, owner: OwnerScope = None
) -> list[IndexOut]:
    """The indexes the owner's builds use: its own, then the global ones (an own index hides a
    global one of the same name). URLs without credentials."""
    return [_out(row) for row in list_indexes(session, resolve_scope(caller, owner))]


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 503),
)
def delete(
    name: IndexName, session: SessionDep, caller: CurrentCaller, owner: OwnerScope = None
) -> Response:
    """Remove a package index (and its credentials) from the scope."""
    delete_index(session, owner=resolve_scope(caller, owner), name=name)
    session.commit()
    return Response(status_code=204)
