"""End to end: zip in over HTTP, a real worker builds and tests it, status and log out."""

from __future__ import annotations

import subprocess
import time

import pytest

from adapters.docker import DockerEngine
from tests.e2e.conftest import Service, finished, submit_project, wait_for_build

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.redis, pytest.mark.slow]


class TestThroughTheService:
    def test_a_passing_project_becomes_a_runnable_tested_image(self, service: Service) -> None:
        with service.client() as client:
            build_id = submit_project(client, "passing", tag="imagebuilder-e2e/passing:1")
            build = wait_for_build(client, build_id, finished, service)
            assert build["status"] == "succeeded", build
            assert build["tests"]["passed"] == 4
            assert build["tests"]["skipped"] == 1
            # The image is the caller's (the admin's): in its namespace on the daemon.
            tag = build["image"]["tag"]
            namespace = service.settings.image_namespace
            assert tag == f"{namespace}/admin/imagebuilder-e2e/passing:1"
            assert build["options"]["tag"] == "imagebuilder-e2e/passing:1"
            assert build["image"]["size_bytes"] > 0
            assert [phase["phase"] for phase in build["phases"]] == [
                "preparing",
                "building",
                "testing",
                "scanning",
            ]
            assert all(phase["duration_seconds"] is not None for phase in build["phases"])
            log = client.get(f"/api/v1/builds/{build_id}/logs")
            assert log.status_code == 200
            assert "4 passed, 1 skipped" in log.text
            assert "[deps " in log.text
            dockerfile = client.get(f"/api/v1/builds/{build_id}/dockerfile")
            assert dockerfile.status_code == 200
            assert "FROM" in dockerfile.text
        try:
            ran = subprocess.run(
                [service.settings.docker_cli, "run", "--rm", tag, "python", "app.py"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert ran.returncode == 0, ran.stderr
            assert ran.stdout.strip() == "hello, world"
        finally:
            DockerEngine(service.settings.docker_cli).remove_image(tag)

    def test_a_failing_test_ends_failed_with_counts(self, service: Service) -> None:
        with service.client() as client:
            build_id = submit_project(client, "failing_test")
            build = wait_for_build(client, build_id, finished, service)
        assert build["status"] == "failed"
        assert build["error"]["code"] == "tests_failed"
        assert (build["tests"]["passed"], build["tests"]["failed"]) == (1, 1)
        assert build["image"] is None

    def test_an_uninstallable_requirement_ends_dependency_install_failed(
        self, service: Service
    ) -> None:
        with service.client() as client:
            build_id = submit_project(client, "bad_dependency")
            build = wait_for_build(client, build_id, finished, service)
        assert build["status"] == "failed"
        assert build["error"]["code"] == "dependency_install_failed"

    def test_cancelling_a_running_build_leaves_no_container(self, service: Service) -> None:
        with service.client() as client:
            build_id = submit_project(client, "slow_tests")
            running = wait_for_build(
                client, build_id, lambda b: b["status"] == "running" or finished(b), service
            )
            assert running["status"] == "running"
            while client.get(f"/api/v1/builds/{build_id}").json()["phase"] != "testing":
                time.sleep(0.5)
            time.sleep(2)  # the test container is up
            response = client.post(f"/api/v1/builds/{build_id}/cancel")
            assert response.status_code == 202
            build = wait_for_build(client, build_id, finished, service, seconds=30)
            assert build["status"] == "cancelled"
            assert client.post(f"/api/v1/builds/{build_id}/cancel").status_code == 409
        left = subprocess.run(
            [
                service.settings.docker_cli,
                "ps",
                "-aq",
                "--filter",
                f"label=imagebuilder.build-id={build_id}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert left.stdout.strip() == ""

    def test_follow_streams_the_log_until_the_build_ends(self, service: Service) -> None:
        with service.client() as client:
            build_id = submit_project(client, "passing", tag="imagebuilder-e2e/follow:1")
            with client.stream("GET", f"/api/v1/builds/{build_id}/logs?follow=true") as response:
                text = "".join(response.iter_text())
            build = client.get(f"/api/v1/builds/{build_id}").json()
            full_log = client.get(f"/api/v1/builds/{build_id}/logs").text
        tag = build["image"]["tag"]
        DockerEngine(service.settings.docker_cli).remove_image(tag)
        assert build["status"] == "succeeded"
        # The stream ended by itself, with every line the worker wrote, once, in order.
        assert f"[imagebuilder] image {tag}" in text
        assert text == full_log
