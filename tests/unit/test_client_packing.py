"""client.packing: which files of a folder are uploaded, and the zip they go into."""

from __future__ import annotations

import io
import os
import stat
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from client.packing import PackingError, PackOptions, pack, select_files
from core.sources.archive import inspect_archive
from tests.conftest import test_settings


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def selected(root: Path, options: PackOptions | None = None) -> list[str]:
    return [entry.arcname for entry in select_files(root, options).files]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    write(root, {"app.py": "print('hi')\n", "requirements.txt": "", "tests/test_app.py": ""})
    return root


class TestAlwaysExcluded:
    def test_leaves_out_version_control_caches_and_bytecode(self, project: Path) -> None:
        write(
            project,
            {
                ".git/HEAD": "ref: refs/heads/main\n",
                ".hg/store": "",
                "__pycache__/app.cpython-311.pyc": b"\0",
                "pkg/__pycache__/m.pyc": b"\0",
                "pkg/m.pyc": b"\0",
                ".mypy_cache/x": "",
                ".pytest_cache/x": "",
                ".ruff_cache/x": "",
                ".tox/py311/x": "",
                "pkg/mod.py": "",
            },
        )

        assert selected(project) == [
            "app.py",
            "pkg/mod.py",
            "requirements.txt",
            "tests/test_app.py",
        ]

    def test_leaves_out_virtual_environments_whatever_their_name(self, project: Path) -> None:
        write(
            project,
            {
                ".venv/lib/site.py": "",
                "env-3.11/pyvenv.cfg": "home = /usr/bin\n",
                "env-3.11/lib/python3.11/site-packages/x.py": "",
                "condaenv/conda-meta/history": "",
                "env/settings.py": "",  # a package that happens to be called env
            },
        )

        assert "env/settings.py" in selected(project)
        assert not any(
            name.startswith((".venv", "env-3.11", "condaenv")) for name in selected(project)
        )

    def test_git_file_of_a_worktree_is_left_out_too(self, project: Path) -> None:
        write(project, {".git": "gitdir: /elsewhere\n"})

        assert ".git" not in selected(project)


class TestGitignore:
    def test_applies_nested_files_each_to_its_folder(self, project: Path) -> None:
        write(
            project,
            {
                ".gitignore": "*.log\n/dist/\nsecrets.env\n",
                "a.log": "",
                "dist/pkg.whl": "",
                "sub/dist/kept.txt": "",
                "sub/.gitignore": "!important.log\nlocal/\n",
                "sub/important.log": "",
                "sub/other.log": "",
                "sub/local/x.py": "",
                "local/y.py": "",
                "deep/er/secrets.env": "",
            },
        )

        names = selected(project)

        assert "a.log" not in names
        assert "dist/pkg.whl" not in names
        assert "sub/dist/kept.txt" in names
        assert "sub/important.log" in names
        assert "sub/other.log" not in names
        assert "sub/local/x.py" not in names
        assert "local/y.py" in names
        assert "deep/er/secrets.env" not in names
        assert ".gitignore" in names

    def test_cannot_reinclude_inside_an_ignored_folder(self, project: Path) -> None:
        write(project, {".gitignore": "build/\n!build/keep.txt\n", "build/keep.txt": ""})

        assert "build/keep.txt" not in selected(project)

    def test_patterns_above_the_folder_apply_inside_a_repository(self, tmp_path: Path) -> None:
        repo = tmp_path / "repo"
        write(
            repo,
            {
                ".git/info/exclude": "*.local\n",
                ".gitignore": "*.secret\nservices/api/generated/\n",
                "services/.gitignore": "*.tmp\n",
                "services/api/app.py": "",
                "services/api/key.secret": "",
                "services/api/scratch.tmp": "",
                "services/api/me.local": "",
                "services/api/generated/x.py": "",
            },
        )

        assert selected(repo / "services" / "api") == ["app.py"]

    def test_outside_a_repository_parent_folders_do_not_count(self, tmp_path: Path) -> None:
        write(tmp_path, {".gitignore": "*.py\n", "project/app.py": ""})

        assert selected(tmp_path / "project") == ["app.py"]

    def test_can_be_turned_off(self, project: Path) -> None:
        write(project, {".gitignore": "*.log\n", "a.log": ""})

        assert "a.log" in selected(project, PackOptions(use_gitignore=False))


