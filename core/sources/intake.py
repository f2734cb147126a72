"""Stored sources: an upload is checked, then kept by content hash.

Keeping sources by sha256 makes a rebuild free and lets identical uploads share one file.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings
from core.sources.archive import inspect_archive
from core.sources.receive import UploadedFile
from core.sources.store import SourceStore


@dataclass(frozen=True)
class StoredSource:
    filename: str
    size_bytes: int
    sha256: str
    files: int


def new_upload_path(settings: Settings) -> Path:
    """A fresh private path for an upload in progress."""
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    return settings.uploads_dir / f"{secrets.token_hex(16)}.part"


def clean_filename(name: str | None) -> str:
    """The uploaded file's base name, made printable and bounded (it is shown back to users)."""
    base = (name or "source.zip").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable())[:255]
    return base or "source.zip"


def accept_source(
    uploaded: UploadedFile, filename: str | None, settings: Settings, store: SourceStore
) -> StoredSource:
    """Check the uploaded archive and keep it in `store`; raises ArchiveRejected (then nothing
    is kept)."""
    try:
        summary = inspect_archive(uploaded.path, settings)
        store.put(uploaded.sha256, uploaded.path)
    finally:
        uploaded.path.unlink(missing_ok=True)
    return StoredSource(
        filename=clean_filename(filename),
        size_bytes=uploaded.size_bytes,
        sha256=uploaded.sha256,
        files=summary.files,
    )
