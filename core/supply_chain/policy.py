"""What the supply chain lets through: base images by allowlist, findings by severity.

Base images. A project's own Dockerfile names the images it builds on in `FROM`, `COPY --from=`
and `RUN --mount=...,from=` (its ONBUILD triggers too); each must match a pattern of the allowlist,
checked before anything is built (BuildKit would pull and run them). Which images those are is
read by BuildKit's own parser (core.dockerfile.syntax, which refuses what it cannot resolve).
A reference is compared in its familiar form (`python:3.11`) and its canonical one
(`docker.io/library/python:3.11`). In patterns `*` and `?` stay within one path segment, `**`
crosses them: `python:3.*-slim`, `registry.example.com/base/**`.

Severity policy: findings at or above the policy fail the build; "none" only reports them. An
advisory without a rating counts as "low" (reported always, blocking only under "low").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from core.dockerfile.syntax import ImageUse, image_uses, stage_bases
from core.supply_chain.advisories import Finding

POLICIES = ("none", "low", "medium", "high", "critical")
_RANK = {"unknown": 1, "low": 1, "medium": 2, "high": 3, "critical": 4}
_POLICY_RANK = {"none": None, "low": 1, "medium": 2, "high": 3, "critical": 4}

DEFAULT_DOMAIN = "docker.io"


def blocking(findings: Iterable[Finding], policy: str) -> list[Finding]:
    """The findings that the policy turns into a failed build."""
    threshold = _POLICY_RANK[policy]
    if threshold is None:
        return []
    return [f for f in findings if _RANK.get(f.severity, 1) >= threshold]


# --- image references ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageReference:
    domain: str
    path: str
    tag: str | None
    digest: str | None

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    @property
    def canonical(self) -> str:
        return f"{self.domain}/{self.path}{self._suffix()}"

    @property
    def familiar(self) -> str:
        path = self.path
        if self.domain == DEFAULT_DOMAIN:
            path = path.removeprefix("library/")
            return path + self._suffix()
        return f"{self.domain}/{path}{self._suffix()}"

    @property
    def repository(self) -> str:
        """domain/path, without tag or digest."""
        return f"{self.domain}/{self.path}"

    def forms(self) -> list[str]:
        """Every spelling a pattern may be written against (with an implicit `:latest`)."""
        forms = [self.familiar, self.canonical]
        if self.tag is None and self.digest is None:
            forms += [f"{self.familiar}:latest", f"{self.canonical}:latest"]
        return forms


_REFERENCE = re.compile(
    r"^(?P<name>[a-zA-Z0-9][a-zA-Z0-9._\-/:]*?)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}))?"
    r"(?:@(?P<digest>[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-fA-F0-9]{32,}))?$"
)


_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")


def parse_reference(text: str) -> ImageReference | None:
    """`[domain/]path[:tag][@digest]` as Docker reads it; None when it is not a reference."""
    match = _REFERENCE.match(text.strip())
    if match is None:
        return None
    name = match.group("name")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if not _PATH.fullmatch(path):
        return None
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"library/{path}"
    return ImageReference(domain.lower(), path, match.group("tag"), match.group("digest"))


def _compile(pattern: str) -> re.Pattern[str]:
    parts = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**", index):
            parts.append(".*")
            index += 2
            continue
        char = pattern[index]
        parts.append("[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char))
        index += 1
    return re.compile("".join(parts))


def is_allowed(reference: str, patterns: Iterable[str]) -> bool:
    """Whether an image reference matches one of the allowlist's patterns."""
    parsed = parse_reference(reference)
    if parsed is None:
        return False
    forms = parsed.forms()
    return any(_compile(p).fullmatch(form) for p in patterns for form in forms)


# --- the images a Dockerfile uses ---------------------------------------------------------------

# What BuildKit's parser finds (core.dockerfile.syntax); kept under its old name for callers.
BaseImageUse = ImageUse
__all__ = [
    "BaseImageUse",
    "ImageReference",
    "Violation",
    "blocking",
    "check_base_images",
    "final_base_image",
    "image_uses",
    "is_allowed",
    "parse_reference",
]


@dataclass(frozen=True)
class Violation:
    line: int
    reference: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reference or '(empty)'}: {self.reason}"


def check_base_images(
    text: str, allowlist: Iterable[str], build_args: Mapping[str, str] | None = None
) -> list[Violation]:
    """The image uses that the allowlist refuses; [] when the allowlist is empty (off)."""
    patterns = list(allowlist)
    if not patterns:
        return []
    violations = []
    for use in image_uses(text, build_args):
        if not use.reference:
            violations.append(
                Violation(use.line, use.written, "the image is empty once arguments are resolved")
            )
        elif parse_reference(use.reference) is None:
            violations.append(Violation(use.line, use.reference, "not a valid image reference"))
        elif not is_allowed(use.reference, patterns):
            violations.append(Violation(use.line, use.reference, "not on the allowlist"))
    return violations


def final_base_image(
    text: str, build_args: Mapping[str, str] | None = None, target: str | None = None
) -> str | None:
    """The image the built stage (`target`, else the last) ultimately starts from; None for
    `scratch` or when it cannot be told. DockerfileInvalid when BuildKit's parser refuses it."""
    stages = stage_bases(text, build_args)
    if not stages:
        return None
    chosen = stages[-1]
    if target:
        named = [pair for pair in stages if pair[0].name == target.lower()]
        if not named:
            return None
        chosen = named[0]
    stage, image = chosen
    for _ in range(len(stages)):
        if image == "scratch":
            return None
        parents = [pair for pair in stages[: stage.index] if pair[0].name == image.lower()]
        if not parents:
            return image
        stage, image = parents[0]
    return None
