"""Real services for integration tests: SQLite and PostgreSQL, Redis, the Docker daemon."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import Engine, create_engine, text

from adapters.docker import DockerEngine, DockerUnavailable
from core.db import make_engine
from core.settings import Settings
from tests.conftest import migrate, require

POSTGRES_URL = os.environ.get("IMAGEBUILDER_TEST_POSTGRES_URL", "")


@pytest.fixture(scope="session")
def postgres_server() -> str:
    reachable = False
    if POSTGRES_URL:
        try:
            probe = create_engine(POSTGRES_URL)
            with probe.connect() as connection:
                connection.execute(text("SELECT 1"))
            probe.dispose()
            reachable = True
        except Exception:
            reachable = False
    require(reachable, "PostgreSQL (IMAGEBUILDER_TEST_POSTGRES_URL)")
    return POSTGRES_URL


@pytest.fixture
def postgres_engine(postgres_server: str) -> Iterator[Engine]:
    """A private, migrated schema in the test PostgreSQL database, dropped afterwards."""
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(postgres_server)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{postgres_server}?options=-csearch_path%3D{schema}"
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """Each database test runs on SQLite (the embedded default) and on PostgreSQL."""
    fixture = "sqlite_engine" if request.param == "sqlite" else "postgres_engine"
    result: Engine = request.getfixturevalue(fixture)
    return result


@pytest.fixture
def redis_url(settings: Settings) -> Iterator[str]:
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2)
    try:
        client.ping()
        alive = True
    except redis.RedisError:
        alive = False
    require(alive, f"Redis at {settings.redis_url}")
    client.flushdb()
    yield settings.redis_url
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    try:
        engine = DockerEngine(os.environ.get("IMAGEBUILDER_DOCKER_CLI", "/usr/bin/docker"))
        engine.ping()
    except DockerUnavailable:
        require(False, "the Docker daemon")
        raise
    yield engine
    engine.close()
