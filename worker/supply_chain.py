"""The supply-chain steps of a build, called by the pipeline.

    before the build   core.supply_chain.gate.base_image_gate (the project's own Dockerfile)
    scanning phase     scan_image: the base image's digest, the inventory of the built image (a
                       short command in the locked-down test container), its matches in the
                       advisory database (the vulnerability gate) and the SBOM
    after tagging      publish_image: the push to the configured registry (its own phase,
                       "exporting", with status and duration in `Build.push`) and the provenance

Each returns None to go on, or a `Rejection`: the terminal status and failure to end the build
with (`failed` for the project's faults, `error` for the service's). What they find goes into
`fields`, which the pipeline writes with the terminal status.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete

from adapters.docker import (
    CommandRun,
    DockerEngine,
    DockerUnavailable,
    PushFailed,
    Watchdog,
)
from core.access.namespaces import push_target
from core.builds.logs import LogStream, iter_all_lines
from core.builds.options import BuildOptions
from core.db import retrying, session_scope, utcnow
from core.models import Build, BuildArtifact
from core.settings import MiB, Settings
from core.status import BuildStatus, Failure, Phase
from core.supply_chain.advisories import (
    DatabaseStatus,
    Finding,
    database_status,
    find_debian_vulnerabilities,
    find_vulnerabilities,
    merge_aliases,
)
from core.supply_chain.policy import (
    blocking,
    final_base_image,
    parse_reference,
)
from core.supply_chain.provenance import ProvenanceInput, builder_version, provenance
from core.supply_chain.sbom import (
    BomSubject,
    Inventory,
    PythonPackage,
    cyclonedx,
    parse_dpkg_status,
    parse_os_release,
)

SBOM = "sbom"
PROVENANCE = "provenance"
MAX_INVENTORY_BYTES = 32 * MiB
Say = Callable[[str], None]
EnterPhase = Callable[[Phase], None]

# Prints one line per finding, each behind the marker: Python distributions as JSON, the fields of
# dpkg's status files we read, os-release. Python 3.8 compatible; unbuffered, and one write per
# line, so stderr (joined to stdout) never splits a line.
_INVENTORY_SCRIPT = r"""import glob, hashlib, json, os, re, sys
M = os.environ["IMAGEBUILDER_MARKER"]
def out(kind, text):
    sys.stdout.write(M + " " + kind + " " + text + "\n")
def cut(value, size):
    return value[:size] if isinstance(value, str) else None
try:
    import importlib.metadata as md
except ImportError:
    md = None
seen = set()
for dist in (md.distributions() if md else []):
    try:
        meta = dist.metadata
        name, version = meta["Name"], meta["Version"]
        if not name or not version:
            continue
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        seen.add(key)
        record = dist.read_text("RECORD")
        data = record.encode("utf-8", "surrogateescape") if record else None
        digest = hashlib.sha256(data).hexdigest() if data else None
        classifiers = [c for c in (meta.get_all("Classifier") or []) if c.startswith("License ::")]
        out("py", json.dumps({
            "name": cut(name, 200), "version": cut(version, 100),
            "license": cut(meta.get("License"), 300),
            "license_expression": cut(meta.get("License-Expression"), 300),
            "classifiers": [cut(c, 200) for c in classifiers[:10]],
            "record_sha256": digest, "location": cut(str(dist.locate_file("")), 300),
        }))
    except Exception as exc:
        out("warn", "a Python distribution could not be read: " + repr(exc)[:200])
for path in ["/var/lib/dpkg/status"] + sorted(glob.glob("/var/lib/dpkg/status.d/*")):
    try:
        with open(path, encoding="utf-8", errors="replace") as status:
            for line in status:
                line = line.rstrip("\n")
                if not line.strip() or line.split(":", 1)[0] in (
                    "Package", "Status", "Version", "Architecture", "Source"
                ):
                    out("dpkg", line[:500])
        out("dpkg", "")
    except OSError:
        pass
for path in ("/etc/os-release", "/usr/lib/os-release"):
    try:
        with open(path, encoding="utf-8", errors="replace") as release:
            for line in release:
                out("osr", line.rstrip("\n")[:300])
        break
    except OSError:
        pass
out("end", "")
"""
# Without Python in the image, the shell reports the Debian packages alone.
_INVENTORY_WRAPPER = """py=$(command -v python3 || command -v python) && \
    exec "$py" -u -c "$IMAGEBUILDER_INVENTORY" 2>&1
