"""Stored sources: uploads land in a private temp file, are checked, then kept by content hash.

Keeping sources by sha256 makes a rebuild free and lets identical uploads share one file.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from core.archive import inspect_archive
from core.settings import Settings
from core.uploads import receive_upload_async


@dataclass(frozen=True)
class StoredSource:
    filename: str
    size_bytes: int
    sha256: str
    files: int


def source_path(settings: Settings, sha256: str) -> Path:
    return settings.sources_dir / f"{sha256}.zip"


def clean_filename(name: str | None) -> str:
    """The uploaded file's base name, made printable and bounded (it is shown back to users)."""
    base = (name or "source.zip").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable())[:255]
    return base or "source.zip"


async def store_upload(
    chunks: AsyncIterable[bytes], filename: str | None, settings: Settings
) -> StoredSource:
    """Receive an upload with the size limit enforced while streaming, check the archive, keep it.

    Raises UploadTooLarge or ArchiveRejected; then nothing is kept.
    """
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    settings.sources_dir.mkdir(parents=True, exist_ok=True)
    partial = settings.uploads_dir / f"{secrets.token_hex(16)}.part"
    uploaded = await receive_upload_async(chunks, partial, settings.max_upload_bytes)
    try:
        summary = await run_in_threadpool(inspect_archive, uploaded.path, settings)
        os.replace(uploaded.path, source_path(settings, uploaded.sha256))
    finally:
        partial.unlink(missing_ok=True)
    return StoredSource(
        filename=clean_filename(filename),
        size_bytes=uploaded.size_bytes,
        sha256=uploaded.sha256,
        files=summary.files,
    )
