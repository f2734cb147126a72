"""Packing a project folder into a zip for upload.

What goes in: every regular file under the folder (or under `context_dir` inside it) that
neither the always-excluded set (version control, virtual environments, caches, bytecode), nor
.gitignore, nor .dockerignore leaves out. Symbolic links, sockets, FIFOs and devices are never
stored (the service rejects them; their names are reported). The Dockerfile and the ignore file
in use are kept even if .dockerignore lists them, as Docker itself does.

The zip is written to a file the caller gives (a temporary file), one entry at a time, so a big
folder never sits in memory. Files over a MiB that compress too well are stored uncompressed,
so the service's zip-bomb ratio check never trips over an honest file of zeros.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from client.ignore import DockerIgnore, GitIgnore, IgnoreFileError

# Names left out wherever they are: version control, virtual environments, caches.
ALWAYS_EXCLUDED_FOLDERS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        ".tox",
        ".nox",
        ".ipynb_checkpoints",
    }
)
ALWAYS_EXCLUDED_FILES = frozenset({".git", ".DS_Store"})
ALWAYS_EXCLUDED_SUFFIXES = (".pyc", ".pyo")
# A folder holding one of these is a virtual environment (venv, virtualenv, conda), whatever
# its name.
VIRTUALENV_MARKERS = ("pyvenv.cfg", "conda-meta")

_CHUNK = 1024 * 1024
_RATIO_CHECKED_ABOVE = 1024 * 1024
# The service rejects entries over 1 MiB that expand more than 100:1; stay well below.
_MAX_RATIO = 50
_ZIP_EPOCH = 315_532_800.0 + 86_400  # 1980-01-02, clear of any time zone
_ZIP_END = 4_354_819_200.0 - 86_400  # 2107-12-30
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


class PackingError(Exception):
    """The folder cannot be packed as asked; the message says what to fix."""


@dataclass(frozen=True)
class PackOptions:
    context_dir: str | None = None  # only this sub-folder is packed (the project root)
    dockerfile: str | None = None  # relative to the project root
    use_gitignore: bool = True


@dataclass(frozen=True)
class SelectedFile:
    source: Path
    arcname: str
    size: int
    executable: bool


@dataclass
class Selection:
    files: list[SelectedFile] = field(default_factory=list)
    ignored: int = 0  # files and folders left out by the rules (a folder counts once)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why): links, devices
    ignore_files: list[str] = field(default_factory=list)  # the ignore files that applied

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files)


@dataclass(frozen=True)
class Packed:
    selection: Selection
    zip_bytes: int


def select_files(folder: Path, options: PackOptions | None = None) -> Selection:
    """The files of `folder` that go into the upload, in a stable order."""
    options = options or PackOptions()
    top = _existing_folder(folder)
    root = _project_root(top, options.context_dir)
    prefix = (
        f"{PurePosixPath(options.context_dir.strip('/')).as_posix()}/"
        if options.context_dir
        else ""
    )
    selection = Selection()
    dockerfile = PurePosixPath(options.dockerfile).as_posix() if options.dockerfile else None
    docker, docker_file = _dockerignore(root, dockerfile)
    kept = {".dockerignore", dockerfile or "Dockerfile"}
    if docker_file is not None:
        selection.ignore_files.append(prefix + docker_file)
        kept.add(docker_file)
    git, git_base = (
        _inherited_gitignore(top, root, selection) if options.use_gitignore else (None, "")
    )
    walker = _Walker(prefix, docker, git_base, frozenset(kept), selection)
    walker.walk(root, "", git)
    if not selection.files:
        raise PackingError(
            f"Nothing to upload in {folder}: every file is excluded "
            f"({selection.ignored} left out by ignore rules, {len(selection.skipped)} links or "
            "special files)."
        )
    return selection


def pack(
    folder: Path,
    dest: BinaryIO,
    options: PackOptions | None = None,
    *,
    selection: Selection | None = None,
) -> Packed:
    """Write the zip of `folder` to `dest` (a seekable binary file) and describe it."""
    selection = selection or select_files(folder, options)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, strict_timestamps=False) as archive:
        for entry in selection.files:
            _add(archive, entry)
    dest.flush()
    return Packed(selection=selection, zip_bytes=dest.tell())


# --- choosing files -----------------------------------------------------------------------


class _Walker:
    """Walks the project root depth first, in name order; paths are relative to the root."""

    def __init__(
        self,
        prefix: str,
        docker: DockerIgnore | None,
        git_base: str,
        kept: frozenset[str],
        selection: Selection,
    ) -> None:
        self.prefix = prefix  # what turns a path into its name in the zip (the context_dir)
        self.docker = docker
        self.git_base = git_base  # the root, relative to where the .gitignore patterns start
        self.kept = kept
        self.selection = selection

    def walk(self, folder: Path, relative: str, git: GitIgnore | None) -> None:
        entries = _scan(folder)
        if git is not None:
            gitignore = next((e for e in entries if e.name == ".gitignore"), None)
            if gitignore is not None and gitignore.is_file(follow_symlinks=False):
                git = git.extended(_read_text(Path(gitignore.path)), _join(self.git_base, relative))
                self.selection.ignore_files.append(self.prefix + _join(relative, ".gitignore"))
        for entry in entries:
            path = _join(relative, entry.name)
            is_folder = entry.is_dir(follow_symlinks=False)
            if _always_excluded(entry, is_folder) or (
                git is not None and git.excludes(_join(self.git_base, path), is_folder)
            ):
                self.selection.ignored += 1
                continue
            docker_excluded = self.docker is not None and self.docker.excludes(path)
            if is_folder:
                if docker_excluded and self._may_skip(path):
                    self.selection.ignored += 1
                    continue
                self.walk(Path(entry.path), path, git)
                continue
            if docker_excluded and path not in self.kept:
                self.selection.ignored += 1
                continue
            self._add_file(entry, path)

    def _may_skip(self, path: str) -> bool:
        assert self.docker is not None
        inside = path + "/"
        if any(kept.startswith(inside) for kept in self.kept):
            return False
        return self.docker.may_skip_folder(path)

    def _add_file(self, entry: os.DirEntry[str], path: str) -> None:
        arcname = self.prefix + path
        if entry.is_symlink():
            self.selection.skipped.append((arcname, "symbolic link"))
            return
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError as exc:
            raise PackingError(f"Cannot read {arcname!r}: {exc.strerror}.") from exc
        if not stat.S_ISREG(info.st_mode):
            self.selection.skipped.append((arcname, _kind(info.st_mode)))
            return
        _check_name(arcname)
        self.selection.files.append(
            SelectedFile(
                source=Path(entry.path),
                arcname=arcname,
                size=info.st_size,
                executable=bool(info.st_mode & 0o111),
            )
        )


def _existing_folder(folder: Path) -> Path:
    if not folder.exists():
        raise PackingError(f"{folder} does not exist.")
    if not folder.is_dir():
        raise PackingError(f"{folder} is not a folder; give the project's folder.")
    return folder.resolve()


def _project_root(top: Path, context_dir: str | None) -> Path:
    if context_dir is None:
        return top
    relative = PurePosixPath(context_dir.strip("/"))
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise PackingError(
            f"--context-dir must be a sub-folder of the project, not {context_dir!r}."
        )
    root = top.joinpath(*relative.parts)
    if root.is_symlink() or not root.is_dir():
        raise PackingError(f"--context-dir {context_dir!r} is not a folder inside {top}.")
    if not root.resolve().is_relative_to(top):
        raise PackingError(f"--context-dir {context_dir!r} leads outside {top}.")
    return root


def _dockerignore(root: Path, dockerfile: str | None) -> tuple[DockerIgnore | None, str | None]:
    """BuildKit's choice: `<Dockerfile>.dockerignore` next to the Dockerfile, else .dockerignore."""
    candidates = [f"{dockerfile or 'Dockerfile'}.dockerignore", ".dockerignore"]
    for name in candidates:
        path = root / name
        if path.is_file() and not path.is_symlink():
            try:
                return DockerIgnore.parse(_read_text(path), name), name
            except IgnoreFileError as exc:
                raise PackingError(f"Invalid pattern in {exc}") from exc
    return None, None


