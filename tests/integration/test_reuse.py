"""Results reused on the real Docker daemon: an identical submission takes the earlier result,
two identical submissions at once build once, `no_cache` builds afresh, and each build says
what changed since its project's previous one."""

from __future__ import annotations

import io
import re
import threading
import zipfile
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select

from adapters.docker import DockerEngine
from core.db import session_scope
from core.models import BuildArtifact, ReuseClaim
from core.settings import Settings
from core.status import BuildStatus
from tests.conftest import PROJECTS, zip_project
from tests.integration.builder import Builder, builder_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PROJECT = "passing"
BUILT = "docker build"
REUSED = "reused the result of"


@pytest.fixture
def builder(
    settings: Settings, sqlite_engine: Engine, docker_engine: DockerEngine
) -> Iterator[Builder]:
    reusing = settings.model_copy(update={"reuse_results": True})
    yield from builder_for(reusing, sqlite_engine, docker_engine)


def rezipped(project: str, *, append: tuple[str, str] | None = None) -> bytes:
    """The fixture zipped again, its entries in reverse order (another zip of the same files),
    with a line appended to one file when `append` (file, line) is given."""
    top = PROJECTS / project
    files = sorted(
        (p for p in top.rglob("*") if p.is_file() and "__pycache__" not in p.parts),
        reverse=True,
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for path in files:
            name = path.relative_to(top).as_posix()
            text = path.read_bytes()
            if append is not None and name == append[0]:
                text += append[1].encode()
            archive.writestr(name, text)
    return buffer.getvalue()


def ran_uncached(log: str, step: str) -> bool:
    """Whether BuildKit ran `step` (a step name as it prints it) rather than taking it cached."""
    numbers = re.findall(rf"^(#\d+) {re.escape(step)}", log, flags=re.MULTILINE)
    assert numbers, f"{step} not in the log"
    return not any(re.search(rf"^{n} CACHED$", log, flags=re.MULTILINE) for n in numbers)


def sbom_of(engine: Engine, build_id: str) -> dict[str, object] | None:
    with session_scope(engine) as session:
        return session.scalar(
            select(BuildArtifact.content).where(
                BuildArtifact.build_id == build_id, BuildArtifact.kind == "sbom"
            )
        )


class TestReuse:
    def test_off_every_submission_builds(
        self, settings: Settings, sqlite_engine: Engine, docker_engine: DockerEngine
    ) -> None:
        for helper in builder_for(settings, sqlite_engine, docker_engine):
            assert not settings.reuse_results
            first = helper.run(helper.submit(PROJECT))
            again = helper.run(helper.submit(PROJECT))
            assert again.build.status is BuildStatus.SUCCEEDED, again.log
            assert again.build.reused_from is None
            assert BUILT in again.log
            assert first.build.reuse_key is None

    def test_the_same_inputs_take_the_earlier_result_and_changes_are_reported(
        self, builder: Builder
    ) -> None:
        first = builder.run(builder.submit(PROJECT, tag="reuse/app:1"))
        assert first.build.status is BuildStatus.SUCCEEDED, first.log
        assert first.build.reused_from is None
        assert first.build.reuse_key is not None
        assert first.build.changes is None  # the project's first build
        assert first.build.host == builder.docker.host_name()
        assert BUILT in first.log

        # The same files zipped another way, another tag of the same project.
        again_id = builder.submit_zip(
            rezipped(PROJECT), "again.zip", owner="tester", tag="reuse/app:2"
        )
        again = builder.run(again_id)
        build = again.build
        assert build.status is BuildStatus.SUCCEEDED, again.log
        assert build.reused_from == first.build.id
        assert f"{REUSED} {first.build.id}" in again.log
        assert BUILT not in again.log  # nothing was rebuilt
        assert build.image_id == first.build.image_id
        assert build.tests == first.build.tests
        assert build.vulnerabilities == first.build.vulnerabilities
        # The new tag names the same image; the first build's tag is untouched.
        assert builder.docker.image_info(build.image_tag or "")["Id"] == first.build.image_id
        assert builder.docker.image_info(first.build.image_tag or "")["Id"] == build.image_id
        assert sbom_of(builder.engine, again_id) == sbom_of(builder.engine, first.build.id)
        assert build.changes is not None
        assert build.changes["previous"] == first.build.id
        assert build.changes["size_bytes_delta"] == 0
        assert build.changes["packages"] == {"added": [], "removed": [], "changed": []}

        # A source change builds; its changes are against the newest build of the project.
        changed = builder.run(
            builder.submit_zip(
                rezipped(PROJECT, append=("app.py", "# a one-line change\n")),
                "changed.zip",
                owner="tester",
                tag="reuse/app:3",
            )
        )
        assert changed.build.reused_from is None
        assert BUILT in changed.log
        assert changed.build.changes is not None
        assert changed.build.changes["previous"] == again_id

        # Another owner never takes this owner's result.
        other = builder.run(builder.submit(PROJECT, owner="someone-else", tag="reuse/app:1"))
        assert other.build.status is BuildStatus.SUCCEEDED, other.log
        assert other.build.reused_from is None
        assert BUILT in other.log
        assert other.build.changes is None  # its owner's first build of the project

        with session_scope(builder.engine) as session:
            assert session.scalars(select(ReuseClaim)).all() == []  # released as builds ended

    def test_no_cache_builds_afresh(self, builder: Builder) -> None:
        first = builder.run(builder.submit(PROJECT))
        assert first.build.status is BuildStatus.SUCCEEDED, first.log

        fresh = builder.run(builder.submit(PROJECT, no_cache=True))

        assert fresh.build.status is BuildStatus.SUCCEEDED, fresh.log
        assert fresh.build.reused_from is None
        assert "reuse: off (no_cache=true)" in fresh.log
        assert BUILT in fresh.log
        # Without the layer cache the runtime image's steps ran again (the test stage, built
        # next, reuses what that build just made).
        runtime_build = fresh.log.split("docker build --target test")[0]
        assert ran_uncached(runtime_build, "[tools 2/2] RUN")

    def test_two_identical_submissions_at_once_build_once(self, builder: Builder) -> None:
        data = zip_project(PROJECT)
        ids = [builder.submit_zip(data, "p.zip", owner="tester") for _ in range(2)]
        failures: list[BaseException] = []

        def run(build_id: str) -> None:
            try:
                builder.run(build_id)
            except BaseException as exc:  # reported by the assertion below
                failures.append(exc)

        threads = [threading.Thread(target=run, args=(build_id,)) for build_id in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=900)
        assert not failures, failures

        outcomes = [builder.outcome(build_id) for build_id in ids]
        assert all(o.build.status is BuildStatus.SUCCEEDED for o in outcomes), [
            o.log for o in outcomes
        ]
        built = [o for o in outcomes if o.build.reused_from is None]
        reused = [o for o in outcomes if o.build.reused_from is not None]
        assert len(built) == 1, [o.log for o in outcomes]
        assert len(reused) == 1, [o.log for o in outcomes]
        assert reused[0].build.reused_from == built[0].build.id
        assert BUILT not in reused[0].log
        assert reused[0].build.image_id == built[0].build.image_id
