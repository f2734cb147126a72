"""The client is a distribution of its own: built from client/ and installed alone into a
throwaway virtualenv, it brings httpx, typer, rich and pydantic (and what they need), none of the
service's packages, and the `imagebuilder` command works there."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, require

pytestmark = pytest.mark.slow

SERVICE_ONLY = ("fastapi", "starlette", "celery", "sqlalchemy", "psycopg", "alembic", "docker")


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = shutil.which("uv") or str(ROOT / ".venv" / "bin" / "uv")
    require(Path(uv).exists(), "uv (pip install uv)")
    work = tmp_path_factory.mktemp("client-dist")
    # A copy, so building leaves nothing behind in the checkout.
    source = work / "client"
    shutil.copytree(ROOT / "client", source, ignore=shutil.ignore_patterns("build", "__pycache__"))
    venv = work / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", "3.11", str(venv)], check=True)
    installed = subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    require(installed.returncode == 0, f"the client's dependencies from PyPI: {installed.stderr}")
    return venv


def in_venv(venv: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run `argv` with only the virtualenv's bin on PATH, from inside it."""
    # Run from an empty folder: the checkout must not be importable by accident.
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        cwd=venv,
        env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(venv)},
        check=False,
    )


class TestClientDistribution:
    def test_the_command_works_without_the_service_packages(self, client_venv: Path) -> None:
        shown = in_venv(client_venv, str(client_venv / "bin" / "imagebuilder"), "--help")
        assert shown.returncode == 0, shown.stderr
        assert "submit" in shown.stdout
        assert "sbom" in shown.stdout
        assert "--install-completion" in shown.stdout
        python = str(client_venv / "bin" / "python")
        refused = in_venv(client_venv, python, "-c", "import fastapi")
        assert refused.returncode != 0
        assert "No module named 'fastapi'" in refused.stderr
        sdk = in_venv(
            client_venv,
            python,
            "-c",
            "import client.sdk, client.models; print(client.sdk.__file__)",
        )
        assert sdk.returncode == 0, sdk.stderr
        assert str(client_venv) in sdk.stdout

    def test_only_the_declared_dependencies_come_along(self, client_venv: Path) -> None:
        uv = shutil.which("uv") or str(ROOT / ".venv" / "bin" / "uv")
        listed = subprocess.run(
            [uv, "pip", "list", "--python", str(client_venv / "bin" / "python")],
            capture_output=True,
            text=True,
            check=True,
        )
        names = {line.split()[0].lower() for line in listed.stdout.splitlines()[2:]}
        assert {"imagebuilder-client", "httpx", "typer", "rich", "pydantic"} <= names
        assert not names & set(SERVICE_ONLY)
        assert "imagebuilder" not in names
