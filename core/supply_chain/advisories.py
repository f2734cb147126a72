"""The local vulnerability database: OSV advisories for PyPI and Debian packages, imported and
matched.

Import (`load_osv` then `replace_advisories`): an OSV export zip (such as `PyPI/all.zip` or
`Debian/all.zip`), a folder of OSV JSON files, or one JSON file (a record or a list of records).
PyPI entries and Debian entries (ecosystem `Debian:<release>`, naming source packages) are kept,
since the scan covers the image's Python and Debian packages; withdrawn advisories are skipped.
A record's `affected` entries for one package are merged into one row. The whole table is
replaced in one transaction: a scan sees the old database or the new one, never a mix, and a failed
import changes nothing.

Matching (`match`) follows the OSV schema's evaluation: a version is affected when `versions` lists
it, or when one ECOSYSTEM or SEMVER range's events, sorted by version, leave it inside an
introduced..fixed (fixed excluded) or introduced..last_affected (included) interval. GIT ranges
name commits and are ignored. PyPI versions compare as PEP 440 (`packaging.version`), Debian
versions as dpkg does (core.supply_chain.debversion).

Severity: the advisory's own rating (GHSA's `database_specific.severity`) where it has one, else
the base score of its CVSS v3 or v4 vector (v4 scored by the `cvss` package), else "unknown".
Records that are the same vulnerability under several ids (PYSEC-..., GHSA-..., linked by
`aliases`) become one finding.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cvss import CVSS4
from cvss.exceptions import CVSSError
from packaging.version import InvalidVersion, Version
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from core.db import utcnow
from core.models import Advisory, AdvisoryImport
from core.supply_chain.debversion import DebianVersion, InvalidDebianVersion

ECOSYSTEM = "PyPI"
DEBIAN = "Debian"  # OSV ecosystems "Debian:11", "Debian:12", ...
# Ordered from least to most severe.
SEVERITIES = ("unknown", "low", "medium", "high", "critical")
# One OSV record is a few kilobytes; a file far larger than this is not one.
MAX_RECORD_BYTES = 16 * 1024 * 1024
_RATINGS = {
    "low": "low",
    "moderate": "medium",
    "medium": "medium",
    "high": "high",
    "important": "high",
    "critical": "critical",
}
_RANGE_TYPES = frozenset({"ECOSYSTEM", "SEMVER"})
_INSERT_BATCH = 1000


class AdvisorySourceInvalid(Exception):
    """The file or folder given to the import is not an OSV export."""


def normalize_name(name: str) -> str:
    """A PyPI project name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class AdvisoryRecord:
    """One advisory for one package, as stored."""

    id: str
    package: str
    aliases: list[str]
    summary: str
    severity: str
    affected: dict[str, Any]
    modified_at: datetime | None
    ecosystem: str = ECOSYSTEM


@dataclass(frozen=True)
class Finding:
    """An installed package that an advisory covers."""

    id: str
    package: str
    installed_version: str
    fixed_version: str | None
    severity: str
    summary: str
    aliases: list[str] = field(default_factory=list)
    ecosystem: str = ECOSYSTEM

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        fixed = f"fixed in {self.fixed_version}" if self.fixed_version else "no fixed version"
        return (
            f"{self.id} ({self.severity}) {self.package} {self.installed_version}, {fixed}: "
            f"{self.summary}"
        )


# --- reading OSV --------------------------------------------------------------------------------


