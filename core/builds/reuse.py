"""Reusing an earlier result: what a build's outcome depends on, as one key.

A build's outcome (image, test verdict, scans) is a function of its inputs: the project's files,
the options that steer the build, the base images, the dependency inputs (requirement files and
locks are project files), the settings that judge it (limits, policies), the advisory database
it was scanned against and this service's own version. Two builds of one owner whose inputs are
equal have equal outcomes, so the later one takes the earlier one's result instead of building.

Dependencies that are not pinned resolve as the dependency layer cache resolved them: a build
whose requirement files did not change reuses that layer too, so reusing the result keeps the
same promise. `no_cache=true` builds afresh, without the layer cache.

Claims make two identical submissions build once: the first build to claim a key builds; any
other build with that key waits for it and takes its result when it succeeds (or claims the key
itself when it did not).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.builds.options import BuildOptions
from core.db import utcnow
from core.models import AdvisoryImport, Build, BuildArtifact, ReuseClaim
from core.settings import Settings
from core.status import BuildStatus

# Bump when the pipeline changes what a result means (a new check, a different image layout):
# results recorded under another scheme are never reused.
SCHEME = "1"
# Options that do not change what is built or how it is judged.
_NOT_INPUTS = {"tag", "callback_url", "no_cache"}
# Settings that judge a build: the same image may pass under one and fail under another.
_JUDGING_SETTINGS = (
    "build_timeout_seconds",
    "test_timeout_seconds",
    "test_memory_bytes",
    "test_cpus",
    "test_pids_limit",
    "test_tmpfs_bytes",
    "require_tests",
    "vulnerability_policy",
    "allowed_base_images",
)
# What a reused build takes from the build whose result it reuses.
RESULT_COLUMNS = (
    "image_id",
    "image_size_bytes",
    "tests",
    "base_image",
    "base_image_digest",
    "vulnerabilities",
)


def tree_digest(root: Path) -> str:
    """SHA-256 over the project's files: relative paths, whether executable, contents. Equal for
    the same files however they were zipped (order, timestamps, compression)."""
    digest = hashlib.sha256()
    for path in sorted(_files(root), key=lambda p: p.relative_to(root).as_posix()):
        mode = path.lstat().st_mode
        content = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                content.update(chunk)
        executable = "x" if mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH) else "-"
        name = path.relative_to(root).as_posix()
        digest.update(f"{name}\0{executable}\0{content.hexdigest()}\n".encode())
    return digest.hexdigest()


def _files(root: Path) -> Iterable[Path]:
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                yield path


@dataclass(frozen=True)
class Inputs:
    """Everything a build's outcome depends on (see the module docstring)."""

    tree: str
    options: BuildOptions
    # Every image the Dockerfile reads, with the id this daemon has for it.
    base_images: Mapping[str, str]
    python_version: str
    service_version: str
    advisories: str
    # Private package indexes or other dependency sources that are configured, not in the tree.
    dependency_sources: tuple[str, ...] = ()

    def key(self, settings: Settings) -> str:
        document: dict[str, Any] = {
            "scheme": SCHEME,
            "service": self.service_version,
            "tree": self.tree,
            "options": self.options.model_dump(mode="json", exclude=_NOT_INPUTS),
            "base_images": dict(sorted(self.base_images.items())),
            "python": self.python_version,
            "advisories": self.advisories,
            "dependency_sources": list(self.dependency_sources),
            "settings": {name: _plain(getattr(settings, name)) for name in _JUDGING_SETTINGS},
        }
        text = json.dumps(document, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def _plain(value: object) -> object:
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def advisory_database_version(session: Session) -> str:
    """Which advisory import a scan would match against ("none" before the first)."""
    latest = session.scalar(select(AdvisoryImport.id).order_by(AdvisoryImport.id.desc()).limit(1))
    return "none" if latest is None else str(latest)


# --- claims -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What a build with a key does now: reuse `source`, wait for `holder`, or build (after
    claiming the key, unless it `held` the claim already)."""

    source: Build | None = None
    holder: str | None = None
    held: bool = False


def decide(session: Session, *, owner: str, key: str, build_id: str) -> Decision:
    """Reuse the newest succeeded build of `owner` with `key` (not purged); else wait for the
    build that holds the key's claim while it runs; else build (after `claim`)."""
    source = session.scalars(
        select(Build)
        .where(
            Build.owner == owner,
            Build.reuse_key == key,
            Build.status == BuildStatus.SUCCEEDED,
            Build.purged_at.is_(None),
            Build.image_id.is_not(None),
            Build.id != build_id,
        )
        .order_by(Build.id.desc())
        .limit(1)
    ).first()
    if source is not None:
        return Decision(source=source)
    holder = session.scalar(
        select(ReuseClaim.build_id).where(ReuseClaim.owner == owner, ReuseClaim.key == key)
    )
    if holder == build_id:
        # This build claimed the key on an earlier attempt (handed back, now retried).
        return Decision(held=True)
    if holder is None:
        return Decision()
    holder_status = session.scalar(select(Build.status).where(Build.id == holder))
    if holder_status is not None and not holder_status.terminal:
        return Decision(holder=holder)
    # The holder ended without a result to take, or is gone: its claim is stale.
    session.execute(delete(ReuseClaim).where(ReuseClaim.build_id == holder))
    return Decision()


def claim(session: Session, *, owner: str, key: str, build_id: str) -> None:
    """Claim `key` for `build_id`; the commit fails (IntegrityError) when another build holds
    it already: then `decide` again."""
    session.add(ReuseClaim(owner=owner, key=key, build_id=build_id, at=utcnow()))
    session.flush()


def release(session: Session, *, build_id: str) -> None:
    """Drop the claims `build_id` holds: its outcome is recorded, waiters decide again."""
    session.execute(delete(ReuseClaim).where(ReuseClaim.build_id == build_id))


def copy_artifacts(session: Session, *, source_id: str, build_id: str) -> list[str]:
    """The SBOM of the reused result, recorded for the new build too; the kinds copied."""
    copied = []
    for artifact in session.scalars(
        select(BuildArtifact).where(
            BuildArtifact.build_id == source_id, BuildArtifact.kind == "sbom"
        )
    ):
        session.merge(
            BuildArtifact(build_id=build_id, kind=artifact.kind, content=artifact.content)
        )
        copied.append(artifact.kind)
    return copied
