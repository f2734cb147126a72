"""Software bill of materials: what an image holds, as CycloneDX 1.5 JSON.

The inventory comes from the image itself (worker.supply_chain runs a short command in it): its
Python distributions (name, version, license metadata, and the SHA-256 of each one's RECORD file,
which lists the hash of every file the distribution installed) and its Debian packages (from
dpkg's status file; slim images may lack dpkg-query). Components are identified by package URL:
`pkg:pypi/<name>@<version>`, `pkg:deb/debian/<name>@<version>?arch=...&distro=...`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression

from core.supply_chain.advisories import Finding

SPEC_VERSION = "1.5"
MEDIA_TYPE = "application/vnd.cyclonedx+json"
# What people write in the License field or classifiers for common licenses, mapped to SPDX ids;
# anything that is still not an SPDX expression is given as a `license.name`.
_LICENSE_ALIASES = {
    "mit license": "MIT",
    "the mit license": "MIT",
    "apache 2.0": "Apache-2.0",
    "apache-2": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache license, version 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "apache software license 2.0": "Apache-2.0",
    "bsd-3": "BSD-3-Clause",
    "new bsd license": "BSD-3-Clause",
    "3-clause bsd license": "BSD-3-Clause",
    "mpl 2.0": "MPL-2.0",
    "isc license": "ISC",
    "isc license (iscl)": "ISC",
    "mozilla public license 2.0 (mpl 2.0)": "MPL-2.0",
    "python software foundation license": "PSF-2.0",
    "the unlicense (unlicense)": "Unlicense",
    "zlib/libpng license": "Zlib",
}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class PythonPackage:
    name: str
    version: str
    license_expression: str | None = None
    license: str | None = None
    license_classifiers: tuple[str, ...] = ()
    # SHA-256 of the distribution's RECORD file, where it has one.
    record_sha256: str | None = None
    location: str | None = None

    @property
    def purl(self) -> str:
        name = self.name.lower().replace("_", "-")
        return f"pkg:pypi/{quote(name, safe='.-')}@{quote(self.version, safe='.+-!')}"

    def licenses(self) -> list[dict[str, Any]]:
        """CycloneDX `licenses`: the declared License-Expression if it is valid SPDX (else its
        text as a name), otherwise the License field (when it is a name, not the whole text) and
        the license classifiers, each an SPDX id where one is known."""
        declared = (self.license_expression or "").strip()
        if declared:
            expression = spdx_expression(declared)
            if expression is None:
                return [{"license": {"name": declared[:200]}}]
            return [{"expression": expression}]
        names: list[str] = []
        field_value = (self.license or "").strip()
        if field_value and "\n" not in field_value and len(field_value) <= 100:
            names.append(field_value)
        for classifier in self.license_classifiers:
            last = classifier.rsplit("::", 1)[-1].strip()
            if last and last != "OSI Approved":
                names.append(last)
        entries: list[dict[str, Any]] = []
        seen: set[str] = set()
        for name in names:
            if name.upper() in ("UNKNOWN", "NONE"):
                continue
            spdx = spdx_expression(_LICENSE_ALIASES.get(name.lower(), name))
            identifier = spdx if spdx is not None and _is_single_id(spdx) else None
            key = identifier or name.lower()
            if key in seen:
                continue
            seen.add(key)
            entries.append({"license": {"id": identifier} if identifier else {"name": name}})
        return entries


def spdx_expression(text: str) -> str | None:
    """`text` as a canonical SPDX license expression (packaging.licenses), None if it is not one."""
    try:
        return str(canonicalize_license_expression(text))
    except InvalidLicenseExpression:
        return None


def _is_single_id(expression: str) -> bool:
    # One identifier (no operator, no exception, no LicenseRef): a CycloneDX `license.id`.
    return (
        " " not in expression
        and "(" not in expression
        and not expression.startswith(("LicenseRef-", "DocumentRef-"))
    )


@dataclass(frozen=True)
class DebianPackage:
    name: str
    version: str
    architecture: str | None = None
    source: str | None = None

    def purl(self, distro: OperatingSystem | None = None) -> str:
        namespace = distro.id if distro is not None and distro.id else "debian"
        qualifiers = []
        if self.architecture:
            qualifiers.append(f"arch={quote(self.architecture, safe='')}")
        if distro is not None and distro.version_id:
            qualifiers.append(f"distro={quote(f'{namespace}-{distro.version_id}', safe='.-')}")
        suffix = ("?" + "&".join(qualifiers)) if qualifiers else ""
        return (
            f"pkg:deb/{quote(namespace, safe='')}/{quote(self.name, safe='.+-')}"
            f"@{quote(self.version, safe='.+-~:')}{suffix}"
        )


@dataclass(frozen=True)
class OperatingSystem:
    id: str | None = None
    version_id: str | None = None
    pretty_name: str | None = None


@dataclass(frozen=True)
class Inventory:
    python: list[PythonPackage] = field(default_factory=list)
    debian: list[DebianPackage] = field(default_factory=list)
    os: OperatingSystem = field(default_factory=OperatingSystem)


def parse_dpkg_status(text: str) -> list[DebianPackage]:
    """The installed packages of a dpkg status file (or several, concatenated)."""
    packages: dict[tuple[str, str | None], DebianPackage] = {}
    for paragraph in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in paragraph.splitlines():
            if not line or line[0].isspace() or ":" not in line:
                continue  # continuation lines belong to fields we do not read
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        name, version = fields.get("package"), fields.get("version")
        status = fields.get("status", "install ok installed").split()
        if not name or not version or status[-1:] != ["installed"]:
            continue
        source = fields.get("source", "").split(" ", 1)[0] or None
        architecture = fields.get("architecture") or None
        packages[(name, architecture)] = DebianPackage(name, version, architecture, source)
    return sorted(packages.values(), key=lambda p: (p.name, p.architecture or ""))


def parse_os_release(text: str) -> OperatingSystem:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key:
            values[key] = value.strip().strip("\"'")
    return OperatingSystem(values.get("ID"), values.get("VERSION_ID"), values.get("PRETTY_NAME"))


@dataclass(frozen=True)
class BomSubject:
    """The image the SBOM describes."""

    build_id: str
    image_id: str
    tag: str | None
    created_at: datetime
    tool_version: str
    base_image: str | None = None
    base_image_digest: str | None = None


def cyclonedx(
    subject: BomSubject, inventory: Inventory, findings: Iterable[Finding] = ()
) -> dict[str, Any]:
    """The CycloneDX 1.5 document for an image's inventory (and its findings, if any)."""
    components = [_python_component(p) for p in inventory.python]
    components += [_debian_component(p, inventory.os) for p in inventory.debian]
    name, _, version = (subject.tag or subject.image_id).rpartition(":")
    image: dict[str, Any] = {
        "type": "container",
        "bom-ref": "image",
        "name": name or subject.image_id,
        "version": version if name else subject.image_id,
        "hashes": _hashes(subject.image_id.removeprefix("sha256:")),
        "properties": _properties(
            {
                "imagebuilder:build-id": subject.build_id,
                "imagebuilder:image-id": subject.image_id,
                "imagebuilder:base-image": subject.base_image,
                "imagebuilder:base-image-digest": subject.base_image_digest,
                "imagebuilder:os": inventory.os.pretty_name,
            }
        ),
    }
    document: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": subject.created_at.isoformat(timespec="seconds"),
            "tools": {
                "components": [
                    {"type": "application", "name": "imagebuilder", "version": subject.tool_version}
                ]
            },
            "component": {k: v for k, v in image.items() if v},
        },
        "components": components,
        "dependencies": [{"ref": "image", "dependsOn": [c["bom-ref"] for c in components]}],
    }
    vulnerabilities = _vulnerabilities(findings, inventory)
    if vulnerabilities:
        document["vulnerabilities"] = vulnerabilities
    return document


