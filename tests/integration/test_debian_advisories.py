"""Debian packages of an image matched against Debian advisories in the imported OSV data, next
to the Python ones, on a real database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from core.db import session_scope
from core.supply_chain.advisories import find_debian_vulnerabilities, load_osv, replace_advisories
from core.supply_chain.sbom import Inventory, OperatingSystem, PythonPackage, parse_dpkg_status
from tests.integration.test_supply_chain import ADVISORIES
from worker.supply_chain import scan

STATUS = """\
Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl (3.0.11-1~deb12u1)
Version: 3.0.11-1~deb12u1

Package: openssl
Status: install ok installed
Architecture: amd64
Version: 3.0.11-1~deb12u1

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-0+deb12u1
"""


def debian_record(release: str, fixed: str) -> dict[str, Any]:
    """An OSV record shaped as Debian's security tracker publishes them (source package names)."""
    return {
        "id": f"DSA-5532-1-{release}",
        "summary": "openssl security update",
        "aliases": ["CVE-2023-5363"],
        "affected": [
            {
                "package": {"ecosystem": f"Debian:{release}", "name": "openssl"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}
                ],
            }
        ],
    }


def load(engine: Engine, *records: dict[str, Any]) -> None:
    with session_scope(engine) as session:
        replace_advisories(session, [*load_osv(ADVISORIES), *records], source="test")


class TestDebianMatching:
    def test_binary_packages_match_through_their_source(self, sqlite_engine: Engine) -> None:
        load(sqlite_engine, debian_record("12", "3.0.11-1~deb12u2"))
        packages = [(p.name, p.source, p.version) for p in parse_dpkg_status(STATUS)]
        with session_scope(sqlite_engine) as session:
            findings = find_debian_vulnerabilities(session, "12", packages)
        assert sorted((f.package, f.fixed_version, f.ecosystem) for f in findings) == [
            ("libssl3", "3.0.11-1~deb12u2", "Debian:12"),
            ("openssl", "3.0.11-1~deb12u2", "Debian:12"),
        ]

    def test_only_the_images_release_counts(self, sqlite_engine: Engine) -> None:
        load(sqlite_engine, debian_record("11", "3.0.99"))
        packages = [(p.name, p.source, p.version) for p in parse_dpkg_status(STATUS)]
        with session_scope(sqlite_engine) as session:
            assert find_debian_vulnerabilities(session, "12", packages) == []
            assert find_debian_vulnerabilities(session, None, packages) == []

    def test_the_scan_reports_python_and_debian_findings(self, sqlite_engine: Engine) -> None:
        load(sqlite_engine, debian_record("12", "3.0.11-1~deb12u2"))
        inventory = Inventory(
            python=[PythonPackage("urllib3", "1.26.4")],
            debian=parse_dpkg_status(STATUS),
            os=OperatingSystem("debian", "12", "Debian GNU/Linux 12 (bookworm)"),
        )
        findings, status = scan(sqlite_engine, inventory)
        assert status.advisories == 5  # the 4 PyPI records of tests/advisories and 1 Debian
        by_ecosystem = {(f.ecosystem, f.package) for f in findings}
        assert ("PyPI", "urllib3") in by_ecosystem
        assert ("Debian:12", "libssl3") in by_ecosystem
        assert ("Debian:12", "tzdata") not in by_ecosystem
