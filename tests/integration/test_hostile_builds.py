"""Hostile projects through the real pipeline: each fixture's tests attack the sandbox.

A fork bomb, a memory hog, a disk filler, an endless loop, a sleeper that ignores signals, network
and Docker socket probes, a log flood of gigabytes, binary output, terminal escapes and forged log
lines. Every case asserts the build's outcome and code, that none of its containers is left, and
what the stored log keeps. The limits are small so the module runs in a few minutes.
"""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from adapters.docker import DockerEngine
from core.builds.logs import SYSTEM_RESERVE_BYTES, iter_all_lines
from core.models import LogLine
from core.settings import MiB, Settings
from core.status import BuildStatus
from tests.integration.builder import Builder, Outcome, builder_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

LIMITS: dict[str, Any] = {
    "test_timeout_seconds": 30,
    "test_memory_bytes": 256 * MiB,
    "test_pids_limit": 64,
    "test_tmpfs_bytes": 64 * MiB,
    "max_log_bytes": 1 * MiB,
}
# Control characters a stored line may never hold; ESC only as part of an SGR sequence.
FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
SGR = re.compile(r"\x1b\[[0-9;:]*m")


@pytest.fixture
def hostile(
    settings: Settings, sqlite_engine: Engine, docker_engine: DockerEngine
) -> Iterator[Builder]:
    yield from builder_for(settings.model_copy(update=LIMITS), sqlite_engine, docker_engine)


@pytest.fixture
def hostile_on_each_database(
    settings: Settings, engine: Engine, docker_engine: DockerEngine
) -> Iterator[Builder]:
    """`hostile` on SQLite and on PostgreSQL (which refuses NUL in text)."""
    yield from builder_for(settings.model_copy(update=LIMITS), engine, docker_engine)


def with_limits(builder: Builder, **overrides: Any) -> Builder:
    """The same builder (database, images to clean) with other limits."""
    other = Builder(builder.settings.model_copy(update=overrides), builder.engine, builder.docker)
    other.tags = builder.tags
    return other


