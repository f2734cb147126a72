"""Validation and safe extraction of an uploaded project archive (zip).

Two passes, because a zip's central directory is a claim, not a fact:

1. `inspect_archive` reads only the central directory and rejects anything unsafe or strange
   before a byte is decompressed: traversal and absolute paths, links and device files, names that
   would collide on a case-insensitive or normalising file system, declared sizes and ratios over
   the limits, entries whose byte ranges overlap, encryption and unknown compression.
2. `extract_archive` trusts none of that while writing. Each local header must agree with the
   central directory and end before the next entry starts, each target must resolve inside the
   destination, and the decompressed bytes are counted as they stream, so an entry that lies about
   its size is stopped one chunk after its declared size.

`ZipFile.open` is deliberately not used to extract: it inflates bzip2 and LZMA without an output
bound (4 KiB of bzip2 can become gigabytes in one call) and silently truncates an entry at its
declared size, which would hide a lie. We read the 30-byte local header ourselves and drive the
decompressors with `max_length`.

Every rejection is `ArchiveRejected(code, detail)`; the codes are `REJECTION_CODES` (API.md).
Details name the entry with `repr`, so control characters in a name never reach a terminal.
"""

from __future__ import annotations

import bz2
import contextlib
import fnmatch
import lzma
import os
import re
import shutil
import stat
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from core.errors import ArchiveRejected
from core.settings import MiB, Settings

REJECTION_CODES = frozenset(
    {
        "archive_invalid",
        "archive_empty",
        "archive_path_traversal",
        "archive_absolute_path",
        "archive_symlink",
        "archive_special_file",
        "archive_too_many_files",
        "archive_bomb",
        "archive_duplicate_entry",
        "archive_bad_filename",
        "archive_unsupported",
        "project_unrecognized",
    }
)

_SUPPORTED_METHODS = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "LZMA",
}
_FLAG_ENCRYPTED = 0x01
_FLAG_PATCHED_DATA = 0x20
_FLAG_STRONG_ENCRYPTION = 0x40
_FLAG_UTF8_NAME = 0x800

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_LOCAL_HEADER_SIGNATURE = b"PK\x03\x04"

# Invisible characters: C0/C1 controls, bidi and zero-width formatting, line/paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_DRIVE_PREFIX = re.compile(r"[A-Za-z]:")
_MAX_COMPONENT_BYTES = 255  # NAME_MAX on Linux and macOS file systems

_PROJECT_MARKERS = frozenset({"pyproject.toml", "setup.py", "Pipfile", "Dockerfile"})

_CHUNK = 64 * 1024
_FILE_MODE = 0o644
_EXECUTABLE_MODE = 0o755
_DIR_MODE = 0o755
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

_REMAKE_HINT = "Create the archive again, e.g. with `zip -r project.zip project/`."


@dataclass(frozen=True, slots=True)
class ArchiveSummary:
    files: int
    uncompressed_bytes: int
    # The single top-level folder every entry lives under (GitHub's "project-main/"), else None.
    common_root: str | None


def inspect_archive(path: Path, settings: Settings) -> ArchiveSummary:
    """Validate the zip at `path` from its central directory alone; ArchiveRejected if unsafe."""
    with _open_zip(path, settings) as archive:
        return _inspect(archive, settings).summary


def extract_archive(path: Path, dest: Path, settings: Settings) -> ArchiveSummary:
    """Inspect the zip at `path`, then extract it into the empty directory `dest`.

    Nothing is written outside `dest`; on any failure `dest` is left empty.
    """
    root = _empty_directory(dest)
    with _open_zip(path, settings) as archive, path.open("rb") as raw:
        plan = _inspect(archive, settings)
        try:
            _extract_entries(raw, plan.entries, root, settings)
        except BaseException:
            _remove_contents(root)
            raise
    return plan.summary


# --- Inspection: the central directory --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    info: zipfile.ZipInfo
    name: str  # as stored, for messages
    raw_name: bytes  # as stored, to compare with the local header
    parts: tuple[str, ...]  # the safe relative path it extracts to
    is_dir: bool
    executable: bool
    data_end_limit: int  # the offset its bytes must end by: the next entry or the central directory