class TestDockerignore:
    def test_applies_docker_semantics_with_exceptions(self, project: Path) -> None:
        write(
            project,
            {
                ".dockerignore": "docs\n!docs/keep.md\n*.md\n!README.md\n**/*.csv\n",
                "docs/keep.md": "",
                "docs/other.txt": "",
                "README.md": "",
                "NOTES.md": "",
                "data/a.csv": "",
                "sub/NOTES.md": "",
            },
        )

        names = selected(project)

        assert "docs/other.txt" not in names
        assert "NOTES.md" not in names
        assert "data/a.csv" not in names
        assert "sub/NOTES.md" in names  # "*.md" only matches at the top
        assert "README.md" in names
        assert "docs/keep.md" in names  # "*.md" does not reach into docs/

    def test_exception_inside_an_excluded_folder_is_kept(self, project: Path) -> None:
        write(project, {".dockerignore": "assets\n!assets/logo.png\n", "assets/logo.png": b"png"})

        assert "assets/logo.png" in selected(project)

    def test_keeps_the_dockerfile_and_ignore_file_even_when_listed(self, project: Path) -> None:
        write(
            project,
            {".dockerignore": "Dockerfile\n.dockerignore\ndocker\n", "Dockerfile": "FROM x\n"},
        )
        write(project, {"docker/Dockerfile.prod": "FROM y\n", "docker/other": ""})

        assert {"Dockerfile", ".dockerignore"} <= set(selected(project))
        names = selected(project, PackOptions(dockerfile="docker/Dockerfile.prod"))
        assert "docker/Dockerfile.prod" in names
        assert "docker/other" not in names

    def test_dockerfile_specific_ignore_file_replaces_the_general_one(self, project: Path) -> None:
        write(
            project,
            {
                ".dockerignore": "*.txt\n",
                "Dockerfile.prod": "FROM x\n",
                "Dockerfile.prod.dockerignore": "*.md\n",
                "notes.txt": "",
                "notes.md": "",
            },
        )

        names = selected(project, PackOptions(dockerfile="Dockerfile.prod"))

        assert "notes.txt" in names
        assert "notes.md" not in names

    def test_invalid_pattern_is_reported_with_its_line(self, project: Path) -> None:
        write(project, {".dockerignore": "ok\n!\n"})

        with pytest.raises(PackingError, match=r"\.dockerignore, line 2"):
            select_files(project)


class TestContextDir:
    def test_only_the_context_folder_is_packed_under_its_path(self, tmp_path: Path) -> None:
        write(
            tmp_path / "mono",
            {
                ".gitignore": "*.log\n",
                "README.md": "",
                "services/api/app.py": "",
                "services/api/debug.log": "",
                "services/api/.dockerignore": "tests\n",
                "services/api/tests/test_x.py": "",
                "services/web/index.js": "",
            },
        )

        names = selected(tmp_path / "mono", PackOptions(context_dir="services/api/"))

        assert names == ["services/api/.dockerignore", "services/api/app.py"]

    @pytest.mark.parametrize("context_dir", ["../elsewhere", "/etc", "missing"])
    def test_refuses_a_context_outside_or_missing(self, project: Path, context_dir: str) -> None:
        with pytest.raises(PackingError, match="context-dir"):
            select_files(project, PackOptions(context_dir=context_dir))


