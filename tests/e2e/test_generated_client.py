"""The OpenAPI document builds a working client with a standard generator: openapi-python-client,
installed in a throwaway virtualenv, generates a package from the running service's
/openapi.json, and that package (tests/e2e/generated/drive_client.py) submits, cancels, reads,
lists, and gets problem+json errors parsed as `Problem`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import require, zip_project
from tests.e2e.conftest import Service

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.redis, pytest.mark.slow]

# Pinned: the generated code, and so this test, should change only when we decide to.
GENERATOR = "openapi-python-client==0.29.1"
DRIVER = Path(__file__).resolve().parent / "generated" / "drive_client.py"


@pytest.fixture(scope="module")
def generator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = shutil.which("uv") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "uv")
    require(Path(uv).exists(), "uv (pip install uv), to install the client generator")
    venv = tmp_path_factory.mktemp("generator") / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", "3.11", str(venv)], check=True)
    installed = subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), GENERATOR],
        capture_output=True,
        text=True,
        check=False,
    )
    require(installed.returncode == 0, f"{GENERATOR} from PyPI: {installed.stderr[-500:]}")
    return venv


def test_a_generated_client_drives_the_service(
    service: Service, generator: Path, tmp_path: Path
) -> None:
    document = tmp_path / "openapi.json"
    document.write_bytes(httpx.get(f"{service.url}/openapi.json", timeout=10).content)
    generated = subprocess.run(
        [
            str(generator / "bin" / "openapi-python-client"),
            "generate",
            "--path",
            str(document),
            "--meta",
            "none",
            "--output-path",
            str(tmp_path / "ibc"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    modules = {path.stem for path in (tmp_path / "ibc" / "api").rglob("*.py")}
    assert {"builds_submit", "builds_sbom", "builds_provenance", "tokens_create"} <= modules

    archive = tmp_path / "passing.zip"
    archive.write_bytes(zip_project("passing"))
    driven = subprocess.run(
        [str(generator / "bin" / "python"), str(DRIVER), service.url, service.token, str(archive)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)},
        timeout=600,
        check=False,
    )
    assert driven.returncode == 0, driven.stderr + service.logs()
    result = json.loads(driven.stdout)
    assert result["submitted"]["status"] == 202
    assert result["submitted"]["tag"] == "generated:1"
    assert result["cancel"] in (202, 409)
    assert result["final"] in ("cancelled", "succeeded")
    assert result["submitted"]["id"] in result["listed"]
    assert result["missing"] == {"status": 404, "code": "build_not_found"}
    assert result["refused"] == {"status": 401, "code": "unauthenticated"}
    assert result["tokens"] >= 1
