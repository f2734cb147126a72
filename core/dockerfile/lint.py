"""A small Dockerfile linter for projects that bring their own, and the frontend guard.

The rules follow hadolint's most useful ones (its codes in brackets):

    IB001 FROM an image without a tag or with `latest`              [DL3006, DL3007]
    IB002 the final stage runs as root (no USER, or USER root/0)    [DL3002]
    IB003 apt-get install without --no-install-recommends           [DL3015]
    IB004 apt-get install without removing /var/lib/apt/lists       [DL3009]
    IB005 ADD of local files (COPY says what it does)               [DL3020]
    IB006 pip install without --no-cache-dir (and no cache mount)   [DL3042]
    IB007 apt-get upgrade / dist-upgrade                            [DL3005]

A missing HEALTHCHECK is fine. Instructions come from BuildKit's own parser
(core.dockerfile.syntax), which also finds a syntax directive (`frontend_reference`): BuildKit
would pull that image and run it as the Dockerfile frontend, foreign code inside the builder, so
the pipeline refuses it (and BUILDKIT_* build arguments, BUILDKIT_SYNTAX among them). Past
MAX_FINDINGS, one last finding (IB000) counts the rest: a huge Dockerfile stays a short report.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass
from typing import Any

from core.dockerfile.syntax import DockerfileInvalid, Instruction, frontend_reference, stage_bases
from core.dockerfile.syntax import parse as read_dockerfile

__all__ = ["FRONTEND_BUILD_ARG", "Finding", "Instruction", "frontend_reference", "lint", "parse"]
FRONTEND_BUILD_ARG = "BUILDKIT_SYNTAX"

MAX_FINDINGS = 100


@dataclass(frozen=True)
class Finding:
    rule: str
    line: int
    message: str
    severity: str = "warning"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"line {self.line}: {self.rule} {self.message}"


def parse(text: str) -> list[Instruction]:
    """The instructions as BuildKit's parser reads them (DockerfileInvalid when it refuses)."""
    return list(read_dockerfile(text, max_bytes=None).instructions)


def lint(text: str, *, limit: int = MAX_FINDINGS) -> list[Finding]:
    """The findings, sorted by line; past `limit`, one last finding counts the rest."""
    instructions = parse(text)
    try:
        bases = {stage.line: image for stage, image in stage_bases(text)}
    except DockerfileInvalid:
        bases = {}  # a base that cannot be resolved is the supply-chain check's business
    findings: list[Finding] = []
    stages: set[str] = set()
    # The user each finished stage ends with: a stage built FROM another inherits it.
    stage_users: dict[str, tuple[str, int] | None] = {}
    current: str | None = None
    final_user: tuple[str, int] | None = None
    last_from = 0
    for item in instructions:
        if item.keyword == "FROM":
            if current is not None:
                stage_users[current] = final_user
            parent = item.value[0].lower()
            final_user = stage_users.get(parent)
            current = item.value[2].lower() if len(item.value) == 3 else None
            last_from = item.line
            findings += _check_from(item, stages, bases.get(item.line))
        elif item.keyword == "USER":
            final_user = (item.arguments.split(":")[0].strip(), item.line)
        elif item.keyword == "RUN":
            findings += _check_run(item)
        elif item.keyword == "ADD":
            findings += _check_add(item)
    if last_from and (final_user is None or final_user[0] in ("root", "0")):
        where = final_user[1] if final_user else last_from
        findings.append(
            Finding(
                "IB002",
                where,
                "the image runs as root: add `USER <non-root uid>` to the final stage",
            )
        )
    findings.sort(key=lambda finding: (finding.line, finding.rule))
    if len(findings) > limit:
        rest = len(findings) - limit
        findings = findings[:limit]
        findings.append(Finding("IB000", findings[-1].line, f"and {rest} more findings"))
    return findings


def _check_from(item: Instruction, stages: set[str], image: str | None) -> list[Finding]:
    if len(item.value) == 3:
        stages.add(item.value[2].lower())
    if not image or image.lower() in stages or image == "scratch" or "@" in image:
        return []
    name = image.rsplit("/", 1)[-1]
    if ":" not in name:
        return [Finding("IB001", item.line, f"FROM {image} has no tag: pin a version")]
    if name.endswith(":latest"):
        return [Finding("IB001", item.line, f"FROM {image} uses `latest`: pin a version")]
    return []


def _check_run(item: Instruction) -> list[Finding]:
    command = item.arguments
    findings: list[Finding] = []
    if re.search(r"\bapt-get\b[^;&|]*\binstall\b", command):
        if "--no-install-recommends" not in command:
            findings.append(
                Finding(
                    "IB003",
                    item.line,
                    "apt-get install without --no-install-recommends pulls in extra packages",
                )
            )
        if "/var/lib/apt/lists" not in command and "type=cache" not in command:
            findings.append(
                Finding(
                    "IB004",
                    item.line,
                    "apt-get install without `rm -rf /var/lib/apt/lists/*` in the same RUN "
                    "keeps the package lists in the layer",
                )
            )
    if re.search(r"\bapt-get\b[^;&|]*\b(dist-)?upgrade\b", command):
        findings.append(
            Finding("IB007", item.line, "apt-get upgrade in an image: pin a newer base instead")
        )
    for segment in re.split(r"&&|;|\|\|", command):
        uv = re.search(r"\buv\s+pip\s+install\b", segment) is not None
        if (
            re.search(r"\bpip3?\s+install\b|\bpython3?\s+-m\s+pip\s+install\b", segment)
            and "--no-cache-dir" not in segment
            and not (uv and "--no-cache" in segment)
            and "type=cache" not in command
            and "PIP_NO_CACHE_DIR" not in command
        ):
            findings.append(
                Finding(
                    "IB006",
                    item.line,
                    "pip install without --no-cache-dir keeps pip's cache in the layer",
                )
            )
            break
    return findings


def _check_add(item: Instruction) -> list[Finding]:
    try:
        words = shlex.split(item.arguments)
    except ValueError:
        words = item.arguments.split()
    sources = [w for w in words if not w.startswith("--")][:-1]
    local = [
        s
        for s in sources
        if not re.match(r"^(https?|git)://|^git@", s)
        and not re.search(r"\.(tar|tar\.\w+|tgz|tbz2?|txz)$", s)
    ]
    if local:
        return [
            Finding(
                "IB005",
                item.line,
                f"ADD {' '.join(local)}: use COPY for local files (ADD also unpacks and fetches)",
            )
        ]
    return []
