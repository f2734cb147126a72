"""Supply chain against a real Docker daemon: the inventory of real images, the vulnerability scan
of a project pinning an old urllib3 (real advisories, tests/advisories), the SBOM, the export route
that `docker load` reads back, and the push to a registry v2 server started here.

The project is built once for the module (BuildKit's cache makes later runs quick); tests that
change the image put it back as they found it.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, select

from adapters.docker import DockerEngine
from app.main import create_app
from core.builds.options import BuildOptions
from core.db import make_engine, session_scope
from core.models import BuildArtifact
from core.settings import Settings
from core.status import BuildStatus, Phase
from core.supply_chain.advisories import load_osv, replace_advisories
from tests.conftest import ADMIN_TOKEN, ROOT, migrate, require, test_settings
from tests.factories import queued_build
from tests.integration.builder import Builder, Outcome
from tests.unit.test_sbom import schema_errors
from worker.supply_chain import (
    base_image_digest,
    installed_packages,
    publish_image,
    push_image,
    scan,
    scan_image,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ADVISORIES = ROOT / "tests" / "advisories"
REGISTRY = Path("/usr/bin/docker-registry")
CLI = "/usr/bin/docker"


@dataclass
class Built:
    settings: Settings
    engine: Engine
    builder: Builder
    outcome: Outcome

    @property
    def image_id(self) -> str:
        assert self.outcome.build.image_id is not None
        return self.outcome.build.image_id

    @property
    def tag(self) -> str:
        assert self.outcome.build.image_tag is not None
        return self.outcome.build.image_tag


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, docker_engine: DockerEngine) -> Iterator[Built]:
    settings = test_settings(tmp_path_factory.mktemp("supply") / "data")
    for image in (settings.builder_image("3.11"), settings.runtime_image("3.11")):
        require(docker_engine.image_exists(image), f"base image {image} (make test builds it)")
    settings.data_dir.mkdir(parents=True)
    migrate(settings.sqlalchemy_url)
    engine = make_engine(settings.sqlalchemy_url)
    builder = Builder(settings, engine, docker_engine)
    outcome = builder.run(builder.submit("vulnerable_pin", run_tests=False))
    assert outcome.build.status is BuildStatus.SUCCEEDED, outcome.log
    with session_scope(engine) as session:
        replace_advisories(session, load_osv(ADVISORIES), source="tests/advisories")
    yield Built(settings, engine, builder, outcome)
    builder.cleanup()
    engine.dispose()


class TestInventory:
    def test_runtime_base_image(self, settings: Settings, docker_engine: DockerEngine) -> None:
        image = settings.runtime_image("3.11")
        require(docker_engine.image_exists(image), f"base image {image}")
        inventory = installed_packages(docker_engine, image, settings)
        names = {package.name for package in inventory.debian}
        assert {"python3.11", "libc6", "ca-certificates"} <= names
        assert all(package.version for package in inventory.debian)
        assert inventory.os.id == "debian"

    def test_built_image_lists_the_pinned_package(
        self, built: Built, docker_engine: DockerEngine
    ) -> None:
        inventory = installed_packages(
            docker_engine, built.image_id, built.settings, build_id=built.outcome.build.id
        )
        packages = {package.name.lower(): package for package in inventory.python}
        urllib3 = packages["urllib3"]
        assert urllib3.version == "1.26.4"
        assert urllib3.location == "/opt/venv/lib/python3.11/site-packages"
        assert urllib3.record_sha256 is not None
        assert urllib3.licenses() == [{"license": {"id": "MIT"}}]
        assert "libc6" in {package.name for package in inventory.debian}
        assert built.outcome.build.id not in docker_engine.build_containers().values()


class TestVulnerabilityScan:
    def test_finds_the_advisories_of_the_pinned_version(
        self, built: Built, docker_engine: DockerEngine
    ) -> None:
        inventory = installed_packages(docker_engine, built.image_id, built.settings)
        findings, database = scan(built.engine, inventory)
        assert database.advisories == 4
        assert [
            (f.id, f.package, f.installed_version, f.fixed_version, f.severity) for f in findings
        ] == [
            ("GHSA-q2q7-5pp4-w6pg", "urllib3", "1.26.4", "1.26.5", "high"),
            ("GHSA-v845-jxx5-vc9f", "urllib3", "1.26.4", "1.26.17", "medium"),
        ]
        assert "PYSEC-2021-108" in findings[0].aliases

    @pytest.mark.parametrize(
        ("policy", "status"),
        [("high", BuildStatus.FAILED), ("critical", None), ("none", None)],
    )
    def test_scan_image_applies_the_policy(
        self,
        built: Built,
        docker_engine: DockerEngine,
        policy: str,
        status: BuildStatus | None,
    ) -> None:
        settings = built.settings.model_copy(update={"vulnerability_policy": policy})
        said: list[str] = []
        fields: dict[str, object] = {}
        build = built.outcome.build
        rejection = scan_image(
            settings,
            built.engine,
            docker_engine,
            build.id,
            built.image_id,
            tag=built.tag,
            dockerfile_text=build.dockerfile or "",
            generated=True,
            options=BuildOptions.model_validate(build.options),
            say=said.append,
            watchdog=lambda: None,
            fields=fields,
        )
        assert (rejection.status if rejection else None) == status
        if rejection is not None:
            assert rejection.failure.code == "vulnerabilities_found"
            assert "GHSA-q2q7-5pp4-w6pg (high, urllib3 1.26.4, fixed in 1.26.5)" in (
                rejection.failure.message
            )
            assert "GHSA-v845" not in rejection.failure.message  # medium: below the policy
        assert fields["base_image"] == settings.runtime_image("3.11")
        assert fields["base_image_digest"] == base_image_digest(
            docker_engine, settings.runtime_image("3.11")
        )
        vulnerabilities = fields["vulnerabilities"]
        assert isinstance(vulnerabilities, list)
        assert [v["id"] for v in vulnerabilities] == ["GHSA-q2q7-5pp4-w6pg", "GHSA-v845-jxx5-vc9f"]
        assert any(line.startswith("vulnerability: GHSA-q2q7-5pp4-w6pg (high)") for line in said)
        with session_scope(built.engine) as session:
            sbom = session.scalar(
                select(BuildArtifact.content).where(
                    BuildArtifact.build_id == build.id, BuildArtifact.kind == "sbom"
                )
            )
        assert sbom is not None
        assert sbom["specVersion"] == "1.5"
        assert schema_errors(sbom) is None  # the CycloneDX 1.5 JSON schema
        purls = {c["purl"] for c in sbom["components"]}
        assert "pkg:pypi/urllib3@1.26.4" in purls
        assert any(purl.startswith("pkg:deb/debian/libc6@") for purl in purls)
        assert {v["id"] for v in sbom["vulnerabilities"]} == {
            "GHSA-q2q7-5pp4-w6pg",
            "GHSA-v845-jxx5-vc9f",
        }

    def test_a_policy_without_a_database_is_the_services_fault(
        self, built: Built, docker_engine: DockerEngine, settings: Settings, sqlite_engine: Engine
    ) -> None:
        strict = settings.model_copy(update={"vulnerability_policy": "critical"})
        build_id = queued_build(sqlite_engine)
        rejection = scan_image(
            strict,
            sqlite_engine,
            docker_engine,
            build_id,
            built.image_id,
            tag=built.tag,
            dockerfile_text="FROM imagebuilder/python:3.11\n",
            generated=False,
            options=BuildOptions(),
            say=lambda _line: None,
            watchdog=lambda: None,
            fields={},
        )
        assert rejection is not None
        assert rejection.status is BuildStatus.ERROR
        assert rejection.failure.code == "advisories_missing"


class TestExport:
    def test_the_route_streams_an_archive_docker_load_accepts(
        self, built: Built, docker_engine: DockerEngine, tmp_path: Path
    ) -> None:
        app = create_app(built.settings)
        archive = tmp_path / "image.tar"
        with (
            TestClient(app) as client,
            client.stream(
                "GET",
                f"/api/v1/builds/{built.outcome.build.id}/image",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            ) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/x-tar"
            assert (
                f'filename="{built.outcome.build.id}.tar"'
                in response.headers["content-disposition"]
            )
            with archive.open("wb") as file:
                for chunk in response.iter_bytes():
                    file.write(chunk)
        docker_engine.remove_image(built.tag)  # the only tag: the image is gone
        assert docker_engine.find_image(built.image_id) is None
        loaded = subprocess.run(
            [CLI, "load", "-i", str(archive)], capture_output=True, text=True, check=False
        )
        assert loaded.returncode == 0, loaded.stderr
        assert built.tag in loaded.stdout
        info = docker_engine.find_image(built.tag)
        assert info is not None
        assert info["Id"] == built.image_id


# --- push -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registry:
    host: str
    username: str
    password: str


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _bcrypt(password: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # the registry's htpasswd file takes bcrypt only

    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry v2 server on a free loopback port, with basic authentication."""
    require(REGISTRY.is_file(), f"{REGISTRY} (scripts/setup.sh registry)")
    port = _free_port()
    password = secrets.token_urlsafe(18)
    (tmp_path / "htpasswd").write_text(f"pusher:{_bcrypt(password)}\n")
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'storage'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        f"auth:\n  htpasswd:\n    realm: imagebuilder-tests\n    path: {tmp_path / 'htpasswd'}\n"
    )
    with (tmp_path / "registry.log").open("wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [str(REGISTRY), "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120  # generous: CI shares two cores
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 401:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, (tmp_path / "registry.log").read_text()
            assert time.monotonic() < deadline, "the registry did not start"
            time.sleep(0.2)
        yield Registry(f"127.0.0.1:{port}", "pusher", password)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def push_settings(built: Built, registry: Registry, password: str | None = None) -> Settings:
    return built.settings.model_copy(
        update={
            "registry_url": registry.host,
            "registry_username": registry.username,
            "registry_password": SecretStr(password or registry.password),
        }
    )


class TestPush:
    def test_push_then_pull_the_same_image(
        self, built: Built, registry: Registry, docker_engine: DockerEngine
    ) -> None:
        said: list[str] = []
        fields: dict[str, object] = {}
        phases: list[Phase] = []
        rejection = publish_image(
            push_settings(built, registry),
            built.engine,
            docker_engine,
            built.outcome.build.id,
            built.image_id,
            tag=built.tag,
            say=said.append,
            enter_phase=phases.append,
            fields=fields,
        )
        assert rejection is None, said
        assert phases == [Phase.EXPORTING]
        push = fields["push"]
        assert isinstance(push, dict)
        # The registry keeps the owner's path below its own: <registry>/<owner>/<tag>.
        owned = built.tag.removeprefix(f"{built.settings.image_namespace}/")
        reference = f"{registry.host}/{owned}"
        assert push["status"] == "succeeded"
        assert push["reference"] == reference
        assert str(push["digest"]).startswith("sha256:")
        assert push["duration_seconds"] > 0
        assert registry.password not in "\n".join(said) + json.dumps(push)
        assert docker_engine.find_image(reference) is None  # the push tag is not left behind

        manifest = httpx.head(
            f"http://{registry.host}/v2/{owned.rpartition(':')[0]}/manifests/latest",
            auth=(registry.username, registry.password),
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        assert manifest.status_code == 200
        assert manifest.headers["docker-content-digest"] == push["digest"]

        with session_scope(built.engine) as session:
            statement = session.scalar(
                select(BuildArtifact.content).where(
                    BuildArtifact.build_id == built.outcome.build.id,
                    BuildArtifact.kind == "provenance",
                )
            )
        assert statement is not None
        assert statement["subject"][1]["name"] == reference
        assert statement["subject"][1]["digest"] == {"sha256": str(push["digest"])[7:]}

        # Pulled back into a daemon that no longer has it: the very same image.
        docker_engine.remove_image(built.tag)
        client = docker.from_env()
        try:
            pulled = client.images.pull(
                reference.rpartition(":")[0],
                tag="latest",
                auth_config={"username": registry.username, "password": registry.password},
            )
            assert pulled.id == built.image_id
            docker_engine.tag(built.image_id, built.tag)
            docker_engine.remove_image(reference)
        finally:
            client.close()

    def test_a_wrong_password_fails_without_showing_it(
        self, built: Built, registry: Registry, docker_engine: DockerEngine
    ) -> None:
        wrong = "wrong-" + secrets.token_urlsafe(12)
        said: list[str] = []
        record = push_image(
            docker_engine,
            push_settings(built, registry, wrong),
            built.image_id,
            built.tag,
            said.append,
        )
        assert record["status"] == "failed"
        assert record["error"]
        assert wrong not in "\n".join(said) + json.dumps(record)
        assert docker_engine.find_image(record["reference"]) is None

    def test_a_failed_push_ends_the_build_as_the_services_fault(
        self, built: Built, docker_engine: DockerEngine
    ) -> None:
        unreachable = built.settings.model_copy(
            update={"registry_url": f"127.0.0.1:{_free_port()}"}
        )
        fields: dict[str, object] = {}
        rejection = publish_image(
            unreachable,
            built.engine,
            docker_engine,
            built.outcome.build.id,
            built.image_id,
            tag=built.tag,
            say=lambda _line: None,
            enter_phase=lambda _phase: None,
            fields=fields,
        )
        assert rejection is not None
        assert rejection.status is BuildStatus.ERROR
        assert rejection.failure.code == "push_failed"
