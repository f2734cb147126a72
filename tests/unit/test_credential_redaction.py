"""core.sources.credentials: userinfo taken out of project files and log lines, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.sources.credentials import (
    REDACTED,
    FoundCredential,
    redact_line,
    redact_project,
    redact_text,
    warning_for,
)


class TestRedactText:
    @pytest.mark.parametrize(
        ("line", "expected", "host"),
        [
            (
                "--index-url https://alice:s3cret@pypi.example.com/simple",
                "--index-url https://pypi.example.com/simple",
                "pypi.example.com",
            ),
            (
                "--extra-index-url=http://bob:p%40ss@10.0.0.5:8080/simple/",
                "--extra-index-url=http://10.0.0.5:8080/simple/",
                "10.0.0.5",
            ),
            (
                "private @ https://ci:tok@files.example.com/private-1.0.whl",
                "private @ https://files.example.com/private-1.0.whl",
                "files.example.com",
            ),
            (
                'url = "https://__token__:glpat-xyz@gitlab.example.com/api/v4/simple"',
                'url = "https://gitlab.example.com/api/v4/simple"',
                "gitlab.example.com",
            ),
            (
                "lib @ git+https://ghp_token123@github.com/acme/lib.git",
                "lib @ git+https://github.com/acme/lib.git",
                "github.com",
            ),
        ],
    )
    def test_removes_userinfo_and_reports_it(self, line: str, expected: str, host: str) -> None:
        redacted, found = redact_text(line)
        assert redacted == expected
        assert [credential.host for credential in found] == [host]

    def test_reports_user_and_password_as_written(self) -> None:
        _, found = redact_text("-i https://alice:p%40ss@pypi.example.com/simple")
        assert found == [FoundCredential("pypi.example.com", "alice", "p%40ss")]

    @pytest.mark.parametrize(
        "line",
        [
            "lib @ git+ssh://git@github.com/acme/lib.git",
            "requests>=2.31",
            "write to ops@example.com for access",
            "--index-url https://pypi.example.com/simple",
        ],
    )
    def test_leaves_what_is_no_credential(self, line: str) -> None:
        assert redact_text(line) == (line, [])

    def test_masks_known_secrets_anywhere(self) -> None:
        line = "401 for user builder with password hunter2-long in netrc"
        assert redact_line(line, ("hunter2-long",)) == line.replace("hunter2-long", REDACTED)


class TestRedactProject:
    def test_rewrites_dependency_files_only(self, tmp_path: Path) -> None:
        secret = "https://u:topsecret@pypi.example.com/simple"
        files = {
            "requirements.txt": f"--index-url {secret}\nrequests\n",
            "requirements/dev.in": f"-i {secret}\n",
            "pyproject.toml": f'[[tool.uv.index]]\nname = "corp"\nurl = "{secret}"\n',
            "pip.conf": f"[global]\nindex-url = {secret}\n",
            "uv.toml": f'index-url = "{secret}"\n',
            "Dockerfile": f"RUN pip install --index-url {secret} x\n",
            "src/app.py": f"URL = '{secret}'\n",  # the project's code is not configuration
        }
        for relative, content in files.items():
            (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / relative).write_text(content)
        found = redact_project(tmp_path)
        assert sorted({credential.path for credential in found}) == sorted(
            set(files) - {"src/app.py"}
        )
        for relative in set(files) - {"src/app.py"}:
            content = (tmp_path / relative).read_text()
            assert "topsecret" not in content, relative
            assert "https://pypi.example.com/simple" in content, relative
        assert (tmp_path / "src/app.py").read_text() == files["src/app.py"]
        assert (tmp_path / "requirements.txt").read_text().endswith("requests\n")

    def test_does_not_follow_symlinks(self, tmp_path: Path) -> None:
        outside = tmp_path / "outside.txt"
        outside.write_text("-i https://u:keep@host.example/simple\n")
        project = tmp_path / "project"
        project.mkdir()
        (project / "requirements.txt").symlink_to(outside)
        assert redact_project(project) == []
        assert "keep" in outside.read_text()


class TestWarning:
    def test_says_where_and_how_to_register_without_the_secret(self) -> None:
        found = [FoundCredential("pypi.example.com", "alice", "topsecret", "requirements.txt")]
        warning = warning_for(found)
        assert warning is not None
        assert "requirements.txt (pypi.example.com)" in warning
        assert "imagebuilder indexes put NAME https://pypi.example.com/simple" in warning
        assert "topsecret" not in warning
        assert "alice" not in warning

    def test_none_without_findings(self) -> None:
        assert warning_for([]) is None
