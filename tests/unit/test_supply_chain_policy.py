"""core.supply_chain.policy and the pure parts of worker.supply_chain: allowlist patterns, the
images a Dockerfile uses, the severity gate, push targets, the inventory listing's output."""

from __future__ import annotations

import json

import pytest

from core.supply_chain.advisories import Finding
from core.supply_chain.policy import (
    blocking,
    check_base_images,
    final_base_image,
    image_uses,
    is_allowed,
    parse_reference,
)
from worker.supply_chain import (
    InventoryFailed,
    digest_from_build_log,
    parse_inventory,
)

DIGEST = "sha256:" + "a" * 64


class TestReferences:
    @pytest.mark.parametrize(
        ("text", "canonical", "familiar"),
        [
            ("python", "docker.io/library/python", "python"),
            ("python:3.11-slim", "docker.io/library/python:3.11-slim", "python:3.11-slim"),
            ("team/app:1", "docker.io/team/app:1", "team/app:1"),
            ("ghcr.io/org/app:2", "ghcr.io/org/app:2", "ghcr.io/org/app:2"),
            ("localhost/app", "localhost/app", "localhost/app"),
            ("127.0.0.1:5000/app:1", "127.0.0.1:5000/app:1", "127.0.0.1:5000/app:1"),
            (f"python@{DIGEST}", f"docker.io/library/python@{DIGEST}", f"python@{DIGEST}"),
        ],
    )
    def test_forms(self, text: str, canonical: str, familiar: str) -> None:
        reference = parse_reference(text)
        assert reference is not None
        assert reference.canonical == canonical
        assert reference.familiar == familiar

    @pytest.mark.parametrize("text", ["", "UPPER:1", "a b", "python:", "python@sha256:zz"])
    def test_invalid(self, text: str) -> None:
        assert parse_reference(text) is None


class TestAllowlist:
    @pytest.mark.parametrize(
        ("reference", "patterns", "allowed"),
        [
            ("python:3.11-slim", ["python:3.*-slim"], True),
            ("docker.io/library/python:3.11-slim", ["python:3.*-slim"], True),
            ("python:3.11-slim", ["docker.io/library/python:*"], True),
            ("python", ["python:latest"], True),  # the implicit tag
            ("python:3.11", ["python:3.*-slim"], False),
            ("pythonista/python:3.11-slim", ["python:*"], False),
            ("evil.example/python:3.11-slim", ["python:*"], False),
            ("registry.example.com/base/py/3.11:1", ["registry.example.com/base/*"], False),
            ("registry.example.com/base/py/3.11:1", ["registry.example.com/base/**"], True),
            (f"python:3.11-slim@{DIGEST}", ["python:3.11-slim*"], True),
            (f"python@{DIGEST}", ["python:*"], False),
            (f"python@{DIGEST}", [f"python@{DIGEST}"], True),
            ("not a reference", ["**"], False),
        ],
    )
    def test_patterns(self, reference: str, patterns: list[str], allowed: bool) -> None:
        assert is_allowed(reference, patterns) is allowed


DOCKERFILE = """\
# syntax is not used here
ARG BASE=python:3.11-slim
ARG TAG
ARG REGISTRY=docker.io
FROM ${BASE} AS build
RUN --mount=type=cache,target=/root/.cache pip wheel -w /wheels .
FROM build AS test
FROM --platform=$BUILDPLATFORM ${REGISTRY}/library/alpine:${TAG:-3.20} AS tools
COPY --from=busybox:1.36 /bin/busybox /busybox
COPY --from=build /wheels /wheels
COPY --from=0 /etc/passwd /passwd
RUN --mount=type=bind,from=ghcr.io/org/helper:1,target=/h /h/run
FROM scratch AS empty
FROM build
COPY --from=tools /x /x
"""


class TestImageUses:
    def test_external_images_with_arguments_resolved(self) -> None:
        uses = [(u.line, u.instruction, u.reference) for u in image_uses(DOCKERFILE)]
        assert uses == [
            (5, "FROM", "python:3.11-slim"),
            (8, "FROM", "docker.io/library/alpine:3.20"),
            (9, "COPY --from", "busybox:1.36"),
            (12, "RUN --mount", "ghcr.io/org/helper:1"),
        ]

    def test_build_args_override_defaults(self) -> None:
        uses = image_uses(DOCKERFILE, {"BASE": "evil/image:1", "TAG": "3.19"})
        assert [u.reference for u in uses][:2] == ["evil/image:1", "docker.io/library/alpine:3.19"]

    def test_args_after_the_first_from_do_not_reach_from(self) -> None:
        text = "FROM python:3.11 AS a\nARG LATE=evil:1\nFROM ${LATE}\n"
        assert [u.reference for u in image_uses(text)] == ["python:3.11", ""]

    def test_stage_names_are_case_insensitive(self) -> None:
        text = "FROM python:3.11 AS Build\nFROM BUILD\n"
        assert [u.reference for u in image_uses(text)] == ["python:3.11"]

    def test_continuation_lines(self) -> None:
        text = "FROM \\\n  python:3.12 \\\n  AS base\nFROM base\n"
        assert [(u.line, u.reference) for u in image_uses(text)] == [(1, "python:3.12")]


