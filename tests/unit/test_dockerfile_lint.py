"""core.dockerfile.lint: the rule set on real-world Dockerfile habits, and the frontend guard."""

from __future__ import annotations

import pytest

from core.dockerfile.lint import frontend_reference, lint, parse


def rules(text: str) -> list[tuple[str, int]]:
    return [(finding.rule, finding.line) for finding in lint(text)]


GOOD = """\
# A careful Dockerfile.
FROM python:3.12-slim AS build
RUN pip install --no-cache-dir build
FROM python:3.12-slim
RUN apt-get update \\
    && apt-get install -y --no-install-recommends libpq5 \\
    && rm -rf /var/lib/apt/lists/*
COPY . /app
USER 10001
CMD ["python", "-m", "app"]
"""


class TestLint:
    def test_a_careful_dockerfile_has_no_findings(self) -> None:
        assert lint(GOOD) == []

    @pytest.mark.parametrize(
        ("base", "expected"),
        [
            ("FROM python", [("IB001", 1)]),
            ("FROM python:latest", [("IB001", 1)]),
            ("FROM registry.example.com:5000/team/python", [("IB001", 1)]),
            ("FROM registry.example.com:5000/team/python:3.12", []),
            ("FROM python@sha256:" + "a" * 64, []),
            ("FROM scratch", []),
        ],
    )
    def test_untagged_or_latest_base(self, base: str, expected: list[tuple[str, int]]) -> None:
        assert rules(f"{base}\nUSER 1000\n") == expected

    def test_build_argument_defaults_are_followed(self) -> None:
        assert rules("ARG BASE=python:latest\nFROM ${BASE}\nUSER 1\n") == [("IB001", 2)]
        assert rules("ARG BASE=python:3.12\nFROM ${BASE}\nUSER 1\n") == []
        assert rules("ARG BASE\nFROM ${BASE}\nUSER 1\n") == []

    def test_stage_references_are_not_images(self) -> None:
        text = "FROM python:3.12 AS base\nFROM base AS test\nFROM base\nUSER 1\n"

        assert rules(text) == []

    def test_root_user(self) -> None:
        assert rules("FROM python:3.12\nCMD x\n") == [("IB002", 1)]
        assert rules("FROM python:3.12\nUSER app\nUSER root\n") == [("IB002", 3)]
        assert rules("FROM python:3.12\nUSER 0:0\n") == [("IB002", 2)]

    def test_user_is_inherited_from_the_parent_stage(self) -> None:
        text = "FROM python:3.12 AS runtime\nUSER 10001\nFROM runtime AS test\nRUN true\n"

        assert rules(text) == []

    def test_user_of_an_earlier_stage_does_not_count(self) -> None:
        text = "FROM python:3.12 AS build\nUSER 1\nFROM python:3.12-slim\n"

        assert rules(text) == [("IB002", 3)]

    def test_apt_get(self) -> None:
        text = "FROM debian:12\nRUN apt-get update && apt-get install -y gcc\nUSER 1\n"

        assert rules(text) == [("IB003", 2), ("IB004", 2)]

    def test_apt_get_with_a_cache_mount_needs_no_cleanup(self) -> None:
        text = (
            "FROM debian:12\nRUN --mount=type=cache,target=/var/cache/apt apt-get install -y "
            "--no-install-recommends gcc\nUSER 1\n"
        )

        assert rules(text) == []

    def test_apt_get_upgrade(self) -> None:
        assert ("IB007", 2) in rules("FROM debian:12\nRUN apt-get upgrade -y\nUSER 1\n")

    @pytest.mark.parametrize(
        ("add", "flagged"),
        [
            ("ADD . /app", True),
            ("ADD --chown=1:1 src/ /app/src/", True),
            ("ADD https://example.invalid/tool.tgz /opt/", False),
            ("ADD vendor.tar.gz /opt/", False),
        ],
    )
    def test_add_of_local_files(self, add: str, flagged: bool) -> None:
        assert (("IB005", 2) in rules(f"FROM python:3.12\n{add}\nUSER 1\n")) is flagged

    @pytest.mark.parametrize(
        ("run", "flagged"),
        [
            ("pip install flask", True),
            ("python -m pip install -r requirements.txt", True),
            ("pip3 install --no-cache-dir flask", False),
            ("--mount=type=cache,target=/root/.cache/pip pip install flask", False),
            ("uv pip install --no-cache flask", False),
            ("pip install --no-cache-dir a && pip install b", True),
        ],
    )
    def test_pip_cache(self, run: str, flagged: bool) -> None:
        assert (("IB006", 2) in rules(f"FROM python:3.12\nRUN {run}\nUSER 1\n")) is flagged

    def test_line_numbers_of_continued_instructions(self) -> None:
        text = (
            "FROM python:3.12\n\n# install\nRUN apt-get update \\\n  # a comment\n"
            "  && apt-get install -y x\nUSER 1\n"
        )

        assert [item.line for item in parse(text)] == [1, 4, 7]
        assert rules(text) == [("IB003", 4), ("IB004", 4)]

    def test_escape_directive(self) -> None:
        text = "# escape=`\nFROM mcr.microsoft.com/windows:ltsc2022\nRUN a `\n  b\nUSER x\n"

        # BuildKit drops the escape token and keeps the spaces around it.
        assert [item.arguments for item in parse(text)][1] == "a   b"

    def test_findings_serialise(self) -> None:
        finding = lint("FROM python\n")[0]

        assert finding.to_dict() == {
            "rule": "IB001",
            "line": 1,
            "message": "FROM python has no tag: pin a version",
            "severity": "warning",
        }
        assert str(finding) == "line 1: IB001 FROM python has no tag: pin a version"


class TestFrontendReference:
    @pytest.mark.parametrize(
        "text",
        [
            "# syntax=docker/dockerfile:1\nFROM x\n",
            "#syntax = docker.io/docker/dockerfile:1.7-labs\nFROM x\n",
            "# SYNTAX=evil.example/frontend\n",
            "# escape=`\n# syntax=ghcr.io/x/y\nFROM x\n",
            "\ufeff# syntax=docker/dockerfile:1\n",
        ],
    )
    def test_finds_the_directive(self, text: str) -> None:
        assert frontend_reference(text) is not None

    @pytest.mark.parametrize(
        "text",
        [
            "FROM x\n# syntax=docker/dockerfile:1\n",
            "# A comment first\n# syntax=docker/dockerfile:1\nFROM x\n",
            "\n# syntax=docker/dockerfile:1\n",
            "# syntax-free comment\nFROM x\n",
        ],
    )
    def test_only_parser_directives_count(self, text: str) -> None:
        assert frontend_reference(text) is None
