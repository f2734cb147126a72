"""Typed models of what the API returns (the contract: docs/openapi.json).

Pydantic, because a client must both check what a server sent and tolerate what a newer server
adds: unknown fields are kept (`model_extra`) rather than refused, and statuses stay strings so
a status a newer server introduces does not break an older client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "error", "timed_out", "cancelled"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Source(_Model):
    filename: str
    size_bytes: int
    sha256: str
    files: int


class Options(_Model):
    tag: str | None = None
    python_version: str | None = None
    run_tests: bool = True
    test_command: str | None = None
    dockerfile: str | None = None
    context_dir: str | None = None
    build_args: dict[str, str] = Field(default_factory=dict)
    callback_url: str | None = None
    no_cache: bool = False


class Image(_Model):
    tag: str
    id: str
    size_bytes: int


class Tests(_Model):
    command: str
    exit_code: int
    passed: int
    failed: int
    errors: int
    skipped: int


class Error(_Model):
    code: str
    message: str


class PhaseTiming(_Model):
    phase: str
    started_at: datetime
    finished_at: datetime | None = None
    duration_seconds: float | None = None


class Vulnerability(_Model):
    id: str
    package: str
    installed_version: str
    fixed_version: str | None = None
    severity: str
    summary: str | None = None
    aliases: list[str] = Field(default_factory=list)
    ecosystem: str = "PyPI"


class PackageVersion(_Model):
    type: str
    name: str
    version: str


class PackageChange(_Model):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    type: str
    name: str
    from_: str = Field(alias="from")
    to: str


class PackageChanges(_Model):
    added: list[PackageVersion] = Field(default_factory=list)
    removed: list[PackageVersion] = Field(default_factory=list)
    changed: list[PackageChange] = Field(default_factory=list)


class AdvisoryChange(_Model):
    id: str
    package: str
    severity: str | None = None
    installed_version: str | None = None


class AdvisoryChanges(_Model):
    new: list[AdvisoryChange] = Field(default_factory=list)
    fixed: list[AdvisoryChange] = Field(default_factory=list)


class Changes(_Model):
    """What changed since the project's previous succeeded build."""

    previous: str
    size_bytes_delta: int | None = None
    packages: PackageChanges | None = None
    advisories: AdvisoryChanges | None = None


class Build(_Model):
    """The build resource."""

    id: str
    status: str
    phase: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    source: Source
    options: Options
    image: Image | None = None
    tests: Tests | None = None
    error: Error | None = None
    links: dict[str, str] = Field(default_factory=dict)
    phases: list[PhaseTiming] = Field(default_factory=list)
    plan: dict[str, Any] | None = None
    rebuild_of: str | None = None
    base_image: str | None = None
    base_image_digest: str | None = None
    vulnerabilities: list[Vulnerability] | None = None
    host: str | None = None
    reused_from: str | None = None
    changes: Changes | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


class BuildPage(_Model):
    items: list[Build]
    next_cursor: str | None = None


class Plan(_Model):
    plan: dict[str, Any]
    dockerfile: str
    generated: bool


class Webhook(_Model):
    owner: str
    url: str | None = None
    secret: str
    previous_secrets_expire_at: list[datetime] = Field(default_factory=list)


class PackageIndex(_Model):
    """A registered package index; its credentials are never returned."""

    name: str
    owner: str
    url: str
    default: bool
    has_credentials: bool
    created_at: datetime
    updated_at: datetime


class Token(_Model):
    id: str
    owner: str
    admin: bool
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None


class NewToken(Token):
    token: str


class RebuildItem(_Model):
    id: str
    rebuild_of: str


class SkippedItem(_Model):
    id: str
    reason: str


class BulkRebuild(_Model):
    base_digest: str
    queued: list[RebuildItem]
    skipped: list[SkippedItem]
