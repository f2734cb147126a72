"""core.supply_chain.advisories: OSV ranges and versions, severities, reading exports, merging
aliases."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from core.supply_chain.advisories import (
    AdvisorySourceInvalid,
    Finding,
    cvss3_base_score,
    cvss4_base_score,
    load_osv,
    match,
    merge_aliases,
    normalize_name,
    parse_record,
)

ADVISORIES = Path(__file__).resolve().parent.parent / "advisories"


def ecosystem(*events: dict[str, str], kind: str = "ECOSYSTEM") -> dict[str, Any]:
    return {"ranges": [{"type": kind, "events": list(events)}], "versions": []}


def record(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "id": "GHSA-aaaa-bbbb-cccc",
        "summary": "A flaw",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "Some_Package"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
            }
        ],
    }
    value.update(overrides)
    return value


class TestMatch:
    @pytest.mark.parametrize(
        ("version", "affected", "fixed"),
        [
            ("1.25.3", False, None),
            ("1.25.4", True, "1.26.5"),
            ("1.26.4", True, "1.26.5"),
            ("1.26.5rc1", True, "1.26.5"),
            ("1.26.5", False, None),
            ("2.0.0", False, None),
        ],
    )
    def test_introduced_is_included_and_fixed_is_not(
        self, version: str, affected: bool, fixed: str | None
    ) -> None:
        ranges = ecosystem({"introduced": "1.25.4"}, {"fixed": "1.26.5"})
        assert match(version, ranges) == (affected, fixed)

    def test_introduced_zero_covers_every_earlier_version(self) -> None:
        assert match("0.0.1", ecosystem({"introduced": "0"}, {"fixed": "1.0"})) == (True, "1.0")

    @pytest.mark.parametrize(
        ("version", "affected"), [("2.3", True), ("2.3.0", True), ("2.3.1", False)]
    )
    def test_last_affected_is_included(self, version: str, affected: bool) -> None:
        ranges = ecosystem({"introduced": "2.0"}, {"last_affected": "2.3"})
        assert match(version, ranges) == (affected, None)

    @pytest.mark.parametrize(
        ("version", "fixed"),
        [("1.26.16", "1.26.17"), ("2.0.5", "2.0.6"), ("1.26.17", None), ("2.0.6", None)],
    )
    def test_unsorted_events_with_several_intervals(self, version: str, fixed: str | None) -> None:
        # PYSEC-2023-192 lists its events in this order: OSV says to sort them first.
        ranges = ecosystem(
            {"introduced": "2.0.0"}, {"fixed": "2.0.6"}, {"introduced": "0"}, {"fixed": "1.26.17"}
        )
        assert match(version, ranges) == (fixed is not None, fixed)

    def test_explicit_versions_list_without_ranges(self) -> None:
        affected = {"ranges": [], "versions": ["1.0", "1.1"]}
        assert match("1.1", affected) == (True, None)
        assert match("1.1.0", affected) == (True, None)  # the same PEP 440 version
        assert match("1.2", affected) == (False, None)

    def test_listed_version_gets_the_next_fixed_version(self) -> None:
        affected = ecosystem({"introduced": "3.0"}, {"fixed": "3.2"}) | {"versions": ["1.0"]}
        assert match("1.0", affected) == (True, "3.2")

    def test_git_ranges_are_ignored(self) -> None:
        affected = ecosystem({"introduced": "0"}, {"fixed": "2d4a3fee"}, kind="GIT")
        assert match("1.0", affected) == (False, None)

    def test_semver_ranges_count(self) -> None:
        assert match("1.2.3", ecosystem({"introduced": "1.0.0"}, kind="SEMVER")) == (True, None)

    def test_unparseable_installed_version_only_matches_a_listed_one(self) -> None:
        affected = ecosystem({"introduced": "0"}) | {"versions": ["weird-build"]}
        assert match("weird-build", affected) == (True, None)
        assert match("other-build", affected) == (False, None)


class TestParseRecord:
    def test_pypi_and_debian_entries_only_pypi_names_normalised(self) -> None:
        value = record(
            affected=[
                {"package": {"ecosystem": "npm", "name": "left-pad"}, "ranges": []},
                {"package": {"ecosystem": "Debian:12", "name": "python3.11"}, "ranges": []},
                {"package": {"ecosystem": "PyPI", "name": "Zope.Interface"}, "versions": ["5"]},
            ]
        )
        entries = parse_record(value)
        assert sorted((entry.ecosystem, entry.package) for entry in entries) == [
            ("Debian:12", "python3.11"),
            ("PyPI", "zope-interface"),
        ]

    def test_unknown_ecosystems_only_give_nothing(self) -> None:
        value = record(affected=[{"package": {"ecosystem": "crates.io", "name": "x"}}])
        assert parse_record(value) == []

    def test_withdrawn_advisories_are_skipped(self) -> None:
        assert parse_record(record(withdrawn="2024-01-01T00:00:00Z")) == []

    def test_entries_for_one_package_are_merged(self) -> None:
        data = json.loads((ADVISORIES / "GHSA-v845-jxx5-vc9f.json").read_text())
        (entry,) = parse_record(data)
        assert entry.package == "urllib3"
        assert len(entry.affected["ranges"]) == 2
        assert match("1.26.4", entry.affected) == (True, "1.26.17")
        assert match("2.0.5", entry.affected) == (True, "2.0.6")

    @pytest.mark.parametrize(
        ("overrides", "severity"),
        [
            ({"database_specific": {"severity": "MODERATE"}}, "medium"),
            ({"database_specific": {"severity": "CRITICAL"}}, "critical"),
            (
                {
                    "severity": [
                        {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}
                    ]
                },
                "high",
            ),
            ({"severity": [{"type": "CVSS_V4", "score": "CVSS:4.0/AV:N"}]}, "unknown"),
            ({}, "unknown"),
        ],
    )
    def test_severity(self, overrides: dict[str, Any], severity: str) -> None:
        (entry,) = parse_record(record(**overrides))
        assert entry.severity == severity

    def test_summary_falls_back_to_the_first_line_of_details(self) -> None:
        (entry,) = parse_record(record(summary="", details="First line.\nMore."))
        assert entry.summary == "First line."


class TestCvss:
    @pytest.mark.parametrize(
        ("vector", "score"),
        [
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5),
            ("CVSS:3.1/AV:N/AC:H/PR:H/UI:N/S:U/C:H/I:H/A:N", 5.9),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:L/A:N", 6.5),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
            ("CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", 5.5),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
        ],
    )
    def test_base_score(self, vector: str, score: float) -> None:
        assert cvss3_base_score(vector) == score

    def test_not_a_v3_vector(self) -> None:
        assert cvss3_base_score("AV:N/AC:L/Au:N/C:P/I:P/A:P") is None
        assert cvss3_base_score("CVSS:3.1/AV:N") is None


class TestMergeAliases:
    def test_records_sharing_an_alias_become_one_finding(self) -> None:
        findings = [
            Finding("PYSEC-2021-108", "urllib3", "1.26.4", "1.26.5", "unknown", "x", ["CVE-1"]),
            Finding("GHSA-q2q7-5pp4-w6pg", "urllib3", "1.26.4", "1.26.5", "high", "y", ["CVE-1"]),
            Finding("GHSA-other", "urllib3", "1.26.4", None, "medium", "z", ["CVE-2"]),
        ]
        merged = merge_aliases(findings)
        assert [f.id for f in merged] == ["GHSA-q2q7-5pp4-w6pg", "GHSA-other"]
        assert merged[0].aliases == ["CVE-1", "PYSEC-2021-108"]
        assert merged[0].severity == "high"

    def test_findings_of_different_packages_stay_apart(self) -> None:
        findings = [
            Finding("A", "one", "1", None, "low", "", ["CVE-1"]),
            Finding("B", "two", "1", None, "low", "", ["CVE-1"]),
        ]
        assert len(merge_aliases(findings)) == 2


class TestLoadOsv:
    def test_folder_of_json_files(self) -> None:
        ids = sorted(r["id"] for r in load_osv(ADVISORIES))
        assert ids == [
            "GHSA-5phf-pp7p-vc2r",
            "GHSA-q2q7-5pp4-w6pg",
            "GHSA-v845-jxx5-vc9f",
            "PYSEC-2021-108",
        ]

    def test_zip_export(self, tmp_path: Path) -> None:
        path = tmp_path / "all.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for file in ADVISORIES.glob("*.json"):
                archive.write(file, file.name)
            archive.writestr("README.txt", "not a record")
        assert len(list(load_osv(path))) == 4

    def test_a_json_list(self, tmp_path: Path) -> None:
        path = tmp_path / "records.json"
        path.write_text(json.dumps([record(), record(id="GHSA-2")]))
        assert [r["id"] for r in load_osv(path)] == ["GHSA-aaaa-bbbb-cccc", "GHSA-2"]

    def test_broken_json_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "bad.json").write_text("{")
        with pytest.raises(AdvisorySourceInvalid, match="not JSON"):
            list(load_osv(tmp_path))

    def test_a_missing_path_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(AdvisorySourceInvalid):
            list(load_osv(tmp_path / "missing"))


def test_normalize_name() -> None:
    assert normalize_name("Zope.Interface") == "zope-interface"
    assert normalize_name("typing__extensions") == "typing-extensions"


class TestDebian:
    """Debian advisories: dpkg's version order, source package names, the image's release."""

    OPENSSL = {  # noqa: RUF012
        "id": "DSA-5532-1",
        "summary": "openssl security update",
        "affected": [
            {
                "package": {"ecosystem": "Debian:12", "name": "openssl"},
                "ranges": [
                    {
                        "type": "ECOSYSTEM",
                        "events": [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}],
                    }
                ],
            }
        ],
        "severity": [
            {
                "type": "CVSS_V4",
                "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:N/VA:N/SC:N/SI:N/SA:N",
            }
        ],
    }

    @pytest.mark.parametrize(
        ("installed", "affected"),
        [
            ("3.0.11-1~deb12u1", True),  # ~ sorts before the fixed revision
            ("3.0.9-1", True),
            ("3.0.11-1~deb12u2", False),
            ("3.0.11-1", False),  # no ~: after the ~deb12u2 backport
            ("1:1.0", False),  # an epoch outweighs everything
        ],
    )
    def test_ranges_compare_as_dpkg_does(self, installed: str, affected: bool) -> None:
        (entry,) = parse_record(self.OPENSSL)
        hit, fixed = match(installed, entry.affected, entry.ecosystem)
        assert hit is affected
        assert fixed == ("3.0.11-1~deb12u2" if affected else None)

    def test_cvss_v4_vectors_are_scored(self) -> None:
        (entry,) = parse_record(self.OPENSSL)
        assert entry.severity == "high"  # 8.7 by the CVSS v4.0 specification
        assert (
            cvss4_base_score("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N")
            == 9.3
        )
        assert cvss4_base_score("CVSS:4.0/AV:X") is None
        assert cvss4_base_score("CVSS:3.1/AV:N") is None
