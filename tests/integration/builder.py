"""Submit fixture projects and run them through the real pipeline (shared by integration tests)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from adapters.docker import DockerEngine
from core.access.caller import Caller
from core.builds.logs import iter_all_lines
from core.builds.options import BuildOptions
from core.builds.service import create_build
from core.db import session_scope
from core.models import Build
from core.settings import Settings
from core.sources.intake import accept_source, new_upload_path
from core.sources.receive import receive_upload
from core.sources.store import source_store
from tests.conftest import require, zip_project
from worker.runner import docker_factory_for, execute_build


@dataclass
class Outcome:
    build: Build
    log: str


class Builder:
    """Submits fixture projects and runs them through the pipeline, cleaning up after itself."""

    def __init__(self, settings: Settings, engine: Engine, docker_engine: DockerEngine) -> None:
        self.settings = settings
        self.engine = engine
        self.docker = docker_engine
        self.tags: list[str] = []
        self.requeued: list[str] = []

    def submit(self, project: str, *, owner: str = "tester", **options: Any) -> str:
        return self.submit_zip(zip_project(project), f"{project}.zip", owner=owner, **options)

    def submit_files(self, files: dict[str, str], *, owner: str, **options: Any) -> str:
        """A project made of `files` (path -> text), submitted as `owner`."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path, text in files.items():
                archive.writestr(path, text)
        return self.submit_zip(buffer.getvalue(), "project.zip", owner=owner, **options)

    def submit_zip(self, data: bytes, filename: str, *, owner: str, **options: Any) -> str:
        uploaded = receive_upload(
            [data], new_upload_path(self.settings), self.settings.max_upload_bytes
        )
        source = accept_source(
            uploaded, filename, self.settings, source_store(self.settings, self.engine)
        )
        with session_scope(self.engine) as session:
            build = create_build(
                session,
                caller=Caller(owner),
                source=source,
                options=BuildOptions.model_validate(options),
                namespace=self.settings.image_namespace,
            )
            self.tags.append(build.image_tag or "")
            return build.id

    def run(self, build_id: str) -> Outcome:
        execute_build(
            build_id,
            self.settings,
            self.engine,
            docker_factory_for(self.settings),
            lambda requeued_id, _delay: self.requeued.append(requeued_id),
        )
        return self.outcome(build_id)

    def outcome(self, build_id: str) -> Outcome:
        with session_scope(self.engine) as session:
            build = session.get_one(Build, build_id)
        log = "\n".join(line.text for line in iter_all_lines(self.engine, build_id))
        return Outcome(build, log)

    def containers_of(self, build_id: str) -> int:
        return self.docker.remove_containers({"imagebuilder.build-id": build_id})

    def cleanup(self) -> None:
        for tag in self.tags:
            self.docker.remove_image(tag)
        self.tags.clear()


def builder_for(
    settings: Settings, sqlite_engine: Engine, docker_engine: DockerEngine
) -> Iterator[Builder]:
    """The body of a `builder` fixture: skips without the base images, cleans up after."""
    for image in (settings.builder_image("3.11"), settings.runtime_image("3.11")):
        require(docker_engine.image_exists(image), f"base image {image} (make test builds it)")
    helper = Builder(settings, sqlite_engine, docker_engine)
    yield helper
    helper.cleanup()
