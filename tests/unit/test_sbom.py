"""core.supply_chain.sbom and core.supply_chain.provenance: the documents' shapes, dpkg status
parsing, package URLs."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from core.supply_chain.advisories import Finding
from core.supply_chain.provenance import (
    BUILD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    ProvenanceInput,
    image_labels,
    provenance,
)
from core.supply_chain.sbom import (
    BomSubject,
    DebianPackage,
    Inventory,
    OperatingSystem,
    PythonPackage,
    cyclonedx,
    parse_dpkg_status,
    parse_os_release,
)

STATUS = """\
Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.

Package: removed-one
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-0+deb12u1

Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl (3.0.11-1~deb12u2)
Version: 3.0.11-1~deb12u2
"""
RECORD_SHA = hashlib.sha256(b"urllib3/__init__.py,sha256=abc,123\n").hexdigest()
IMAGE_ID = "sha256:" + "ab" * 32


def inventory() -> Inventory:
    return Inventory(
        python=[
            PythonPackage(
                "urllib3",
                "1.26.4",
                license="MIT",
                license_classifiers=("License :: OSI Approved :: MIT License",),
                record_sha256=RECORD_SHA,
                location="/opt/venv/lib/python3.11/site-packages",
            ),
            PythonPackage("Typing_Extensions", "4.12.2", license_expression="PSF-2.0"),
            PythonPackage("odd", "1.0", license="Some Custom License"),
        ],
        debian=parse_dpkg_status(STATUS),
        os=OperatingSystem("debian", "12", "Debian GNU/Linux 12 (bookworm)"),
    )


def subject() -> BomSubject:
    return BomSubject(
        build_id="b_1",
        image_id=IMAGE_ID,
        tag="myapp:1.2",
        created_at=datetime(2026, 11, 27, 8, 0, tzinfo=UTC),
        tool_version="0.1.0",
        base_image="imagebuilder/python:3.11",
        base_image_digest="sha256:" + "cd" * 32,
    )


class TestDpkgStatus:
    def test_installed_packages_only_with_their_fields(self) -> None:
        packages = parse_dpkg_status(STATUS)
        assert [p.name for p in packages] == ["libc6", "libssl3", "tzdata"]
        assert packages[0] == DebianPackage("libc6", "2.36-9+deb12u4", "amd64", "glibc")
        assert packages[1].source == "openssl"  # the version in parentheses is dropped

    def test_distroless_paragraphs_without_status_count_as_installed(self) -> None:
        packages = parse_dpkg_status("Package: base-files\nVersion: 12.4\nArchitecture: amd64\n")
        assert [p.name for p in packages] == ["base-files"]

    def test_os_release(self) -> None:
        text = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
        assert parse_os_release(text) == OperatingSystem(
            "debian", "12", "Debian GNU/Linux 12 (bookworm)"
        )


class TestPurls:
    def test_pypi_names_are_lowercase_with_dashes(self) -> None:
        assert PythonPackage("Typing_Extensions", "4.12.2").purl == (
            "pkg:pypi/typing-extensions@4.12.2"
        )
        assert PythonPackage("zope.interface", "6.0").purl == "pkg:pypi/zope.interface@6.0"

    def test_deb_with_arch_and_distro(self) -> None:
        package = DebianPackage("libssl3", "3.0.11-1~deb12u2", "amd64")
        assert package.purl(OperatingSystem("debian", "12")) == (
            "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12"
        )

    def test_deb_epoch_is_kept(self) -> None:
        assert DebianPackage("attr", "1:2.5.1-4").purl() == "pkg:deb/debian/attr@1:2.5.1-4"


class TestCycloneDx:
    def test_document_shape(self) -> None:
        document = cyclonedx(subject(), inventory())
        assert document["bomFormat"] == "CycloneDX"
        assert document["specVersion"] == "1.5"
        assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", document["serialNumber"])
        assert document["version"] == 1
        metadata = document["metadata"]
        assert metadata["timestamp"] == "2026-11-27T08:00:00+00:00"
        assert metadata["tools"]["components"][0]["name"] == "imagebuilder"
        assert metadata["component"]["type"] == "container"
        assert metadata["component"]["name"] == "myapp"
        assert metadata["component"]["version"] == "1.2"
        assert metadata["component"]["hashes"] == [{"alg": "SHA-256", "content": "ab" * 32}]
        assert "vulnerabilities" not in document
        json.dumps(document)  # plain JSON all the way down

    def test_python_components(self) -> None:
        components = {c["name"]: c for c in cyclonedx(subject(), inventory())["components"]}
        urllib3 = components["urllib3"]
        assert urllib3["type"] == "library"
        assert urllib3["purl"] == "pkg:pypi/urllib3@1.26.4"
        assert urllib3["bom-ref"] == urllib3["purl"]
        assert urllib3["licenses"] == [{"license": {"id": "MIT"}}]  # field and classifier agree
        assert urllib3["hashes"] == [{"alg": "SHA-256", "content": RECORD_SHA}]
        assert components["Typing_Extensions"]["licenses"] == [{"expression": "PSF-2.0"}]
        assert components["odd"]["licenses"] == [{"license": {"name": "Some Custom License"}}]
        assert "hashes" not in components["odd"]

    def test_debian_components(self) -> None:
        components = {c["name"]: c for c in cyclonedx(subject(), inventory())["components"]}
        assert components["libc6"]["purl"] == (
            "pkg:deb/debian/libc6@2.36-9+deb12u4?arch=amd64&distro=debian-12"
        )
        assert components["libc6"]["properties"] == [
            {"name": "imagebuilder:deb-source", "value": "glibc"}
        ]
        assert components["tzdata"]["purl"].startswith("pkg:deb/debian/tzdata@2024a-0+deb12u1")

    def test_every_component_hangs_off_the_image(self) -> None:
        document = cyclonedx(subject(), inventory())
        refs = [c["bom-ref"] for c in document["components"]]
        assert len(refs) == len(set(refs)) == 6
        assert document["dependencies"] == [{"ref": "image", "dependsOn": refs}]

    def test_findings_become_vulnerabilities(self) -> None:
        finding = Finding(
            "GHSA-q2q7-5pp4-w6pg",
            "urllib3",
            "1.26.4",
            "1.26.5",
            "high",
            "ReDoS",
            ["CVE-2021-33503"],
        )
        (entry,) = cyclonedx(subject(), inventory(), [finding])["vulnerabilities"]
        assert entry["id"] == "GHSA-q2q7-5pp4-w6pg"
        assert entry["ratings"] == [{"severity": "high"}]
        assert entry["affects"] == [{"ref": "pkg:pypi/urllib3@1.26.4"}]
        assert entry["references"][0]["id"] == "CVE-2021-33503"
        assert "1.26.5" in entry["recommendation"]

    @pytest.mark.parametrize(
        ("field", "expected"),
        [
            ("UNKNOWN", []),
            ("Copyright (c) 2020\n\nPermission is hereby granted...", []),
            ("Apache License, Version 2.0", [{"license": {"id": "Apache-2.0"}}]),
        ],
    )
    def test_license_field(self, field: str, expected: list[object]) -> None:
        assert PythonPackage("x", "1", license=field).licenses() == expected


class TestProvenance:
    def given(self, **overrides: object) -> ProvenanceInput:
        values: dict[str, object] = {
            "build_id": "b_1",
            "image_id": IMAGE_ID,
            "tag": "myapp:1.2",
            "source_filename": "app.zip",
            "source_sha256": "ef" * 32,
            "options": {"tag": "myapp:1.2", "run_tests": True},
            "dockerfile": "FROM imagebuilder/python:3.11\n",
            "dockerfile_generated": True,
            "started_at": datetime(2026, 11, 27, 8, 0, tzinfo=UTC),
            "finished_at": datetime(2026, 11, 27, 8, 5, tzinfo=UTC),
            "python_version": "3.11",
            "base_image": "imagebuilder/python:3.11",
            "base_image_digest": "sha256:" + "cd" * 32,
            "worker": "host-1",
        }
        values.update(overrides)
        return ProvenanceInput(**values)  # type: ignore[arg-type]

    def test_statement_shape(self) -> None:
        statement = provenance(self.given())
        assert statement["_type"] == STATEMENT_TYPE
        assert statement["predicateType"] == PREDICATE_TYPE
        assert statement["subject"] == [{"name": "myapp:1.2", "digest": {"sha256": "ab" * 32}}]
        definition = statement["predicate"]["buildDefinition"]
        assert definition["buildType"] == BUILD_TYPE
        assert definition["externalParameters"] == {
            "options": {"tag": "myapp:1.2", "run_tests": True},
            "source": {"filename": "app.zip", "sha256": "ef" * 32},
        }
        dockerfile_sha = hashlib.sha256(b"FROM imagebuilder/python:3.11\n").hexdigest()
        assert definition["internalParameters"]["dockerfileSha256"] == dockerfile_sha
        assert definition["internalParameters"]["worker"] == "host-1"
        assert definition["resolvedDependencies"] == [
            {
                "uri": "imagebuilder:source/app.zip",
                "name": "app.zip",
                "digest": {"sha256": "ef" * 32},
            },
            {"uri": "docker-image://imagebuilder/python:3.11", "digest": {"sha256": "cd" * 32}},
        ]
        run = statement["predicate"]["runDetails"]
        assert run["builder"]["id"].startswith("https://")
        assert set(run["builder"]["version"]) == {"imagebuilder"}
        assert run["metadata"] == {
            "invocationId": "b_1",
            "startedOn": "2026-11-27T08:00:00+00:00",
            "finishedOn": "2026-11-27T08:05:00+00:00",
        }
        assert run["byproducts"][0]["digest"] == {"sha256": dockerfile_sha}

    def test_pushed_image_is_a_second_subject(self) -> None:
        statement = provenance(
            self.given(
                pushed_reference="127.0.0.1:5000/myapp:1.2", pushed_digest="sha256:" + "12" * 32
            )
        )
        assert statement["subject"][1] == {
            "name": "127.0.0.1:5000/myapp:1.2",
            "digest": {"sha256": "12" * 32},
        }

    def test_repo_digest_of_the_base_becomes_a_digest_set(self) -> None:
        statement = provenance(self.given(base_image_digest="python@sha256:" + "cd" * 32))
        base = statement["predicate"]["buildDefinition"]["resolvedDependencies"][1]
        assert base["digest"] == {"sha256": "cd" * 32}

    def test_image_labels(self) -> None:
        labels = image_labels(
            source_sha256="ef" * 32,
            base_image="python:3.11",
            base_image_digest="sha256:" + "cd" * 32,
        )
        assert labels["org.opencontainers.image.base.name"] == "python:3.11"
        assert labels["org.opencontainers.image.base.digest"] == "sha256:" + "cd" * 32
        assert labels["imagebuilder.source.sha256"] == "ef" * 32


def schema_errors(document: dict[str, object]) -> str | None:
    """What the CycloneDX 1.5 JSON schema (shipped by cyclonedx-python-lib) finds wrong."""
    error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(json.dumps(document))
    return None if error is None else str(error)


class TestLicenseExpressions:
    @pytest.mark.parametrize(
        ("declared", "expected"),
        [
            ("mit OR apache-2.0", [{"expression": "MIT OR Apache-2.0"}]),
            ("MIT", [{"expression": "MIT"}]),
            ("MIT License", [{"license": {"name": "MIT License"}}]),  # not SPDX: a name
            ("GPL-3.0+ WITH Classpath-exception-2.0", None),
        ],
    )
    def test_a_declared_expression_is_kept_only_if_it_is_spdx(
        self, declared: str, expected: list[object] | None
    ) -> None:
        licenses = PythonPackage("x", "1", license_expression=declared).licenses()
        if expected is None:
            (entry,) = licenses
            assert "expression" in entry
        else:
            assert licenses == expected

    def test_names_become_ids_only_when_they_are_spdx(self) -> None:
        package = PythonPackage(
            "x", "1", license_classifiers=("License :: OSI Approved :: BSD License",)
        )
        assert package.licenses() == [{"license": {"name": "BSD License"}}]
        package = PythonPackage("x", "1", license="Apache-2.0")
        assert package.licenses() == [{"license": {"id": "Apache-2.0"}}]


class TestSchema:
    def test_a_full_document_is_valid_cyclonedx_1_5(self) -> None:
        python = Finding("GHSA-q2q7-5pp4-w6pg", "urllib3", "1.26.4", "1.26.5", "high", "ReDoS")
        debian = Finding(
            "DSA-5532-1",
            "libssl3",
            "3.0.11-1~deb12u2",
            "3.0.11-1~deb12u3",
            "unknown",
            "openssl security update",
            ["CVE-2023-5363"],
            ecosystem="Debian:12",
        )
        packages = [
            *inventory().python,
            PythonPackage("spdx", "1", license_expression="MIT OR (Apache-2.0 AND BSD-3-Clause)"),
            PythonPackage("notspdx", "1", license_expression="MIT License"),
        ]
        full = Inventory(python=packages, debian=inventory().debian, os=inventory().os)
        document = cyclonedx(subject(), full, [python, debian])
        assert schema_errors(document) is None
        refs = {entry["id"]: entry["affects"][0]["ref"] for entry in document["vulnerabilities"]}
        assert refs["DSA-5532-1"].startswith("pkg:deb/debian/libssl3@3.0.11-1~deb12u2")

    def test_the_validator_does_reject_a_broken_document(self) -> None:
        document = cyclonedx(subject(), inventory())
        document["components"][0]["licenses"] = [{"expression": 42}]
        assert schema_errors(document) is not None