@dataclass(frozen=True, slots=True)
class _Plan:
    summary: ArchiveSummary
    entries: list[_Entry]


@contextlib.contextmanager
def _open_zip(path: Path, settings: Settings) -> Iterator[zipfile.ZipFile]:
    with path.open("rb") as raw:
        # zipfile builds an object per central directory entry before anyone can count them: a
        # few MiB of directory can hold a million entries and cost seconds and hundreds of MiB.
        _check_entry_count(_count_entries(raw, settings.max_archive_entries), settings)
        raw.seek(0)
        try:
            archive = zipfile.ZipFile(raw)
        except UnicodeDecodeError as exc:
            raise ArchiveRejected(
                "archive_bad_filename",
                f"The entry name {_shown(exc.object)} is marked as UTF-8 but is not valid UTF-8. "
                "Rename the file, or create the archive with a tool that stores UTF-8 names.",
            ) from exc
        except NotImplementedError as exc:
            raise ArchiveRejected(
                "archive_unsupported",
                f"The archive uses a zip feature this service cannot read ({exc}). {_REMAKE_HINT}",
            ) from exc
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
            raise ArchiveRejected(
                "archive_invalid",
                f"The upload is not a readable zip archive: it is truncated or corrupt ({exc}). "
                f"{_REMAKE_HINT}",
            ) from exc
        with archive:
            yield archive


def _inspect(archive: zipfile.ZipFile, settings: Settings) -> _Plan:
    infos = archive.infolist()
    _check_entry_count(len(infos), settings)
    limits = _data_end_limits(infos, archive.start_dir)
    entries = [_classify(info, limit, settings) for info, limit in zip(infos, limits, strict=True)]
    files = [entry for entry in entries if not entry.is_dir]
    if not files:
        raise ArchiveRejected(
            "archive_empty", "The archive contains no files. Zip the project folder with its files."
        )
    _check_no_collisions(entries)
    uncompressed = _check_sizes(files, settings)
    _check_recognised_project(files)
    summary = ArchiveSummary(
        files=len(files), uncompressed_bytes=uncompressed, common_root=_common_root(entries)
    )
    return _Plan(summary=summary, entries=entries)


def _check_entry_count(count: int, settings: Settings) -> None:
    if count > settings.max_archive_entries:
        raise ArchiveRejected(
            "archive_too_many_files",
            f"The archive has {count} entries; the limit is {settings.max_archive_entries}. "
            "Leave out virtualenvs, node_modules, caches and build output.",
        )


# The end of central directory record (APPNOTE 4.3.16), its Zip64 locator and record (4.3.14-15).
_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_CENTRAL_HEADER = struct.Struct("<4s6H3L5H2L")
_MAX_COMMENT = 0xFFFF


def _count_entries(raw: BinaryIO, limit: int) -> int:
    """The number of central directory entries, counted from the end of central directory
    record and by walking the directory's headers (never more than `limit` + 1 of them). Only a
    count: anything malformed returns 0 and is left to zipfile to report."""
    size = raw.seek(0, os.SEEK_END)
    tail_at = max(0, size - _EOCD.size - _MAX_COMMENT)
    raw.seek(tail_at)
    tail = raw.read()
    # As zipfile looks for it: at the very end (no comment), else the last signature.
    no_comment = len(tail) - _EOCD.size
    if no_comment >= 0 and tail[no_comment:].startswith(b"PK\x05\x06") and tail[-2:] == b"\0\0":
        eocd_at = no_comment
    else:
        eocd_at = tail.rfind(b"PK\x05\x06")
    if eocd_at < 0 or len(tail) - eocd_at < _EOCD.size:
        return 0
    fields = _EOCD.unpack_from(tail, eocd_at)
    declared, directory_size = int(fields[4]), int(fields[5])
    directory_end = tail_at + eocd_at
    locator_at = eocd_at - _ZIP64_LOCATOR.size
    if locator_at >= 0 and tail[locator_at : locator_at + 4] == b"PK\x06\x07":
        # As zipfile reads it: the Zip64 record sits right before its locator.
        record_at = tail_at + locator_at - _ZIP64_EOCD.size
        if record_at < 0:
            return 0
        raw.seek(record_at)
        record = raw.read(_ZIP64_EOCD.size)
        if len(record) < _ZIP64_EOCD.size or record[:4] != b"PK\x06\x06":
            return 0
        zip64 = _ZIP64_EOCD.unpack(record)
        declared, directory_size = int(zip64[7]), int(zip64[8])
        directory_end = record_at
    if declared > limit:
        return declared
    # The directory may hold more entries than the record declares: zipfile reads all it finds.
    start = directory_end - directory_size
    return 0 if start < 0 else _walk_directory(raw, start, directory_end, limit)


