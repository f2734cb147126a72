"""The build pipeline on the real Docker daemon: fixture projects from upload to terminal state."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select

from adapters.docker import DockerEngine
from core.builds.service import request_cancel
from core.db import session_scope
from core.models import Build, BuildArtifact
from core.settings import Settings
from core.status import BuildStatus
from core.supply_chain.advisories import load_osv, replace_advisories
from tests.conftest import ROOT, require
from tests.integration.builder import Builder, builder_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def builder(
    settings: Settings, sqlite_engine: Engine, docker_engine: DockerEngine
) -> Iterator[Builder]:
    yield from builder_for(settings, sqlite_engine, docker_engine)


class TestSuccessfulBuild:
    def test_builds_tests_and_tags_a_requirements_project(self, builder: Builder) -> None:
        build_id = builder.submit("passing", tag="imagebuilder-test/passing:1")
        outcome = builder.run(build_id)
        build = outcome.build
        assert build.status is BuildStatus.SUCCEEDED, outcome.log
        assert build.error_code is None
        assert build.tests == {
            "command": "python -m pytest",
            "runner": "pytest",
            "exit_code": 0,
            "passed": 4,
            "failed": 0,
            "errors": 0,
            "skipped": 1,
        }
        assert (
            build.image_tag
            == f"{builder.settings.image_namespace}/tester/imagebuilder-test/passing:1"
        )
        info = builder.docker.image_info(build.image_tag)
        assert info["Id"] == build.image_id
        assert build.image_size_bytes == info["Size"]
        # The runtime image runs as the non-root user and carries no test dependencies.
        assert info["Config"]["User"] == "10001:10001"
        assert "4 passed, 1 skipped" in outcome.log
        assert "[deps " in outcome.log  # BuildKit output was streamed into the log
        assert build.dockerfile is not None
        assert "AS runtime" in build.dockerfile
        assert build.plan is not None
        assert build.plan["test_command"] == "python -m pytest"
        assert builder.containers_of(build_id) == 0
        assert not (builder.settings.workspaces_dir / build_id).exists()

    def test_uses_the_projects_own_dockerfile(self, builder: Builder) -> None:
        build_id = builder.submit(
            "own_dockerfile",
            build_args={"BASE": builder.settings.runtime_image("3.11")},
            test_command="python3 -m unittest discover -s tests -v",
        )
        outcome = builder.run(build_id)
        assert outcome.build.status is BuildStatus.SUCCEEDED, outcome.log
        assert outcome.build.dockerfile is not None
        assert outcome.build.dockerfile.startswith("# A project that brings its own Dockerfile")
        assert "test_message" in outcome.log
        assert "OK" in outcome.log
        assert outcome.build.tests is not None
        assert outcome.build.tests["exit_code"] == 0


class TestProjectFaults:
    def test_failing_test_is_tests_failed_with_counts(self, builder: Builder) -> None:
        outcome = builder.run(builder.submit("failing_test"))
        build = outcome.build
        assert build.status is BuildStatus.FAILED, outcome.log
        assert build.error_code == "tests_failed"
        assert build.error_message == "Tests failed: 1 failed, 1 passed"
        assert build.tests is not None
        assert (build.tests["passed"], build.tests["failed"]) == (1, 1)
        assert build.image_id is None
        assert not builder.docker.image_exists(build.image_tag or "")

    def test_uninstallable_requirement_is_dependency_install_failed(self, builder: Builder) -> None:
        outcome = builder.run(builder.submit("bad_dependency"))
        assert outcome.build.status is BuildStatus.FAILED, outcome.log
        assert outcome.build.error_code == "dependency_install_failed"
        assert "imagebuilder-no-such-package-for-tests" in (outcome.build.error_message or "")
        assert outcome.build.tests is None

    def test_syntax_error_fails_the_tests_with_an_error(self, builder: Builder) -> None:
        outcome = builder.run(builder.submit("syntax_error"))
        assert outcome.build.status is BuildStatus.FAILED, outcome.log
        assert outcome.build.error_code == "tests_failed"
        assert outcome.build.tests is not None
        assert outcome.build.tests["errors"] == 1
        assert "SyntaxError" in outcome.log


class TestStopping:
    def test_cancel_stops_running_tests_within_seconds(self, builder: Builder) -> None:
        build_id = builder.submit("slow_tests")
        runner = threading.Thread(target=builder.run, args=(build_id,))
        runner.start()
        _wait_for(lambda: "tests: python -m pytest" in builder.outcome(build_id).log, 300)
        asked = time.monotonic()
        with session_scope(builder.engine) as session:
            request_cancel(session, session.get_one(Build, build_id))
        runner.join(timeout=60)
        assert not runner.is_alive()
        assert time.monotonic() - asked < 20
        outcome = builder.outcome(build_id)
        assert outcome.build.status is BuildStatus.CANCELLED, outcome.log
        assert builder.containers_of(build_id) == 0

    def test_test_deadline_is_timed_out(
        self, settings: Settings, sqlite_engine: Engine, docker_engine: DockerEngine
    ) -> None:
        quick = settings.model_copy(update={"test_timeout_seconds": 3})
        helper = Builder(quick, sqlite_engine, docker_engine)
        try:
            build_id = helper.submit("slow_tests")
            outcome = helper.run(build_id)
            assert outcome.build.status is BuildStatus.TIMED_OUT, outcome.log
            assert outcome.build.error_code == "timed_out"
            assert helper.containers_of(build_id) == 0
        finally:
            helper.cleanup()


class TestDuplicateDelivery:
    def test_second_delivery_does_nothing(self, builder: Builder) -> None:
        build_id = builder.submit("passing", run_tests=False)
        first = builder.run(build_id)
        lines = first.build.log_lines
        second = builder.run(build_id)
        assert first.build.status is BuildStatus.SUCCEEDED
        assert second.build.status is BuildStatus.SUCCEEDED
        assert second.build.attempts == 1
        assert second.build.log_lines == lines


def _wait_for(condition: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError("condition not reached in time")


class TestSupplyChainInThePipeline:
    """The scanning phase of a real build: findings, the policy, SBOM and provenance."""

    def import_advisories(self, engine: Engine) -> None:
        with session_scope(engine) as session:
            replace_advisories(session, load_osv(ROOT / "tests/advisories"), source="tests")

    def test_a_known_advisory_fails_the_build_under_the_policy(
        self, settings: Settings, sqlite_engine: Engine, docker_engine: DockerEngine
    ) -> None:
        self.import_advisories(sqlite_engine)
        strict = settings.model_copy(update={"vulnerability_policy": "high"})
        for helper in builder_for(strict, sqlite_engine, docker_engine):
            outcome = helper.run(helper.submit("vulnerable_pin", run_tests=False))
            build = outcome.build
            assert build.status is BuildStatus.FAILED, outcome.log
            assert build.error_code == "vulnerabilities_found"
            assert build.vulnerabilities is not None
            found = {item["id"]: item for item in build.vulnerabilities}
            assert found["GHSA-q2q7-5pp4-w6pg"]["package"] == "urllib3"
            assert found["GHSA-q2q7-5pp4-w6pg"]["installed_version"] == "1.26.4"
            assert "GHSA-5phf-pp7p-vc2r" not in found  # fixed in 1.26.4
            assert "GHSA-q2q7-5pp4-w6pg" in outcome.log
            assert build.image_id is None

    def test_a_succeeded_build_has_its_sbom_provenance_and_base_digest(
        self, settings: Settings, sqlite_engine: Engine, docker_engine: DockerEngine
    ) -> None:
        self.import_advisories(sqlite_engine)
        for helper in builder_for(settings, sqlite_engine, docker_engine):
            outcome = helper.run(helper.submit("vulnerable_pin", run_tests=False))
            build = outcome.build
            assert build.status is BuildStatus.SUCCEEDED, outcome.log  # the policy is off
            assert build.vulnerabilities  # still found and shown
            assert build.base_image == settings.runtime_image("3.11")
            assert build.base_image_digest
            with session_scope(sqlite_engine) as session:
                kinds = {
                    artifact.kind: artifact.content
                    for artifact in session.scalars(
                        select(BuildArtifact).where(BuildArtifact.build_id == build.id)
                    )
                }
            sbom, provenance = kinds["sbom"], kinds["provenance"]
            assert sbom["bomFormat"] == "CycloneDX"
            purls = {component.get("purl", "") for component in sbom["components"]}
            assert "pkg:pypi/urllib3@1.26.4" in purls
            assert any(purl.startswith("pkg:deb/debian/python3") for purl in purls)
            assert provenance["predicateType"].startswith("https://slsa.dev/provenance/")
            digests = json.dumps(provenance)
            assert build.source_sha256 in digests
            labels = docker_engine.image_info(build.image_id or "")["Config"]["Labels"]
            assert labels["imagebuilder.source.sha256"] == build.source_sha256
            assert labels["org.opencontainers.image.base.name"] == build.base_image
            assert labels["imagebuilder.build-id"] == build.id


class TestPythonVersions:
    def test_the_requested_version_selects_the_base_images(self, builder: Builder) -> None:
        for image in (
            builder.settings.builder_image("3.13"),
            builder.settings.runtime_image("3.13"),
        ):
            require(builder.docker.image_exists(image), f"base image {image} (make test builds it)")
        outcome = builder.run(builder.submit("passing", python_version="3.13"))
        build = outcome.build
        assert build.status is BuildStatus.SUCCEEDED, outcome.log
        assert build.plan is not None
        assert build.plan["python_version"] == "3.13"
        assert "Python 3.13" in outcome.log  # pytest's header, from inside the test container
        assert build.dockerfile is not None
        assert f"FROM {builder.settings.runtime_image('3.13')} AS runtime" in build.dockerfile
