"""Infrastructure faults with the real processes: workers killed or stopped mid-build, the broker
down or restarted, a burst of concurrent submissions on SQLite. No accepted build is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import zip_project
from tests.e2e.conftest import (
    Service,
    finished,
    start_worker,
    stop,
    submit_project,
    wait_for_build,
)

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.redis, pytest.mark.slow]


def containers_of(service: Service, build_id: str) -> str:
    return subprocess.run(
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
    ).stdout.strip()


def replace_worker(service: Service, name: str) -> None:
    service.worker = start_worker(service, name)


class TestWorkerLoss:
    def test_kill_9_mid_build_is_retried_and_leaves_no_container(self, service: Service) -> None:
        with service.client() as client:
            build_id = submit_project(client, "sleepy_tests", run_tests="true")
            wait_for_build(client, build_id, lambda b: b["phase"] == "testing", service)
            time.sleep(2)  # the test container is running
            assert service.worker is not None
            os.killpg(service.worker.pid, signal.SIGKILL)
            service.worker.wait()
            replace_worker(service, "after-kill")
            build = wait_for_build(client, build_id, finished, service)
        assert build["status"] == "succeeded", build
        assert build["attempts"] == 2
        assert containers_of(service, build_id) == ""

    def test_sigterm_lets_the_running_build_finish(self, service: Service) -> None:
        with service.client() as client:
            build_id = submit_project(client, "sleepy_tests")
            wait_for_build(client, build_id, lambda b: b["phase"] == "testing", service)
            assert service.worker is not None
            service.worker.send_signal(signal.SIGTERM)  # the main process only, like `docker stop`
            service.worker.wait(timeout=120)
            build = client.get(f"/api/v1/builds/{build_id}").json()
            replace_worker(service, "after-term")
        assert build["status"] == "succeeded", build
        assert build["attempts"] == 1


class TestBrokerFaults:
    def test_submission_while_redis_is_down_is_accepted_and_built_later(
        self, service: Service
    ) -> None:
        service.broker.stop()
        try:
            with service.client() as client:
                started = time.monotonic()
                build_id = submit_project(client, "passing", run_tests="false")
                assert time.monotonic() - started < 10
                assert client.get(f"/api/v1/builds/{build_id}").json()["status"] == "queued"
        finally:
            service.broker.start()
        with service.client() as client:
            build = wait_for_build(client, build_id, finished, service)
        assert build["status"] == "succeeded", build

    def test_queued_builds_survive_a_redis_restart(self, service: Service) -> None:
        assert service.worker is not None
        stop(service.worker)
        with service.client() as client:
            build_id = submit_project(client, "passing", run_tests="false")
            service.broker.stop()  # no persistence: the queued message is gone
            service.broker.start()
            replace_worker(service, "after-restart")
            build = wait_for_build(client, build_id, finished, service)
        assert build["status"] == "succeeded", build


class TestConcurrency:
    def test_twenty_concurrent_submissions_on_sqlite(self, service: Service) -> None:
        data = zip_project("passing")

        def post(_: int) -> httpx.Response:
            with service.client() as client:
                return client.post(
                    "/api/v1/builds", files={"source": ("p.zip", data)}, data={"run_tests": "false"}
                )

        with ThreadPoolExecutor(max_workers=20) as pool:
            responses = list(pool.map(post, range(20)))
        assert [r.status_code for r in responses] == [202] * 20, [
            r.text for r in responses if r.status_code != 202
        ]
        ids = {r.json()["id"] for r in responses}
        with service.client() as client:
            for build_id in ids:
                response = client.post(f"/api/v1/builds/{build_id}/cancel")
                assert response.status_code in (202, 409)
            listed = client.get("/api/v1/builds?limit=100").json()["items"]
            assert ids <= {item["id"] for item in listed}
            for build_id in ids:
                wait_for_build(client, build_id, finished, service, seconds=120)
        assert "database is locked" not in service.logs()
