"""Which Python versions this builder can build: every supported one where base images can be
pulled, else those whose builder and runtime images the daemon already holds."""

from __future__ import annotations

from adapters.docker.engine import DockerEngine
from core.settings import SUPPORTED_PYTHON_VERSIONS, Settings


def available_python_versions(settings: Settings, docker_engine: DockerEngine) -> list[str]:
    if settings.pull_base_images:
        return list(SUPPORTED_PYTHON_VERSIONS)
    present = docker_engine.local_tags()
    return [
        version
        for version in SUPPORTED_PYTHON_VERSIONS
        if _tagged(settings.builder_image(version)) in present
        and _tagged(settings.runtime_image(version)) in present
    ]


def _tagged(reference: str) -> str:
    """`name` as Docker lists it: with the implicit `:latest`."""
    return reference if ":" in reference.rsplit("/", 1)[-1] else f"{reference}:latest"
