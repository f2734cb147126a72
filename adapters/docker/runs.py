"""What the engine is asked to run and what it reports back: plain data, no daemon."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Where the test wrapper (image_scripts/test_wrapper.sh) works and reports inside the container.
REPORT_DIR = "/tmp/.imagebuilder"
JUNIT_PATH = f"{REPORT_DIR}/junit.xml"
WORK_DIR = f"{REPORT_DIR}/work"

Watchdog = Callable[[], str | None]
LineSink = Callable[[str], None]
# For test output: returns False once it takes no more lines (the log is full); the output is
# then only scanned for the report, not split into lines.
OutputSink = Callable[[str], bool | None]


@dataclass(frozen=True)
class ImageBuild:
    context: Path
    dockerfile: Path
    target: str | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class TestRun:
    image: str
    command: str
    build_id: str
    memory_bytes: int
    cpus: float
    pids_limit: int
    tmpfs_bytes: int
    user: str = "65534:65534"


@dataclass(frozen=True)
class TestOutcome:
    exit_code: int
    # The kernel killed a process of the container for lack of memory (not necessarily the
    # command itself: a child it started).
    oom_killed: bool
    report: str | None
    # The process limit refused a fork at least once.
    pids_limit_hit: bool = False
    # /tmp (the size-limited tmpfs) was full when the command ended.
    tmp_full: bool = False
    # Bytes of output the command printed, stored or not.
    output_bytes: int = 0


@dataclass(frozen=True)
class CommandRun:
    """A short command in the same locked-down container as the tests (checks of an image)."""

    image: str
    command: list[str]
    build_id: str
    memory_bytes: int
    cpus: float
    pids_limit: int
    tmpfs_bytes: int
    user: str = "65534:65534"
    role: str = "check"
    # Boot checks run the image as it would be deployed: its root file system writable.
    read_only: bool = True
    entrypoint: list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CommandOutcome:
    exit_code: int
    oom_killed: bool
    # The last lines of its output (stdout and stderr), also streamed to `on_line`.
    output: list[str]


@dataclass(frozen=True)
class CapturedRun:
    exit_code: int
    oom_killed: bool
    lines: list[str]
    truncated: bool