def _walk_directory(raw: BinaryIO, start: int, end: int, limit: int) -> int:
    count, at = 0, start
    while at < end and count <= limit:
        raw.seek(at)
        header = raw.read(_CENTRAL_HEADER.size)
        if len(header) < _CENTRAL_HEADER.size or header[:4] != b"PK\x01\x02":
            break
        fields = _CENTRAL_HEADER.unpack(header)
        # After the fixed part: the name, the extra field and the comment (lengths 10-12).
        at += _CENTRAL_HEADER.size + int(fields[10]) + int(fields[11]) + int(fields[12])
        count += 1
    return count


def _data_end_limits(infos: list[zipfile.ZipInfo], central_directory_at: int) -> list[int]:
    """Where each entry's bytes must end, rejecting entries whose byte ranges overlap.

    Overlapping entries are how the densest zip bombs reuse one compressed stream many times.
    """
    by_offset = sorted(range(len(infos)), key=lambda index: infos[index].header_offset)
    limits = [0] * len(infos)
    for position, index in enumerate(by_offset):
        info = infos[index]
        following = by_offset[position + 1] if position + 1 < len(by_offset) else None
        limit = central_directory_at if following is None else infos[following].header_offset
        # The smallest the entry can be: a fixed header, its name (we require the local header to
        # repeat it), then its compressed bytes. The extra field is only known at extraction.
        smallest_end = (
            info.header_offset + _LOCAL_HEADER.size + len(_raw_name(info)) + info.compress_size
        )
        if info.header_offset < 0 or smallest_end > limit:
            raise ArchiveRejected(
                "archive_invalid",
                f"Entry {_shown(info.orig_filename)} overlaps another entry's bytes, a trick used "
                f"by zip bombs. {_REMAKE_HINT}",
            )
        limits[index] = limit
    return limits


def _classify(info: zipfile.ZipInfo, data_end_limit: int, settings: Settings) -> _Entry:
    # orig_filename, not filename: zipfile cuts `filename` at a NUL, hiding what follows it.
    name = info.orig_filename
    _check_characters(name)
    _check_not_absolute(name)
    posix = name.replace("\\", "/")
    is_dir = posix.endswith("/")
    parts = _safe_parts(name, posix.removesuffix("/") if is_dir else posix, settings)
    mode = info.external_attr >> 16
    _check_file_type(name, mode, is_dir)
    _check_supported(info)
    return _Entry(
        info=info,
        name=name,
        raw_name=_raw_name(info),
        parts=parts,
        is_dir=is_dir,
        executable=bool(mode & 0o111),
        data_end_limit=data_end_limit,
    )


def _check_characters(name: str) -> None:
    if any(unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in name):
        raise ArchiveRejected(
            "archive_bad_filename",
            f"Entry {_shown(name)} contains control or invisible formatting characters. "
            "Rename it using printable characters only.",
        )


def _check_not_absolute(name: str) -> None:
    if name.startswith(("/", "\\")) or _DRIVE_PREFIX.match(name):
        raise ArchiveRejected(
            "archive_absolute_path",
            f"Entry {_shown(name)} is an absolute path (it starts with '/', '\\' or a drive "
            "letter). Store paths relative to the project folder.",
        )


