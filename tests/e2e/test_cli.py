"""End to end: the `imagebuilder` command, as a subprocess, against the running service.

The CLI gets the server and the token from the environment (IMAGEBUILDER_URL / _TOKEN), like a CI
job would, and no config file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.docker import DockerEngine
from tests.conftest import PROJECTS, ROOT
from tests.e2e.conftest import Service

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.redis, pytest.mark.slow]

TERMINAL = {"succeeded", "failed", "error", "timed_out", "cancelled"}
CONSOLE_SCRIPT = Path(sys.executable).parent / "imagebuilder"


def command() -> list[str]:
    # The console script when the package is installed (`uv pip install -e .`), else the module.
    if CONSOLE_SCRIPT.exists():
        return [str(CONSOLE_SCRIPT)]
    return [sys.executable, "-m", "client"]


def cli_env(service: Service, token: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEBUILDER_")}
    env |= {
        "IMAGEBUILDER_URL": service.url,
        "IMAGEBUILDER_CONFIG": str(service.settings.data_dir / "no-client-config.toml"),
        "NO_COLOR": "1",
    }
    if token is not None:
        env["IMAGEBUILDER_TOKEN"] = token
    return env


def imagebuilder(
    service: Service, *args: str, token: str | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command(), *args],
        cwd=ROOT,
        env=cli_env(service, token or service.token),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


@contextlib.contextmanager
def sigint_as_from_a_terminal() -> Iterator[None]:
    """Children started inside get Ctrl-C's default action, as from a terminal.

    A suite started in the background (`make test &`, nohup, a runner without job control)
    inherits SIGINT ignored; a child would inherit that too, and Python, like every Unix
    program, then leaves SIGINT ignored (a background job must not die of the terminal's
    Ctrl-C). A handler, unlike SIG_IGN, is reset to the default action by exec.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def wait_for(
    service: Service, build_id: str, ready: Any, what: str, seconds: float = 300
) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    with service.client() as client:
        while time.monotonic() < deadline:
            build: dict[str, Any] = client.get(f"/api/v1/builds/{build_id}").json()
            if ready(build):
                return build
            time.sleep(0.5)
    raise AssertionError(f"build {build_id} never became {what}\n{service.logs()}")


def explain(service: Service, build_id: str) -> str:
    """The build and the end of its log, for an assertion message."""
    with service.client() as client:
        build = client.get(f"/api/v1/builds/{build_id}").text
        log = client.get(f"/api/v1/builds/{build_id}/logs").text
    return f"{build}\n--- log tail\n{log[-3000:]}"


def remove_image(service: Service, reference: str) -> None:
    DockerEngine(service.settings.docker_cli).remove_image(reference)


