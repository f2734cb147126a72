"""The public build resource (API.md): what the API returns and webhooks send for a build."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Row

from core.models import Build, BuildEvent
from core.status import BuildStatus, Phase


class SourceOut(BaseModel):
    filename: str
    size_bytes: int
    sha256: str
    files: int


class OptionsOut(BaseModel):
    tag: str | None
    python_version: str | None
    run_tests: bool
    test_command: str | None
    dockerfile: str | None
    context_dir: str | None
    build_args: dict[str, str]
    callback_url: str | None = None
    no_cache: bool = False


class ImageOut(BaseModel):
    tag: str
    id: str
    size_bytes: int


class TestsOut(BaseModel):
    command: str
    # pytest, unittest, django or custom; null on builds recorded before it existed.
    runner: str | None = None
    exit_code: int
    passed: int
    failed: int
    errors: int
    skipped: int


class ErrorOut(BaseModel):
    code: str
    message: str


class PhaseOut(BaseModel):
    phase: Phase
    started_at: datetime
    finished_at: datetime | None
    duration_seconds: float | None


class LogInfo(BaseModel):
    lines: int
    bytes: int
    truncated: bool


class Links(BaseModel):
    self: str
    logs: str
    dockerfile: str
    sbom: str
    provenance: str
    image: str


class VulnerabilityOut(BaseModel):
    id: str
    package: str
    installed_version: str
    fixed_version: str | None = None
    severity: str
    summary: str | None = None
    aliases: list[str] = Field(default_factory=list)
    ecosystem: str = Field(default="PyPI", description="PyPI, or Debian:<release>.")


class PushOut(BaseModel):
    status: str
    reference: str | None = None
    digest: str | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = None


class PackageOut(BaseModel):
    type: str = Field(description="The package URL type: pypi or deb.")
    name: str
    version: str


class PackageChangeOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    type: str
    name: str
    from_: str = Field(alias="from")
    to: str


class PackageChangesOut(BaseModel):
    added: list[PackageOut]
    removed: list[PackageOut]
    changed: list[PackageChangeOut]


class AdvisoryChangeOut(BaseModel):
    id: str
    package: str
    severity: str | None
    installed_version: str | None


class AdvisoryChangesOut(BaseModel):
    new: list[AdvisoryChangeOut]
    fixed: list[AdvisoryChangeOut]


class ChangesOut(BaseModel):
    """Against the owner's previous succeeded build of the same project (the tag's repository,
    else the project's declared name)."""

    previous: str
    size_bytes_delta: int | None
    packages: PackageChangesOut | None = Field(description="null when either has no SBOM.")
    advisories: AdvisoryChangesOut | None = Field(description="null when either was not scanned.")


class BuildSummaryOut(BaseModel):
    """A build as lists show it: the build resource without its large fields (`plan`, with the
    Dockerfile lint findings), which `GET /api/v1/builds/{id}` returns. The Dockerfile itself has
    its own route."""

    id: str
    status: BuildStatus
    phase: Phase | None = Field(description="While running: the current phase.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    source: SourceOut
    options: OptionsOut
    image: ImageOut | None
    tests: TestsOut | None
    error: ErrorOut | None
    links: Links
    # Extensions to API.md:
    phases: list[PhaseOut] = Field(description="Each phase entered, with its duration.")
    attempts: int
    cancel_requested: bool
    rebuild_of: str | None
    log: LogInfo
    base_image: str | None = Field(description="The image the runtime stage is built on.")
    base_image_digest: str | None
    vulnerabilities: list[VulnerabilityOut] | None = Field(
        description="Advisories matching the image's Python packages; null until scanned."
    )
    push: PushOut | None
    host: str | None = Field(
        default=None, description="The build host that ran the build; null until claimed."
    )
    reused_from: str | None = Field(
        default=None,
        description="The earlier build whose result this one took instead of building.",
    )


class BuildOut(BuildSummaryOut):
    """The build resource (API.md)."""

    plan: dict[str, Any] | None = Field(description="What detection decided, with reasons.")
    changes: ChangesOut | None = Field(
        default=None,
        description="What changed since the project's previous succeeded build; null for the "
        "first.",
    )


class BuildPage(BaseModel):
    items: list[BuildSummaryOut]
    next_cursor: str | None


# What the resource is made from: a `Build` or a row of the builds table (the status poll reads
# plain rows: making ORM objects would cost more than the query), and its history likewise.
BuildFields = Build | Row[Any]
EventFields = BuildEvent | Row[Any, Any, Any]


def phases_of(events: Sequence[EventFields]) -> list[PhaseOut]:
    """Phase timings from the history: a phase lasts until the next recorded change."""
    phases: list[PhaseOut] = []
    for index, event in enumerate(events):
        if event.phase is None:
            continue
        following = events[index + 1] if index + 1 < len(events) else None
        end = following.at if following is not None else None
        phases.append(
            PhaseOut(
                phase=event.phase,
                started_at=event.at,
                finished_at=end,
                duration_seconds=(end - event.at).total_seconds() if end else None,
            )
        )
    return phases


def build_out(build: BuildFields, events: Sequence[EventFields] | None = None) -> BuildOut:
    changes = None if build.changes is None else ChangesOut.model_validate(build.changes)
    return BuildOut(**_summary_fields(build, events), plan=build.plan, changes=changes)


def build_summary_out(
    build: BuildFields, events: Sequence[EventFields] | None = None
) -> BuildSummaryOut:
    """The list form: reads none of the large columns, which a list query leaves unloaded."""
    return BuildSummaryOut(**_summary_fields(build, events))


def _summary_fields(build: BuildFields, events: Sequence[EventFields] | None) -> dict[str, Any]:
    base = f"/api/v1/builds/{build.id}"
    image = None
    if build.image_id is not None and build.image_tag is not None:
        image = ImageOut(
            tag=build.image_tag, id=build.image_id, size_bytes=build.image_size_bytes or 0
        )
    error = None
    if build.error_code is not None:
        error = ErrorOut(code=build.error_code, message=build.error_message or "")
    history = events if events is not None else build.events
    return {
        "id": build.id,
        "status": build.status,
        "phase": build.phase,
        "created_at": build.created_at,
        "started_at": build.started_at,
        "finished_at": build.finished_at,
        "source": SourceOut(
            filename=build.source_filename,
            size_bytes=build.source_size_bytes,
            sha256=build.source_sha256,
            files=build.source_files,
        ),
        "options": OptionsOut.model_validate(build.options),
        "image": image,
        "tests": TestsOut.model_validate(build.tests) if build.tests else None,
        "error": error,
        "links": Links(
            self=base,
            logs=f"{base}/logs",
            dockerfile=f"{base}/dockerfile",
            sbom=f"{base}/sbom",
            provenance=f"{base}/provenance",
            image=f"{base}/image",
        ),
        "phases": phases_of(history),
        "attempts": build.attempts,
        "cancel_requested": build.cancel_requested_at is not None,
        "rebuild_of": build.rebuild_of,
        "log": LogInfo(lines=build.log_lines, bytes=build.log_bytes, truncated=build.log_truncated),
        "base_image": build.base_image,
        "base_image_digest": build.base_image_digest,
        "vulnerabilities": (
            None
            if build.vulnerabilities is None
            else [VulnerabilityOut.model_validate(item) for item in build.vulnerabilities]
        ),
        "push": PushOut.model_validate(build.push) if build.push else None,
        "host": build.host,
        "reused_from": build.reused_from,
    }
