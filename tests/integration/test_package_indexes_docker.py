"""Private package indexes end to end: a real authenticated index server, a package that exists
nowhere else, builds through the real pipeline, and a search for the password everywhere a build
leaves something (image history, every layer, the log, the plan, the Dockerfile shown, the
database, the API's resources).

The index is pypiserver with an htpasswd file, in a container started here on the default bridge
(BuildKit's RUN steps reach it at its container IP, over plain http: the test allows that with
`index_allow_http`). Its image is built here from the local base image, installing pypiserver and
passlib from PyPI the way builds install packages (the CA bundle as a BuildKit secret).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import secrets
import subprocess
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from adapters.docker import DockerEngine
from app.main import create_app
from core.db import make_engine
from core.settings import Settings
from core.status import BuildStatus
from tests.conftest import ADMIN_TOKEN, CA_BUNDLE, migrate, require, test_settings
from tests.integration.builder import Builder, Outcome

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CLI = "/usr/bin/docker"
USERNAME = "builder"
SERVER_DOCKERFILE = """\
FROM {base}
RUN --mount=type=secret,id=ca_bundle python3 -m venv /opt/pypiserver \\
 && if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi \\
 && /opt/pypiserver/bin/pip install --quiet --disable-pip-version-check \\
    "pypiserver>=2,<3" "passlib>=1.7,<2"