def load_osv(path: Path) -> Iterator[dict[str, Any]]:
    """Every OSV record in a zip, a folder of JSON files, or one JSON file."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if p.is_file())
        for file in files:
            if file.stat().st_size > MAX_RECORD_BYTES:
                raise AdvisorySourceInvalid(f"{file} is too large to be an OSV record")
            yield from _records(file.read_bytes(), str(file))
    elif path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.is_dir() or not info.filename.endswith(".json"):
                    continue
                if info.file_size > MAX_RECORD_BYTES:
                    raise AdvisorySourceInvalid(f"{info.filename} is too large for an OSV record")
                yield from _records(archive.read(info), info.filename)
    elif path.is_file():
        yield from _records(path.read_bytes(), str(path))
    else:
        raise AdvisorySourceInvalid(f"{path} is neither a zip, a folder nor a JSON file")


def _records(data: bytes, name: str) -> Iterator[dict[str, Any]]:
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdvisorySourceInvalid(f"{name} is not JSON: {exc}") from exc
    for record in document if isinstance(document, list) else [document]:
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            raise AdvisorySourceInvalid(f"{name} holds something that is not an OSV record")
        yield record


def parse_record(record: dict[str, Any]) -> list[AdvisoryRecord]:
    """The PyPI packages an OSV record covers, one entry each; [] for withdrawn records."""
    advisory_id = str(record.get("id", ""))
    if record.get("withdrawn") or not advisory_id or len(advisory_id) > 100:
        return []
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    severities: list[str] = []
    for entry in _list(record.get("affected")):
        if not isinstance(entry, dict):
            continue
        package = entry.get("package")
        ecosystem = package.get("ecosystem") if isinstance(package, dict) else None
        if not isinstance(package, dict) or not _kept_ecosystem(ecosystem):
            continue
        name = package.get("name")
        if not isinstance(name, str) or not name or len(name) > 200:
            continue
        key = (str(ecosystem), normalize_name(name) if ecosystem == ECOSYSTEM else name)
        target = merged.setdefault(key, {"ranges": [], "versions": []})
        target["ranges"] += [r for r in _list(entry.get("ranges")) if isinstance(r, dict)]
        target["versions"] += [str(v) for v in _list(entry.get("versions"))]
        severities += _entry_severities(entry)
    if not merged:
        return []
    severity = _severity(record, severities)
    aliases = [str(alias) for alias in _list(record.get("aliases")) if isinstance(alias, str)]
    summary = str(record.get("summary") or "").strip()
    if not summary:
        summary = str(record.get("details") or "").strip().split("\n", 1)[0][:300]
    return [
        AdvisoryRecord(
            id=advisory_id,
            package=package,
            aliases=aliases,
            summary=summary[:1000],
            severity=severity,
            affected=affected,
            modified_at=_timestamp(record.get("modified")),
            ecosystem=ecosystem,
        )
        for (ecosystem, package), affected in merged.items()
    ]


def _kept_ecosystem(ecosystem: object) -> bool:
    return ecosystem == ECOSYSTEM or (
        isinstance(ecosystem, str) and ecosystem.startswith(DEBIAN + ":")
    )


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _rating(value: object) -> str | None:
    return _RATINGS.get(value.strip().lower()) if isinstance(value, str) else None


def _entry_severities(entry: dict[str, Any]) -> list[str]:
    found = []
    for key in ("ecosystem_specific", "database_specific"):
        specific = entry.get(key)
        if isinstance(specific, dict) and (rating := _rating(specific.get("severity"))):
            found.append(rating)
    found += _cvss_ratings(entry.get("severity"))
    return found


def _severity(record: dict[str, Any], from_entries: list[str]) -> str:
    specific = record.get("database_specific")
    if isinstance(specific, dict) and (rating := _rating(specific.get("severity"))):
        return rating
    candidates = from_entries + _cvss_ratings(record.get("severity"))
    return max(candidates, key=SEVERITIES.index) if candidates else "unknown"


def _cvss_ratings(severity: object) -> list[str]:
    ratings = []
    for item in _list(severity):
        if not isinstance(item, dict):
            continue
        vector = str(item.get("score", ""))
        score = None
        if item.get("type") == "CVSS_V3":
            score = cvss3_base_score(vector)
        elif item.get("type") == "CVSS_V4":
            score = cvss4_base_score(vector)
        if score is not None:
            ratings.append(cvss_rating(score))
    return ratings


def cvss4_base_score(vector: str) -> float | None:
    """The base score of a CVSS v4.0 vector; None when it is not one."""
    if not vector.startswith("CVSS:4.0/"):
        return None
    try:
        return float(CVSS4(vector).base_score)
    except (CVSSError, ValueError, KeyError):
        return None


# CVSS v3.x base metric weights (FIRST's specification, section 7.4).
_CVSS_WEIGHTS: dict[str, dict[str, float]] = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}
_CVSS_PRIVILEGES = {"U": {"N": 0.85, "L": 0.62, "H": 0.27}, "C": {"N": 0.85, "L": 0.68, "H": 0.5}}


def cvss3_base_score(vector: str) -> float | None:
    """The base score of a CVSS v3.0/v3.1 vector; None when it is not one."""
    parts = vector.split("/")
    if not parts or not parts[0].startswith("CVSS:3"):
        return None
    metrics = dict(part.split(":", 1) for part in parts[1:] if ":" in part)
    try:
        scope = metrics["S"]
        privileges = _CVSS_PRIVILEGES[scope][metrics["PR"]]
        weights = {name: _CVSS_WEIGHTS[name][metrics[name]] for name in _CVSS_WEIGHTS}
    except KeyError:
        return None
    iss = 1 - (1 - weights["C"]) * (1 - weights["I"]) * (1 - weights["A"])
    changed = scope == "C"
    impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15 if changed else 6.42 * iss
    exploitability = 8.22 * weights["AV"] * weights["AC"] * privileges * weights["UI"]
    if impact <= 0:
        return 0.0
    total = impact + exploitability if scope == "U" else 1.08 * (impact + exploitability)
    return _roundup(min(total, 10.0))


def _roundup(value: float) -> float:
    # CVSS 3.1's Roundup: the smallest number with one decimal >= value, free of float noise.
    scaled = round(value * 100_000)
    if scaled % 10_000 == 0:
        return scaled / 100_000
    return (math.floor(scaled / 10_000) + 1) / 10.0


def cvss_rating(score: float) -> str:
    # The same bands in CVSS v3.x and v4.0 (0.1-3.9 low ... 9.0-10.0 critical).
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low"


# --- matching -----------------------------------------------------------------------------------


# A Version or a DebianVersion: one call compares versions of one ecosystem only.
Comparable = Any


def _version(text: str, ecosystem: str = ECOSYSTEM) -> Comparable | None:
    try:
        if ecosystem.startswith(DEBIAN):
            return DebianVersion(text)
        return Version(text)
    except (InvalidVersion, InvalidDebianVersion):
        return None


_EVENT_ORDER = {"introduced": 0, "fixed": 1, "last_affected": 2, "limit": 3}


def _events(
    events: Iterable[Any], ecosystem: str = ECOSYSTEM
) -> list[tuple[Comparable | None, int, str, str]]:
    """(version, tie order, kind, text) sorted by version; None is introduced "0", the lowest.
    Events whose version does not parse are left out."""
    parsed: list[tuple[Comparable | None, int, str, str]] = []
    for event in events:
        if not isinstance(event, dict):
            continue
        for kind, order in _EVENT_ORDER.items():
            if kind not in event:
                continue
            text = str(event[kind])
            if kind == "introduced" and text == "0":
                parsed.append((None, order, kind, text))
            elif (version := _version(text, ecosystem)) is not None:
                parsed.append((version, order, kind, text))
    lowest = _version("0", ecosystem)
    return sorted(parsed, key=lambda item: (item[0] is not None, item[0] or lowest, item[1]))


def _in_range(
    version: Comparable, events: Iterable[Any], ecosystem: str = ECOSYSTEM
) -> tuple[bool, str | None]:
    """Whether `version` is inside the range, and the fixed version that closes its interval."""
    ordered = _events(events, ecosystem)
    affected = False
    for at, _order, kind, _text in ordered:
        if kind == "introduced":
            if at is None or version >= at:
                affected = True
        elif at is not None and (version > at if kind == "last_affected" else version >= at):
            affected = False  # fixed and limit exclude their version, last_affected includes it
    if not affected:
        return False, None
    closing = next(
        (
            (kind, text)
            for at, _order, kind, text in ordered
            if kind in ("fixed", "last_affected") and at is not None and at > version
        ),
        None,
    )
    return True, closing[1] if closing is not None and closing[0] == "fixed" else None


def match(
    installed: str, affected: dict[str, Any], ecosystem: str = ECOSYSTEM
) -> tuple[bool, str | None]:
    """Whether version `installed` is affected, and the version that fixes it where known."""
    version = _version(installed, ecosystem)
    hit = False
    fixed: str | None = None
    for range_ in _list(affected.get("ranges")):
        if not isinstance(range_, dict) or range_.get("type") not in _RANGE_TYPES:
            continue
        if version is None:
            continue
        inside, closes = _in_range(version, _list(range_.get("events")), ecosystem)
        if inside:
            hit = True
            fixed = _lowest(fixed, closes, ecosystem)
    for listed in _list(affected.get("versions")):
        text = str(listed)
        if text == installed or (version is not None and _version(text, ecosystem) == version):
            hit = True
            break
    if hit and fixed is None and version is not None:
        fixed = _next_fixed(version, affected, ecosystem)
    return hit, fixed


def _lowest(current: str | None, candidate: str | None, ecosystem: str) -> str | None:
    if candidate is None:
        return current
    if current is None:
        return candidate
    first, second = _version(current, ecosystem), _version(candidate, ecosystem)
    if first is None or second is None or type(first) is not type(second):
        return current
    return candidate if second < first else current


def _next_fixed(version: Comparable, affected: dict[str, Any], ecosystem: str) -> str | None:
    """For a listed version: the lowest fixed event above it in any range."""
    fixed: str | None = None
    for range_ in _list(affected.get("ranges")):
        if isinstance(range_, dict) and range_.get("type") in _RANGE_TYPES:
            for at, _order, kind, text in _events(_list(range_.get("events")), ecosystem):
                if kind == "fixed" and at is not None and at > version:
                    fixed = _lowest(fixed, text, ecosystem)
    return fixed


# --- the database -------------------------------------------------------------------------------


def replace_advisories(session: Session, records: Iterable[dict[str, Any]], *, source: str) -> int:
    """Replace every stored advisory with the PyPI entries of `records`; returns how many.
    The caller commits: the old database stays visible until then."""
    rows: dict[tuple[str, str], AdvisoryRecord] = {}
    for record in records:
        for entry in parse_record(record):
            # The table's key: a PyPI and a Debian package of one name under one id stay apart
            # only if their ids differ, which OSV's per-ecosystem ids guarantee.
            key = (entry.id, entry.package)
            previous = rows.get(key)
            if previous is None or _newer(entry, previous):
                rows[key] = entry
    session.execute(delete(Advisory))
    batch: list[dict[str, Any]] = []
    for entry in rows.values():
        batch.append(asdict(entry))
        if len(batch) >= _INSERT_BATCH:
            session.execute(insert(Advisory), batch)
            batch = []
    if batch:
        session.execute(insert(Advisory), batch)
    session.add(AdvisoryImport(imported_at=utcnow(), source=source, advisories=len(rows)))
    session.flush()
    return len(rows)


def _newer(entry: AdvisoryRecord, previous: AdvisoryRecord) -> bool:
    if entry.modified_at is None or previous.modified_at is None:
        return previous.modified_at is None
    return entry.modified_at > previous.modified_at


@dataclass(frozen=True)
class DatabaseStatus:
    imported_at: datetime | None
    source: str | None
    advisories: int

    def age_days(self, now: datetime | None = None) -> float | None:
        if self.imported_at is None:
            return None
        return ((now or utcnow()) - self.imported_at).total_seconds() / 86400

    def describe(self, now: datetime | None = None) -> str:
        age = self.age_days(now)
        if age is None or self.imported_at is None:
            return "no advisory database was imported"
        when = self.imported_at.isoformat(timespec="seconds")
        return f"{self.advisories} advisories, imported {age:.1f} days ago ({when})"


def database_status(session: Session) -> DatabaseStatus:
    latest = session.scalars(
        select(AdvisoryImport).order_by(AdvisoryImport.imported_at.desc()).limit(1)
    ).first()
    count = session.scalar(select(func.count()).select_from(Advisory)) or 0
    if latest is None:
        return DatabaseStatus(None, None, count)
    return DatabaseStatus(latest.imported_at, latest.source, count)


def find_vulnerabilities(session: Session, packages: Iterable[tuple[str, str]]) -> list[Finding]:
    """The findings for installed (name, version) pairs, one per vulnerability, worst first."""
    installed = {normalize_name(name): version for name, version in packages}
    findings: list[Finding] = []
    for advisory in _advisories_of(session, ECOSYSTEM, installed):
        version = installed[advisory.package]
        hit, fixed = match(version, advisory.affected)
        if hit:
            findings.append(
                Finding(
                    id=advisory.id,
                    package=advisory.package,
                    installed_version=version,
                    fixed_version=fixed,
                    severity=advisory.severity,
                    summary=advisory.summary,
                    aliases=list(advisory.aliases),
                )
            )
    return merge_aliases(findings)


def _advisories_of(session: Session, ecosystem: str, packages: Iterable[str]) -> Iterator[Advisory]:
    """The advisories of `ecosystem` naming any of `packages`, queried 500 names at a time."""
    names = sorted(packages)
    for start in range(0, len(names), 500):
        yield from session.scalars(
            select(Advisory).where(
                Advisory.ecosystem == ecosystem, Advisory.package.in_(names[start : start + 500])
            )
        ).all()


def find_debian_vulnerabilities(
    session: Session, release: str | None, packages: Iterable[tuple[str, str | None, str]]
) -> list[Finding]:
    """The findings for installed Debian (binary name, source name, version) triples of a Debian
    release ("12"): Debian advisories name source packages, which a binary package shares."""
    if not release:
        return []
    ecosystem = f"{DEBIAN}:{release.split('.', 1)[0]}"
    by_source: dict[str, list[tuple[str, str]]] = {}
    for name, source, version in packages:
        by_source.setdefault(source or name, []).append((name, version))
    findings: list[Finding] = []
    for advisory in _advisories_of(session, ecosystem, by_source):
        for binary, version in by_source[advisory.package]:
            hit, fixed = match(version, advisory.affected, ecosystem)
            if hit:
                findings.append(
                    Finding(
                        id=advisory.id,
                        package=binary,
                        installed_version=version,
                        fixed_version=fixed,
                        severity=advisory.severity,
                        summary=advisory.summary,
                        aliases=list(advisory.aliases),
                        ecosystem=ecosystem,
                    )
                )
    return merge_aliases(findings)


def _preference(finding: Finding) -> tuple[int, int, str]:
    # The best-rated record names the finding; among equals, GHSA ids (the most widely linked).
    return (SEVERITIES.index(finding.severity), finding.id.startswith("GHSA-"), finding.id)


def merge_aliases(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per vulnerability: records of one package that share an id or an alias are
    merged, keeping the best-rated record and every other name as an alias."""
    groups: list[list[Finding]] = []
    for finding in findings:
        names = {finding.id, *finding.aliases}
        joined = [
            group
            for group in groups
            if group[0].package == finding.package
            and names & {name for member in group for name in (member.id, *member.aliases)}
        ]
        merged = [finding]
        for group in joined:
            merged += group
            groups.remove(group)
        groups.append(merged)
    result = []
    for group in groups:
        best = max(group, key=_preference)
        names = {name for member in group for name in (member.id, *member.aliases)}
        fixed = best.fixed_version or next(
            (m.fixed_version for m in group if m.fixed_version), None
        )
        result.append(
            Finding(
                id=best.id,
                package=best.package,
                installed_version=best.installed_version,
                fixed_version=fixed,
                severity=best.severity,
                summary=best.summary,
                aliases=sorted(names - {best.id}),
                ecosystem=best.ecosystem,
            )
        )
    return sorted(result, key=lambda f: (-SEVERITIES.index(f.severity), f.package, f.id))
