"""Reading a build upload from the request stream: multipart or a raw zip body.

The body is never buffered whole: the zip's bytes go straight to `core.sources.receive`, which
enforces the size limit as they arrive. Form fields are small and capped.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from core.errors import InvalidOption, UnsupportedMediaType, UploadTooLarge
from core.sources.receive import UploadedFile, receive_upload_async

ZIP_TYPES = frozenset({"application/zip", "application/x-zip-compressed", "application/x-zip"})
FILE_FIELD = "source"
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 32
_FILENAME = re.compile(r'filename="?([^";]+)"?')


@dataclass
class Upload:
    file: UploadedFile
    filename: str | None
    fields: dict[str, str] = field(default_factory=dict)


async def read_upload(request: Request, dest: Path, max_bytes: int) -> Upload:
    """Stream the request's zip to `dest`; raises UploadTooLarge, UnsupportedMediaType or
    InvalidOption (malformed form)."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    media_type = content_type.decode("latin-1").lower()
    declared = request.headers.get("content-length")
    # Form fields and multipart framing add a little to the zip itself.
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + MAX_FIELD_BYTES:
        raise _too_large(max_bytes)
    if media_type in ZIP_TYPES:
        disposition = request.headers.get("content-disposition", "")
        match = _FILENAME.search(disposition)
        uploaded = await receive_upload_async(request.stream(), dest, max_bytes)
        return Upload(file=uploaded, filename=match.group(1) if match else None)
    if media_type == "multipart/form-data" and b"boundary" in params:
        return await _read_multipart(request, params[b"boundary"], dest, max_bytes)
    raise UnsupportedMediaType(
        f"Send the zip as multipart/form-data (file field {FILE_FIELD!r}) or as a raw body with "
        f"Content-Type: application/zip; got {media_type or 'no content type'!r}."
    )


def _too_large(max_bytes: int) -> UploadTooLarge:
    return UploadTooLarge(f"The upload is over the {max_bytes // (1024 * 1024)} MiB limit.")


class _MultipartReader:
    """Feeds python-multipart and hands the file part's bytes on as they are parsed."""

    def __init__(self, boundary: bytes) -> None:
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.file_seen = False
        self._file_chunks: list[bytes] = []
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._part_name: str | None = None
        self._part_is_file = False
        self._field_value = bytearray()
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value_data,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    def feed(self, chunk: bytes) -> list[bytes]:
        self._parser.write(chunk)
        chunks, self._file_chunks = self._file_chunks, []
        return chunks

    def finish(self) -> None:
        self._parser.finalize()

    def _part_begin(self) -> None:
        self._headers, self._part_name, self._part_is_file = {}, None, False
        self._field_value = bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        self._part_name = name
        if name == FILE_FIELD:
            if self.file_seen:
                raise InvalidOption(f"Send one {FILE_FIELD!r} file, not several.")
            self.file_seen, self._part_is_file = True, True
            raw = params.get(b"filename")
            self.filename = raw.decode("utf-8", "replace") if raw else None
        elif len(self.fields) >= MAX_FIELDS:
            raise InvalidOption("Too many form fields.")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part_is_file:
            self._file_chunks.append(data[start:end])
            return
        self._field_value += data[start:end]
        if len(self._field_value) > MAX_FIELD_BYTES:
            raise InvalidOption(f"Form field {self._part_name!r} is too long.")

    def _part_end(self) -> None:
        if not self._part_is_file and self._part_name:
            self.fields[self._part_name] = self._field_value.decode("utf-8", "replace")


async def _read_multipart(request: Request, boundary: bytes, dest: Path, max_bytes: int) -> Upload:
    reader = _MultipartReader(boundary)

    async def file_bytes() -> AsyncIterator[bytes]:
        async for chunk in request.stream():
            try:
                parsed = reader.feed(chunk)
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidOption(f"The multipart body is malformed: {exc}") from exc
            for piece in parsed:
                yield piece
        try:
            reader.finish()
        except ValueError as exc:
            raise InvalidOption(f"The multipart body is malformed: {exc}") from exc

    uploaded = await receive_upload_async(file_bytes(), dest, max_bytes)
    if not reader.file_seen:
        dest.unlink(missing_ok=True)
        raise InvalidOption(f"The form has no file field {FILE_FIELD!r} holding the zip.")
    return Upload(file=uploaded, filename=reader.filename, fields=reader.fields)