EXPOSE 8080
ENTRYPOINT ["/opt/pypiserver/bin/pypi-server", "run", "--port", "8080"]
"""


@dataclass
class IndexServer:
    url: str  # http://<container ip>:8080/simple/ (no credentials)
    host: str
    password: str
    package: str  # the distribution only this server has
    module: str
    marker: str  # what the module's VALUE holds


def _docker(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        [CLI, *args], capture_output=True, text=True, check=True, **kwargs
    )


def _wheel(folder: Path, package: str, module: str, marker: str) -> Path:
    """A pure-Python wheel of `package` 1.0 whose module holds `marker` (no build backend)."""
    dist = f"{package.replace('-', '_')}-1.0"
    files = {
        f"{module}/__init__.py": f"VALUE = {marker!r}\n",
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n",
        f"{dist}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: imagebuilder-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
    }
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for name, content in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(content.encode()).digest()).rstrip(b"=")
        writer.writerow([name, f"sha256={digest.decode()}", len(content.encode())])
    writer.writerow([f"{dist}.dist-info/RECORD", "", ""])
    files[f"{dist}.dist-info/RECORD"] = record.getvalue()
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return path


@pytest.fixture(scope="module")
def index_server(
    tmp_path_factory: pytest.TempPathFactory, docker_engine: DockerEngine
) -> Iterator[IndexServer]:
    base = "imagebuilder/python-builder:3.11"
    require(docker_engine.image_exists(base), f"base image {base} (make test builds it)")
    folder = tmp_path_factory.mktemp("pypiserver")
    suffix = secrets.token_hex(6)
    image = f"imagebuilder-tests/pypiserver:{suffix}"
    (folder / "Dockerfile").write_text(SERVER_DOCKERFILE.format(base=base))
    secret = ["--secret", f"id=ca_bundle,src={CA_BUNDLE}"] if CA_BUNDLE.is_file() else []
    subprocess.run(
        [CLI, "build", "--quiet", *secret, "-t", image, str(folder)],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ | {"DOCKER_BUILDKIT": "1"},
    )
    package, module = f"ib-private-{suffix}", f"ib_private_{suffix}"
    marker = f"served-by-the-private-index-{suffix}"
    password = f"pw-{secrets.token_urlsafe(24)}"
    served = folder / "srv"
    (served / "packages").mkdir(parents=True)
    _wheel(served / "packages", package, module, marker)
    sha1 = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
    (served / "htpasswd").write_text(f"{USERNAME}:{{SHA}}{sha1}\n")
    served.chmod(0o755)
    container = ""
    try:
        container = _docker(
            "run",
            "--detach",
            "--label",
            "imagebuilder-tests=pypiserver",
            "--volume",
            f"{served}:/srv:ro",
            image,
            "--passwords",
            "/srv/htpasswd",
            "--authenticate",
            "download,list,update",
            "/srv/packages",
        ).stdout.strip()
        address = _docker(
            "inspect", "--format", "{{.NetworkSettings.IPAddress}}", container
        ).stdout.strip()
        url = f"http://{address}:8080/simple/"
        deadline = time.monotonic() + 120  # generous: CI shares two cores
        while True:
            try:
                if httpx.get(url, timeout=2).status_code == 401:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, _docker("logs", container).stderr
            time.sleep(0.3)
        # The server really wants the password, and has the package with it.
        page = httpx.get(f"{url}{package}/", auth=(USERNAME, password), timeout=10)
        assert page.status_code == 200
        assert package.replace("-", "_") in page.text
        yield IndexServer(url, address, password, package, module, marker)
    finally:
        if container:
            subprocess.run([CLI, "rm", "--force", container], capture_output=True, check=False)
        subprocess.run([CLI, "rmi", "--force", image], capture_output=True, check=False)


@pytest.fixture
def deployment(tmp_path: Path, docker_engine: DockerEngine) -> Iterator[tuple[Settings, Engine]]:
    settings = test_settings(tmp_path / "data", index_allow_http=True)
    for image in (settings.builder_image("3.11"), settings.runtime_image("3.11")):
        require(docker_engine.image_exists(image), f"base image {image} (make test builds it)")
    settings.data_dir.mkdir(parents=True)
    migrate(settings.sqlalchemy_url)
    engine = make_engine(settings.sqlalchemy_url)
    yield settings, engine
    engine.dispose()


@pytest.fixture
def builder(deployment: tuple[Settings, Engine], docker_engine: DockerEngine) -> Iterator[Builder]:
    settings, engine = deployment
    helper = Builder(settings, engine, docker_engine)
    yield helper
    helper.cleanup()


def _project(server: IndexServer, requirements: str) -> dict[str, str]:
    """A project that needs the private package at run time and in its test."""
    return {
        "requirements.txt": requirements,
        "app.py": f"import {server.module}\n\nprint({server.module}.VALUE)\n",
        "tests/test_private.py": (
            f"import {server.module}\n\n\n"
            f"def test_the_private_package_is_installed():\n"
            f"    assert {server.module}.VALUE == {server.marker!r}\n"
        ),
        "requirements-test.txt": "pytest\n",
    }


def _client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings))


def _token(client: TestClient, owner: str) -> dict[str, str]:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    answer = client.post("/api/v1/tokens", json={"owner": owner}, headers=admin)
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def _layers_contain(image: str, needle: bytes) -> list[str]:
    """The members of `docker save` (every layer tar unpacked) whose content holds `needle`."""
    hits: list[str] = []
    with tempfile.TemporaryFile() as saved:
        subprocess.run([CLI, "save", image], stdout=saved, check=True)
        saved.seek(0)
        with tarfile.open(fileobj=saved) as outer:
            for member in outer:
                data = outer.extractfile(member)
                if data is None:
                    continue
                content = data.read()
                if needle in content:
                    hits.append(member.name)
                if member.name.endswith(".tar") or member.name.startswith("blobs/"):
                    try:
                        with tarfile.open(fileobj=io.BytesIO(content)) as layer:
                            for entry in layer:
                                names = f"{entry.name}\0{entry.linkname}".encode()
                                inner = layer.extractfile(entry) if entry.isfile() else None
                                if needle in names or (inner and needle in inner.read()):
                                    hits.append(f"{member.name}:{entry.name}")
                    except tarfile.TarError:
                        pass  # a config or manifest blob, already searched whole
    return hits


def _everything_stored(engine: Engine) -> str:
    """Every row of every table, as text."""
    with engine.connect() as connection:
        tables = [
            row[0]
            for row in connection.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'table'")
            )
        ]
        return "\n".join(
            repr(tuple(row))
            for table in tables
            for row in connection.execute(text(f'SELECT * FROM "{table}"'))
        )


def _assert_nowhere(
    password: str, outcome: Outcome, engine: Engine, client: TestClient, auth: dict[str, str]
) -> None:
    build = outcome.build
    assert build.image_tag is not None
    assert password not in outcome.log
    assert password not in json.dumps(build.plan)
    assert password not in (build.dockerfile or "")
    assert password not in _everything_stored(engine)
    history = _docker("history", "--no-trunc", build.image_tag).stdout
    assert "package_index_env" not in history  # install steps are not in the runtime image
    assert password not in history
    inspected = _docker("image", "inspect", build.image_tag).stdout
    assert password not in inspected
    assert _layers_contain(build.image_tag, password.encode()) == []
    for path in (
        f"/api/v1/builds/{build.id}",
        f"/api/v1/builds/{build.id}/logs",
        f"/api/v1/builds/{build.id}/dockerfile",
        "/api/v1/owner/indexes",
    ):
        answer = client.get(path, headers=auth)
        assert answer.status_code == 200, (path, answer.text)
        assert password not in answer.text, path
    leftovers = [
        path
        for path in Path(tempfile.gettempdir()).glob("imagebuilder-secrets-*/*")
        if password in path.read_text(errors="replace")
    ]
    assert leftovers == []


class TestPrivateIndex:
    def test_a_registered_index_serves_the_build_and_its_password_is_nowhere(
        self,
        index_server: IndexServer,
        deployment: tuple[Settings, Engine],
        builder: Builder,
    ) -> None:
        settings, engine = deployment
        with _client(settings) as client:
            auth = _token(client, "acme")
            answer = client.put(
                "/api/v1/owner/indexes/private",
                json={
                    "url": index_server.url,
                    "username": USERNAME,
                    "password": index_server.password,
                },
                headers=auth,
            )
            assert answer.status_code == 200, answer.text
            assert index_server.password not in answer.text
            outcome = builder.run(
                builder.submit_files(
                    _project(index_server, f"{index_server.package}==1.0\n"), owner="acme"
                )
            )
            assert outcome.build.status is BuildStatus.SUCCEEDED, outcome.log
            # Installed from the private index, and its test ran against it.
            assert outcome.build.tests is not None
            assert outcome.build.tests["passed"] == 1
            assert f"package indexes: extra {index_server.url}" in outcome.log
            _assert_nowhere(index_server.password, outcome, engine, client, auth)

    def test_a_default_index_replaces_pypi(
        self,
        index_server: IndexServer,
        deployment: tuple[Settings, Engine],
        builder: Builder,
    ) -> None:
        """The only index is the private one (pypiserver sends what it lacks on to PyPI, as a
        company mirror would): uv, and pip installing uv itself, use it and its netrc entry."""
        settings, engine = deployment
        with _client(settings) as client:
            auth = _token(client, "mirrored")
            body = {
                "url": index_server.url,
                "username": USERNAME,
                "password": index_server.password,
                "default": True,
            }
            answer = client.put("/api/v1/owner/indexes/mirror", json=body, headers=auth)
            assert answer.status_code == 200, answer.text
            outcome = builder.run(
                builder.submit_files(
                    _project(index_server, f"{index_server.package}==1.0\n"), owner="mirrored"
                )
            )
            assert outcome.build.status is BuildStatus.SUCCEEDED, outcome.log
            assert f"package indexes: default {index_server.url};" in outcome.log
            _assert_nowhere(index_server.password, outcome, engine, client, auth)

    def test_without_the_index_the_dependency_is_not_found(
        self, index_server: IndexServer, builder: Builder
    ) -> None:
        outcome = builder.run(
            builder.submit_files(
                _project(index_server, f"{index_server.package}==1.0\n"), owner="nobody"
            )
        )
        assert outcome.build.status is BuildStatus.FAILED, outcome.log
        build = outcome.build
        assert build.error_code == "dependency_install_failed", build.error_message
        assert index_server.package in (build.error_message or ""), build.error_message

    def test_credentials_written_in_the_project_are_used_but_shown_nowhere(
        self,
        index_server: IndexServer,
        deployment: tuple[Settings, Engine],
        builder: Builder,
    ) -> None:
        settings, engine = deployment
        host_part = index_server.url.removeprefix("http://")
        requirements = (
            f"--extra-index-url http://{USERNAME}:{index_server.password}@{host_part}\n"
            f"{index_server.package}==1.0\n"
        )
        with _client(settings) as client:
            auth = _token(client, "careless")
            outcome = builder.run(
                builder.submit_files(_project(index_server, requirements), owner="careless")
            )
            assert outcome.build.status is BuildStatus.SUCCEEDED, outcome.log
            warnings = (outcome.build.plan or {}).get("warnings", [])
            assert any("imagebuilder indexes put" in warning for warning in warnings), warnings
            assert f"requirements.txt ({index_server.host})" in warnings[0]
            assert "imagebuilder indexes put" in outcome.log
            # The requirement line stays, without its userinfo.
            assert f"--extra-index-url {index_server.url}" in (outcome.build.plan or {}).get(
                "requirements", []
            )
            _assert_nowhere(index_server.password, outcome, engine, client, auth)
