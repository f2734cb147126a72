"""What changed since a project's previous build: image size, packages, advisories.

A project is one owner's line of builds: the repository of the tag the user asked for
(`myapp` of `myapp:1.2`), else the name the project declares. Each succeeded build is compared
with the newest earlier succeeded build of the same project, from what both recorded: the image
size, the SBOM's packages (Python and Debian) and the advisory matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.builds.options import BuildOptions
from core.models import Build, BuildArtifact
from core.status import BuildStatus

_PURL_TYPE = re.compile(r"^pkg:([a-z0-9.+-]+)/")


def project_of(options: BuildOptions, declared_name: str | None) -> str | None:
    """The project a build belongs to: the tag's repository, else the declared name."""
    if options.tag:
        repository, _, tag = options.tag.rpartition(":")
        return repository if repository and "/" not in tag else options.tag
    if declared_name:
        return re.sub(r"[-_.]+", "-", declared_name).lower()
    return None


def previous_build(session: Session, *, owner: str, project: str, before: str) -> Build | None:
    """The newest succeeded build of `owner`'s `project` created before build `before`."""
    return session.scalars(
        select(Build)
        .where(
            Build.owner == owner,
            Build.project == project,
            Build.status == BuildStatus.SUCCEEDED,
            Build.id < before,
        )
        .order_by(Build.id.desc())
        .limit(1)
    ).first()


def sbom_packages(session: Session, build_id: str) -> dict[tuple[str, str], str] | None:
    """(ecosystem, name) → version from the build's SBOM; None when it has none."""
    content = session.scalar(
        select(BuildArtifact.content).where(
            BuildArtifact.build_id == build_id, BuildArtifact.kind == "sbom"
        )
    )
    if content is None:
        return None
    return packages_of(content)


def packages_of(document: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    packages: dict[tuple[str, str], str] = {}
    for component in document.get("components") or []:
        if not isinstance(component, dict):
            continue
        name, version = component.get("name"), component.get("version")
        match = _PURL_TYPE.match(str(component.get("purl") or ""))
        if isinstance(name, str) and isinstance(version, str) and match:
            packages[(match.group(1), name)] = version
    return packages


def compare(
    *,
    previous_id: str,
    size: tuple[int | None, int | None],
    packages: tuple[Mapping[tuple[str, str], str] | None, Mapping[tuple[str, str], str] | None],
    advisories: tuple[Iterable[Mapping[str, Any]] | None, Iterable[Mapping[str, Any]] | None],
) -> dict[str, Any]:
    """The `changes` of the build resource: each pair is (previous, current)."""
    before_size, after_size = size
    result: dict[str, Any] = {
        "previous": previous_id,
        "size_bytes_delta": (
            after_size - before_size if before_size is not None and after_size is not None else None
        ),
        "packages": None,
        "advisories": None,
    }
    before, after = packages
    if before is not None and after is not None:
        result["packages"] = {
            "added": [_package(key, after[key]) for key in sorted(after.keys() - before.keys())],
            "removed": [_package(key, before[key]) for key in sorted(before.keys() - after.keys())],
            "changed": [
                {"type": key[0], "name": key[1], "from": before[key], "to": after[key]}
                for key in sorted(before.keys() & after.keys())
                if before[key] != after[key]
            ],
        }
    old, new = advisories
    if old is not None and new is not None:
        old_found, new_found = _findings(old), _findings(new)
        result["advisories"] = {
            "new": [new_found[key] for key in sorted(new_found.keys() - old_found.keys())],
            "fixed": [old_found[key] for key in sorted(old_found.keys() - new_found.keys())],
        }
    return result


def _package(key: tuple[str, str], version: str) -> dict[str, str]:
    return {"type": key[0], "name": key[1], "version": version}


def _findings(items: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for item in items:
        key = (str(item.get("id")), str(item.get("package")))
        found[key] = {
            "id": key[0],
            "package": key[1],
            "severity": item.get("severity"),
            "installed_version": item.get("installed_version"),
        }
    return found


def changes_since_previous(session: Session, build: Build) -> dict[str, Any] | None:
    """`build`'s changes against its project's previous succeeded build (None for a first
    build, or one that belongs to no project). Reads `build`'s recorded result."""
    if build.project is None:
        return None
    previous = previous_build(session, owner=build.owner, project=build.project, before=build.id)
    if previous is None:
        return None
    return compare(
        previous_id=previous.id,
        size=(previous.image_size_bytes, build.image_size_bytes),
        packages=(sbom_packages(session, previous.id), sbom_packages(session, build.id)),
        advisories=(previous.vulnerabilities, build.vulnerabilities),
    )
