"""Sources kept in the database (no disk shared between the API and build hosts), on SQLite
and PostgreSQL, and a real build whose source never touched the data folder."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from adapters.docker import DockerEngine
from core.settings import Settings
from core.sources.store import CHUNK_BYTES, DatabaseStore
from core.status import BuildStatus
from tests.integration.builder import Builder, builder_for


def written(path: Path, size: int) -> tuple[Path, str]:
    data = os.urandom(size)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


class TestDatabaseStore:
    def test_a_source_of_many_chunks_comes_back_byte_for_byte(
        self, engine: Engine, tmp_path: Path
    ) -> None:
        store = DatabaseStore(engine)
        path, sha = written(tmp_path / "upload.zip", 3 * CHUNK_BYTES + 12345)
        expected = path.read_bytes()

        store.put(sha, path)
        store.put(sha, path)  # the same content again: kept once

        assert store.exists(sha)
        copy = store.local_copy(sha, tmp_path / "workspace")
        assert copy is not None
        assert copy.read_bytes() == expected
        assert copy.parent == tmp_path / "workspace"

    def test_a_missing_or_deleted_source_is_none(self, engine: Engine, tmp_path: Path) -> None:
        store = DatabaseStore(engine)
        path, sha = written(tmp_path / "upload.zip", 100)
        store.put(sha, path)

        store.delete(sha)

        assert not store.exists(sha)
        assert store.local_copy(sha, tmp_path / "workspace") is None
        assert store.local_copy("0" * 64, tmp_path / "workspace") is None


@pytest.fixture
def builder(
    settings: Settings, sqlite_engine: Engine, docker_engine: DockerEngine
) -> Iterator[Builder]:
    in_database = settings.model_copy(update={"source_store": "database"})
    yield from builder_for(in_database, sqlite_engine, docker_engine)


@pytest.mark.docker
@pytest.mark.slow
def test_a_build_reads_its_source_from_the_database(builder: Builder) -> None:
    outcome = builder.run(builder.submit("passing", run_tests=False))

    assert outcome.build.status is BuildStatus.SUCCEEDED, outcome.log
    assert DatabaseStore(builder.engine).exists(outcome.build.source_sha256)
    # Nothing went through the data folder's sources: a worker elsewhere needs no shared disk.
    assert not builder.settings.sources_dir.exists()
