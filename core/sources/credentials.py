"""Credentials written into an uploaded project's files, taken out before anything shows them.

A project may name an authenticated index the only way pip had: a URL with userinfo
(`--index-url https://user:token@host/simple`, a requirement `pkg @ https://user:token@host/...`,
`[[tool.uv.index]] url = ...`, `[[tool.poetry.source]]`, `[[source]]` of a Pipfile, pip.conf,
uv.toml). Before detection reads the project, the files that carry dependency configuration are
rewritten in the build's workspace with the userinfo removed, so the plan, the generated stages,
the image layers and the stored Dockerfile never hold it; the credentials found are used for this
build only, through the same netrc secret as registered indexes (netrc matches by host, so the
URL without userinfo still authenticates). The build's log lines go through `redact_text` too.

`ssh://git@host` (a user name and no password, over SSH) is not a credential and stays.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

# scheme://userinfo@host: userinfo without "/", "@" or whitespace (quotes end it in TOML/INI).
_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)"
    r"(?P<user>[^\s/@:'\"<>]*)(?::(?P<password>[^\s/@'\"<>]*))?@"
    r"(?P<host>[A-Za-z0-9.\-\[\]:]+)"
)
_DEPENDENCY_FILES = frozenset(
    {
        "pyproject.toml",
        "pipfile",
        "pipfile.lock",
        "setup.cfg",
        "tox.ini",
        "pip.conf",
        "pip.ini",
        "uv.toml",
        "uv.lock",
        "poetry.toml",
        "poetry.lock",
        "pdm.toml",
        ".pdm.toml",
        "pdm.lock",
        "dockerfile",
    }
)
_SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__"})
MAX_FILE_BYTES = 4 * 1024 * 1024
REDACTED = "****"


@dataclass(frozen=True)
class FoundCredential:
    """Userinfo found in a URL: the host it authenticates to, and where it was written."""

    host: str
    username: str
    password: str
    path: str = ""


def _is_credential(match: re.Match[str]) -> bool:
    scheme = match["scheme"].lower()
    if match["password"] is not None:
        return bool(match["user"] or match["password"])
    # A lone user name is a token over HTTP(S) (GitHub, GitLab); over SSH it is just a login.
    return bool(match["user"]) and "http" in scheme


def redact_text(text: str, known: tuple[str, ...] = ()) -> tuple[str, list[FoundCredential]]:
    """`text` with the userinfo of every URL removed (and any `known` secret masked), and the
    credentials removed."""
    found: list[FoundCredential] = []

    def strip(match: re.Match[str]) -> str:
        if not _is_credential(match):
            return match.group(0)
        host = match["host"].rsplit(":", 1)[0] if "]" not in match["host"] else match["host"]
        found.append(FoundCredential(host.strip("[]"), match["user"], match["password"] or ""))
        return match["scheme"] + match["host"]

    if "@" in text:
        text = _USERINFO.sub(strip, text)
    for secret in known:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    return text, found


def redact_line(text: str, known: tuple[str, ...] = ()) -> str:
    return redact_text(text, known)[0]


def _carries_dependencies(relative: Path) -> bool:
    name = relative.name.lower()
    if name in _DEPENDENCY_FILES or name.startswith("dockerfile") or name.endswith(".dockerfile"):
        return True
    if relative.suffix.lower() not in (".txt", ".in"):
        return False
    # requirements*.txt, dev-requirements.in, constraints.txt, requirements/base.txt
    lowered = relative.as_posix().lower()
    return "req" in lowered or "constraint" in lowered


def redact_project(root: Path) -> list[FoundCredential]:
    """Rewrite, under `root`, every file that carries dependency configuration without the
    credentials of its URLs; returns what was removed (with the file's relative path)."""
    found: list[FoundCredential] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
        for name in sorted(names):
            path = Path(folder) / name
            relative = path.relative_to(root)
            if path.is_symlink() or not path.is_file() or not _carries_dependencies(relative):
                continue
            if path.stat().st_size > MAX_FILE_BYTES:
                continue
            raw = path.read_bytes()
            if b"@" not in raw:
                continue
            text = raw.decode("utf-8", errors="surrogateescape")
            redacted, credentials = redact_text(text)
            if credentials:
                path.write_bytes(redacted.encode("utf-8", errors="surrogateescape"))
                found += [
                    FoundCredential(c.host, c.username, c.password, relative.as_posix())
                    for c in credentials
                ]
    return found


def warning_for(found: list[FoundCredential]) -> str | None:
    """The plan's warning for credentials found in the project: where, and how to register the
    index instead (never the credentials themselves)."""
    if not found:
        return None
    places = sorted({f"{c.path} ({c.host})" for c in found})
    host = found[0].host
    return (
        "credentials were written into the project's files: "
        + ", ".join(places)
        + ". They were removed from everything imagebuilder stores, shows and builds into a "
        "layer, and used for this build only (as a BuildKit netrc secret). Register the index "
        "instead and remove them from the project: `imagebuilder indexes put NAME "
        f"https://{host}/simple --username USER` (the password is prompted; PUT "
        "/api/v1/owner/indexes/NAME)."
    )
