"""Supply-chain routes: a build's SBOM, provenance and image export; the owner's default webhook;
admin-only listing and bulk rebuild of the builds made on a base image digest."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.broker import enqueue_build
from adapters.docker import DockerEngine
from app.deps import (
    AdminCaller,
    BuildForCaller,
    CeleryDep,
    CurrentCaller,
    ExportSlots,
    SessionDep,
    SettingsDep,
)
from app.problems import problem_responses
from app.quotas import holding
from core.builds import rebuilds
from core.builds.resources import BuildOut, build_out
from core.db import utcnow
from core.errors import ArtifactNotAvailable, ImageUnavailable
from core.models import Build, BuildArtifact, OwnerSettings
from core.status import BuildStatus
from core.supply_chain.sbom import MEDIA_TYPE as CYCLONEDX
from core.webhooks.message import new_secret, parse_target
from core.webhooks.signing import active_secrets, check_secret, retire

router = APIRouter(tags=["supply chain"])

DIGEST_PATTERN = r"^[a-z0-9]+:[a-fA-F0-9]{32,128}$"
EXPORT_CHUNK_BYTES = 1024 * 1024
_JSON_OBJECT = {"schema": {"type": "object"}}


def _artifact(session: Session, build: Build, kind: str, what: str) -> dict[str, Any]:
    content = session.scalar(
        select(BuildArtifact.content).where(
            BuildArtifact.build_id == build.id, BuildArtifact.kind == kind
        )
    )
    if content is None:
        raise ArtifactNotAvailable(
            f"Build {build.id} has no {what}: it is made when a build's image is scanned "
            f"(the build is {build.status})."
        )
    return dict(content)


@router.get(
    "/api/v1/builds/{build_id}/sbom",
    response_class=JSONResponse,
    responses={
        200: {"content": {CYCLONEDX: _JSON_OBJECT}, "description": "CycloneDX 1.5 JSON"},
        **problem_responses(401, 404, 503),
    },
)
def get_sbom(build: BuildForCaller, session: SessionDep) -> JSONResponse:
    """The image's software bill of materials (CycloneDX 1.5): its Python packages (with licenses
    and hashes where known) and Debian packages, as found in the built image."""
    document = _artifact(session, build, "sbom", "SBOM")
    return JSONResponse(
        document,
        media_type=CYCLONEDX,
        headers={"Content-Disposition": f'inline; filename="{build.id}.cdx.json"'},
    )


@router.get(
    "/api/v1/builds/{build_id}/provenance",
    response_class=JSONResponse,
    responses={
        200: {"content": {"application/json": _JSON_OBJECT}, "description": "in-toto statement"},
        **problem_responses(401, 404, 503),
    },
)
def get_provenance(build: BuildForCaller, session: SessionDep) -> JSONResponse:
    """How the image was made: an in-toto statement with a SLSA provenance v1 predicate (source
    sha256, options, Dockerfile sha256, base image digest, builder version, worker, timings)."""
    return JSONResponse(_artifact(session, build, "provenance", "provenance"))


def _export_stream(engine: DockerEngine, chunks: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from chunks
    finally:
        engine.close()


@router.get(
    "/api/v1/builds/{build_id}/image",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}},
            "description": "`docker save` output; load it with `docker load -i FILE`",
        },
        **problem_responses(401, 404, 409, 429, 503),
    },
)
def export_image(
    build: BuildForCaller, settings: SettingsDep, caller: CurrentCaller, exports: ExportSlots
) -> StreamingResponse:
    """The image as a `docker save` tar archive, streamed as the daemon writes it, for users
    without a registry: `curl ... | docker load`. Only for succeeded builds whose image is kept.
    An owner may run a limited number of exports at once (429 `quota_exceeded` past it)."""
    if build.status is not BuildStatus.SUCCEEDED or build.image_id is None or build.purged_at:
        raise ImageUnavailable(
            f"Build {build.id} has no image to export (it is {build.status}"
            + (", and its image was removed by retention" if build.purged_at else "")
            + ")."
        )
    if not settings.api_docker_access:
        pushed = build.push or {}
        where = (
            f"; pull it instead: docker pull {pushed['reference']}@{pushed['digest']}"
            if pushed.get("digest")
            else ""
        )
        raise ImageUnavailable(
            f"This API has no access to the build daemon, so it cannot export images{where}."
        )
    slot = exports.take(caller.owner)
    try:
        engine = DockerEngine(settings.docker_cli)
    except BaseException:
        slot.release()
        raise
    try:
        info = engine.find_image(build.image_id)
        if info is None:
            raise ImageUnavailable(f"The image of build {build.id} is no longer on this builder.")
        tags = set(info.get("RepoTags") or [])
        tag = build.image_tag or ""
        name = next((t for t in (tag, f"{tag}:latest") if t in tags), None)
        chunks = engine.save_image(build.image_id, name=name, chunk_size=EXPORT_CHUNK_BYTES)
    except BaseException:
        engine.close()
        slot.release()
        raise
    return StreamingResponse(
        holding(slot, _export_stream(engine, chunks)),
        media_type="application/x-tar",
        headers={"Content-Disposition": f'attachment; filename="{build.id}.tar"'},
    )


# --- the owner's webhook ------------------------------------------------------------------------


class WebhookIn(BaseModel):
    url: str | None = Field(
        description="Receives every terminal build of the owner; null removes it."
    )
    secret: str | None = Field(
        default=None,
        min_length=24,
        max_length=200,
        description="Signing secret to use (`whsec_` + base64 of 24 to 64 random bytes, as the "
        "Standard Webhooks specification has it); default: the current one, or a new random one.",
    )
    rotate_secret: bool = Field(default=False, description="Replace the secret with a new one.")
    previous_secret_seconds: int = Field(
        default=86400,
        ge=0,
        le=7 * 86400,
        description="When the secret is replaced, how long the old one keeps signing deliveries "
        "next to the new one (every active secret has its entry in `webhook-signature`).",
    )

    @field_validator("secret")
    @classmethod
    def _standard_secret(cls, value: str | None) -> str | None:
        return None if value is None else check_secret(value)


class WebhookOut(BaseModel):
    owner: str
    url: str | None
    secret: str = Field(
        description="The current signing secret: the key of `webhook-signature` (Standard "
        "Webhooks) and of the deprecated `X-Imagebuilder-Signature`."
    )
    previous_secrets_expire_at: list[datetime] = Field(
        default_factory=list,
        description="Replaced secrets that still sign deliveries, and until when.",
    )


def _webhook_out(settings: OwnerSettings) -> WebhookOut:
    now = utcnow()
    previous = [
        datetime.fromisoformat(entry["expires_at"])
        for entry in settings.webhook_previous_secrets or []
        if entry.get("secret") in active_secrets(None, [entry], now)
    ]
    return WebhookOut(
        owner=settings.owner,
        url=settings.webhook_url,
        secret=settings.webhook_secret or "",
        previous_secrets_expire_at=previous,
    )


@router.put(
    "/api/v1/owner/webhook", response_model=WebhookOut, responses=problem_responses(401, 422, 503)
)
def put_webhook(
    body: WebhookIn, session: SessionDep, caller: CurrentCaller, settings: SettingsDep
) -> WebhookOut:
    """Set the caller's default webhook: a URL that receives the build resource whenever one of
    the owner's builds ends, signed per the Standard Webhooks specification (`webhook-id`,
    `webhook-timestamp`, `webhook-signature`). A new or rotated secret leaves the old one signing
    for `previous_secret_seconds`. Internal addresses are refused."""
    if body.url is not None:
        parse_target(body.url, allow_private=settings.webhook_allow_private_addresses)
    row = session.get(OwnerSettings, caller.owner)
    if row is None:
        row = OwnerSettings(owner=caller.owner)
        session.add(row)
    row.webhook_url = body.url
    replacement = body.secret
    if replacement is None and (body.rotate_secret or not row.webhook_secret):
        replacement = new_secret()
    if replacement is not None and replacement != row.webhook_secret:
        grace = timedelta(seconds=body.previous_secret_seconds)
        row.webhook_previous_secrets = retire(
            row.webhook_secret, row.webhook_previous_secrets, utcnow(), grace
        )
        row.webhook_secret = replacement
    session.commit()
    return _webhook_out(row)


@router.get(
    "/api/v1/owner/webhook", response_model=WebhookOut, responses=problem_responses(401, 503)
)
def get_webhook(session: SessionDep, caller: CurrentCaller) -> WebhookOut:
    """The caller's default webhook and its signing secret (created here if it has none)."""
    row = session.get(OwnerSettings, caller.owner)
    if row is None or not row.webhook_secret:
        row = row or OwnerSettings(owner=caller.owner)
        row.webhook_secret = new_secret()
        session.add(row)
        session.commit()
    return _webhook_out(row)


