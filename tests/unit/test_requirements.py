"""core.detection.requirements: includes, constraints, local paths and pip's line syntax, without
pip."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.detection.requirements import Requirements, RequirementsError, read_requirements


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative path -> text) under `root` and return `root`."""
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def read(root: Path, files: dict[str, str], start: str = "requirements.txt") -> Requirements:
    return read_requirements(write_tree(root, files), start)


class TestReadRequirements:
    def test_reads_plain_requirement_lines_in_order(self, tmp_path: Path) -> None:
        result = read(tmp_path, {"requirements.txt": "flask==3.0.0\nrequests>=2\n"})

        assert result.lines == ["flask==3.0.0", "requests>=2"]
        assert result.constraints == []
        assert result.local_paths == []
        assert result.files == ["requirements.txt"]

    @pytest.mark.parametrize(
        "include",
        ["-r base.txt", "--requirement base.txt", "--requirement=base.txt", "-rbase.txt"],
    )
    def test_follows_every_spelling_of_an_include(self, tmp_path: Path, include: str) -> None:
        result = read(
            tmp_path,
            {"requirements.txt": f"{include}\nflask\n", "base.txt": "requests\n"},
        )

        assert result.lines == ["requests", "flask"]
        assert result.files == ["requirements.txt", "base.txt"]

    def test_resolves_includes_relative_to_the_including_file(self, tmp_path: Path) -> None:
        result = read(
            tmp_path,
            {
                "requirements/prod.txt": "-r base.txt\ngunicorn\n",
                "requirements/base.txt": "-r ../shared/common.txt\nflask\n",
                "shared/common.txt": "attrs\n",
                # Same name at the root: must not be the one picked up.
                "base.txt": "wrong\n",
            },
            start="requirements/prod.txt",
        )

        assert result.lines == ["attrs", "flask", "gunicorn"]
        assert result.files == [
            "requirements/prod.txt",
            "requirements/base.txt",
            "shared/common.txt",
        ]

    @pytest.mark.parametrize("option", ["-c", "--constraint", "--constraint="])
    def test_sends_constraint_files_to_constraints(self, tmp_path: Path, option: str) -> None:
        separator = "" if option.endswith("=") else " "
        result = read(
            tmp_path,
            {
                "requirements.txt": f"{option}{separator}constraints.txt\nflask\n",
                "constraints.txt": "werkzeug<4\nclick==8.1.7\n",
            },
        )

        assert result.lines == ["flask"]
        assert result.constraints == ["werkzeug<4", "click==8.1.7"]

    def test_keeps_files_included_by_a_constraints_file_as_constraints(
        self, tmp_path: Path
    ) -> None:
        result = read(
            tmp_path,
            {
                "requirements.txt": "-c constraints.txt\nflask\n",
                "constraints.txt": "-r more-constraints.txt\n",
                "more-constraints.txt": "jinja2<4\n",
            },
        )

        assert result.lines == ["flask"]
        assert result.constraints == ["jinja2<4"]

    @pytest.mark.parametrize(
        ("line", "expected"),
        [
            ("-e .", "."),
            ("--editable .", "."),
            ("--editable=.", "."),
            ("-e.", "."),
            (".", "."),
            ("./", "."),
            ("./sub", "sub"),
            ("-e ./libs/core", "libs/core"),
            (".[extra]", ".[extra]"),
            ("-e .[test,docs]", ".[test,docs]"),
            ("./sub[extra]", "sub[extra]"),
        ],
    )
    def test_moves_local_paths_out_of_the_requirement_lines(
        self, tmp_path: Path, line: str, expected: str
    ) -> None:
        (tmp_path / "sub").mkdir()
        result = read(tmp_path, {"requirements.txt": f"flask\n{line}\n"})

        assert result.local_paths == [expected]
        assert result.lines == ["flask"]

    def test_resolves_local_paths_relative_to_the_including_file(self, tmp_path: Path) -> None:
        result = read(
            tmp_path,
            {
                "requirements.txt": "-r requirements/local.txt\n",
                "requirements/local.txt": "-e ..\n-e ../libs/util\n",
            },
        )

        assert result.local_paths == [".", "libs/util"]
        assert result.lines == []

    def test_keeps_editable_vcs_requirements_as_lines(self, tmp_path: Path) -> None:
        line = "-e git+https://github.com/pallets/click.git@8.1.7#egg=click"
        result = read(tmp_path, {"requirements.txt": f"{line}\n"})

        assert result.lines == [line]
        assert result.local_paths == []

    def test_drops_comments_and_blank_lines(self, tmp_path: Path) -> None:
        text = (
            "# The web framework.\n"
            "\n"
            "flask==3.0.0  # pinned for the tutorial\n"
            "   # indented comment\n"
            "requests @ https://example.com/requests-2.0.tar.gz#sha256=abc\n"
        )
        result = read(tmp_path, {"requirements.txt": text})

        assert result.lines == [
            "flask==3.0.0",
            # A '#' without a space before it is part of a URL, not a comment.
            "requests @ https://example.com/requests-2.0.tar.gz#sha256=abc",
        ]

    def test_joins_line_continuations(self, tmp_path: Path) -> None:
        text = "flask==3.0.0 \\\n    --hash=sha256:aaa \\\n    --hash=sha256:bbb\nclick\n"
        result = read(tmp_path, {"requirements.txt": text})

        assert len(result.lines) == 2
        assert result.lines[0].split() == [
            "flask==3.0.0",
            "--hash=sha256:aaa",
            "--hash=sha256:bbb",
        ]
        assert result.lines[1] == "click"

    def test_keeps_a_continuation_on_the_last_line(self, tmp_path: Path) -> None:
        result = read(tmp_path, {"requirements.txt": "flask \\"})

        assert result.lines == ["flask"]

    def test_comment_line_ending_in_backslash_does_not_swallow_the_next_line(
        self, tmp_path: Path
    ) -> None:
        # pip never continues a comment line; the next requirement must survive.
        result = read(tmp_path, {"requirements.txt": "# see C:\\\nrequests\n"})

        assert result.lines == ["requests"]

    def test_accepts_windows_line_endings(self, tmp_path: Path) -> None:
        result = read(
            tmp_path, {"requirements.txt": "flask\r\n-r base.txt\r\n", "base.txt": "a\r\n"}
        )

        assert result.lines == ["flask", "a"]

    def test_keeps_hash_lines_and_index_options(self, tmp_path: Path) -> None:
        text = (
            "--index-url https://pypi.example.com/simple\n"
            "--extra-index-url=https://mirror.example.com/simple\n"
            "-i https://pypi.example.com/simple\n"
            "--find-links https://example.com/wheels\n"
            "--only-binary :all:\n"
            "--pre\n"
            "attrs==23.2.0"
            " --hash=sha256:99b87a485a5820b23b879f04c2305b44b951b502fd64be915879d77a7e8fc6f1\n"
        )
        result = read(tmp_path, {"requirements.txt": text})

        assert result.lines == text.splitlines()
        assert result.local_paths == []

    def test_reads_a_file_included_twice_only_once(self, tmp_path: Path) -> None:
        result = read(
            tmp_path,
            {
                "requirements.txt": "-r a.txt\n-r b.txt\n",
                "a.txt": "-r common.txt\nalpha\n",
                "b.txt": "-r common.txt\nbeta\n",
                "common.txt": "shared\n",
            },
        )

        assert result.lines == ["shared", "alpha", "beta"]
        assert result.files == ["requirements.txt", "a.txt", "common.txt", "b.txt"]

    def test_stops_at_include_cycles(self, tmp_path: Path) -> None:
        result = read(
            tmp_path,
            {
                "requirements.txt": "-r a.txt\nroot-dep\n",
                "a.txt": "-r b.txt\na-dep\n",
                "b.txt": "-r requirements.txt\n-r a.txt\nb-dep\n",
            },
        )

        assert result.lines == ["b-dep", "a-dep", "root-dep"]
        assert result.files == ["requirements.txt", "a.txt", "b.txt"]

    def test_stops_at_a_file_including_itself(self, tmp_path: Path) -> None:
        result = read(tmp_path, {"requirements.txt": "-r ./requirements.txt\nflask\n"})

        assert result.lines == ["flask"]

    @pytest.mark.parametrize(
        "line",
        [
            "-r ../outside.txt",
            "-c ../outside.txt",
            "-r /etc/passwd",
            "--requirement=sub/../../outside.txt",
        ],
    )
    def test_rejects_include_outside_project(self, tmp_path: Path, line: str) -> None:
        project = tmp_path / "project"
        write_tree(tmp_path, {"outside.txt": "evil\n"})

        with pytest.raises(RequirementsError, match="outside the project"):
            read(project, {"requirements.txt": f"{line}\n"})

    def test_rejects_include_through_a_symlink_leaving_the_project(self, tmp_path: Path) -> None:
        project = tmp_path / "project"
        write_tree(tmp_path, {"outside.txt": "evil\n"})
        project.mkdir()
        (project / "link.txt").symlink_to(tmp_path / "outside.txt")

        with pytest.raises(RequirementsError, match="outside the project"):
            read(project, {"requirements.txt": "-r link.txt\n"})

    @pytest.mark.parametrize("line", ["../sibling", "-e ../sibling", "/opt/lib"])
    def test_rejects_local_path_outside_project(self, tmp_path: Path, line: str) -> None:
        project = tmp_path / "project"
        (tmp_path / "sibling").mkdir()

        with pytest.raises(RequirementsError, match="outside the project"):
            read(project, {"requirements.txt": f"{line}\n"})

    def test_rejects_missing_include(self, tmp_path: Path) -> None:
        with pytest.raises(RequirementsError, match=r"sub/missing\.txt is included but does not"):
            read(tmp_path, {"requirements.txt": "flask\n-r sub/missing.txt\n"})

    def test_rejects_missing_constraints_file(self, tmp_path: Path) -> None:
        with pytest.raises(RequirementsError, match="does not exist"):
            read(tmp_path, {"requirements.txt": "-c constraints.txt\n"})
