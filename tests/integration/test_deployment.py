"""The production deployment files: docker-compose.yml is valid and wires every role."""

from __future__ import annotations

import os
import shutil
import subprocess

import yaml

from tests.conftest import ROOT, require


def test_compose_file_is_valid_and_complete() -> None:
    require(shutil.which("docker-compose") is not None, "docker-compose (make test installs it)")
    env = os.environ | {
        "POSTGRES_PASSWORD": "x" * 24,
        "IMAGEBUILDER_BOOTSTRAP_TOKEN": "y" * 32,
        "IMAGEBUILDER_SECRET_KEY": "k" * 32,
        "REDIS_PASSWORD": "z" * 24,
    }
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert set(services) == {
        "migrate",
        "api",
        "worker",
        "webhooks",
        "beat",
        "builder-docker",
        "postgres",
        "redis",
    }
    for role in ("api", "worker", "webhooks", "beat", "migrate"):
        assert services[role]["image"] == "imagebuilder/service:latest"
        assert services[role]["environment"]["IMAGEBUILDER_ALLOWED_BASE_IMAGES"]
        assert services[role]["environment"]["IMAGEBUILDER_REDIS_URL"].startswith(
            f"redis://:{'z' * 24}@"
        )
    # Only workers drive the build daemon; the API holds no credentials for it.
    assert services["worker"]["environment"]["DOCKER_HOST"] == "tcp://builder-docker:2376"
    assert "DOCKER_HOST" not in services["api"]["environment"]
    assert services["api"]["environment"]["IMAGEBUILDER_API_DOCKER_ACCESS"] == "false"
    assert not any("certs" in str(volume) for volume in services["api"].get("volumes", []))
    # The build daemon (and every container it runs) shares no network with the state.
    assert set(services["builder-docker"]["networks"]) == {"build"}
    for state in ("postgres", "redis", "api", "webhooks"):
        assert "build" not in services[state]["networks"], state
    assert "--requirepass" in services["redis"]["command"]
    # Builds never use the host's Docker socket.
    mounts = [str(volume) for service in services.values() for volume in service.get("volumes", [])]
    assert not any("docker.sock" in mount for mount in mounts)
    assert (
        services["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    )
