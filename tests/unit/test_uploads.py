"""core.sources.receive: streaming an upload to disk with a size limit, a hash, and no leftovers."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import stat
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from core.errors import UploadTooLarge
from core.settings import MiB
from core.sources.receive import UploadedFile, receive_upload, receive_upload_async

CHUNKS = [b"PK\x03\x04", b"first chunk ", b"", b"second chunk"]
CONTENT = b"".join(CHUNKS)


class SourceFailed(Exception):
    """The client went away mid-upload."""


def failing_source() -> Iterator[bytes]:
    yield b"some bytes"
    raise SourceFailed


async def as_async(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        await asyncio.sleep(0)
        yield chunk


async def failing_async_source() -> AsyncIterator[bytes]:
    yield b"some bytes"
    raise SourceFailed


class TestReceiveUpload:
    def test_writes_chunks_and_reports_size_and_sha256(self, tmp_path: Path) -> None:
        dest = tmp_path / "upload.zip"

        uploaded = receive_upload(iter(CHUNKS), dest, max_bytes=MiB)

        assert uploaded == UploadedFile(
            path=dest, size_bytes=len(CONTENT), sha256=hashlib.sha256(CONTENT).hexdigest()
        )
        assert dest.read_bytes() == CONTENT

    def test_creates_file_readable_only_by_its_owner(self, tmp_path: Path) -> None:
        dest = tmp_path / "upload.zip"

        receive_upload(iter(CHUNKS), dest, max_bytes=MiB)

        assert stat.S_IMODE(dest.stat().st_mode) == 0o600

    def test_accepts_upload_of_exactly_the_limit(self, tmp_path: Path) -> None:
        uploaded = receive_upload(iter(CHUNKS), tmp_path / "u.zip", max_bytes=len(CONTENT))

        assert uploaded.size_bytes == len(CONTENT)

    def test_accepts_empty_upload(self, tmp_path: Path) -> None:
        uploaded = receive_upload(iter([]), tmp_path / "u.zip", max_bytes=MiB)

        assert uploaded.size_bytes == 0
        assert uploaded.sha256 == hashlib.sha256(b"").hexdigest()

    def test_rejects_upload_over_limit_and_deletes_partial_file(self, tmp_path: Path) -> None:
        dest = tmp_path / "upload.zip"

        with pytest.raises(UploadTooLarge) as caught:
            receive_upload(iter([b"x" * MiB, b"y"]), dest, max_bytes=MiB)

        assert "1 MiB" in caught.value.detail
        assert caught.value.code == "upload_too_large"
        assert not dest.exists()

    def test_stops_reading_at_the_first_chunk_over_limit(self, tmp_path: Path) -> None:
        consumed: list[int] = []

        def endless() -> Iterator[bytes]:
            for number in range(1000):
                consumed.append(number)
                yield b"z" * 1024

        with pytest.raises(UploadTooLarge):
            receive_upload(endless(), tmp_path / "u.zip", max_bytes=3 * 1024)

        assert len(consumed) == 4

    def test_deletes_partial_file_when_the_source_fails(self, tmp_path: Path) -> None:
        dest = tmp_path / "upload.zip"

        with pytest.raises(SourceFailed):
            receive_upload(failing_source(), dest, max_bytes=MiB)

        assert not dest.exists()

    def test_refuses_an_existing_destination_and_leaves_it_intact(self, tmp_path: Path) -> None:
        dest = tmp_path / "upload.zip"
        dest.write_bytes(b"someone else's upload")

        with pytest.raises(FileExistsError):
            receive_upload(iter(CHUNKS), dest, max_bytes=MiB)

        assert dest.read_bytes() == b"someone else's upload"

    def test_refuses_a_symlink_at_the_destination(self, tmp_path: Path) -> None:
        target = tmp_path / "precious.txt"
        target.write_bytes(b"precious")
        dest = tmp_path / "upload.zip"
        dest.symlink_to(target)

        with pytest.raises(FileExistsError):
            receive_upload(iter(CHUNKS), dest, max_bytes=MiB)

        assert target.read_bytes() == b"precious"
        assert dest.is_symlink()

    def test_uploaded_file_is_immutable(self, tmp_path: Path) -> None:
        uploaded = receive_upload(iter(CHUNKS), tmp_path / "u.zip", max_bytes=MiB)

        with pytest.raises(dataclasses.FrozenInstanceError):
            uploaded.size_bytes = 0  # type: ignore[misc]


class TestReceiveUploadAsync:
    def test_writes_chunks_and_reports_size_and_sha256(self, tmp_path: Path) -> None:
        dest = tmp_path / "upload.zip"

        uploaded = asyncio.run(receive_upload_async(as_async(CHUNKS), dest, max_bytes=MiB))

        assert uploaded.size_bytes == len(CONTENT)
        assert uploaded.sha256 == hashlib.sha256(CONTENT).hexdigest()
        assert dest.read_bytes() == CONTENT
        assert stat.S_IMODE(dest.stat().st_mode) == 0o600

    def test_rejects_upload_over_limit_and_deletes_partial_file(self, tmp_path: Path) -> None:
        dest = tmp_path / "upload.zip"
        chunks = as_async([b"x" * MiB, b"y"])

        with pytest.raises(UploadTooLarge, match="MiB"):
            asyncio.run(receive_upload_async(chunks, dest, max_bytes=MiB))

        assert not dest.exists()

    def test_deletes_partial_file_when_the_source_fails(self, tmp_path: Path) -> None:
        dest = tmp_path / "upload.zip"

        with pytest.raises(SourceFailed):
            asyncio.run(receive_upload_async(failing_async_source(), dest, max_bytes=MiB))

        assert not dest.exists()

    def test_deletes_partial_file_when_cancelled(self, tmp_path: Path) -> None:
        dest = tmp_path / "upload.zip"

        async def scenario() -> None:
            first_chunk_sent = asyncio.Event()

            async def stalled_client() -> AsyncIterator[bytes]:
                yield b"the first half"
                first_chunk_sent.set()
                await asyncio.Event().wait()  # the client never sends the rest
                yield b"never"

            task = asyncio.create_task(receive_upload_async(stalled_client(), dest, MiB))
            await first_chunk_sent.wait()
            assert dest.exists()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(scenario())

        assert not dest.exists()


class TestMemoryStaysFlat:
    def test_a_large_upload_is_never_held_in_memory(self, tmp_path: Path) -> None:
        chunk = b"x" * (64 * 1024)

        async def body() -> AsyncIterator[bytes]:
            for _ in range(1024):  # 64 MiB in all
                yield chunk

        tracemalloc.start()
        try:
            uploaded = asyncio.run(receive_upload_async(body(), tmp_path / "big.part", 100 * MiB))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert uploaded.size_bytes == 64 * MiB
        assert peak < 4 * MiB

    def test_an_endless_upload_stops_at_the_limit_without_growing(self, tmp_path: Path) -> None:
        chunk = b"x" * (64 * 1024)

        async def endless() -> AsyncIterator[bytes]:
            while True:
                yield chunk

        tracemalloc.start()
        try:
            with pytest.raises(UploadTooLarge):
                asyncio.run(receive_upload_async(endless(), tmp_path / "endless.part", 32 * MiB))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 4 * MiB
        assert not (tmp_path / "endless.part").exists()
