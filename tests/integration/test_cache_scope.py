"""scope_cache_mounts against the real daemon: a cache mount written under one scope is not seen
under another, and is seen again under the same one (so the isolation is not an empty cache)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.docker import DockerEngine
from core.dockerfile.syntax import scope_cache_mounts
from tests.conftest import require

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BASE = "imagebuilder/python:3.11"
CLI = os.environ.get("IMAGEBUILDER_DOCKER_CLI", "/usr/bin/docker")


def dockerfile(command: str) -> str:
    # Written as users write it: upper-case keys, quoted CSV, a continuation line.
    return (
        f"FROM {BASE}\nUSER 0\n"
        'RUN --mount="TYPE=cache,target=/cache,mode=0777" \\\n'
        f"    sh -c '{command}'\n"
    )


class Builds:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.images: list[str] = []

    def run(self, text: str) -> subprocess.CompletedProcess[str]:
        (self.directory / "Dockerfile").write_text(text)
        iidfile = self.directory / "iid"
        iidfile.unlink(missing_ok=True)
        result = subprocess.run(
            [CLI, "build", "--no-cache", "--progress=plain", "--iidfile", str(iidfile), "."],
            cwd=self.directory,
            env=os.environ | {"DOCKER_BUILDKIT": "1"},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if iidfile.exists():
            self.images.append(iidfile.read_text().strip())
        return result


@pytest.fixture
def builds(docker_engine: DockerEngine, tmp_path: Path) -> Iterator[Builds]:
    require(docker_engine.image_exists(BASE), f"the base image {BASE}")
    runner = Builds(tmp_path)
    yield runner
    for image in runner.images:
        subprocess.run([CLI, "rmi", "-f", image], capture_output=True, check=False)


def test_a_scope_does_not_see_another_scopes_cache(builds: Builds) -> None:
    token = uuid.uuid4().hex
    owner_a, owner_b = f"test-a-{token[:8]}", f"test-b-{token[:8]}"

    planted = builds.run(scope_cache_mounts(dockerfile(f"echo {token} > /cache/wheel"), owner_a))
    assert planted.returncode == 0, planted.stdout + planted.stderr

    other = builds.run(
        scope_cache_mounts(dockerfile(f"test ! -e /cache/wheel # {token} b"), owner_b)
    )
    assert other.returncode == 0, other.stdout + other.stderr

    same = builds.run(
        scope_cache_mounts(dockerfile(f"grep -q {token} /cache/wheel # a again"), owner_a)
    )
    assert same.returncode == 0, same.stdout + same.stderr
