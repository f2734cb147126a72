"""imagebuilder's own image, run as containers: migrations, the API and a worker (against this
machine's Redis, PostgreSQL and Docker daemon) serve a real build."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import CA_BUNDLE, ROOT, require, zip_project
from tests.e2e.conftest import RedisServer, free_port
from tests.factories import TEST_NAMESPACE

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.postgres, pytest.mark.slow]

DOCKER = os.environ.get("IMAGEBUILDER_DOCKER_CLI", "/usr/bin/docker")
IMAGE = "imagebuilder/service:test"
SOCKET = Path("/var/run/docker.sock")
TOKEN = "ib_svcimage_" + "s3cr3t" * 6


def docker(*args: str, check: bool = True) -> str:
    result = subprocess.run([DOCKER, *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {result.stderr}")
    return (result.stdout + result.stderr).strip()


@pytest.fixture(scope="module")
def service_image() -> Iterator[str]:
    require(SOCKET.exists(), "the local Docker daemon socket")
    built = subprocess.run(
        [str(ROOT / "scripts/service-image.sh"), IMAGE], capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stdout + built.stderr
    yield IMAGE
    docker("rmi", "-f", IMAGE, check=False)


@pytest.fixture(scope="module")
def postgres_schema() -> Iterator[str]:
    url = os.environ.get("IMAGEBUILDER_TEST_POSTGRES_URL", "")
    require(bool(url), "PostgreSQL (IMAGEBUILDER_TEST_POSTGRES_URL)")
    schema = f"svc_{secrets.token_hex(4)}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    yield f"{url}?options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def test_the_service_image_serves_a_build(
    service_image: str, postgres_schema: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 10001, 10001)
    broker = RedisServer(tmp_path)
    broker.start()
    port = free_port()
    env = {
        "IMAGEBUILDER_DATABASE_URL": postgres_schema,
        "IMAGEBUILDER_REDIS_URL": broker.url,
        "IMAGEBUILDER_BOOTSTRAP_TOKEN": TOKEN,
        "IMAGEBUILDER_BUILDER_IMAGE_TEMPLATE": "imagebuilder/python-builder:{version}",
        "IMAGEBUILDER_RUNTIME_IMAGE_TEMPLATE": "imagebuilder/python:{version}",
        "IMAGEBUILDER_PULL_BASE_IMAGES": "false",
    }
    # Both containers reach the daemon: the worker builds with it, the API's /readyz checks it.
    common = ["--network", "host", "-v", f"{data}:/data", "-v", f"{SOCKET}:{SOCKET}"]
    common += ["--group-add", str(SOCKET.stat().st_gid)]
    for key, value in env.items():
        common += ["-e", f"{key}={value}"]
    if CA_BUNDLE.is_file():
        common += [
            "-v",
            f"{CA_BUNDLE}:/etc/imagebuilder/ca.pem:ro",
            "-e",
            "IMAGEBUILDER_CA_BUNDLE=/etc/imagebuilder/ca.pem",
        ]
    names = [f"ib-svc-api-{port}", f"ib-svc-worker-{port}"]
    tag = f"imagebuilder-e2e/service-image:{port}"
    owned_tag = f"{TEST_NAMESPACE}/admin/{tag}"  # the admin's namespace on the daemon
    try:
        docker("run", "--rm", *common, service_image, "alembic", "upgrade", "head")
        docker(
            "run",
            "-d",
            "--name",
            names[0],
            *common,
            service_image,
            "uvicorn",
            "--factory",
            "app.main:app_factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        )
        socket_group = str(SOCKET.stat().st_gid)
        docker(
            "run",
            "-d",
            "--name",
            names[1],
            *common,
            "-v",
            f"{SOCKET}:{SOCKET}",
            "--group-add",
            socket_group,
            service_image,
            "celery",
            "-A",
            "worker.celery_app",
            "worker",
            "--beat",
            "--concurrency",
            "1",
            "--schedule",
            "/data/beat-schedule",
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180  # generous: CI shares two cores
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, docker("logs", names[0], check=False)
            time.sleep(0.5)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            response = client.post(
                "/api/v1/builds",
                files={"source": ("passing.zip", zip_project("passing"))},
                data={"tag": tag},
            )
            assert response.status_code == 202, response.text
            build_id = response.json()["id"]
            deadline = time.monotonic() + 600
            while (build := client.get(f"/api/v1/builds/{build_id}").json())["status"] in (
                "queued",
                "running",
            ):
                assert time.monotonic() < deadline, docker("logs", names[1], check=False)
                time.sleep(1)
        assert build["status"] == "succeeded", (build, docker("logs", names[1], check=False))
        assert build["tests"]["passed"] == 4
        assert build["image"]["tag"] == owned_tag
        assert docker("image", "inspect", "-f", "{{.Id}}", owned_tag) == build["image"]["id"]
        assert "build_id" in docker("logs", names[1], check=False)  # JSON logs name the build
    finally:
        for name in names:
            docker("rm", "-f", name, check=False)
        docker("rmi", "-f", owned_tag, check=False)
        broker.stop()