class TestSubmit:
    def test_a_passing_project_streams_its_log_and_exits_0(self, service: Service) -> None:
        tag = "imagebuilder-e2e/cli:1"
        # The admin's image, in the admin's namespace on the daemon.
        owned = f"{service.settings.image_namespace}/admin/{tag}"
        try:
            result = imagebuilder(service, "submit", str(PROJECTS / "passing"), "--tag", tag)
        finally:
            remove_image(service, owned)

        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{service.logs()}"
        first, *rest = result.stdout.splitlines()
        build_id = first.split()[1]
        assert first == f"Build {build_id} queued: {service.url}/builds/{build_id}"
        log = "\n".join(rest)
        assert "4 passed, 1 skipped" in log  # the live log
        assert f"[imagebuilder] image {owned}" in log
        assert f"Build {build_id} succeeded" in log  # the summary
        assert f"Image     {owned}  sha256:" in log
        assert "Tests     4 passed · 0 failed · 0 errors · 1 skipped" in log
        assert "Phases    preparing" in log
        assert "Packed 3 files" in result.stderr
        assert "\x1b" not in result.stdout + result.stderr

    def test_failing_tests_exit_1_with_the_reason(self, service: Service) -> None:
        result = imagebuilder(service, "submit", str(PROJECTS / "failing_test"))

        assert result.returncode == 1, f"{result.stdout}\n{result.stderr}\n{service.logs()}"
        assert "FAILED tests/test_calc.py::test_subtract" in result.stdout
        assert "tests_failed" in result.stdout
        assert "1 passed · 1 failed" in result.stdout

    def test_the_packer_honours_ignore_rules_and_the_server_accepts_it(
        self, service: Service, tmp_path: Path
    ) -> None:
        project = tmp_path / "ignored"
        shutil.copytree(PROJECTS / "passing", project)
        (project / ".dockerignore").write_text("docs\n!docs/keep.md\n")
        (project / ".gitignore").write_text("*.log\n")
        (project / "debug.log").write_text("noise\n")
        (project / "docs").mkdir()
        (project / "docs" / "keep.md").write_text("kept\n")
        (project / "docs" / "drop.md").write_text("dropped\n")
        (project / ".venv" / "lib").mkdir(parents=True)
        (project / ".venv" / "lib" / "site.py").write_text("")
        (project / "zeros.bin").write_bytes(bytes(3 * 1024 * 1024))  # over the bomb ratio
        (project / "link.py").symlink_to(project / "app.py")
        tag = "imagebuilder-e2e/cli-ignored:1"
        try:
            accepted = imagebuilder(
                service, "submit", str(project), "--tag", tag, "--no-tests", "--detach", "--json"
            )
            build = as_json(accepted)
            assert "left out 1 links or special files: link.py (symbolic link)" in accepted.stderr
            # app.py, requirements.txt, tests/test_app.py, .dockerignore, .gitignore,
            # docs/keep.md, zeros.bin
            assert build["source"]["files"] == 7
            followed = imagebuilder(service, "logs", build["id"], "--follow")
            assert followed.returncode == 0, f"{followed.stdout}\n{followed.stderr}"
        finally:
            remove_image(service, f"{service.settings.image_namespace}/admin/{tag}")


class TestManagingABuild:
    def test_detach_status_logs_list_cancel_and_rebuild(self, service: Service) -> None:
        started = time.monotonic()
        submitted = imagebuilder(
            service, "submit", str(PROJECTS / "slow_tests"), "--detach", "--json"
        )
        build = as_json(submitted)
        build_id = build["id"]
        assert time.monotonic() - started < 60
        assert build["status"] in ("queued", "running")

        wait_for(service, build_id, lambda b: b["phase"] == "testing", "testing")
        status = as_json(imagebuilder(service, "status", build_id, "--json"))
        assert (status["status"], status["phase"]) == ("running", "testing")
        shown = imagebuilder(service, "status", build_id)
        assert shown.returncode == 0
        assert f"Build {build_id} running (testing)" in shown.stdout
        assert f"imagebuilder logs {build_id} --follow" in shown.stderr

        listed = as_json(imagebuilder(service, "list", "--json"))
        assert build_id in [item["id"] for item in listed["items"]]
        running = as_json(imagebuilder(service, "list", "--status", "running", "--json"))
        assert build_id in [item["id"] for item in running["items"]]
        table = imagebuilder(service, "list", "--limit", "5")
        assert table.returncode == 0
        assert build_id in table.stdout

        log = imagebuilder(service, "logs", build_id)
        assert log.returncode == 0
        assert "[imagebuilder] phase: testing" in log.stdout
        lines = imagebuilder(service, "logs", build_id, "--json")
        assert lines.returncode == 0
        assert json.loads(lines.stdout.splitlines()[0])["seq"] == 1

        cancel = imagebuilder(service, "cancel", build_id)
        assert cancel.returncode == 0, f"{cancel.stderr}\n{explain(service, build_id)}"
        followed = imagebuilder(service, "logs", build_id, "--follow", timeout=120)
        assert followed.returncode == 4, f"{followed.stdout}\n{followed.stderr}"
        assert f"Build {build_id} cancelled" in followed.stdout
        again = imagebuilder(service, "cancel", build_id)
        assert again.returncode == 5
        assert "(build_terminal)" in again.stderr
        assert again.stderr.startswith("error: ")

        rebuilt = as_json(imagebuilder(service, "rebuild", build_id, "--detach", "--json"))
        assert rebuilt["id"] != build_id
        assert rebuilt["rebuild_of"] == build_id
        cancelled = imagebuilder(service, "cancel", rebuilt["id"])
        assert cancelled.returncode == 0, f"{cancelled.stderr}\n{explain(service, rebuilt['id'])}"
        ended = imagebuilder(service, "logs", rebuilt["id"], "--follow", timeout=120)
        assert ended.returncode == 4, f"{ended.stdout}\n{ended.stderr}"

    def test_ctrl_c_detaches_and_leaves_the_build_running(self, service: Service) -> None:
        with (
            sigint_as_from_a_terminal(),
            # The context closes the pipes whatever happens: a leaked pipe would otherwise turn
            # into an "unclosed file" error in whichever later test the collector runs.
            subprocess.Popen(
                [*command(), "submit", str(PROJECTS / "slow_tests")],
                cwd=ROOT,
                env=cli_env(service, service.token),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ) as process,
        ):
            try:
                assert process.stdout is not None
                first = process.stdout.readline()
                assert first.startswith("Build b_"), first
                build_id = first.split()[1]
                wait_for(service, build_id, lambda b: b["phase"] == "testing", "testing")
                process.send_signal(signal.SIGINT)
                _, err = process.communicate(timeout=30)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.communicate()

        assert process.returncode == 130, err
        assert "keeps running on the server (not cancelled)" in err
        assert f"imagebuilder logs {build_id} --follow" in err
        assert "Traceback" not in err
        build = wait_for(service, build_id, lambda b: True, "read")
        assert build["status"] == "running"
        assert not build["cancel_requested"]
        assert imagebuilder(service, "cancel", build_id).returncode == 0
        wait_for(service, build_id, lambda b: b["status"] in TERMINAL, "terminal", seconds=60)