m=$IMAGEBUILDER_MARKER
for f in /var/lib/dpkg/status /var/lib/dpkg/status.d/*; do
    [ -r "$f" ] || continue
    while IFS= read -r line || [ -n "$line" ]; do
        case $line in
            Package:*|Status:*|Version:*|Architecture:*|Source:*|"")
                printf '%s dpkg %s\\n' "$m" "$line" ;;
        esac
    done < "$f"
    printf '%s dpkg \\n' "$m"
done
for f in /etc/os-release /usr/lib/os-release; do
    [ -r "$f" ] || continue
    while IFS= read -r line || [ -n "$line" ]; do printf '%s osr %s\\n' "$m" "$line"; done < "$f"
    break
done
printf '%s end \\n' "$m"
"""
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_LOG_FROM = re.compile(r"\bFROM (?P<name>\S+?)@(?P<digest>sha256:[0-9a-f]{64})")


class InventoryFailed(Exception):
    """The image's packages could not be listed (no shell, the command failed or was cut)."""


@dataclass(frozen=True)
class Rejection:
    """How a supply-chain step ends the build: `failed` (the project) or `error` (the service)."""

    status: BuildStatus
    failure: Failure


def deadline(seconds: float) -> Watchdog:
    """A watchdog that stops a step after `seconds` (for callers without the pipeline's)."""
    end = time.monotonic() + seconds

    def check() -> str | None:
        return BuildStatus.TIMED_OUT.value if time.monotonic() > end else None

    return check


# --- inventory ----------------------------------------------------------------------------------


def installed_packages(
    docker: DockerEngine,
    image_id: str,
    settings: Settings,
    *,
    build_id: str = "",
    watchdog: Watchdog | None = None,
) -> Inventory:
    """What the image holds: its Python distributions (on its Python's sys.path) and its Debian
    packages, read by a short command in the locked-down test container as nobody."""
    marker = f"::imagebuilder-inventory::{os.urandom(12).hex()}::"
    captured = docker.run_capture(
        CommandRun(
            image=image_id,
            command=[],
            build_id=build_id,
            memory_bytes=settings.test_memory_bytes,
            cpus=settings.test_cpus,
            pids_limit=settings.test_pids_limit,
            tmpfs_bytes=settings.test_tmpfs_bytes,
            role="inventory",
            entrypoint=["/bin/sh", "-c", _INVENTORY_WRAPPER],
            environment={
                "IMAGEBUILDER_MARKER": marker,
                "IMAGEBUILDER_INVENTORY": _INVENTORY_SCRIPT,
            },
        ),
        watchdog or deadline(settings.test_timeout_seconds),
        max_bytes=MAX_INVENTORY_BYTES,
    )
    if captured.truncated:
        raise InventoryFailed(f"the package listing exceeded {MAX_INVENTORY_BYTES // MiB} MiB")
    try:
        return parse_inventory(captured.lines, marker)
    except InventoryFailed as exc:
        tail = [line for line in captured.lines if not line.startswith(marker)][-3:]
        details = f" (exit code {captured.exit_code}{': ' + ' | '.join(tail) if tail else ''})"
        raise InventoryFailed(f"{exc}{details}") from exc


def parse_inventory(lines: Iterable[str], marker: str) -> Inventory:
    """The inventory from the listing command's output; raises InventoryFailed if it is cut."""
    prefix = marker + " "
    python: dict[str, PythonPackage] = {}
    dpkg: list[str] = []
    release: list[str] = []
    ended = False
    for line in lines:
        if not line.startswith(prefix):
            continue
        kind, _, rest = line[len(prefix) :].partition(" ")
        if kind == "py":
            package = _python_package(rest)
            if package is not None:
                python.setdefault(package.name.lower(), package)
        elif kind == "dpkg":
            dpkg.append(rest)
        elif kind == "osr":
            release.append(rest)
        elif kind == "end":
            ended = True
    if not ended:
        raise InventoryFailed("the package listing did not finish")
    return Inventory(
        python=sorted(python.values(), key=lambda p: p.name.lower()),
        debian=parse_dpkg_status("\n".join(dpkg)),
        os=parse_os_release("\n".join(release)),
    )


def _text(value: object, size: int) -> str | None:
    return value.strip()[:size] or None if isinstance(value, str) else None


def _python_package(raw: str) -> PythonPackage | None:
    # The image's output is untrusted: take only well-formed fields.
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    name, version = _text(data.get("name"), 200), _text(data.get("version"), 100)
    if name is None or version is None:
        return None
    classifiers = data.get("classifiers")
    digest = data.get("record_sha256")
    return PythonPackage(
        name=name,
        version=version,
        license_expression=_text(data.get("license_expression"), 300),
        license=_text(data.get("license"), 300),
        license_classifiers=tuple(
            c for c in (classifiers if isinstance(classifiers, list) else []) if isinstance(c, str)
        )[:10],
        record_sha256=digest if isinstance(digest, str) and _SHA256.match(digest) else None,
        location=_text(data.get("location"), 300),
    )


# --- advisories and artifacts -------------------------------------------------------------------


def scan(engine: Engine, inventory: Inventory) -> tuple[list[Finding], DatabaseStatus]:
    """The inventory's Python and Debian packages matched against the advisory database."""
    with session_scope(engine) as session:
        status = database_status(session)
        findings = find_vulnerabilities(session, [(p.name, p.version) for p in inventory.python])
        if inventory.os.id == "debian":
            findings += find_debian_vulnerabilities(
                session,
                inventory.os.version_id,
                [(p.name, p.source, p.version) for p in inventory.debian],
            )
    return merge_aliases(findings), status


def write_artifact(engine: Engine, build_id: str, kind: str, content: dict[str, Any]) -> None:
    def store(session: Any) -> None:
        session.execute(
            delete(BuildArtifact).where(
                BuildArtifact.build_id == build_id, BuildArtifact.kind == kind
            )
        )
        session.add(
            BuildArtifact(build_id=build_id, kind=kind, content=content, created_at=utcnow())
        )

    retrying(engine, store)


def write_sbom(engine: Engine, build_id: str, document: dict[str, Any]) -> None:
    write_artifact(engine, build_id, SBOM, document)


def write_provenance(engine: Engine, build_id: str, statement: dict[str, Any]) -> None:
    write_artifact(engine, build_id, PROVENANCE, statement)


# --- base images --------------------------------------------------------------------------------


def base_image_digest(docker: DockerEngine, reference: str) -> str | None:
    """The digest of the base image as the daemon has it: the reference's own digest when it is
    pinned, else its repository digest (RepoDigests), else its image id; None if it is absent."""
    parsed = parse_reference(reference)
    if parsed is not None and parsed.digest:
        return parsed.digest
    info = docker.find_image(reference)
    if info is None:
        return None
    digests = [d for d in info.get("RepoDigests") or [] if isinstance(d, str)]
    if parsed is not None:
        for candidate in digests:
            candidate_ref = parse_reference(candidate)
            if candidate_ref is not None and candidate_ref.repository == parsed.repository:
                return candidate.rpartition("@")[2]
    if digests:
        return digests[0].rpartition("@")[2]
    image_id = info.get("Id")
    return image_id if isinstance(image_id, str) else None


def digest_from_build_log(lines: Iterable[str], reference: str) -> str | None:
    """The digest BuildKit printed when it resolved a pulled base image (`FROM name@sha256:`)."""
    parsed = parse_reference(reference)
    if parsed is None:
        return None
    for line in lines:
        for match in _LOG_FROM.finditer(line):
            named = parse_reference(match.group("name"))
            if named is not None and named.repository == parsed.repository:
                return match.group("digest")
    return None


# --- the steps the pipeline calls ---------------------------------------------------------------


def scan_image(
    settings: Settings,
    engine: Engine,
    docker: DockerEngine,
    build_id: str,
    image_id: str,
    *,
    tag: str | None,
    dockerfile_text: str,
    generated: bool,
    options: BuildOptions,
    say: Say,
    watchdog: Watchdog,
    fields: dict[str, Any],
) -> Rejection | None:
    """Scanning phase, before the image is tagged: record the base image and its digest, list
    the image's packages, match them against the advisory database, store the SBOM (also for a
    build the policy then fails), and apply the vulnerability policy."""
    base_image = final_base_image(
        dockerfile_text, options.build_args, target="runtime" if generated else None
    )
    digest = None
    if base_image is not None:
        digest = base_image_digest(docker, base_image)
        if digest is None:
            build_lines = (
                line.text
                for line in iter_all_lines(engine, build_id)
                if line.stream == LogStream.BUILD
            )
            digest = digest_from_build_log(build_lines, base_image)
    fields["base_image"] = base_image
    fields["base_image_digest"] = digest
    say(f"base image: {base_image or 'none (scratch)'}" + (f" ({digest})" if digest else ""))

    try:
        inventory = installed_packages(
            docker, image_id, settings, build_id=build_id, watchdog=watchdog
        )
    except InventoryFailed as exc:
        return Rejection(
            BuildStatus.FAILED,
            Failure("inventory_failed", f"The image's packages could not be listed: {exc}."),
        )
    say(
        f"inventory: {len(inventory.python)} Python packages, "
        f"{len(inventory.debian)} Debian packages"
    )
    findings, database = scan(engine, inventory)
    say(f"vulnerabilities: advisory database: {database.describe()}")
    fields["vulnerabilities"] = [finding.to_dict() for finding in findings]
    for finding in findings:
        say(f"vulnerability: {finding}")
    if not findings and database.imported_at is not None:
        say("vulnerabilities: none found")
    write_sbom(
        engine,
        build_id,
        cyclonedx(
            BomSubject(
                build_id=build_id,
                image_id=image_id,
                tag=tag,
                created_at=utcnow(),
                tool_version=builder_version(),
                base_image=base_image,
                base_image_digest=digest,
            ),
            inventory,
            findings,
        ),
    )
    say(f"sbom: CycloneDX, {len(inventory.python) + len(inventory.debian)} components")

    policy = settings.vulnerability_policy
    if policy != "none" and database.imported_at is None:
        return Rejection(
            BuildStatus.ERROR,
            Failure(
                "advisories_missing",
                f"The vulnerability policy is {policy!r} but no advisory database was imported "
                "(an operator runs: python -m core.admin advisories import PATH).",
            ),
        )
    blocked = blocking(findings, policy)
    if blocked:
        listed = ", ".join(
            f"{f.id} ({f.severity}, {f.package} {f.installed_version}"
            + (f", fixed in {f.fixed_version})" if f.fixed_version else ")")
            for f in blocked[:5]
        )
        more = f" and {len(blocked) - 5} more" if len(blocked) > 5 else ""
        noun = "vulnerability" if len(blocked) == 1 else "vulnerabilities"
        return Rejection(
            BuildStatus.FAILED,
            Failure(
                "vulnerabilities_found",
                f"{len(blocked)} known {noun} at or above {policy!r}: {listed}{more}. "
                "Upgrade the packages named.",
            ),
        )
    return None


def publish_image(
    settings: Settings,
    engine: Engine,
    docker: DockerEngine,
    build_id: str,
    image_id: str,
    *,
    tag: str,
    say: Say,
    enter_phase: EnterPhase,
    fields: dict[str, Any],
) -> Rejection | None:
    """After the image is tagged: push it when a registry is configured (the "exporting" phase),
    then store the provenance. A refused or failed push ends the build `error`."""
    rejection = None
    push: dict[str, Any] | None = None
    if settings.registry_url:
        enter_phase(Phase.EXPORTING)
        push = push_image(docker, settings, image_id, tag, say)
        fields["push"] = push
        if push["status"] != "succeeded":
            rejection = Rejection(
                BuildStatus.ERROR,
                Failure("push_failed", f"The push to {push['reference']} failed: {push['error']}"),
            )
    with session_scope(engine) as session:
        build = session.get_one(Build, build_id)
        given = ProvenanceInput(
            build_id=build_id,
            image_id=image_id,
            tag=tag,
            source_filename=build.source_filename,
            source_sha256=build.source_sha256,
            options=dict(build.options),
            dockerfile=build.dockerfile,
            dockerfile_generated=bool(build.plan and build.plan.get("dockerfile") is None),
            started_at=build.started_at,
            finished_at=utcnow(),
            python_version=(build.plan or {}).get("python_version"),
            base_image=fields.get("base_image"),
            base_image_digest=fields.get("base_image_digest"),
            pushed_reference=push["reference"] if push and push.get("digest") else None,
            pushed_digest=push.get("digest") if push else None,
        )
    write_provenance(engine, build_id, provenance(given))
    say("provenance: recorded (SLSA provenance v1)")
    return rejection


# --- push ---------------------------------------------------------------------------------------


def push_image(
    docker: DockerEngine, settings: Settings, image_id: str, tag: str, say: Say
) -> dict[str, Any]:
    """Push the image to the configured registry; returns the record stored in `Build.push`
    (status, reference, digest, timings, error). The password never reaches a log line."""
    target = push_target(settings.registry_url, settings.image_namespace, tag)
    secret = settings.registry_password.get_secret_value() if settings.registry_password else ""
    auth = None
    if settings.registry_username:
        auth = {
            "username": settings.registry_username,
            "password": secret,
            "serveraddress": settings.registry_url.split("/", 1)[0],
        }

    def scrub(text: str) -> str:
        return text.replace(secret, "[redacted]") if secret else text

    started, clock = utcnow(), time.monotonic()
    record: dict[str, Any] = {
        "status": "failed",
        "reference": target,
        "digest": None,
        "error": None,
        "started_at": started.isoformat(),
    }
    say(f"push: {target}" + (f" as {settings.registry_username}" if auth else ""))
    tagged = False
    try:
        if target != tag:
            docker.tag(image_id, target)
            tagged = True
        digest = docker.push(target, auth, on_line=lambda line: say(f"push: {scrub(line)}"))
        record |= {"status": "succeeded", "digest": digest}
    except (PushFailed, DockerUnavailable) as exc:
        record["error"] = scrub(str(exc))[:1000]
    finally:
        if tagged:
            try:
                docker.remove_image(target)
            except DockerUnavailable as exc:
                say(f"push: could not remove the local tag {target}: {scrub(str(exc))}")
        record["finished_at"] = utcnow().isoformat()
        record["duration_seconds"] = round(time.monotonic() - clock, 3)
    if record["status"] == "succeeded":
        say(f"push: {target}@{record['digest']} in {record['duration_seconds']:.1f} s")
    else:
        say(f"push: failed after {record['duration_seconds']:.1f} s: {record['error']}")
    return record
