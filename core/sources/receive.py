"""Receiving an upload: stream it to disk, hashing and counting as it arrives.

The size limit is enforced while streaming, never after: a client that sends more than the limit
is stopped at the first chunk over it, and no partial file is ever left behind. The synchronous and
the asynchronous variants share one writer, so they cannot drift apart.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from core.errors import UploadTooLarge
from core.settings import MiB

# O_EXCL refuses an existing file (we never clobber or append to someone else's data) and, with
# O_CREAT, also refuses a symlink planted at dest; O_NOFOLLOW says so explicitly.
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_PRIVATE_MODE = 0o600


@dataclass(frozen=True, slots=True)
class UploadedFile:
    path: Path
    size_bytes: int
    sha256: str


def receive_upload(chunks: Iterable[bytes], dest: Path, max_bytes: int) -> UploadedFile:
    """Write `chunks` to the new file `dest` (mode 0600) and return its size and SHA-256.

    Raises UploadTooLarge as soon as more than `max_bytes` arrive; `dest` never outlives a failure.
    """
    with _UploadWriter(dest, max_bytes) as writer:
        for chunk in chunks:
            writer.write(chunk)
        return writer.finish()


async def receive_upload_async(
    chunks: AsyncIterable[bytes], dest: Path, max_bytes: int
) -> UploadedFile:
    """The same as `receive_upload`, for an async body stream (cancellation also removes `dest`)."""
    # Writes go straight to local disk: one chunk blocks the loop for microseconds, far less than
    # a thread hop per chunk would cost.
    with _UploadWriter(dest, max_bytes) as writer:
        async for chunk in chunks:
            writer.write(chunk)
        return writer.finish()


class _UploadWriter:
    """One upload being written: counts, hashes, and deletes the file unless `finish` succeeds."""

    def __init__(self, dest: Path, max_bytes: int) -> None:
        self._dest = dest
        self._max_bytes = max_bytes
        self._size = 0
        self._hash = hashlib.sha256()
        # Opened here, outside the cleanup scope: if dest already exists it is not ours to delete.
        self._file = _create_private_file(dest)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Any BaseException: a cancelled request (CancelledError) must not leave a partial file.
        if exc_type is not None:
            self._file.close()
            self._dest.unlink(missing_ok=True)

    def write(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._max_bytes:
            raise UploadTooLarge(_too_large_detail(self._max_bytes))
        self._hash.update(chunk)
        self._file.write(chunk)

    def finish(self) -> UploadedFile:
        self._file.flush()
        # The upload is the build's source of truth once accepted: make it survive a crash.
        os.fsync(self._file.fileno())
        self._file.close()
        return UploadedFile(path=self._dest, size_bytes=self._size, sha256=self._hash.hexdigest())


def _create_private_file(dest: Path) -> BinaryIO:
    fd = os.open(dest, _CREATE_FLAGS, _PRIVATE_MODE)
    try:
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        dest.unlink(missing_ok=True)
        raise


def _too_large_detail(max_bytes: int) -> str:
    return (
        f"The upload is larger than the limit of {max_bytes / MiB:.4g} MiB ({max_bytes} bytes). "
        "Send a smaller archive: leave out virtualenvs, build output and data files."
    )