class TestCheckBaseImages:
    def test_off_when_the_allowlist_is_empty(self) -> None:
        assert check_base_images(DOCKERFILE, []) == []

    def test_every_refused_use_is_named(self) -> None:
        violations = check_base_images(DOCKERFILE, ["python:3.11-*", "docker.io/library/alpine:*"])
        assert [(v.line, v.reference) for v in violations] == [
            (9, "busybox:1.36"),
            (12, "ghcr.io/org/helper:1"),
        ]
        assert "not on the allowlist" in str(violations[0])

    def test_an_argument_can_not_smuggle_an_image_in(self) -> None:
        text = "ARG BASE=python:3.11-slim\nFROM $BASE\n"
        assert check_base_images(text, ["python:*"]) == []
        (violation,) = check_base_images(text, ["python:*"], {"BASE": "evil/python:3.11-slim"})
        assert violation.reference == "evil/python:3.11-slim"

    def test_an_empty_reference_is_a_violation(self) -> None:
        (violation,) = check_base_images("ARG BASE\nFROM $BASE\n", ["**"])
        assert "empty" in violation.reason


class TestFinalBaseImage:
    def test_follows_stages_to_the_image(self) -> None:
        assert final_base_image(DOCKERFILE) == "python:3.11-slim"

    def test_target_stage(self) -> None:
        assert final_base_image(DOCKERFILE, target="tools") == "docker.io/library/alpine:3.20"
        assert final_base_image(DOCKERFILE, target="empty") is None

    def test_generated_runtime_stage(self) -> None:
        text = "FROM builder:1 AS deps\nFROM runtime-image:3.11 AS runtime\nFROM runtime AS test\n"
        assert final_base_image(text, target="runtime") == "runtime-image:3.11"
        assert final_base_image(text) == "runtime-image:3.11"


def finding(severity: str) -> Finding:
    return Finding(f"GHSA-{severity}", "pkg", "1.0", None, severity, "")


FINDINGS = tuple(finding(s) for s in ("unknown", "low", "medium", "high", "critical"))


class TestSeverityPolicy:
    @pytest.mark.parametrize(
        ("policy", "blocked"),
        [
            ("none", []),
            ("low", ["unknown", "low", "medium", "high", "critical"]),
            ("medium", ["medium", "high", "critical"]),
            ("high", ["high", "critical"]),
            ("critical", ["critical"]),
        ],
    )
    def test_at_or_above_the_policy(self, policy: str, blocked: list[str]) -> None:
        assert [f.severity for f in blocking(FINDINGS, policy)] == blocked


MARKER = "::imagebuilder-inventory::x::"


def listing(*lines: str) -> list[str]:
    return [f"{MARKER} {line}" if not line.startswith("!") else line[1:] for line in lines]


class TestParseInventory:
    def test_packages_from_the_listing(self) -> None:
        py = {
            "name": "urllib3",
            "version": "1.26.4",
            "license": "MIT",
            "classifiers": ["License :: OSI Approved :: MIT License"],
            "record_sha256": "a" * 64,
            "location": "/opt/venv/lib/python3.11/site-packages",
        }
        lines = listing(
            "py " + json.dumps(py),
            "py " + json.dumps(py | {"version": "9"}),  # a shadowed copy: the first one wins
            "py not json",
            'py {"name": "no-version"}',
            "!noise from the image",
            "dpkg Package: libc6",
            "dpkg Status: install ok installed",
            "dpkg Version: 2.36-9",
            "dpkg Architecture: amd64",
            "dpkg ",
            "osr ID=debian",
            'osr VERSION_ID="12"',
            "end ",
        )
        inventory = parse_inventory(lines, MARKER)
        assert [(p.name, p.version) for p in inventory.python] == [("urllib3", "1.26.4")]
        assert inventory.python[0].record_sha256 == "a" * 64
        assert inventory.python[0].license_classifiers == (
            "License :: OSI Approved :: MIT License",
        )
        assert [(d.name, d.version) for d in inventory.debian] == [("libc6", "2.36-9")]
        assert (inventory.os.id, inventory.os.version_id) == ("debian", "12")

    def test_a_bad_hash_is_dropped(self) -> None:
        lines = listing('py {"name": "x", "version": "1", "record_sha256": "nothex"}', "end")
        assert parse_inventory(lines, MARKER).python[0].record_sha256 is None

    def test_a_listing_cut_short_is_a_failure(self) -> None:
        with pytest.raises(InventoryFailed):
            parse_inventory(listing('py {"name": "x", "version": "1"}'), MARKER)


class TestDigestFromBuildLog:
    def test_the_resolved_from_line(self) -> None:
        lines = [
            "#3 [internal] load metadata for docker.io/library/python:3.11-slim",
            f"#5 [runtime 1/4] FROM docker.io/library/python:3.11-slim@{DIGEST}",
        ]
        assert digest_from_build_log(lines, "python:3.11-slim") == DIGEST
        assert digest_from_build_log(lines, "python:3.12-slim") == DIGEST  # same repository
        assert digest_from_build_log(lines, "ruby:3") is None
