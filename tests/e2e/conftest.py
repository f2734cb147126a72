"""The running service: uvicorn and a Celery worker as real processes, driven over HTTP."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from adapters.broker import WEBHOOK_QUEUE
from adapters.docker import DockerEngine, DockerUnavailable
from core.settings import Settings
from tests.conftest import ADMIN_TOKEN, ROOT, migrate, require, test_settings, zip_project


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Service:
    url: str
    settings: Settings
    env: dict[str, str]
    log_dir: Path
    broker: RedisServer
    token: str = ADMIN_TOKEN
    worker: subprocess.Popen[bytes] | None = None

    def client(self, token: str | None = None) -> httpx.Client:
        """An HTTP client for the API, authenticated with `token` (default: the admin token)."""
        return httpx.Client(
            base_url=self.url,
            timeout=30,
            headers={"Authorization": f"Bearer {token or self.token}"},
        )

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-5000:]}"
            for path in sorted(self.log_dir.glob("*.log"))
        )


def settings_env(settings: Settings) -> dict[str, str]:
    keys = (
        "data_dir",
        "redis_url",
        "builder_image_template",
        "runtime_image_template",
        "pull_base_images",
        "ca_bundle",
        "docker_cli",
        "sweep_interval_seconds",
        "stale_after_seconds",
        "requeue_after_seconds",
        "heartbeat_seconds",
        "reuse_results",
    )
    env = {}
    for key in keys:
        value = getattr(settings, key)
        if value is not None:
            env[f"IMAGEBUILDER_{key.upper()}"] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
    return env


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 30) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start_worker(service: Service, name: str = "worker") -> subprocess.Popen[bytes]:
    return start(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "worker.celery_app",
            "worker",
            "--beat",
            "--schedule",
            str(service.settings.data_dir / f"beat-{name}"),
            "--concurrency",
            "2",
            "--loglevel",
            "INFO",
            "-n",
            f"{name}@%h",
        ],
        service.env,
        service.log_dir / f"{name}.log",
    )


def start_webhook_worker(service: Service) -> subprocess.Popen[bytes]:
    """The worker that consumes webhook deliveries (their own queue, as in production)."""
    return start(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "worker.celery_app",
            "worker",
            "-Q",
            WEBHOOK_QUEUE,
            "-P",
            "threads",
            "--concurrency",
            "4",
            "--loglevel",
            "INFO",
            "-n",
            "webhooks@%h",
        ],
        service.env,
        service.log_dir / "webhooks.log",
    )


class RedisServer:
    """A private redis-server on a free port: each service gets its own broker, which a test
    may stop and start again (no persistence: a restart loses every queued message)."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._log = log_dir / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self._process = start(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            dict(os.environ),
            self._log,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        client.close()

    def stop(self) -> None:
        if self._process is not None:
            stop(self._process)
            self._process = None


# On a busy machine (CI shares two cores) importing the API alone can take tens of seconds; a
# process that died is reported at once instead.
READY_SECONDS = 180


def wait_ready(service: Service, api: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while True:
        try:
            if httpx.get(f"{service.url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if api.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the service did not become ready\n{service.logs()}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    data_dir = tmp_path_factory.mktemp("service") / "data"
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True)
    require(shutil.which("redis-server") is not None, "redis-server (make test installs it)")
    broker = RedisServer(log_dir)
    settings = test_settings(
        data_dir,
        redis_url=broker.url,
        sweep_interval_seconds=2.0,
        stale_after_seconds=15.0,
        requeue_after_seconds=10.0,
        heartbeat_seconds=1.0,
    )
    try:
        docker_engine = DockerEngine(settings.docker_cli)
        docker_engine.ping()
        bases_present = docker_engine.image_exists(settings.runtime_image("3.11"))
        docker_engine.close()
    except DockerUnavailable:
        bases_present = False
    require(bases_present, "the Docker daemon with the local base images")
    migrate(settings.sqlalchemy_url)
    port = free_port()
    env = os.environ | settings_env(settings) | {"IMAGEBUILDER_BOOTSTRAP_TOKEN": ADMIN_TOKEN}
    service = Service(f"http://127.0.0.1:{port}", settings, env, log_dir, broker=broker)
    broker.start()
    api = start(
        [
            str(Path(sys.executable).parent / "uvicorn"),
            "--factory",
            "app.main:app_factory",
            "--port",
            str(port),
        ],
        env,
        log_dir / "api.log",
    )
    service.worker = start_worker(service)
    webhooks = start_webhook_worker(service)
    try:
        wait_ready(service, api)
        yield service
    finally:
        if service.worker is not None:
            stop(service.worker)
        stop(webhooks)
        stop(api)
        broker.stop()


TERMINAL = frozenset({"succeeded", "failed", "error", "timed_out", "cancelled"})


def finished(build: dict[str, Any]) -> bool:
    return build["status"] in TERMINAL


def submit_project(client: httpx.Client, project: str, **fields: str) -> str:
    """POST a fixture project (multipart) and return the new build's id."""
    response = client.post(
        "/api/v1/builds", files={"source": (f"{project}.zip", zip_project(project))}, data=fields
    )
    assert response.status_code == 202, response.text
    build_id: str = response.json()["id"]
    return build_id


def wait_for_build(
    client: httpx.Client,
    build_id: str,
    predicate: Callable[[dict[str, Any]], bool],
    service: Service,
    seconds: float = 600,
) -> dict[str, Any]:
    """Poll the build until `predicate` holds; fail with the service's logs if it never does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        build: dict[str, Any] = client.get(f"/api/v1/builds/{build_id}").json()
        if predicate(build):
            return build
        time.sleep(0.5)
    raise AssertionError(f"build {build_id} stuck at {build}\n{service.logs()}")