def _safe_parts(name: str, posix: str, settings: Settings) -> tuple[str, ...]:
    parts = tuple(posix.split("/"))
    if ".." in parts:
        raise ArchiveRejected(
            "archive_path_traversal",
            f"Entry {_shown(name)} contains a '..' component and would be written outside the "
            "project folder. Create the archive from inside the project folder.",
        )
    problem = _path_shape_problem(name, parts, settings)
    if problem is not None:
        raise ArchiveRejected(
            "archive_bad_filename", f"Entry {_shown(name)} {problem}. Rename or move it."
        )
    return parts


def _path_shape_problem(name: str, parts: tuple[str, ...], settings: Settings) -> str | None:
    length = len(name.encode())
    if length > settings.max_path_length:
        return f"is {length} bytes long; the limit is {settings.max_path_length}"
    if len(parts) > settings.max_path_depth:
        return f"is {len(parts)} folders deep; the limit is {settings.max_path_depth}"
    if any(part in ("", ".") for part in parts):
        return "has an empty or '.' path component"
    if any(len(part.encode()) > _MAX_COMPONENT_BYTES for part in parts):
        return f"has a path component longer than {_MAX_COMPONENT_BYTES} bytes"
    return None


def _check_file_type(name: str, mode: int, is_dir: bool) -> None:
    kind = stat.S_IFMT(mode)
    if kind in (0, stat.S_IFREG) or (kind == stat.S_IFDIR and is_dir):
        return
    if kind == stat.S_IFLNK:
        raise ArchiveRejected(
            "archive_symlink",
            f"Entry {_shown(name)} is a symbolic link; links are not accepted. Replace it with the "
            "file it points to (zip without --symlinks).",
        )
    if kind == stat.S_IFDIR:
        raise ArchiveRejected(
            "archive_invalid",
            f"Entry {_shown(name)} is marked as a folder but its name does not end in '/'. "
            f"{_REMAKE_HINT}",
        )
    raise ArchiveRejected(
        "archive_special_file",
        f"Entry {_shown(name)} is a {_special_kind(kind)}, not a regular file or folder. "
        "Remove it from the archive.",
    )


def _special_kind(kind: int) -> str:
    names = {
        stat.S_IFIFO: "named pipe (FIFO)",
        stat.S_IFCHR: "character device",
        stat.S_IFBLK: "block device",
        stat.S_IFSOCK: "socket",
    }
    return names.get(kind, f"file of unknown type {kind:#o}")


def _check_supported(info: zipfile.ZipInfo) -> None:
    if info.flag_bits & (_FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION):
        raise _encrypted(info.orig_filename)
    if info.flag_bits & _FLAG_PATCHED_DATA or info.compress_type not in _SUPPORTED_METHODS:
        raise _unsupported_method(info.orig_filename, info.compress_type)


def _encrypted(name: str) -> ArchiveRejected:
    return ArchiveRejected(
        "archive_unsupported",
        f"Entry {_shown(name)} is encrypted. Upload an archive without a password.",
    )


def _unsupported_method(name: str, method: int) -> ArchiveRejected:
    return ArchiveRejected(
        "archive_unsupported",
        f"Entry {_shown(name)} uses compression method {method}, which is not supported. "
        f"Use {', '.join(_SUPPORTED_METHODS.values())} (any zip tool's default).",
    )


def _check_no_collisions(entries: list[_Entry]) -> None:
    """Reject names that would overwrite each other on macOS or Windows, or a file used as a folder.

    Entries that only differ by case or Unicode normalisation are a trick: which one wins depends on
    the file system.
    """
    seen: dict[str, str] = {}
    implied_folders: set[str] = set()
    for entry in entries:
        key = _collision_key(entry.parts)
        if key in seen:
            raise ArchiveRejected(
                "archive_duplicate_entry",
                f"Entries {_shown(seen[key])} and {_shown(entry.name)} have the same name once "
                "case and Unicode normalisation are ignored, so one would overwrite the other. "
                "Rename or remove one of them.",
            )
        seen[key] = entry.name
        implied_folders.update(
            _collision_key(entry.parts[:depth]) for depth in range(1, len(entry.parts))
        )
    for entry in entries:
        if not entry.is_dir and _collision_key(entry.parts) in implied_folders:
            raise ArchiveRejected(
                "archive_duplicate_entry",
                f"Entry {_shown(entry.name)} is a file, but other entries use it as a folder. "
                "Rename one of them.",
            )


