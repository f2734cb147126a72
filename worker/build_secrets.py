"""A build's package index secrets: what the pipeline hands BuildKit, and what it must never show.

`prepare()` takes the credentials out of the project's files (core.sources.credentials), resolves
the owner's indexes (core.access.package_indexes) and writes the two secret files, netrc and shell
exports, to a private temporary folder (0700, files 0600 from their creation) that `remove()`
deletes when the build ends. `redact()` cleans any text of URL userinfo and of this build's
passwords before it is logged or stored.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy import Engine

from core.access.package_indexes import (
    ENV_SECRET_ID,
    NETRC_SECRET_ID,
    IndexCredentials,
    build_indexes,
    usable_credential,
)
from core.access.secret_box import secret_box
from core.db import session_scope
from core.settings import Settings
from core.sources.credentials import redact_line, redact_project, warning_for

# Shorter passwords are not masked in free text: masking "abc" everywhere would ruin the log.
# URL userinfo is removed whatever its length.
MIN_MASKED_CHARS = 4


@dataclass
class BuildSecrets:
    # BuildKit secret id -> file, for `docker build --secret`
    files: dict[str, Path] = field(default_factory=dict)
    # The plan's warning when the project carried credentials
    warning: str | None = None
    # What the log says about the indexes used (never a credential)
    summary: str | None = None
    known: tuple[str, ...] = ()
    folder: Path | None = None
    # The indexes installs read ("default URL", "extra URL"): an input of the build's result.
    index_urls: tuple[str, ...] = ()

    def redact(self, text: str) -> str:
        return redact_line(text, self.known)

    def remove(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
            self.files = {}


def prepare(root: Path, engine: Engine, settings: Settings, owner: str) -> BuildSecrets:
    """Redact the project at `root` in place and write the secrets of a build of `owner`.
    Raises core.access.secret_box.SecretUnreadable when stored credentials do not decrypt."""
    found = redact_project(root)
    usable = {
        c.host: IndexCredentials(unquote(c.username), unquote(c.password))
        for c in found
        if c.password and usable_credential(unquote(c.username), unquote(c.password))
    }
    with session_scope(engine) as session:
        indexes = build_indexes(session, secret_box(settings), owner, found=usable)
    passwords = {*indexes.passwords, *(c.password for c in found)}
    secrets = BuildSecrets(
        warning=warning_for(found),
        known=tuple(sorted(p for p in passwords if len(p) >= MIN_MASKED_CHARS)),
    )
    if indexes.empty:
        return secrets
    secrets.folder = Path(tempfile.mkdtemp(prefix="imagebuilder-secrets-"))  # mode 0700
    netrc = private_file(secrets.folder / NETRC_SECRET_ID, indexes.netrc_text())
    exports = indexes.env_text(f"/run/secrets/{NETRC_SECRET_ID}")
    secrets.files = {
        NETRC_SECRET_ID: netrc,
        ENV_SECRET_ID: private_file(secrets.folder / ENV_SECRET_ID, exports),
    }
    described = [f"default {indexes.default_url}"] if indexes.default_url else []
    described += [f"extra {url}" for url in indexes.extra_urls]
    secrets.index_urls = tuple(described)
    secrets.summary = (
        "package indexes: "
        + (", ".join(described) or "none")
        + f"; credentials for {len(indexes.netrc)} host(s), as BuildKit secrets"
    )
    return secrets


def private_file(path: Path, content: str) -> Path:
    """Write `content` to a new file only its owner may read (0600 from its creation)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(content)
    return path
