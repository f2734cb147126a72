"""Where an owner's images live: one namespace per owner, on the build daemon and in the registry.

    daemon     <image_namespace>/<owner>/<the user's tag>        imagebuilder/owners/alice/app:1
    registry   <registry_url>/<owner>/<the user's tag>           registry:5000/ci/alice/app:1

Caches are owned the same way: `cache_scope` prefixes every cache mount id of an owner's builds.

A tag an owner chooses is only ever the last part of that path, so it can never name a base image,
another owner's image or anything else the service uses; a tag that names a registry host is
refused (`tag_not_allowed`). The other direction, images a Dockerfile reads, is checked by
`foreign_images`: an owner's build may read its own namespace, never another owner's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from core.errors import TagNotAllowed
from core.supply_chain.policy import BaseImageUse, parse_reference

# One path component of a Docker reference (distribution/reference).
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_NOT_COMPONENT_CHARACTERS = re.compile(r"[^a-z0-9]+")
MAX_REFERENCE_LENGTH = 255


def owner_component(owner: str) -> str:
    """The owner as one reference path component, distinct for distinct owners.

    An owner name that already is a plain component (lower case, no "--") is used as it is;
    any other (upper case, '@', ...) becomes its lower-cased letters and digits, "--" and a hash
    of the exact name. Encoded names always contain "--" and plain ones never do, so the two
    kinds cannot meet; "Alice" and "alice" stay apart."""
    if _COMPONENT.fullmatch(owner) and "--" not in owner:
        return owner
    readable = _NOT_COMPONENT_CHARACTERS.sub("-", owner.lower()).strip("-")[:40] or "owner"
    readable = re.sub(r"-+", "-", readable)
    return f"{readable}--{hashlib.sha256(owner.encode()).hexdigest()[:12]}"


def cache_scope(owner: str) -> str:
    """The prefix of every BuildKit cache mount id in the owner's builds. BuildKit keys cache
    mounts by id alone, daemon-wide: without it, one owner's build could read or plant files
    (wheels) in the caches another owner's builds install from, or hold their lock."""
    return f"imagebuilder-{hashlib.sha256(owner.encode()).hexdigest()[:24]}"


def check_user_tag(tag: str, *, owner: str, namespace: str) -> None:
    """Refuse, before anything is stored, a tag that `create_build` would refuse: one naming a
    registry host, or one too long once in the owner's namespace."""
    OwnedTag.for_build(owner, tag, build_id="unused").local(namespace)


def _refuse_registry_host(tag: str) -> None:
    """The service, not the tag, decides where images go. (The tag's grammar is checked with
    the other options.)"""
    parsed = parse_reference(tag)
    first, _, rest = tag.partition("/")
    if parsed is None or (rest and ("." in first or ":" in first or first == "localhost")):
        raise TagNotAllowed(
            f"The tag {tag!r} names a registry host. Give a repository and tag such as "
            "'team/app:1.2': the image is kept in your namespace on this service (and pushed "
            "under your path in the configured registry)."
        )


@dataclass(frozen=True)
class OwnedTag:
    """A tag in an owner's namespace: `repository:version` below `<namespace>/<owner>/`."""

    owner: str
    repository: str
    version: str

    @classmethod
    def for_build(cls, owner: str, tag: str | None, build_id: str) -> OwnedTag:
        if tag is None:
            return cls(owner, build_id.lower(), "latest")
        _refuse_registry_host(tag)
        repository, _, version = tag.rpartition(":")
        if not repository or "/" in version:
            repository, version = tag, "latest"
        return cls(owner, repository, version)

    def local(self, namespace: str) -> str:
        """The reference on the build daemon (`push_target` maps it into the registry)."""
        reference = f"{namespace}/{owner_component(self.owner)}/{self.repository}:{self.version}"
        if len(reference) > MAX_REFERENCE_LENGTH:
            raise TagNotAllowed(
                f"The tag is too long: in your namespace it becomes {len(reference)} "
                f"characters, over Docker's {MAX_REFERENCE_LENGTH}."
            )
        return reference


def push_target(registry_url: str, namespace: str, local: str) -> str:
    """Where a local image of an owner's namespace goes in the registry: the same owner path
    and tag below `registry_url` (host[:port][/path])."""
    if not local.startswith(f"{namespace}/"):
        raise TagNotAllowed(f"{local} is not in the image namespace {namespace}; not pushed.")
    return f"{registry_url}/{local.removeprefix(namespace + '/')}"


def _repository(reference: str) -> str | None:
    """`domain/path` of a reference the way the daemon resolves it (docker.io spelled out)."""
    parsed = parse_reference(reference)
    if parsed is None:
        return None
    # Docker reads the legacy registry name as docker.io.
    if parsed.domain == "index.docker.io":
        return f"docker.io/{parsed.path}"
    return parsed.repository


def _under(repository: str, prefix: str) -> bool:
    base = _repository(f"{prefix}/x")
    return base is not None and repository.startswith(base.removesuffix("/x") + "/")


def foreign_images(
    uses: Iterable[BaseImageUse], *, owner: str, namespace: str, registry_url: str = ""
) -> list[BaseImageUse]:
    """The image uses that read another owner's images: any reference below the service's image
    namespace (or the registry's) that is not below the owner's own path there."""
    found = []
    own = owner_component(owner)
    for use in uses:
        repository = _repository(use.reference) if use.reference else None
        if repository is None:
            continue  # not a reference at all: the Dockerfile checks refuse it
        for prefix in filter(None, (namespace, registry_url)):
            if _under(repository, prefix) and not _under(repository, f"{prefix}/{own}"):
                found.append(use)
                break
    return found