def _python_component(package: PythonPackage) -> dict[str, Any]:
    component: dict[str, Any] = {
        "type": "library",
        "bom-ref": package.purl,
        "name": package.name,
        "version": package.version,
        "purl": package.purl,
    }
    if licenses := package.licenses():
        component["licenses"] = licenses
    if package.record_sha256:
        component["hashes"] = _hashes(package.record_sha256)
    properties = _properties(
        {
            "imagebuilder:location": package.location,
            "imagebuilder:hash-of": "RECORD" if package.record_sha256 else None,
        }
    )
    if properties:
        component["properties"] = properties
    return component


def _debian_component(package: DebianPackage, distro: OperatingSystem) -> dict[str, Any]:
    purl = package.purl(distro)
    component: dict[str, Any] = {
        "type": "library",
        "bom-ref": purl,
        "name": package.name,
        "version": package.version,
        "purl": purl,
    }
    if package.source and package.source != package.name:
        component["properties"] = _properties({"imagebuilder:deb-source": package.source})
    return component


def _hashes(hex_digest: str) -> list[dict[str, str]]:
    return [{"alg": "SHA-256", "content": hex_digest}] if _SHA256.match(hex_digest) else []


def _properties(values: Mapping[str, str | None]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in values.items() if value]


def _vulnerabilities(findings: Iterable[Finding], inventory: Inventory) -> list[dict[str, Any]]:
    python = {_pep503(p.name): p.purl for p in inventory.python}
    debian = {p.name: p.purl(inventory.os) for p in inventory.debian}
    entries = []
    for finding in findings:
        is_debian = finding.ecosystem.startswith("Debian")
        purl = debian.get(finding.package) if is_debian else python.get(_pep503(finding.package))
        if purl is None:
            continue
        entry: dict[str, Any] = {
            "bom-ref": f"{finding.id}:{finding.package}",
            "id": finding.id,
            "source": {"name": "OSV"},
            "ratings": [{"severity": finding.severity}],
            "description": finding.summary,
            "affects": [{"ref": purl}],
        }
        if finding.aliases:
            entry["references"] = [
                {"id": alias, "source": {"name": "OSV"}} for alias in finding.aliases
            ]
        if finding.fixed_version:
            entry["recommendation"] = f"Upgrade {finding.package} to {finding.fixed_version}."
        entries.append(entry)
    return entries


def _pep503(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