class TestUnsafeEntries:
    def test_symbolic_links_are_never_stored_and_are_reported(
        self, project: Path, tmp_path: Path
    ) -> None:
        outside = tmp_path / "outside.txt"
        outside.write_text("secret")
        (project / "link_out").symlink_to(outside)
        (project / "link_in").symlink_to(project / "app.py")
        (project / "link_dir").symlink_to(project / "tests", target_is_directory=True)
        (project / "dangling").symlink_to(project / "nowhere")

        selection = select_files(project)

        assert [e.arcname for e in selection.files] == [
            "app.py",
            "requirements.txt",
            "tests/test_app.py",
        ]
        assert sorted(selection.skipped) == [
            ("dangling", "symbolic link"),
            ("link_dir", "symbolic link"),
            ("link_in", "symbolic link"),
            ("link_out", "symbolic link"),
        ]

    def test_fifo_is_skipped_without_blocking(self, project: Path) -> None:
        os.mkfifo(project / "pipe")

        selection = select_files(project)
        with io.BytesIO() as buffer:
            pack(project, buffer, selection=selection)

        assert ("pipe", "named pipe") in selection.skipped

    def test_ignored_symlinks_are_not_reported(self, project: Path) -> None:
        (project / "link").symlink_to(project / "app.py")
        write(project, {".dockerignore": "link\n"})

        assert select_files(project).skipped == []

    @pytest.mark.parametrize("name", ["bad\nname.py", "bidi\u202etxt.py"])
    def test_names_the_service_refuses_are_refused_early(self, project: Path, name: str) -> None:
        (project / name).write_text("")

        with pytest.raises(PackingError, match="control or invisible"):
            select_files(project)

    def test_undecodable_name_is_refused_unless_ignored(self, project: Path) -> None:
        os.close(os.open(bytes(project) + b"/bad\xff.py", os.O_CREAT | os.O_WRONLY, 0o644))

        with pytest.raises(PackingError, match="not valid UTF-8"):
            select_files(project)
        write(project, {".dockerignore": "bad*\n"})
        assert "app.py" in selected(project)

    def test_nothing_left_is_an_error(self, tmp_path: Path) -> None:
        write(tmp_path, {".gitignore": "*\n", "app.py": ""})

        with pytest.raises(PackingError, match="Nothing to upload"):
            select_files(tmp_path)

    def test_missing_folder_and_file_instead_of_folder(self, tmp_path: Path) -> None:
        with pytest.raises(PackingError, match="does not exist"):
            select_files(tmp_path / "missing")
        (tmp_path / "file").write_text("")
        with pytest.raises(PackingError, match="not a folder"):
            select_files(tmp_path / "file")


class TestZip:
    def test_zip_holds_the_files_with_their_content_and_modes(
        self, project: Path, tmp_path: Path
    ) -> None:
        script = project / "run.sh"
        script.write_text("#!/bin/sh\n")
        script.chmod(0o755)
        target = tmp_path / "out.zip"

        with target.open("w+b") as dest:
            packed = pack(project, dest)

        assert packed.zip_bytes == target.stat().st_size
        with zipfile.ZipFile(target) as archive:
            assert archive.namelist() == [
                "app.py",
                "requirements.txt",
                "run.sh",
                "tests/test_app.py",
            ]
            assert archive.read("app.py") == b"print('hi')\n"
            modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
        assert modes["run.sh"] == stat.S_IFREG | 0o755
        assert modes["app.py"] == stat.S_IFREG | 0o644

    def test_service_accepts_the_zip_even_with_a_highly_compressible_file(
        self, project: Path, tmp_path: Path
    ) -> None:
        write(project, {"data/zeros.bin": bytes(3 * 1024 * 1024), "small.bin": bytes(1000)})
        os.utime(project / "app.py", (0, 0))  # 1970: before zip time begins
        target = tmp_path / "out.zip"

        with target.open("w+b") as dest:
            pack(project, dest)

        summary = inspect_archive(target, test_settings(tmp_path / "data"))
        assert summary.files == 5
        with zipfile.ZipFile(target) as archive:
            assert archive.getinfo("data/zeros.bin").compress_type == zipfile.ZIP_STORED
            assert archive.getinfo("small.bin").compress_type == zipfile.ZIP_DEFLATED

    def test_big_files_are_streamed_not_held_in_memory(self, project: Path, tmp_path: Path) -> None:
        size = 24 * 1024 * 1024
        with (project / "big.bin").open("wb") as big:
            for _ in range(size // (1024 * 1024)):
                big.write(os.urandom(1024 * 1024))
        target = tmp_path / "out.zip"

        tracemalloc.start()
        try:
            with target.open("w+b") as dest:
                pack(project, dest)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        assert peak < 6 * 1024 * 1024
        assert target.stat().st_size > size