def _collision_key(parts: tuple[str, ...]) -> str:
    # casefold() can denormalise, so normalise on both sides of it.
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", "/".join(parts)).casefold())


def _check_sizes(files: list[_Entry], settings: Settings) -> int:
    total = 0
    for entry in files:
        info = entry.info
        total += info.file_size
        if total > settings.max_uncompressed_bytes:
            raise ArchiveRejected(
                "archive_bomb",
                f"The archive expands to more than {_mib(settings.max_uncompressed_bytes)} (the "
                f"limit was passed at entry {_shown(entry.name)}). Leave out large data files.",
            )
        is_checked = info.file_size > settings.ratio_check_threshold_bytes
        if is_checked and info.file_size > info.compress_size * settings.max_compression_ratio:
            raise ArchiveRejected(
                "archive_bomb",
                f"Entry {_shown(entry.name)} compresses {info.file_size} bytes into "
                f"{info.compress_size}, more than the allowed ratio of "
                f"{settings.max_compression_ratio:g}:1. Leave out generated or padded files.",
            )
    return total


def _check_recognised_project(files: list[_Entry]) -> None:
    if not any(_is_project_marker(entry.parts[-1]) for entry in files):
        raise ArchiveRejected(
            "project_unrecognized",
            "No Python project found: the archive has no .py file, requirements*.txt, "
            "pyproject.toml, setup.py, Pipfile or Dockerfile. Zip the project's root folder.",
        )


def _is_project_marker(basename: str) -> bool:
    return (
        basename.endswith(".py")
        or basename in _PROJECT_MARKERS
        or fnmatch.fnmatchcase(basename, "requirements*.txt")
    )


def _common_root(entries: list[_Entry]) -> str | None:
    top_levels = {entry.parts[0] for entry in entries}
    has_top_level_file = any(len(entry.parts) == 1 and not entry.is_dir for entry in entries)
    if len(top_levels) == 1 and not has_top_level_file:
        return top_levels.pop()
    return None


def _raw_name(info: zipfile.ZipInfo) -> bytes:
    # The inverse of zipfile's decoding, which always succeeds: cp437 maps every byte.
    encoding = "utf-8" if info.flag_bits & _FLAG_UTF8_NAME else "cp437"
    return info.orig_filename.encode(encoding)


# --- Extraction: trust nothing ------------------------------------------------------------------


class _CorruptData(Exception):
    """An entry's bytes do not decode; mapped to archive_invalid with the entry's name."""


@dataclass(slots=True)
class _Budget:
    """The decompressed bytes the whole archive may produce, counted as they are written."""

    limit: int
    spent: int = 0

    def spend(self, size: int, name: str) -> None:
        self.spent += size
        if self.spent > self.limit:
            raise ArchiveRejected(
                "archive_bomb",
                f"The archive expands to more than {_mib(self.limit)} (the limit was passed at "
                f"entry {_shown(name)}). Leave out large data files.",
            )


def _empty_directory(dest: Path) -> Path:
    root = dest.resolve(strict=True)
    if not root.is_dir():
        raise NotADirectoryError(f"extraction target {dest} is not a directory")
    if any(root.iterdir()):
        raise ValueError(f"extraction target {dest} is not empty")
    return root


def _remove_contents(root: Path) -> None:
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _extract_entries(raw: BinaryIO, entries: list[_Entry], root: Path, settings: Settings) -> None:
    budget = _Budget(settings.max_uncompressed_bytes)
    for entry in entries:
        target = _resolve_inside(root, entry.parts)
        if entry.is_dir:
            _make_folders(root, entry.parts)
        else:
            _make_folders(root, entry.parts[:-1])
            _extract_file(raw, entry, target, budget)