class TestErrors:
    def test_a_missing_build_is_one_error_line(self, service: Service) -> None:
        result = imagebuilder(service, "status", "b_00000000000000000000000000")

        assert result.returncode == 5
        assert result.stderr.startswith("error: ")
        assert "(build_not_found)" in result.stderr
        assert "Traceback" not in result.stderr

    def test_a_wrong_token_is_refused(self, service: Service) -> None:
        assert httpx.get(f"{service.url}/api/v1/builds", timeout=10).status_code == 401

        result = imagebuilder(service, "list", token="ib_wrong_token_0000000000")

        assert result.returncode == 5
        assert "(unauthenticated)" in result.stderr
        assert "hint: set a token" in result.stderr

    def test_nothing_is_listening(self, service: Service) -> None:
        result = subprocess.run(
            [*command(), "list", "--url", "http://127.0.0.1:9"],
            env=cli_env(service, service.token),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert result.returncode == 5
        assert "(connection_failed)" in result.stderr


class TestTokensAndPlan:
    def test_token_lifecycle(self, service: Service) -> None:
        listed = imagebuilder(service, "tokens", "list", "--json")
        assert listed.returncode == 0, listed.stderr

        created = as_json(imagebuilder(service, "tokens", "create", "--owner", "e2e-cli", "--json"))
        secret = created["token"]
        assert created["owner"] == "e2e-cli"
        assert not created["admin"]
        tokens = as_json(imagebuilder(service, "tokens", "list", "--json"))
        assert created["id"] in [token["id"] for token in tokens]
        assert secret not in json.dumps(tokens)

        as_owner = imagebuilder(service, "list", "--json", token=secret)
        assert as_owner.returncode == 0, as_owner.stderr
        assert as_json(as_owner)["items"] == []  # the admin's builds are not this owner's
        forbidden = imagebuilder(service, "tokens", "list", token=secret)
        assert forbidden.returncode == 5
        assert "(forbidden)" in forbidden.stderr

        assert imagebuilder(service, "tokens", "revoke", created["id"]).returncode == 0
        revoked = imagebuilder(service, "list", token=secret)
        assert revoked.returncode == 5
        assert "(unauthenticated)" in revoked.stderr

    def test_plan_shows_what_a_build_would_do(self, service: Service) -> None:
        result = imagebuilder(service, "plan", str(PROJECTS / "passing"), "--json")

        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        assert answer["plan"]["test_command"] == "python -m pytest"
        assert "AS runtime" in answer["dockerfile"]
