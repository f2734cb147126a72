"""adapters.docker without a daemon: one translation of daemon failures, and the test wrapper
script run by a real POSIX shell as the test container runs it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import docker.errors
import pytest
import requests.exceptions

from adapters.docker import DockerUnavailable, PushFailed, map_docker_errors
from adapters.docker.engine import TEST_WRAPPER
from adapters.docker.output import OutputRouter

MARKER = "::imagebuilder-report::test::"


class TestMapDockerErrors:
    @pytest.mark.parametrize(
        "error",
        [
            docker.errors.APIError("500 Server Error"),
            requests.exceptions.ConnectionError("connection refused"),
            ConnectionResetError("reset by peer"),
        ],
    )
    def test_daemon_failures_become_docker_unavailable_saying_what_was_done(
        self, error: Exception
    ) -> None:
        with pytest.raises(DockerUnavailable) as raised, map_docker_errors("cannot list images"):
            raise error
        assert str(raised.value).startswith("cannot list images: ")
        assert raised.value.__cause__ is error

    def test_other_errors_pass_through_unchanged(self) -> None:
        with pytest.raises(PushFailed), map_docker_errors("cannot push"):
            raise PushFailed("denied")
        with pytest.raises(KeyError), map_docker_errors("cannot inspect"):
            raise KeyError("State")

    def test_an_answer_caught_inside_the_block_is_not_a_failure(self) -> None:
        with map_docker_errors("cannot inspect image x"):
            try:
                raise docker.errors.ImageNotFound("no such image")
            except docker.errors.ImageNotFound:
                found = False
        assert found is False


def run_wrapper(tmp_path: Path, command: str) -> tuple[int, OutputRouter, list[str]]:
    """The wrapper in /bin/sh, with the environment the engine gives the test container."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "data.txt").write_text("copied\n")
    report_dir = tmp_path / "report"
    env = {
        "PATH": os.environ["PATH"],
        "IMAGEBUILDER_TEST_COMMAND": command,
        "IMAGEBUILDER_REPORT_MARKER": MARKER,
        "IMAGEBUILDER_WORK_DIR": str(report_dir / "work"),
        "IMAGEBUILDER_REPORT_DIR": str(report_dir),
        "IMAGEBUILDER_JUNIT_PATH": str(report_dir / "junit.xml"),
    }
    # `kill -KILL -1` reaches only the container's processes in a container; on this host it
    # would reach every process the user may signal, so here it is the one line left out.
    script = TEST_WRAPPER.replace("kill -KILL -1 2>/dev/null", "true")
    done = subprocess.run(
        ["/bin/sh", "-c", script], cwd=source, env=env, capture_output=True, timeout=60
    )
    lines: list[str] = []

    def take(line: str) -> bool:
        lines.append(line)
        return True

    router = OutputRouter(MARKER, take)
    router.feed(done.stdout)
    router.finish()
    return done.returncode, router, lines


class TestTestWrapper:
    def test_is_valid_posix_shell(self) -> None:
        checked = subprocess.run(["/bin/sh", "-n", "-c", TEST_WRAPPER], capture_output=True)
        assert checked.returncode == 0, checked.stderr

    def test_kills_what_the_command_left_running(self) -> None:
        # The one line the other tests replace: it must stay in the script.
        assert "kill -KILL -1" in TEST_WRAPPER

    def test_runs_in_a_copy_and_reports_the_junit_file(self, tmp_path: Path) -> None:
        command = (
            'cat data.txt; echo changed > data.txt; printf "<testsuite tests=\\"2\\"/>" '
            '> "$IMAGEBUILDER_JUNIT_PATH"; (exit 3)'
        )
        status, router, lines = run_wrapper(tmp_path, command)
        assert status == 3
        assert lines == ["copied"]
        assert router.report_text == '<testsuite tests="2"/>'
        assert router.limits == {"pids_refused": "0", "tmp_full": "0"}
        # The tests wrote into the copy, never into the project's folder.
        assert (tmp_path / "src" / "data.txt").read_text() == "copied\n"
        assert (tmp_path / "report" / "work" / "data.txt").read_text() == "changed\n"

    def test_no_report_without_a_junit_file(self, tmp_path: Path) -> None:
        status, router, lines = run_wrapper(tmp_path, "echo ok")
        assert status == 0
        assert lines == ["ok"]
        assert not router.in_report
