"""Shared fixtures: settings in a private data folder, databases, and the real services.

A test that needs Docker, Redis or PostgreSQL skips when the service is missing on a developer's
machine, but fails in CI (CI=true): there the suite must run the real thing.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from core.db import make_engine
from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PROJECTS = Path(__file__).resolve().parent / "projects"
IN_CI = os.environ.get("CI", "").lower() == "true"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# The admin token every test service accepts (IMAGEBUILDER_BOOTSTRAP_TOKEN).
ADMIN_TOKEN = "ib_testadmin_" + "s3cr3t" * 6


def require(condition: bool, what: str) -> None:
    """Skip locally, fail in CI, when a real service the test needs is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is not available")
    pytest.skip(f"{what} is not available")


def zip_project(name: str, *, prefix: str = "") -> bytes:
    """A fixture project from tests/projects as zip bytes (optionally under a folder `prefix`)."""
    buffer = io.BytesIO()
    top = PROJECTS / name
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(top.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, prefix + path.relative_to(top).as_posix())
    return buffer.getvalue()


def migrate(url: str) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    engine = make_engine(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    engine.dispose()


def test_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings for a test: a private data folder and the local base images."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "builder_image_template": os.environ.get(
            "IMAGEBUILDER_BUILDER_IMAGE_TEMPLATE", "imagebuilder/python-builder:{version}"
        ),
        "runtime_image_template": os.environ.get(
            "IMAGEBUILDER_RUNTIME_IMAGE_TEMPLATE", "imagebuilder/python:{version}"
        ),
        "pull_base_images": False,
        "ca_bundle": CA_BUNDLE if CA_BUNDLE.is_file() else None,
        "docker_cli": os.environ.get("IMAGEBUILDER_DOCKER_CLI", "/usr/bin/docker"),
        "redis_url": os.environ.get("IMAGEBUILDER_TEST_REDIS_URL", "redis://127.0.0.1:6379/9"),
        "bootstrap_token": ADMIN_TOKEN,
        # Tests submit the same fixture again and again to watch it build; the tests of reuse
        # turn it on (tests/integration/test_reuse.py).
        "reuse_results": False,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


test_settings.__test__ = False  # type: ignore[attr-defined]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return test_settings(tmp_path / "data")


@pytest.fixture
def sqlite_engine(settings: Settings) -> Iterator[Engine]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings.sqlalchemy_url)
    engine = make_engine(settings.sqlalchemy_url)
    yield engine
    engine.dispose()
