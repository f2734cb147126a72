"""core.sources.archive: every rejection code, safe extraction, and hostile archives found by
Hypothesis."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import tempfile
import tracemalloc
import unicodedata
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ArchiveRejected
from core.settings import Settings
from core.sources.archive import (
    REJECTION_CODES,
    ArchiveSummary,
    _resolve_inside,
    extract_archive,
    inspect_archive,
)
from tests.unit.zipcraft import (
    Member,
    central_headers,
    data_span,
    flip_byte,
    local_header,
    make_zip,
    point_at,
    rename,
    set_compressed_size,
    set_declared_size,
    set_flags,
    set_method,
)

KiB = 1024


def small_limits(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        max_upload_bytes=4 * KiB * KiB,
        max_uncompressed_bytes=512 * KiB,
        max_archive_entries=20,
        max_compression_ratio=20.0,
        ratio_check_threshold_bytes=16 * KiB,
        max_path_length=120,
        max_path_depth=6,
    )


@pytest.fixture
def limits(tmp_path: Path) -> Settings:
    return small_limits(tmp_path)


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    folder = tmp_path / "dest"
    folder.mkdir()
    return folder


def write_zip(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "upload.zip"
    path.write_bytes(data)
    return path


def inspect_bytes(tmp_path: Path, data: bytes, limits: Settings) -> ArchiveSummary:
    return inspect_archive(write_zip(tmp_path, data), limits)


def assert_rejected(tmp_path: Path, data: bytes, limits: Settings, code: str) -> ArchiveRejected:
    """Both inspection and extraction refuse `data` with `code`, and extraction writes nothing."""
    path = write_zip(tmp_path, data)
    with pytest.raises(ArchiveRejected) as inspected:
        inspect_archive(path, limits)
    assert inspected.value.code == code, inspected.value.detail
    dest = tmp_path / "rejected-dest"
    dest.mkdir()
    with pytest.raises(ArchiveRejected) as extracted:
        extract_archive(path, dest, limits)
    assert extracted.value.code == code
    assert list(dest.iterdir()) == []
    return inspected.value


def assert_rejected_at_extraction(
    tmp_path: Path, data: bytes, limits: Settings, code: str
) -> ArchiveRejected:
    """Inspection (central directory only) passes; extraction catches the lie and cleans up."""
    path = write_zip(tmp_path, data)
    inspect_archive(path, limits)
    dest = tmp_path / "lied-to-dest"
    dest.mkdir()
    with pytest.raises(ArchiveRejected) as extracted:
        extract_archive(path, dest, limits)
    assert extracted.value.code == code, extracted.value.detail
    assert list(dest.iterdir()) == []
    return extracted.value


class TestInspectArchive:
    def test_summarises_a_plain_project(self, tmp_path: Path, limits: Settings) -> None:
        data = make_zip(["app.py", Member("requirements.txt", b"flask\n"), "pkg/", "pkg/mod.py"])

        summary = inspect_bytes(tmp_path, data, limits)

        expected_bytes = 2 * len(b"print('hello')\n") + len(b"flask\n")
        assert summary == ArchiveSummary(
            files=3, uncompressed_bytes=expected_bytes, common_root=None
        )

    def test_detects_github_style_common_root(self, tmp_path: Path, limits: Settings) -> None:
        data = make_zip(["project-main/", "project-main/app.py", "project-main/src/lib.py"])

        assert inspect_bytes(tmp_path, data, limits).common_root == "project-main"

    def test_detects_common_root_without_folder_entries(
        self, tmp_path: Path, limits: Settings
    ) -> None:
        data = make_zip(["project/app.py", "project/tests/test_app.py"])

        assert inspect_bytes(tmp_path, data, limits).common_root == "project"

    @pytest.mark.parametrize(
        "names",
        [
            ["project-main/app.py", "README.md"],
            ["backend/app.py", "frontend/index.py"],
            ["app.py"],
        ],
    )
    def test_has_no_common_root_without_a_single_top_folder(
        self, tmp_path: Path, limits: Settings, names: list[str]
    ) -> None:
        assert inspect_bytes(tmp_path, make_zip(names), limits).common_root is None

    def test_allows_folder_entries_without_counting_them(
        self, tmp_path: Path, limits: Settings
    ) -> None:
        data = make_zip(["src/", "src/pkg/", "src/pkg/app.py", "docs/"])

        assert inspect_bytes(tmp_path, data, limits).files == 1

    def test_treats_nested_zip_as_plain_file(self, tmp_path: Path, limits: Settings) -> None:
        inner = make_zip(["../../evil.py"])
        data = make_zip(["app.py", Member("vendor/inner.zip", inner, method=zipfile.ZIP_STORED)])

        assert inspect_bytes(tmp_path, data, limits).files == 2

    @pytest.mark.parametrize(
        "marker",
        [
            "main.py",
            "requirements.txt",
            "requirements-dev.txt",
            "pyproject.toml",
            "setup.py",
            "Pipfile",
            "Dockerfile",
            "deep/down/tool.py",
        ],
    )
    def test_recognises_project_by_any_marker(
        self, tmp_path: Path, limits: Settings, marker: str
    ) -> None:
        data = make_zip(["README.md", Member(marker, b"x\n")])

        assert inspect_bytes(tmp_path, data, limits).files == 2

    def test_rejects_bytes_that_are_not_a_zip(self, tmp_path: Path, limits: Settings) -> None:
        assert_rejected(tmp_path, b"this is not a zip file at all", limits, "archive_invalid")

    @pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.99])
    def test_rejects_truncated_zip(self, tmp_path: Path, limits: Settings, keep: float) -> None:
        data = make_zip(["app.py", "lib.py"])

        assert_rejected(tmp_path, data[: int(len(data) * keep)], limits, "archive_invalid")

    def test_rejects_entries_sharing_a_local_header(self, tmp_path: Path, limits: Settings) -> None:
        data = make_zip(["app.py", "lib.py", "cli.py"])
        bomb = point_at(data, 2, local_header(data, 0))

        error = assert_rejected(tmp_path, bomb, limits, "archive_invalid")
        assert "overlaps" in error.detail

    def test_rejects_entry_whose_data_runs_into_the_next(
        self, tmp_path: Path, limits: Settings
    ) -> None:
        data = make_zip(["app.py", "lib.py"])
        start, end = data_span(data, 0)
        bomb = set_compressed_size(data, 0, end - start + 31)

        assert_rejected(tmp_path, bomb, limits, "archive_invalid")

    def test_rejects_archive_without_entries(self, tmp_path: Path, limits: Settings) -> None:
        assert_rejected(tmp_path, make_zip([]), limits, "archive_empty")

    def test_rejects_archive_with_only_folders(self, tmp_path: Path, limits: Settings) -> None:
        assert_rejected(tmp_path, make_zip(["src/", "src/pkg/"]), limits, "archive_empty")

    @pytest.mark.parametrize("name", ["../evil.py", "src/../../evil.py", "src/..", "a/../b.py"])
    def test_rejects_dot_dot_traversal(self, tmp_path: Path, limits: Settings, name: str) -> None:
        assert_rejected(tmp_path, make_zip(["app.py", name]), limits, "archive_path_traversal")

    @pytest.mark.parametrize("name", ["..\\evil.py", "src\\..\\..\\evil.py", "src/..\\x.py"])
    def test_rejects_backslash_traversal(self, tmp_path: Path, limits: Settings, name: str) -> None:
        assert_rejected(tmp_path, make_zip(["app.py", name]), limits, "archive_path_traversal")

    @pytest.mark.parametrize(
        "name", ["/etc/cron.d/evil.py", "\\evil.py", "\\\\server\\share\\x.py"]
    )
    def test_rejects_absolute_path(self, tmp_path: Path, limits: Settings, name: str) -> None:
        assert_rejected(tmp_path, make_zip(["app.py", name]), limits, "archive_absolute_path")

    @pytest.mark.parametrize("name", ["C:/Windows/evil.py", "c:\\evil.py", "D:evil.py"])
    def test_rejects_drive_letter_path(self, tmp_path: Path, limits: Settings, name: str) -> None:
        assert_rejected(tmp_path, make_zip(["app.py", name]), limits, "archive_absolute_path")

    def test_rejects_symlink_entry(self, tmp_path: Path, limits: Settings) -> None:
        link = Member("config.py", b"/etc/passwd", mode=stat.S_IFLNK | 0o777)

        error = assert_rejected(tmp_path, make_zip(["app.py", link]), limits, "archive_symlink")
        assert "'config.py'" in error.detail

    @pytest.mark.parametrize(
        "file_type",
        [stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK],
        ids=["fifo", "char-device", "block-device", "socket"],
    )
    def test_rejects_special_file(self, tmp_path: Path, limits: Settings, file_type: int) -> None:
        special = Member("dev/thing", b"", mode=file_type | 0o644)

        assert_rejected(tmp_path, make_zip(["app.py", special]), limits, "archive_special_file")

    def test_rejects_folder_mode_on_a_file_name(self, tmp_path: Path, limits: Settings) -> None:
        odd = Member("pkg", b"", mode=stat.S_IFDIR | 0o755)

        assert_rejected(tmp_path, make_zip(["app.py", odd]), limits, "archive_invalid")

    def test_rejects_too_many_files(self, tmp_path: Path, limits: Settings) -> None:
        names = [f"mod{number}.py" for number in range(limits.max_archive_entries + 1)]

        assert_rejected(tmp_path, make_zip(names), limits, "archive_too_many_files")

    def test_counts_entries_before_zipfile_reads_the_directory(
        self, tmp_path: Path, limits: Settings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def parsed(*_args: object) -> None:
            raise AssertionError("zipfile parsed the central directory of an oversized archive")

        monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", parsed)
        names = [f"mod{number}.py" for number in range(limits.max_archive_entries + 1)]

        assert_rejected(tmp_path, make_zip(names), limits, "archive_too_many_files")

    def test_counts_the_entries_an_understated_end_record_leaves_out(
        self, tmp_path: Path, limits: Settings
    ) -> None:
        names = [f"mod{number}.py" for number in range(limits.max_archive_entries + 1)]
        data = make_zip(names)
        eocd = data.rfind(b"PK\x05\x06")
        # "One entry on this disk, one in all": zipfile ignores both and reads the directory.
        lying = data[: eocd + 8] + struct.pack("<2H", 1, 1) + data[eocd + 12 :]

        assert_rejected(tmp_path, lying, limits, "archive_too_many_files")

    def test_accepts_exactly_the_maximum_number_of_entries(
        self, tmp_path: Path, limits: Settings
    ) -> None:
        names = [f"mod{number}.py" for number in range(limits.max_archive_entries)]

        assert inspect_bytes(tmp_path, make_zip(names), limits).files == len(names)

    def test_rejects_declared_total_over_uncompressed_limit(
        self, tmp_path: Path, limits: Settings
    ) -> None:
        # Random bytes do not compress, so only the total can trip, never the ratio.
        chunk = os.urandom(limits.max_uncompressed_bytes // 2 + 1)
        data = make_zip(["app.py", Member("a.bin", chunk), Member("b.bin", chunk)])

        assert_rejected(tmp_path, data, limits, "archive_bomb")

    def test_rejects_high_compression_ratio(self, tmp_path: Path, limits: Settings) -> None:
        zeros = bytes(limits.ratio_check_threshold_bytes * 4)

        error = assert_rejected(
            tmp_path, make_zip(["app.py", Member("zeros.bin", zeros)]), limits, "archive_bomb"
        )
        assert "'zeros.bin'" in error.detail

    def test_ignores_ratio_of_entries_below_threshold(
        self, tmp_path: Path, limits: Settings
    ) -> None:
        zeros = bytes(limits.ratio_check_threshold_bytes)

        data = make_zip(["app.py", Member("z.bin", zeros)])

        assert inspect_bytes(tmp_path, data, limits).files == 2

    def test_rejects_same_name_twice(self, tmp_path: Path, limits: Settings) -> None:
        data = make_zip(["app.py", Member("app.py", b"import os\n")])

        assert_rejected(tmp_path, data, limits, "archive_duplicate_entry")

    def test_rejects_case_twins(self, tmp_path: Path, limits: Settings) -> None:
        assert_rejected(tmp_path, make_zip(["A.py", "a.py"]), limits, "archive_duplicate_entry")

    def test_rejects_case_twins_in_folder_names(self, tmp_path: Path, limits: Settings) -> None:
        data = make_zip(["Src/app.py", "src/APP.py"])

        assert_rejected(tmp_path, data, limits, "archive_duplicate_entry")

    def test_rejects_nfc_nfd_twins(self, tmp_path: Path, limits: Settings) -> None:
        composed = unicodedata.normalize("NFC", "café.py")
        decomposed = unicodedata.normalize("NFD", "café.py")
        assert composed != decomposed

        data = make_zip([composed, decomposed])

        assert_rejected(tmp_path, data, limits, "archive_duplicate_entry")

    def test_rejects_file_also_used_as_folder(self, tmp_path: Path, limits: Settings) -> None:
        data = make_zip(["lib", "lib/app.py"])

        assert_rejected(tmp_path, data, limits, "archive_duplicate_entry")

    @pytest.mark.parametrize(
        "name",
        [
            "evil\x1b[2J.py",
            "two\nlines.py",
            "bell\x07.py",
            "del\x7f.py",
            "c1\x85.py",
            "rtl\u202e.py",
        ],
    )
    def test_rejects_control_characters(self, tmp_path: Path, limits: Settings, name: str) -> None:
        assert_rejected(tmp_path, make_zip(["app.py", name]), limits, "archive_bad_filename")

    def test_rejection_detail_escapes_control_characters(
        self, tmp_path: Path, limits: Settings
    ) -> None:
        error = assert_rejected(
            tmp_path, make_zip(["app.py", "evil\x1b[2J.py"]), limits, "archive_bad_filename"
        )

        assert "\x1b" not in error.detail
        assert "'evil\\x1b[2J.py'" in error.detail

    def test_rejects_nul_in_name(self, tmp_path: Path, limits: Settings) -> None:
        # zipfile silently cuts names at NUL, so write a placeholder and patch the bytes in.
        data = rename(make_zip(["app.py", "safe.py.txt"]), 1, b"safe.py\x00txt")

        assert_rejected(tmp_path, data, limits, "archive_bad_filename")

    def test_rejects_undecodable_name(self, tmp_path: Path, limits: Settings) -> None:
        data = rename(make_zip(["app.py", "xx.py"]), 1, b"\xff\xfe.py")
        marked_utf8 = set_flags(data, 1, 0x800)

        error = assert_rejected(tmp_path, marked_utf8, limits, "archive_bad_filename")
        assert "UTF-8" in error.detail

    def test_rejects_overlong_path(self, tmp_path: Path, limits: Settings) -> None:
        name = "a" * (limits.max_path_length - 2) + ".py"

        assert_rejected(tmp_path, make_zip(["app.py", name]), limits, "archive_bad_filename")

    def test_rejects_overlong_path_component(self, tmp_path: Path) -> None:
        roomy = small_limits(tmp_path).model_copy(update={"max_path_length": 1000})
        name = "a" * 256 + ".py"

        assert_rejected(tmp_path, make_zip(["app.py", name]), roomy, "archive_bad_filename")

    def test_rejects_deep_nesting(self, tmp_path: Path, limits: Settings) -> None:
        name = "/".join(["d"] * limits.max_path_depth) + "/deep.py"

        assert_rejected(tmp_path, make_zip(["app.py", name]), limits, "archive_bad_filename")

    def test_accepts_nesting_at_the_depth_limit(self, tmp_path: Path, limits: Settings) -> None:
        name = "/".join(["d"] * (limits.max_path_depth - 1)) + "/deep.py"

        assert inspect_bytes(tmp_path, make_zip([name]), limits).files == 1

    @pytest.mark.parametrize("name", ["src//app.py", "./app.py", "src/./app.py"])
    def test_rejects_empty_or_dot_path_component(
        self, tmp_path: Path, limits: Settings, name: str
    ) -> None:
        assert_rejected(tmp_path, make_zip(["main.py", name]), limits, "archive_bad_filename")

    def test_rejects_encrypted_entry(self, tmp_path: Path, limits: Settings) -> None:
        data = set_flags(make_zip(["app.py", "secret.py"]), 1, 0x1)

        error = assert_rejected(tmp_path, data, limits, "archive_unsupported")
        assert "encrypted" in error.detail

    def test_rejects_unknown_compression_method(self, tmp_path: Path, limits: Settings) -> None:
        data = set_method(make_zip(["app.py", "lib.py"]), 1, 99)

        error = assert_rejected(tmp_path, data, limits, "archive_unsupported")
        assert "99" in error.detail

    def test_rejects_archive_without_python_project(self, tmp_path: Path, limits: Settings) -> None:
        data = make_zip([Member("README.md", b"# hi\n"), Member("notes/todo.txt", b"x\n")])

        assert_rejected(tmp_path, data, limits, "project_unrecognized")


class TestExtractArchive:
    def test_extracts_files_and_folders(self, tmp_path: Path, limits: Settings, dest: Path) -> None:
        data = make_zip(
            ["docs/", Member("app.py", b"import lib\n"), Member("pkg/lib.py", b"X=1\n")]
        )

        summary = extract_archive(write_zip(tmp_path, data), dest, limits)

        assert summary.files == 2
        assert (dest / "app.py").read_bytes() == b"import lib\n"
        assert (dest / "pkg" / "lib.py").read_bytes() == b"X=1\n"
        assert (dest / "docs").is_dir()

    def test_extracts_github_style_root_as_a_folder(
        self, tmp_path: Path, limits: Settings, dest: Path
    ) -> None:
        data = make_zip(["project-main/", "project-main/app.py"])

        summary = extract_archive(write_zip(tmp_path, data), dest, limits)

        assert summary.common_root == "project-main"
        assert (dest / "project-main" / "app.py").is_file()

    @pytest.mark.parametrize(
        "method",
        [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA],
        ids=["stored", "deflate", "bzip2", "lzma"],
    )
    def test_extracts_every_supported_method(
        self, tmp_path: Path, limits: Settings, dest: Path, method: int
    ) -> None:
        # Hashes barely compress: well over one 64 KiB chunk, and far from the ratio limit.
        content = b"".join(hashlib.sha256(b"%d" % n).hexdigest().encode() for n in range(3000))
        data = make_zip(
            [Member("big.py", content, method=method), Member("e.py", b"", method=method)]
        )

        extract_archive(write_zip(tmp_path, data), dest, limits)

        assert (dest / "big.py").read_bytes() == content
        assert (dest / "e.py").read_bytes() == b""

    def test_writes_files_0644_and_executables_0755(
        self, tmp_path: Path, limits: Settings, dest: Path
    ) -> None:
        data = make_zip(
            [
                Member("app.py", mode=stat.S_IFREG | 0o600),
                Member("run.sh", b"#!/bin/sh\n", mode=stat.S_IFREG | 0o700),
                Member("world.py", mode=stat.S_IFREG | 0o666),
            ]
        )

        extract_archive(write_zip(tmp_path, data), dest, limits)

        assert stat.S_IMODE((dest / "app.py").stat().st_mode) == 0o644
        assert stat.S_IMODE((dest / "run.sh").stat().st_mode) == 0o755
        assert stat.S_IMODE((dest / "world.py").stat().st_mode) == 0o644

    def test_never_sets_setuid_setgid_or_sticky(
        self, tmp_path: Path, limits: Settings, dest: Path
    ) -> None:
        data = make_zip([Member("app.py", mode=stat.S_IFREG | 0o7777)])

        extract_archive(write_zip(tmp_path, data), dest, limits)

        assert stat.S_IMODE((dest / "app.py").stat().st_mode) == 0o755

    def test_keeps_nested_zip_unextracted(
        self, tmp_path: Path, limits: Settings, dest: Path
    ) -> None:
        inner = make_zip(["../../evil.py"])
        data = make_zip(["app.py", Member("inner.zip", inner, method=zipfile.ZIP_STORED)])

        extract_archive(write_zip(tmp_path, data), dest, limits)

        assert (dest / "inner.zip").read_bytes() == inner
        assert sorted(path.name for path in dest.iterdir()) == ["app.py", "inner.zip"]

    def test_rejects_bad_crc_at_extraction(self, tmp_path: Path, limits: Settings) -> None:
        data = make_zip(["app.py", Member("lib.py", b"VALUE = 1\n", method=zipfile.ZIP_STORED)])
        start, _ = data_span(data, 1)

        error = assert_rejected_at_extraction(
            tmp_path, flip_byte(data, start), limits, "archive_invalid"
        )
        assert "'lib.py'" in error.detail

    def test_rejects_corrupt_deflate_stream(self, tmp_path: Path, limits: Settings) -> None:
        content = b"".join(b"def f%d(): return %d\n" % (n, n) for n in range(200))
        data = make_zip(["app.py", Member("lib.py", content)])
        start, end = data_span(data, 1)
        garbage = bytes([0xFF]) * (end - start)

        corrupt = data[:start] + garbage + data[end:]

        assert_rejected_at_extraction(tmp_path, corrupt, limits, "archive_invalid")

    def test_rejects_lying_uncompressed_size(self, tmp_path: Path, limits: Settings) -> None:
        content = b"".join(b"x = %d\n" % n for n in range(2000))
        data = make_zip(["app.py", Member("lib.py", content)])

        liar = set_declared_size(data, 1, 100)

        error = assert_rejected_at_extraction(tmp_path, liar, limits, "archive_bomb")
        assert "declares 100 bytes" in error.detail

    def test_stops_lying_bzip2_bomb_with_bounded_memory(
        self, tmp_path: Path, limits: Settings
    ) -> None:
        # 64 MiB of zeros is ~50 bytes of bzip2: zipfile would inflate it in one call.
        bomb = Member("bomb.py", bytes(64 * 1024 * 1024), method=zipfile.ZIP_BZIP2)
        liar = set_declared_size(make_zip(["app.py", bomb]), 1, 1000)

        tracemalloc.start()
        try:
            assert_rejected_at_extraction(tmp_path, liar, limits, "archive_bomb")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        assert peak < 8 * 1024 * 1024

    def test_rejects_local_header_name_that_disagrees(
        self, tmp_path: Path, limits: Settings
    ) -> None:
        data = make_zip(["app.py", "lib.py"])
        central_only = rename(data, 1, b"bin.py", local=False)

        assert_rejected_at_extraction(tmp_path, central_only, limits, "archive_invalid")

    def test_rejects_local_header_method_that_disagrees(
        self, tmp_path: Path, limits: Settings
    ) -> None:
        data = make_zip(["app.py", "lib.py"])
        local = local_header(data, 1)
        stored_locally = data[: local + 8] + b"\x00\x00" + data[local + 10 :]

        assert_rejected_at_extraction(tmp_path, stored_locally, limits, "archive_invalid")

    def test_rejects_overlap_hidden_behind_a_local_extra_field(
        self, tmp_path: Path, limits: Settings
    ) -> None:
        # The central directory cannot see the local extra field, so the lie passes inspection.
        padded = Member("app.py", extra=b"\xfe\xca\x04\x00pad!", method=zipfile.ZIP_STORED)
        data = make_zip([padded, "lib.py"])
        start, end = data_span(data, 0)
        liar = set_compressed_size(data, 0, end - start + 8)

        error = assert_rejected_at_extraction(tmp_path, liar, limits, "archive_invalid")
        assert "overlap" in error.detail

    def test_rejection_removes_files_already_extracted(
        self, tmp_path: Path, limits: Settings
    ) -> None:
        data = make_zip(
            [
                "a/first.py",
                "b/second.py",
                Member("c/broken.py", b"X = 1\n", method=zipfile.ZIP_STORED),
            ]
        )
        start, _ = data_span(data, 2)

        assert_rejected_at_extraction(tmp_path, flip_byte(data, start), limits, "archive_invalid")

    def test_rejects_sibling_prefix_escape(
        self, tmp_path: Path, limits: Settings, dest: Path
    ) -> None:
        sibling = tmp_path / "dest-evil"
        sibling.mkdir()
        path = write_zip(tmp_path, make_zip(["app.py", "../dest-evil/app.py"]))

        with pytest.raises(ArchiveRejected) as caught:
            extract_archive(path, dest, limits)

        assert caught.value.code == "archive_path_traversal"
        assert list(sibling.iterdir()) == []

    def test_refuses_a_non_empty_destination(
        self, tmp_path: Path, limits: Settings, dest: Path
    ) -> None:
        (dest / "keep.txt").write_text("mine")

        with pytest.raises(ValueError, match="not empty"):
            extract_archive(write_zip(tmp_path, make_zip(["app.py"])), dest, limits)

        assert (dest / "keep.txt").read_text() == "mine"


class TestResolveInside:
    def test_joins_parts_under_root(self, dest: Path) -> None:
        root = dest.resolve()

        assert _resolve_inside(root, ("pkg", "app.py")) == root / "pkg" / "app.py"

    def test_rejects_sibling_prefix_escape(self, tmp_path: Path, dest: Path) -> None:
        (tmp_path / "dest-evil").mkdir()

        with pytest.raises(ArchiveRejected) as caught:
            _resolve_inside(dest.resolve(), ("..", "dest-evil", "app.py"))

        assert caught.value.code == "archive_path_traversal"

    def test_rejects_symlink_leading_outside(self, tmp_path: Path, dest: Path) -> None:
        (dest / "pkg").symlink_to(tmp_path)

        with pytest.raises(ArchiveRejected) as caught:
            _resolve_inside(dest.resolve(), ("pkg", "app.py"))

        assert caught.value.code == "archive_path_traversal"

    def test_rejects_symlink_even_inside_root(self, dest: Path) -> None:
        (dest / "real").mkdir()
        (dest / "alias").symlink_to(dest / "real")

        with pytest.raises(ArchiveRejected):
            _resolve_inside(dest.resolve(), ("alias", "app.py"))


# --- Property tests: hostile bytes never escape, never crash -------------------------------------

_BASES = [
    make_zip(["app.py", Member("requirements.txt", b"flask\n"), "pkg/", "pkg/lib.py"]),
    make_zip(
        [
            "project-main/",
            Member("project-main/app.py", b"import os\n" * 50, method=zipfile.ZIP_STORED),
            Member("project-main/run.sh", b"#!/bin/sh\n", mode=stat.S_IFREG | 0o755),
        ]
    ),
    make_zip([Member("a.py", b"a = 1\n" * 300, method=zipfile.ZIP_BZIP2), "b/c.py"]),
    make_zip([Member("a.py", b"a = 2\n" * 300, method=zipfile.ZIP_LZMA), "Dockerfile"]),
]

# Pieces of hostile names: separators, dots, drive colons, case and Unicode twins, controls.
_NAME_PIECES = ["a", "A", "b", ".", "..", "/", "\\", ":", "C:", "é", "e\u0301", "\x1b", "\x00", "~"]

_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(min_value=0), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(min_value=0), st.just(0)),
    st.tuples(st.just("insert"), st.integers(min_value=0), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(min_value=0), st.just(0)),
)


def mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    for kind, position, value in mutations:
        if not data:
            break
        at = position % len(data)
        if kind == "flip":
            data = data[:at] + bytes([data[at] ^ value]) + data[at + 1 :]
        elif kind == "truncate":
            data = data[:at]
        elif kind == "insert":
            data = data[:at] + bytes([value]) + data[at:]
        else:
            data = data[:at] + data[at + 1 :]
    return data


def snapshot_outside(workdir: Path, dest: Path) -> dict[str, str]:
    """Type, mode and content hash of everything under workdir except dest."""
    state: dict[str, str] = {}
    for folder, subfolders, files in os.walk(workdir):
        subfolders[:] = [name for name in subfolders if Path(folder, name) != dest]
        for name in [*subfolders, *files]:
            path = Path(folder, name)
            info = path.lstat()
            content = b"" if not stat.S_ISREG(info.st_mode) else path.read_bytes()
            state[str(path.relative_to(workdir))] = (
                f"{info.st_mode:o}:{hashlib.sha256(content).hexdigest()}"
            )
    return state


def extract_or_rejection(
    archive: Path, dest: Path, limits: Settings
) -> ArchiveSummary | ArchiveRejected:
    try:
        return extract_archive(archive, dest, limits)
    except ArchiveRejected as rejection:
        return rejection


def extract_in_sandbox(data: bytes) -> None:
    """Extract `data` beside canaries; assert a clean success or a documented rejection."""
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        (workdir / "canary.txt").write_text("do not touch")
        (workdir / "dest-evil").mkdir()
        (workdir / "dest-evil" / "app.py").write_text("print('canary')\n")
        dest = workdir / "dest"
        dest.mkdir()
        archive = workdir / "upload.zip"
        archive.write_bytes(data)
        before = snapshot_outside(workdir, dest)

        outcome = extract_or_rejection(archive, dest, small_limits(workdir))

        if isinstance(outcome, ArchiveRejected):
            assert outcome.code in REJECTION_CODES
            assert list(dest.iterdir()) == []
        else:
            extracted = [path for path in dest.rglob("*") if not path.is_dir()]
            assert all(path.is_file() and not path.is_symlink() for path in extracted)
            assert len(extracted) == outcome.files
        assert snapshot_outside(workdir, dest) == before


class TestHostileArchives:
    @settings(max_examples=200, deadline=None, database=None)
    @given(base=st.sampled_from(_BASES), mutations=st.lists(_mutation, min_size=1, max_size=4))
    def test_mutated_archive_is_extracted_or_rejected_without_escaping(
        self, base: bytes, mutations: list[tuple[str, int, int]]
    ) -> None:
        extract_in_sandbox(mutate(base, mutations))

    @settings(max_examples=200, deadline=None, database=None)
    @given(
        names=st.lists(
            st.lists(st.sampled_from(_NAME_PIECES), min_size=1, max_size=8).map("".join),
            min_size=1,
            max_size=5,
        )
    )
    def test_arbitrary_entry_names_never_escape(self, names: list[str]) -> None:
        extract_in_sandbox(make_zip(["main.py", *names]))


class TestZipcraft:
    def test_patches_keep_the_archive_readable(self) -> None:
        data = set_declared_size(make_zip(["app.py", "lib.py"]), 1, 5)

        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            assert [info.file_size for info in archive.infolist()][1] == 5
        assert len(central_headers(data)) == 2
