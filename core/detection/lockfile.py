"""The packages a pinned requirements file locks (`name==version` lines, as `uv pip compile` or
`pip-compile` write them), for checking a lock against the advisory database."""

from __future__ import annotations

import re

from packaging.requirements import InvalidRequirement, Requirement

from core.supply_chain.advisories import normalize_name

_CONTINUATION = re.compile(r"\\\n")


class LockInvalid(Exception):
    """A line of the lock is not an exact pin."""


def locked_packages(text: str) -> list[tuple[str, str]]:
    """(normalized name, version) for every pin; hashes, comments and markers are ignored, and an
    unpinned line is an error, since a lock that floats cannot be checked."""
    packages: list[tuple[str, str]] = []
    for number, raw in enumerate(_CONTINUATION.sub(" ", text).splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        spec = line.split(" --hash", 1)[0].strip()
        try:
            requirement = Requirement(spec)
        except InvalidRequirement as exc:
            raise LockInvalid(f"line {number}: {exc}") from exc
        pins = [s for s in requirement.specifier if s.operator in ("==", "===")]
        if len(pins) != 1 or len(requirement.specifier) != 1:
            raise LockInvalid(f"line {number}: {requirement.name} is not pinned with ==")
        packages.append((normalize_name(requirement.name), pins[0].version))
    return packages