# --- admin: builds on a base --------------------------------------------------------------------


class BuildList(BaseModel):
    items: list[BuildOut]


class RebuildItem(BaseModel):
    id: str
    rebuild_of: str


class SkippedItem(BaseModel):
    id: str
    reason: str


class BulkRebuildOut(BaseModel):
    base_digest: str
    queued: list[RebuildItem]
    skipped: list[SkippedItem]


BaseDigest = Annotated[
    str, Query(pattern=DIGEST_PATTERN, description="A base image digest: sha256:<hex>.")
]


@router.get(
    "/api/v1/admin/builds", response_model=BuildList, responses=problem_responses(401, 403, 422)
)
def builds_on_base(
    session: SessionDep,
    _admin: AdminCaller,
    base_digest: BaseDigest,
    limit: Annotated[int, Query(ge=1, le=rebuilds.MAX_REBUILDS)] = 100,
) -> BuildList:
    """Admin only: the builds made on the base image with `base_digest`, newest first."""
    found = rebuilds.builds_on_base(session, base_digest, limit=limit)
    return BuildList(items=[build_out(build) for build in found])


@router.post(
    "/api/v1/admin/rebuild",
    status_code=202,
    response_model=BulkRebuildOut,
    responses=problem_responses(401, 403, 422, 503),
)
def rebuild_on_base(
    session: SessionDep,
    _admin: AdminCaller,
    settings: SettingsDep,
    celery: CeleryDep,
    base_digest: BaseDigest,
    limit: Annotated[int, Query(ge=1, le=rebuilds.MAX_REBUILDS)] = rebuilds.MAX_REBUILDS,
) -> BulkRebuildOut:
    """Admin only: rebuild, as their owners, the newest succeeded build of every owner and tag
    made on the base with `base_digest` (after the base was patched). Builds whose source is no
    longer stored are skipped."""
    report = rebuilds.rebuild_on_base(session, settings, base_digest, limit=limit)
    session.commit()
    for new_id, _old in report.queued:
        enqueue_build(celery, new_id)
    return BulkRebuildOut(
        base_digest=base_digest,
        queued=[RebuildItem(id=new, rebuild_of=old) for new, old in report.queued],
        skipped=[SkippedItem(id=old, reason=why) for old, why in report.skipped],
    )
