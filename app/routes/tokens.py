"""/api/v1/tokens: admin-only creation, listing and revocation of API tokens."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel

from app.deps import AdminCaller, SessionDep
from app.problems import problem_responses
from core.access.tokens import create_token, list_tokens, revoke_token
from core.models import Token

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])


class TokenRequest(BaseModel):
    owner: str
    admin: bool = False


class TokenOut(BaseModel):
    id: str
    owner: str
    admin: bool
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class NewTokenOut(TokenOut):
    token: str


def _out(token: Token) -> TokenOut:
    return TokenOut.model_validate(token, from_attributes=True)


@router.post(
    "", status_code=201, response_model=NewTokenOut, responses=problem_responses(401, 403, 422)
)
def create(body: TokenRequest, session: SessionDep, _admin: AdminCaller) -> NewTokenOut:
    """Create a token for `owner`. The secret (`token`) is shown here, once, and never again."""
    new = create_token(session, owner=body.owner, admin=body.admin)
    session.commit()
    return NewTokenOut(**_out(new.token).model_dump(), token=new.secret)


@router.get("", response_model=list[TokenOut], responses=problem_responses(401, 403))
def list_all(session: SessionDep, _admin: AdminCaller) -> list[TokenOut]:
    """Every token, newest first, without secrets."""
    return [_out(token) for token in list_tokens(session)]


@router.delete(
    "/{token_id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 403, 404),
)
def revoke(token_id: str, session: SessionDep, _admin: AdminCaller) -> Response:
    """Revoke a token: it stops working at once."""
    revoke_token(session, token_id)
    session.commit()
    return Response(status_code=204)