def _inherited_gitignore(top: Path, root: Path, selection: Selection) -> tuple[GitIgnore, str]:
    """The .gitignore patterns that apply above `root`: from the repository's top (or `top`,
    outside a repository) down to `root`'s parent, and .git/info/exclude. Also where `root` is
    relative to where those patterns start."""
    origin = _git_top(root) or top
    git = GitIgnore()
    exclude = origin / ".git" / "info" / "exclude"
    if exclude.is_file():
        git = git.extended(_read_text(exclude), "")
    relative_root = root.relative_to(origin)
    folder = origin
    base = ""
    for part in relative_root.parts:
        gitignore = folder / ".gitignore"
        if gitignore.is_file() and not gitignore.is_symlink():
            git = git.extended(_read_text(gitignore), base)
            selection.ignore_files.append(str(gitignore))
        folder = folder / part
        base = _join(base, part)
    return git, base


def _git_top(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


def _always_excluded(entry: os.DirEntry[str], is_folder: bool) -> bool:
    name = entry.name
    if is_folder:
        return name in ALWAYS_EXCLUDED_FOLDERS or any(
            os.path.lexists(os.path.join(entry.path, marker)) for marker in VIRTUALENV_MARKERS
        )
    return name in ALWAYS_EXCLUDED_FILES or name.endswith(ALWAYS_EXCLUDED_SUFFIXES)


def _scan(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda entry: entry.name)
    except OSError as exc:
        raise PackingError(f"Cannot list {folder}: {exc.strerror}.") from exc


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except OSError as exc:
        raise PackingError(f"Cannot read {path}: {exc.strerror}.") from exc


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def _kind(mode: int) -> str:
    kinds = {
        stat.S_IFIFO: "named pipe",
        stat.S_IFSOCK: "socket",
        stat.S_IFCHR: "character device",
        stat.S_IFBLK: "block device",
    }
    return kinds.get(stat.S_IFMT(mode), "special file")


def _check_name(arcname: str) -> None:
    try:
        arcname.encode("utf-8")
    except UnicodeEncodeError:
        raise PackingError(
            f"The file name {arcname!r} is not valid UTF-8, which the service refuses. Rename it, "
            "or list it in .dockerignore."
        ) from None
    if any(unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in arcname):
        raise PackingError(
            f"The file name {arcname!r} contains control or invisible characters, which the "
            "service refuses. Rename it, or list it in .dockerignore."
        )


# --- writing the zip -----------------------------------------------------------------------


def _add(archive: zipfile.ZipFile, entry: SelectedFile) -> None:
    with _open_regular(entry) as (source, info):
        member = zipfile.ZipInfo(entry.arcname, date_time=_zip_time(info.st_mtime))
        member.file_size = info.st_size
        member.external_attr = (stat.S_IFREG | (0o755 if entry.executable else 0o644)) << 16
        member.compress_type = zipfile.ZIP_DEFLATED
        if member.file_size > _RATIO_CHECKED_ABOVE and _compresses_too_well(source, info.st_size):
            member.compress_type = zipfile.ZIP_STORED
        source.seek(0)
        with archive.open(member, "w", force_zip64=member.file_size > 1 << 30) as target:
            while chunk := source.read(_CHUNK):
                target.write(chunk)


@contextlib.contextmanager
def _open_regular(entry: SelectedFile) -> Iterator[tuple[BinaryIO, os.stat_result]]:
    """Open a selected file without following a link or blocking on a FIFO that replaced it
    since it was listed."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        descriptor = os.open(entry.source, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PackingError(f"{entry.arcname!r} became a symbolic link while packing.") from exc
        raise PackingError(f"Cannot read {entry.arcname!r}: {exc.strerror}.") from exc
    with os.fdopen(descriptor, "rb") as source:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise PackingError(f"{entry.arcname!r} stopped being a regular file while packing.")
        yield source, info


def _zip_time(mtime: float) -> tuple[int, int, int, int, int, int]:
    """A zip timestamp (local time, 1980 to 2107, two-second resolution)."""
    moment = time.localtime(min(max(mtime, _ZIP_EPOCH), _ZIP_END))
    year = min(max(moment.tm_year, 1980), 2107)
    return (year, moment.tm_mon, moment.tm_mday, moment.tm_hour, moment.tm_min, moment.tm_sec)


def _compresses_too_well(source: BinaryIO, size: int) -> bool:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    compressed = 0
    while chunk := source.read(_CHUNK):
        compressed += len(compressor.compress(chunk))
    compressed += len(compressor.flush())
    return size > compressed * _MAX_RATIO
