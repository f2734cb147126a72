"""A small Dockerfile linter for projects that bring their own, and the frontend guard.

The rules follow hadolint's most useful ones (its codes in brackets):

    IB001 FROM an image without a tag or with `latest`              [DL3006, DL3007]
    IB002 the final stage runs as root (no USER, or USER root/0)    [DL3002]
    IB003 apt-get install without --no-install-recommends           [DL3015]
    IB004 apt-get install without removing /var/lib/apt/lists       [DL3009]
    IB005 ADD of local files (COPY says what it does)               [DL3020]
    IB006 pip install without --no-cache-dir (and no cache mount)   [DL3042]
    IB007 apt-get upgrade / dist-upgrade                            [DL3005]

A missing HEALTHCHECK is fine. `frontend_reference` finds a `# syntax=` parser directive: BuildKit
would pull that image and run it as the Dockerfile frontend, foreign code inside the builder, so
the pipeline refuses it (and the BUILDKIT_SYNTAX build argument, which does the same).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass
from typing import Any

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_INSTRUCTION = re.compile(r"^\s*([A-Za-z]+)(?:\s+(.*))?$", re.S)
FRONTEND_BUILD_ARG = "BUILDKIT_SYNTAX"


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


@dataclass(frozen=True)
class Instruction:
    line: int  # where it starts, 1-based
    keyword: str  # upper case
    arguments: str  # continuation lines joined, comments inside dropped


def frontend_reference(text: str) -> str | None:
    """The image named by a `# syntax=` parser directive, if the Dockerfile has one."""
    for raw in text.lstrip("\ufeff").splitlines():
        line = raw.strip()
        match = _DIRECTIVE.match(line)
        if match is None:
            return None  # directives end at the first line that is not one
        if match.group(1).lower() == "syntax":
            return match.group(2)
    return None


def parse(text: str) -> list[Instruction]:
    """Instructions with their first line numbers; continuation lines joined."""
    escape = "\\"
    for raw in text.lstrip("\ufeff").splitlines():
        match = _DIRECTIVE.match(raw.strip())
        if match is None:
            break
        if match.group(1).lower() == "escape" and match.group(2) in ("`", "\\"):
            escape = match.group(2)
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction
        if not pending:
            start = number
        if stripped.endswith(escape):
            pending.append(stripped[:-1])
            continue
        pending.append(stripped)
        match = _INSTRUCTION.match(" ".join(pending))
        pending = []
        if match:
            instructions.append(Instruction(start, match.group(1).upper(), match.group(2) or ""))
    return instructions


def lint(text: str) -> list[Finding]:
    instructions = parse(text)
    findings: list[Finding] = []
    stages: set[str] = set()
    args: dict[str, str] = {}
    # The user each finished stage ends with: a stage built FROM another inherits it.
    stage_users: dict[str, tuple[str, int] | None] = {}
    current: str | None = None
    final_user: tuple[str, int] | None = None
    last_from = 0
    for item in instructions:
        if item.keyword == "ARG" and last_from == 0:
            name, _, default = item.arguments.partition("=")
            args[name.strip()] = default.strip().strip("\"'")
        elif item.keyword == "FROM":
            if current is not None:
                stage_users[current] = final_user
            words = [w for w in item.arguments.split() if not w.startswith("--")]
            parent = words[0].lower() if words else ""
            final_user = stage_users.get(parent)
            current = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else None
            last_from = item.line
            findings += _check_from(item, stages, args)
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
    return sorted(findings, key=lambda finding: (finding.line, finding.rule))


def _check_from(item: Instruction, stages: set[str], args: dict[str, str]) -> list[Finding]:
    words = [w for w in item.arguments.split() if not w.startswith("--")]
    if not words:
        return []
    image = words[0]
    if len(words) >= 3 and words[1].lower() == "as":
        stages.add(words[2].lower())
    image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1)) or m.group(0), image)
    if image.lower() in stages or image == "scratch" or "$" in image or "@" in image:
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