def _resolve_inside(root: Path, parts: tuple[str, ...]) -> Path:
    """The target of `parts` under `root`, refusing any path that leaves it or passes a symlink."""
    target = root.joinpath(*parts)
    resolved = Path(os.path.realpath(target))
    # is_relative_to compares whole components, so "/x/dest-evil" is not inside "/x/dest"; and a
    # resolved path that differs from the lexical one went through a symlink.
    if resolved != target or not resolved.is_relative_to(root):
        raise ArchiveRejected(
            "archive_path_traversal",
            f"Entry {_shown('/'.join(parts))} would be written outside the project folder. "
            "Create the archive from inside the project folder.",
        )
    return target


def _make_folders(root: Path, parts: tuple[str, ...]) -> None:
    current = root
    for part in parts:
        current = current / part
        try:
            current.mkdir()
        except FileExistsError:
            if current.is_symlink() or not current.is_dir():
                raise _collision(parts) from None
        else:
            current.chmod(_DIR_MODE)  # exact, whatever the process umask


def _extract_file(raw: BinaryIO, entry: _Entry, target: Path, budget: _Budget) -> None:
    try:
        fd = os.open(target, _CREATE_FLAGS, 0o600)
    except (FileExistsError, IsADirectoryError, NotADirectoryError):
        raise _collision(entry.parts) from None
    with os.fdopen(fd, "wb") as out:
        # An explicit mode, never the archive's: no setuid, setgid, sticky or world-writable bits.
        os.fchmod(out.fileno(), _EXECUTABLE_MODE if entry.executable else _FILE_MODE)
        _copy_member(raw, entry, out, budget)


def _collision(parts: tuple[str, ...]) -> ArchiveRejected:
    return ArchiveRejected(
        "archive_duplicate_entry",
        f"Entry {_shown('/'.join(parts))} collides with another entry. Rename one of them.",
    )


def _copy_member(raw: BinaryIO, entry: _Entry, out: BinaryIO, budget: _Budget) -> None:
    info = entry.info
    size = 0
    crc = 0
    try:
        for chunk in _member_data(raw, entry):
            size += len(chunk)
            if size > info.file_size:
                raise ArchiveRejected(
                    "archive_bomb",
                    f"Entry {_shown(entry.name)} declares {info.file_size} bytes but expands to "
                    f"more. {_REMAKE_HINT}",
                )
            budget.spend(len(chunk), entry.name)
            crc = zlib.crc32(chunk, crc)
            out.write(chunk)
    except _CorruptData as exc:
        raise ArchiveRejected(
            "archive_invalid", f"Entry {_shown(entry.name)} is corrupt: {exc}. {_REMAKE_HINT}"
        ) from exc
    if size != info.file_size or crc != info.CRC:
        raise ArchiveRejected(
            "archive_invalid",
            f"Entry {_shown(entry.name)} fails its integrity check (size or CRC-32 mismatch): "
            f"the archive is corrupt. {_REMAKE_HINT}",
        )


def _member_data(raw: BinaryIO, entry: _Entry) -> Iterator[bytes]:
    """The decompressed bytes of one entry, in chunks of at most _CHUNK bytes."""
    data = _Slice(raw, _locate_data(raw, entry), entry.info.compress_size)
    method = entry.info.compress_type
    if method == zipfile.ZIP_STORED:
        yield from data.chunks()
    elif method == zipfile.ZIP_DEFLATED:
        yield from _inflate(data.chunks())
    elif method == zipfile.ZIP_BZIP2:
        yield from _decompress(bz2.BZ2Decompressor(), data.chunks())
    elif method == zipfile.ZIP_LZMA:
        yield from _decompress(_lzma_decompressor(data, entry.info.file_size), data.chunks())
    else:  # inspect rejects these; kept so that a gap there can never pass bytes through
        raise _unsupported_method(entry.name, method)


def _locate_data(raw: BinaryIO, entry: _Entry) -> int:
    """Check the local header against the central directory; return where the data starts."""
    info = entry.info
    raw.seek(info.header_offset)
    header = raw.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size:
        raise _CorruptData("the archive ends inside its header")
    signature, _, _, flags, method, _, _, _, _, _, name_length, extra_length = _LOCAL_HEADER.unpack(
        header
    )
    if signature != _LOCAL_HEADER_SIGNATURE:
        raise _CorruptData("no local header where the central directory points")
    if flags & (_FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION):
        raise _encrypted(entry.name)
    if method != info.compress_type:
        raise _CorruptData("its headers disagree on the compression method")
    if raw.read(name_length) != entry.raw_name:
        raise _CorruptData("its headers disagree on its name")
    start = info.header_offset + _LOCAL_HEADER.size + int(name_length) + int(extra_length)
    if start + info.compress_size > entry.data_end_limit:
        raise _CorruptData("its bytes overlap the next entry")
    return start


