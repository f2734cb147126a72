"""core.builds.options: what a user may ask for, and the mistakes refused before a build is
queued."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from core.builds.options import BuildOptions, is_valid_reference


def options(**fields: Any) -> BuildOptions:
    return BuildOptions.model_validate(fields)


def rejects(field: str, value: Any) -> str:
    """The validation message for `field=value`; fails if it is accepted."""
    with pytest.raises(ValidationError) as caught:
        options(**{field: value})
    errors = caught.value.errors()
    assert {error["loc"][0] for error in errors} == {field}
    return str(errors[0]["msg"])


class TestTag:
    @pytest.mark.parametrize(
        "tag",
        [
            "myapp",
            "myapp:1.2",
            "my-app_2:latest",
            "team/myapp",
            "a__b/c--d/e.f:v1",
            "registry.example.com/team/myapp:latest",
            "localhost:5000/team/app:v1",
            "Registry.Example.com:443/app",
            "myapp:" + "a" * 128,
            "myapp:_underscore",
            "myapp:V1.0-RC_2",
        ],
    )
    def test_accepts_docker_references(self, tag: str) -> None:
        assert is_valid_reference(tag)
        assert options(tag=tag).tag == tag

    @pytest.mark.parametrize(
        "tag",
        [
            "",
            "MyApp",
            "myapp:1.0@sha256:" + "a" * 64,
            "myapp@sha256:" + "a" * 64,
            "my..app",
            "../app",
            "team/../app",
            "-app",
            "app-",
            "myapp:-tag",
            "myapp:.tag",
            "myapp:" + "a" * 129,
            "myapp:",
            "my app",
            "myapp:tag with space",
            "registry.example.com:port/app",
            "/app",
            "app/",
            "app:ü",
            "app:tag\n",
            "\uff41pp",  # fullwidth a
        ],
    )
    def test_rejects_invalid_references(self, tag: str) -> None:
        assert not is_valid_reference(tag)
        assert "tag must be a Docker reference" in rejects("tag", tag)

    def test_rejects_references_longer_than_255_characters(self) -> None:
        tag = "/".join(["a" * 50] * 5) + "/abcdef"

        assert len(tag) == 261
        assert not is_valid_reference(tag)

    def test_tag_is_optional(self) -> None:
        assert options().tag is None


class TestPythonVersion:
    @pytest.mark.parametrize("version", ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14"])
    def test_accepts_supported_versions(self, version: str) -> None:
        assert options(python_version=version).python_version == version

    @pytest.mark.parametrize("version", ["3.7", "3.15", "2.7", "3", "3.11.4", "latest", ""])
    def test_rejects_other_versions(self, version: str) -> None:
        assert "python_version must be one of 3.8, " in rejects("python_version", version)


class TestTestCommand:
    def test_strips_surrounding_space(self) -> None:
        assert options(test_command="  pytest -q  ").test_command == "pytest -q"

    @pytest.mark.parametrize("command", ["", "   ", "pytest\nrm -rf /", "pytest\x00"])
    def test_rejects_empty_or_multi_line_commands(self, command: str) -> None:
        assert "one non-empty line" in rejects("test_command", command)

    def test_rejects_commands_over_2000_characters(self) -> None:
        rejects("test_command", "x" * 2001)


class TestRelativePaths:
    @pytest.mark.parametrize("field", ["dockerfile", "context_dir"])
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("Dockerfile", "Dockerfile"),
            ("docker/prod.Dockerfile", "docker/prod.Dockerfile"),
            ("services/api/", "services/api"),
            ("./services/api", "services/api"),
            ("a//b", "a/b"),
            ("dots..in..name", "dots..in..name"),
        ],
    )
    def test_accepts_relative_paths_inside_the_archive(
        self, field: str, value: str, expected: str
    ) -> None:
        assert getattr(options(**{field: value}), field) == expected

    @pytest.mark.parametrize("field", ["dockerfile", "context_dir"])
    @pytest.mark.parametrize(
        "value",
        [
            "/etc/passwd",
            "/",
            "..",
            "../Dockerfile",
            "docker/../../Dockerfile",
            "docker\\Dockerfile",
            "C:\\Dockerfile",
            "docker/\x00Dockerfile",
            "docker/\nDockerfile",
            "docker/\x7fDockerfile",
            "",
            "   ",
            "a/" * 128,
        ],
    )
    def test_rejects_paths_leaving_the_archive_or_unsafe(self, field: str, value: str) -> None:
        message = rejects(field, value)

        assert f"{field} must be a relative path inside the archive" in message


class TestBuildArgs:
    def test_accepts_valid_names_and_values(self) -> None:
        args = {"PIP_INDEX_URL": "https://pypi.example.com/simple", "_x1": "", "V": "é ☃"}

        assert options(build_args=args).build_args == args

    @pytest.mark.parametrize("name", ["", "1ABC", "WITH-DASH", "WITH SPACE", "É", "A" * 129])
    def test_rejects_invalid_names(self, name: str) -> None:
        assert "is not a valid build argument name" in rejects("build_args", {name: "x"})

    @pytest.mark.parametrize("value", ["a\x00b", "x" * 4097])
    def test_rejects_nul_and_huge_values(self, value: str) -> None:
        assert "must be text under 4096 characters" in rejects("build_args", {"NAME": value})

    def test_rejects_more_than_64_args(self) -> None:
        rejects("build_args", {f"ARG_{n}": "x" for n in range(65)})

    def test_rejects_non_string_values(self) -> None:
        rejects("build_args", {"NAME": ["x"]})


class TestBuildOptions:
    def test_defaults(self) -> None:
        assert options() == BuildOptions(
            tag=None,
            python_version=None,
            run_tests=True,
            test_command=None,
            dockerfile=None,
            context_dir=None,
            build_args={},
        )

    def test_forbids_unknown_fields(self) -> None:
        with pytest.raises(ValidationError) as caught:
            options(tags="myapp:1")

        assert caught.value.errors()[0]["type"] == "extra_forbidden"

    @pytest.mark.parametrize(
        ("text", "expected"),
        [("true", True), ("false", False), ("True", True), ("0", False), ("1", True)],
    )
    def test_parses_run_tests_from_form_strings(self, text: str, expected: bool) -> None:
        assert options(run_tests=text).run_tests is expected

    def test_rejects_run_tests_that_is_not_a_boolean(self) -> None:
        rejects("run_tests", "maybe")

    def test_is_frozen(self) -> None:
        built = options(tag="myapp")

        with pytest.raises(ValidationError):
            built.tag = "other"  # type: ignore[misc]
