"""Build valid and hostile zip archives for tests: zipfile for the bulk, raw byte patches for lies.

zipfile refuses to write most of the tricks we defend against (NUL in names, unknown methods,
sizes that disagree with the data), so the builders write an honest archive and the patchers
then edit fields of its local and central headers in place, keeping every offset valid.
"""

from __future__ import annotations

import io
import stat
import struct
import warnings
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass

_EOCD_SIGNATURE = b"PK\x05\x06"
_CENTRAL_SIGNATURE = b"PK\x01\x02"
_LOCAL_SIGNATURE = b"PK\x03\x04"

# Field offsets inside a central directory header and a local file header (APPNOTE 4.3.7, 4.3.12).
_CENTRAL_FLAGS, _CENTRAL_METHOD, _CENTRAL_COMPRESSED, _CENTRAL_UNCOMPRESSED = 8, 10, 20, 24
_CENTRAL_NAME_LENGTH, _CENTRAL_LOCAL_OFFSET = 28, 42
_CENTRAL_FIXED = 46
_LOCAL_FLAGS, _LOCAL_METHOD, _LOCAL_NAME_LENGTH, _LOCAL_EXTRA_LENGTH = 6, 8, 26, 28
_LOCAL_FIXED = 30

FILE_MODE = stat.S_IFREG | 0o644
DIR_MODE = stat.S_IFDIR | 0o755
PYTHON_SOURCE = b"print('hello')\n"


@dataclass(frozen=True)
class Member:
    """One entry to write. `mode` is a Unix st_mode: file type bits and permissions."""

    name: str
    data: bytes = PYTHON_SOURCE
    mode: int | None = None
    method: int = zipfile.ZIP_DEFLATED
    extra: bytes = b""


def make_zip(members: Iterable[Member | str]) -> bytes:
    """An honest archive of `members` (a bare string is a small Python file of that name)."""
    buffer = io.BytesIO()
    # zipfile warns about duplicate names; writing them is the point of some tests.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with zipfile.ZipFile(buffer, "w") as archive:
            for member in members:
                _write_member(archive, Member(member) if isinstance(member, str) else member)
    return buffer.getvalue()


def _write_member(archive: zipfile.ZipFile, member: Member) -> None:
    info = zipfile.ZipInfo(member.name, date_time=(2024, 1, 1, 0, 0, 0))
    is_dir = member.name.endswith("/")
    info.compress_type = zipfile.ZIP_STORED if is_dir else member.method
    default_mode = DIR_MODE if is_dir else FILE_MODE
    info.external_attr = (default_mode if member.mode is None else member.mode) << 16
    info.extra = member.extra
    archive.writestr(info, b"" if is_dir else member.data)


def central_headers(data: bytes) -> list[int]:
    """The offset of each central directory header, in directory order."""
    eocd = data.rfind(_EOCD_SIGNATURE)
    count, _, offset = struct.unpack_from("<HLL", data, eocd + 10)
    headers = []
    for _ in range(count):
        assert data[offset : offset + 4] == _CENTRAL_SIGNATURE
        headers.append(offset)
        name, extra, comment = struct.unpack_from("<3H", data, offset + _CENTRAL_NAME_LENGTH)
        offset += _CENTRAL_FIXED + name + extra + comment
    return headers


def local_header(data: bytes, index: int) -> int:
    """The offset of entry `index`'s local header, as its central header says."""
    return _u32(data, central_headers(data)[index] + _CENTRAL_LOCAL_OFFSET)


def data_span(data: bytes, index: int) -> tuple[int, int]:
    """Where entry `index`'s compressed bytes start and end."""
    local = local_header(data, index)
    assert data[local : local + 4] == _LOCAL_SIGNATURE
    name, extra = struct.unpack_from("<2H", data, local + _LOCAL_NAME_LENGTH)
    start = local + _LOCAL_FIXED + name + extra
    size = _u32(data, central_headers(data)[index] + _CENTRAL_COMPRESSED)
    return start, start + size


def set_flags(data: bytes, index: int, bits: int) -> bytes:
    """Set general purpose flag bits in both headers of entry `index`."""
    central, local = central_headers(data)[index], local_header(data, index)
    patched = _put_u16(data, central + _CENTRAL_FLAGS, _u16(data, central + _CENTRAL_FLAGS) | bits)
    return _put_u16(patched, local + _LOCAL_FLAGS, _u16(data, local + _LOCAL_FLAGS) | bits)


def set_method(data: bytes, index: int, method: int) -> bytes:
    """Claim compression `method` in both headers of entry `index`."""
    central, local = central_headers(data)[index], local_header(data, index)
    return _put_u16(
        _put_u16(data, central + _CENTRAL_METHOD, method), local + _LOCAL_METHOD, method
    )


def set_declared_size(data: bytes, index: int, size: int) -> bytes:
    """Make the central directory lie about entry `index`'s uncompressed size."""
    return _put_u32(data, central_headers(data)[index] + _CENTRAL_UNCOMPRESSED, size)


def set_compressed_size(data: bytes, index: int, size: int) -> bytes:
    """Make the central directory lie about entry `index`'s compressed size."""
    return _put_u32(data, central_headers(data)[index] + _CENTRAL_COMPRESSED, size)


def point_at(data: bytes, index: int, local_offset: int) -> bytes:
    """Point entry `index`'s central header at another local header offset."""
    return _put_u32(data, central_headers(data)[index] + _CENTRAL_LOCAL_OFFSET, local_offset)


def rename(data: bytes, index: int, new_name: bytes, *, local: bool = True) -> bytes:
    """Replace entry `index`'s stored name (same length) in its central and local headers."""
    central = central_headers(data)[index]
    central_name = central + _CENTRAL_FIXED
    old_length = _u16(data, central + _CENTRAL_NAME_LENGTH)
    assert len(new_name) == old_length, "rename keeps the length so that no offset moves"
    patched = data[:central_name] + new_name + data[central_name + old_length :]
    if local:
        local_name = local_header(data, index) + _LOCAL_FIXED
        patched = patched[:local_name] + new_name + patched[local_name + old_length :]
    return patched


def flip_byte(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1 :]


def _u16(data: bytes, offset: int) -> int:
    value: int = struct.unpack_from("<H", data, offset)[0]
    return value


def _u32(data: bytes, offset: int) -> int:
    value: int = struct.unpack_from("<L", data, offset)[0]
    return value


def _put_u16(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack("<H", value) + data[offset + 2 :]


def _put_u32(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack("<L", value) + data[offset + 4 :]