def containers_left(builder: Builder, build_id: str) -> list[str]:
    label = f"label=imagebuilder.build-id={build_id}"
    result = subprocess.run(
        [builder.settings.docker_cli, "ps", "-aq", "--filter", label],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()


def lines_of(builder: Builder, build_id: str) -> list[LogLine]:
    return list(iter_all_lines(builder.engine, build_id))


def texts(lines: list[LogLine], stream: str) -> list[str]:
    return [line.text for line in lines if line.stream == stream]


def at_line(builder: Builder, build_id: str, prefix: str) -> datetime:
    """When the first line starting with `prefix` was written."""
    return next(line.at for line in lines_of(builder, build_id) if line.text.startswith(prefix))


def docker_free_bytes(builder: Builder) -> int:
    root = subprocess.run(
        [builder.settings.docker_cli, "info", "-f", "{{.DockerRootDir}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return shutil.disk_usage(root).free


def wait_for(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.3)


def assert_ended(builder: Builder, build_id: str, outcome: Outcome, status: BuildStatus) -> None:
    """The build ended with `status`, and none of its containers is left."""
    system = "\n".join(texts(lines_of(builder, build_id), "system"))
    assert outcome.build.status is status, system
    assert containers_left(builder, build_id) == []


class TestProcessLimit:
    def test_fork_bomb_hits_the_pids_limit_while_another_build_runs(self, hostile: Builder) -> None:
        bomb = hostile.submit("hostile_fork_bomb")
        tiny = hostile.submit("passing")
        runner = threading.Thread(target=hostile.run, args=(bomb,))
        runner.start()
        try:
            wait_for(lambda: "fork bomb: fork refused" in hostile.outcome(bomb).log, 120)
            # The bomb holds every process it may have. The worker still forks, and another
            # build, tests included, runs to success next to it.
            assert subprocess.run(["true"], check=False).returncode == 0
            other = hostile.run(tiny)
            assert_ended(hostile, tiny, other, BuildStatus.SUCCEEDED)
        finally:
            runner.join(timeout=120)
        # The other build's tests started while the bomb still held its processes.
        tiny_tests = at_line(hostile, tiny, "[imagebuilder] tests: python -m pytest")
        assert tiny_tests < at_line(hostile, bomb, "[imagebuilder] tests: exit code")
        outcome = hostile.outcome(bomb)
        assert_ended(hostile, bomb, outcome, BuildStatus.FAILED)
        assert outcome.build.error_code == "resource_limit"
        assert outcome.build.error_message == (
            "The tests hit the limit of 64 processes (1 failed)."
        )
        # The wrapper killed the bomb's leftovers, so the JUnit report could still be printed.
        assert outcome.build.tests is not None
        assert outcome.build.tests["failed"] == 1


class TestMemoryLimit:
    def test_memory_hog_is_oom_killed(self, hostile: Builder) -> None:
        build_id = hostile.submit("hostile_memory_hog")
        outcome = hostile.run(build_id)
        assert_ended(hostile, build_id, outcome, BuildStatus.FAILED)
        assert outcome.build.error_code == "oom_killed"
        assert outcome.build.error_message == (
            "The tests ran out of memory and were killed: the limit is 256 MiB."
        )
        assert outcome.build.tests is not None
        assert outcome.build.tests["exit_code"] == 137

    def test_a_child_killed_for_memory_leaves_the_verdict_to_the_tests(
        self, hostile: Builder
    ) -> None:
        # The test expects its child to be killed and passes: the limit did its work, the verdict
        # is the command's, and the log says what happened.
        build_id = hostile.submit("hostile_memory_hog_child")
        outcome = hostile.run(build_id)
        assert_ended(hostile, build_id, outcome, BuildStatus.SUCCEEDED)
        assert "memory hog child ended with -9" in outcome.log
        assert "[imagebuilder] tests: the tests had a process killed for lack of memory" in (
            outcome.log
        )


class TestDiskLimit:
    def test_disk_filler_fills_only_its_tmpfs(self, hostile: Builder) -> None:
        build_id = hostile.submit("hostile_disk_filler")
        free_before = docker_free_bytes(hostile)
        outcome = hostile.run(build_id)
        assert_ended(hostile, build_id, outcome, BuildStatus.FAILED)
        assert outcome.build.error_code == "resource_limit"
        assert outcome.build.error_message == "The tests filled /tmp (64 MiB)."
        written = re.search(r"disk filler: stopped after (\d+) MiB: \[Errno 28\]", outcome.log)
        assert written is not None, outcome.log[-3000:]
        assert int(written.group(1)) <= 64
        # /tmp is memory-backed and capped; nothing reached the host's disk.
        assert free_before - docker_free_bytes(hostile) < 256 * MiB


class TestDeadline:
    @pytest.mark.parametrize("project", ["hostile_cpu_loop", "hostile_sleep_forever"])
    def test_endless_tests_are_timed_out_at_the_deadline(
        self, hostile: Builder, project: str
    ) -> None:
        quick = with_limits(hostile, test_timeout_seconds=5)
        build_id = quick.submit(project)
        outcome = quick.run(build_id)
        assert_ended(quick, build_id, outcome, BuildStatus.TIMED_OUT)
        assert outcome.build.error_code == "timed_out"
        started = at_line(quick, build_id, "[imagebuilder] tests: python -m pytest")
        stopped = at_line(quick, build_id, "[imagebuilder] stopped: deadline passed")
        assert (stopped - started).total_seconds() < 5 + 10


class TestNetwork:
    def test_network_host_and_docker_socket_are_unreachable(self, hostile: Builder) -> None:
        # The fixture's tests pass only when each attempt fails: success proves containment (a
        # failing test could fail for any reason, so the opposite would prove nothing).
        build_id = hostile.submit("hostile_network")
        outcome = hostile.run(build_id)
        assert_ended(hostile, build_id, outcome, BuildStatus.SUCCEEDED)
        assert outcome.build.tests is not None
        assert (outcome.build.tests["passed"], outcome.build.tests["failed"]) == (9, 0)
        for probe in ("tcp 1.1.1.1:53", "dns pypi.org", "/var/run/docker.sock"):
            assert f"contained: {probe}: " in outcome.log


class TestLogs:
    def test_log_flood_is_capped_and_read_in_bounded_memory(self, hostile: Builder) -> None:
        flood = with_limits(hostile, test_timeout_seconds=150)
        build_id = flood.submit("hostile_log_flood")
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        free_before = docker_free_bytes(flood)
        outcome = flood.run(build_id)
        # Its two gigabytes were all read (the test passed: its writes block until read), within
        # the deadline, without the worker growing or the daemon storing them.
        assert_ended(flood, build_id, outcome, BuildStatus.SUCCEEDED)
        assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak_before < 200 * MiB
        assert free_before - docker_free_bytes(flood) < 512 * MiB
        build = outcome.build
        assert build.log_truncated
        assert build.log_bytes <= MiB + SYSTEM_RESERVE_BYTES
        lines = lines_of(flood, build_id)
        notices = [line for line in lines if "log truncated" in line.text]
        assert len(notices) == 1
        assert notices[0].stream == "system"
        # The outcome is still in the log, after the notice.
        system = texts(lines, "system")
        assert "[imagebuilder] tests: exit code 0, 1 passed" in system
        total = re.search(r"tests: ([\d.]+) MiB of output in all", "\n".join(system))
        assert total is not None
        assert float(total.group(1)) >= 2048

    def test_binary_output_is_stored_as_text(self, hostile_on_each_database: Builder) -> None:
        helper = hostile_on_each_database
        build_id = helper.submit("hostile_binary_output")
        outcome = helper.run(build_id)
        assert_ended(helper, build_id, outcome, BuildStatus.SUCCEEDED)
        test_lines = texts(lines_of(helper, build_id), "test")
        assert "valid: h\u00e9llo \u2603 \U0001f40d" in test_lines
        invalid = next(text for text in test_lines if text.startswith("invalid utf-8:"))
        assert invalid.count("\ufffd") >= 8
        assert invalid.endswith(" end")
        assert "nul:\\0:nul" in test_lines
        for text in test_lines:
            assert FORBIDDEN.search(SGR.sub("", text)) is None, repr(text)
            assert "\x1b" not in SGR.sub("", text), repr(text)

    def test_escapes_are_neutralised_and_forged_lines_stay_test_lines(
        self, hostile: Builder
    ) -> None:
        build_id = hostile.submit("hostile_escapes")
        outcome = hostile.run(build_id)
        assert_ended(hostile, build_id, outcome, BuildStatus.SUCCEEDED)
        lines = lines_of(hostile, build_id)
        test_lines, system = texts(lines, "test"), texts(lines, "system")
        # Forged service lines are stored, as the tests' own.
        for forged in (
            "[imagebuilder] tests: exit code 0, 99 passed",
            "[imagebuilder] phase: exporting",
            "[imagebuilder] failed: forged after a carriage return",
        ):
            assert forged in test_lines
            assert forged not in system
        assert [t for t in system if t.startswith("[imagebuilder] tests: exit code")] == [
            "[imagebuilder] tests: exit code 0, 1 passed"
        ]
        # Colours stay; links, titles, clipboard writes, cursor moves and controls go.
        assert "\x1b[31mred\x1b[0m kept" in test_lines
        for shown in ("click me", "screen cleared", "title set", "clipboard written"):
            assert shown in test_lines
        assert "device control" in test_lines
        assert "tab\tkept" in test_lines
        for text in test_lines:
            assert "evil.example" not in text
            assert "pwned" not in text
            assert FORBIDDEN.search(SGR.sub("", text)) is None, repr(text)
            assert "\x1b" not in SGR.sub("", text), repr(text)
