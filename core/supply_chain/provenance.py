"""Build provenance: an in-toto statement with a SLSA provenance v1 predicate.

    subject                the image: its tag, its id (config digest), its pushed digest
    buildDefinition
      buildType            what kind of build this is (fixed URI, versioned)
      externalParameters   what the user asked for: the options and the uploaded source
      internalParameters   what the service chose: Dockerfile, Python version, base images
      resolvedDependencies the source archive (sha256) and the base image (its digest)
    runDetails
      builder              this service and its version
      metadata             the build id, when it started and finished
      byproducts           the Dockerfile that was built (sha256)

It is not signed: it records what the service did, for people and tools that trust the service.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://imagebuilder.dev/buildtypes/python-image/v1"
BUILDER_ID = "https://imagebuilder.dev/builder"


@functools.cache
def builder_version() -> str:
    try:
        return importlib.metadata.version("imagebuilder")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _digest(value: str | None) -> dict[str, str]:
    """`sha256:<hex>` (or a bare hex digest) as an in-toto DigestSet."""
    if not value:
        return {}
    algorithm, _, hex_digest = value.rpartition(":")
    if "@" in algorithm:
        algorithm = algorithm.rpartition("@")[2]
    return {algorithm or "sha256": hex_digest}


@dataclass(frozen=True)
class ProvenanceInput:
    build_id: str
    image_id: str
    tag: str | None
    source_filename: str
    source_sha256: str
    options: dict[str, Any]
    dockerfile: str | None
    dockerfile_generated: bool
    started_at: datetime | None
    finished_at: datetime
    python_version: str | None = None
    base_image: str | None = None
    base_image_digest: str | None = None
    pushed_reference: str | None = None
    pushed_digest: str | None = None
    worker: str = field(default_factory=socket.gethostname)
    extra: dict[str, Any] = field(default_factory=dict)


def provenance(given: ProvenanceInput) -> dict[str, Any]:
    """The in-toto statement for one built image."""
    subjects = [{"name": given.tag or given.image_id, "digest": _digest(given.image_id)}]
    if given.pushed_reference and given.pushed_digest:
        subjects.append({"name": given.pushed_reference, "digest": _digest(given.pushed_digest)})
    dockerfile_sha256 = (
        hashlib.sha256(given.dockerfile.encode("utf-8")).hexdigest() if given.dockerfile else None
    )
    dependencies: list[dict[str, Any]] = [
        {
            "uri": f"imagebuilder:source/{given.source_filename}",
            "name": given.source_filename,
            "digest": {"sha256": given.source_sha256},
        }
    ]
    if given.base_image:
        base: dict[str, Any] = {"uri": f"docker-image://{given.base_image}"}
        if given.base_image_digest:
            base["digest"] = _digest(given.base_image_digest)
        dependencies.append(base)
    internal: dict[str, Any] = {
        "dockerfile": "generated" if given.dockerfile_generated else "project",
        "dockerfileSha256": dockerfile_sha256,
        "pythonVersion": given.python_version,
        "worker": given.worker,
        **given.extra,
    }
    byproducts = []
    if dockerfile_sha256:
        byproducts.append(
            {
                "name": "Dockerfile",
                "digest": {"sha256": dockerfile_sha256},
                "mediaType": "text/plain",
            }
        )
    metadata: dict[str, Any] = {"invocationId": given.build_id}
    if given.started_at is not None:
        metadata["startedOn"] = given.started_at.isoformat(timespec="seconds")
    metadata["finishedOn"] = given.finished_at.isoformat(timespec="seconds")
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "options": given.options,
                    "source": {"filename": given.source_filename, "sha256": given.source_sha256},
                },
                "internalParameters": {k: v for k, v in internal.items() if v is not None},
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID, "version": {"imagebuilder": builder_version()}},
                "metadata": metadata,
                "byproducts": byproducts,
            },
        },
    }


def image_labels(
    *, source_sha256: str, base_image: str | None, base_image_digest: str | None
) -> dict[str, str]:
    """OCI labels that carry the provenance's essentials in the image itself; passed to the
    build (labels cannot be added to a built image without changing its id)."""
    labels = {
        "imagebuilder.source.sha256": source_sha256,
        "imagebuilder.builder.version": builder_version(),
    }
    if base_image:
        labels["org.opencontainers.image.base.name"] = base_image
    if base_image_digest and base_image_digest.startswith("sha256:"):
        labels["org.opencontainers.image.base.digest"] = base_image_digest
    return labels