class _Slice:
    """Reads exactly `length` bytes from `start` of the archive file, or reports the truncation."""

    def __init__(self, raw: BinaryIO, start: int, length: int) -> None:
        raw.seek(start)
        self._raw = raw
        self._remaining = length

    def read(self, size: int) -> bytes:
        wanted = min(size, self._remaining)
        data = self._raw.read(wanted)
        if len(data) != wanted:
            raise _CorruptData("the archive ends inside its data")
        self._remaining -= wanted
        return data

    def chunks(self) -> Iterator[bytes]:
        while self._remaining:
            yield self.read(_CHUNK)


def _inflate(chunks: Iterable[bytes]) -> Iterator[bytes]:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, no zlib header
    try:
        for chunk in chunks:
            pending = chunk
            while pending and not inflater.eof:
                yield inflater.decompress(pending, _CHUNK)
                pending = inflater.unconsumed_tail
        while not inflater.eof:  # output still buffered after the last input
            out = inflater.decompress(b"", _CHUNK)
            if not out:
                break
            yield out
    except zlib.error as exc:
        raise _CorruptData(f"its deflate stream is invalid ({exc})") from exc


class _BoundedDecompressor(Protocol):
    """What bz2.BZ2Decompressor and lzma.LZMADecompressor have in common."""

    @property
    def eof(self) -> bool: ...
    @property
    def needs_input(self) -> bool: ...
    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


def _decompress(decompressor: _BoundedDecompressor, chunks: Iterable[bytes]) -> Iterator[bytes]:
    try:
        for chunk in chunks:
            if decompressor.eof:
                break  # bytes after the end of the stream are ignored, as zipfile does
            yield decompressor.decompress(chunk, _CHUNK)
            while not decompressor.eof and not decompressor.needs_input:
                yield decompressor.decompress(b"", _CHUNK)
    # bz2 reports corrupt data as OSError; EOFError means data after the end of the stream.
    except (OSError, lzma.LZMAError, EOFError) as exc:
        raise _CorruptData(f"its compressed stream is invalid ({exc})") from exc


def _lzma_decompressor(data: _Slice, declared_size: int) -> lzma.LZMADecompressor:
    """Zip's LZMA framing: version (2 bytes), properties size (2), then the LZMA1 properties."""
    _version, properties_size = struct.unpack("<2sH", data.read(4))
    if properties_size != 5:
        raise _CorruptData("its LZMA header is invalid")
    properties = data.read(5)
    literal_bits, rest = properties[0] % 9, properties[0] // 9
    position_bits, literal_position_bits = divmod(rest, 5)
    if position_bits > 4:
        raise _CorruptData("its LZMA properties are invalid")
    # The decoder allocates the whole dictionary up front; one larger than the declared output is
    # never needed, and a forged 4 GiB one would be a memory bomb of its own.
    dict_size = min(int.from_bytes(properties[1:], "little"), max(declared_size, 4096))
    lzma1 = {
        "id": lzma.FILTER_LZMA1,
        "dict_size": dict_size,
        "lc": literal_bits,
        "lp": literal_position_bits,
        "pb": position_bits,
    }
    try:
        return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[lzma1])
    except lzma.LZMAError as exc:
        raise _CorruptData(f"its LZMA properties are invalid ({exc})") from exc


# --- Messages -----------------------------------------------------------------------------------


def _shown(name: str | bytes) -> str:
    """A name safe to print: repr escapes control characters; very long names are cut."""
    return repr(name[:200]) + ("..." if len(name) > 200 else "")


def _mib(size: int) -> str:
    return f"{size / MiB:.4g} MiB ({size} bytes)"
