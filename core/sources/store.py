"""Where accepted sources are kept, by content hash, until retention removes them.

    folder    files in the data folder (the embedded default): API and workers share that
              folder, so they run on one machine (or share a volume).
    database  chunks in the database every role already shares: workers on other machines
              fetch the source they build from there, with no shared disk.

`IMAGEBUILDER_SOURCE_STORE` chooses. Both keep one copy per content hash however many builds
use it, and both are written only once the archive passed its checks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine, delete, exists, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db import session_scope, utcnow
from core.models import SourceChunk
from core.settings import Settings

CHUNK_BYTES = 1024 * 1024


class SourceStore(Protocol):
    def put(self, sha256: str, path: Path) -> None:
        """Keep the file at `path` (consumed: moved or read, then left for the caller to
        remove) under its content hash."""

    def exists(self, sha256: str) -> bool: ...

    def local_copy(self, sha256: str, workspace: Path) -> Path | None:
        """A local file with the source, inside `workspace` when it had to be fetched; None
        when the store does not have it."""

    def delete(self, sha256: str) -> None: ...


class FolderStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, sha256: str) -> Path:
        return self.folder / f"{sha256}.zip"

    def put(self, sha256: str, path: Path) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        os.replace(path, self._path(sha256))

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def local_copy(self, sha256: str, workspace: Path) -> Path | None:
        path = self._path(sha256)
        return path if path.is_file() else None

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)


class DatabaseStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def put(self, sha256: str, path: Path) -> None:
        if self.exists(sha256):
            return  # the same content is kept already
        try:
            with session_scope(self.engine) as session, path.open("rb") as handle:
                for seq, chunk in enumerate(iter(lambda: handle.read(CHUNK_BYTES), b"")):
                    # One chunk in memory at a time: a plain INSERT, no object kept.
                    session.execute(
                        insert(SourceChunk),
                        {"sha256": sha256, "seq": seq, "data": chunk, "at": utcnow()},
                    )
        except IntegrityError:
            if not self.exists(sha256):
                raise  # not a concurrent upload of the same content: a real fault

    def exists(self, sha256: str) -> bool:
        with session_scope(self.engine) as session:
            return bool(session.scalar(select(exists().where(SourceChunk.sha256 == sha256))))

    def local_copy(self, sha256: str, workspace: Path) -> Path | None:
        workspace.mkdir(parents=True, exist_ok=True)
        target = workspace / "source.zip"
        chunks = (
            select(SourceChunk.seq, SourceChunk.data)
            .where(SourceChunk.sha256 == sha256)
            .order_by(SourceChunk.seq)
            .execution_options(yield_per=1)  # streamed: one chunk in memory at a time
        )
        written, whole = 0, True
        with session_scope(self.engine) as session, target.open("wb") as out:
            for seq, data in session.execute(chunks):
                if seq != written:
                    whole = False  # a chunk is missing: the source is not whole
                    break
                out.write(data)
                written += 1
        if written == 0 or not whole:
            target.unlink(missing_ok=True)
            return None
        return target

    def delete(self, sha256: str) -> None:
        with session_scope(self.engine) as session:
            session.execute(delete(SourceChunk).where(SourceChunk.sha256 == sha256))


def is_stored(session: Session, settings: Settings, sha256: str) -> bool:
    """Whether the source `sha256` is kept, read in the caller's session."""
    if settings.source_store == "database":
        return bool(session.scalar(select(exists().where(SourceChunk.sha256 == sha256))))
    return FolderStore(settings.sources_dir).exists(sha256)


def source_store(settings: Settings, engine: Engine) -> SourceStore:
    if settings.source_store == "database":
        return DatabaseStore(engine)
    return FolderStore(settings.sources_dir)
