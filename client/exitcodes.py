"""Exit codes: what a CI script can rely on."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # the build succeeded, or the command did what it was asked
    FAILED = 1  # the build failed: the project's fault (dependencies, Dockerfile, tests)
    ERROR = 2  # the build ended in error: the service's fault
    TIMED_OUT = 3  # the build or its tests ran past the limit
    CANCELLED = 4  # someone cancelled the build
    CLIENT = 5  # usage, configuration, packing, connection or HTTP error: no build outcome
    INTERRUPTED = 130  # Ctrl-C; a followed build keeps running on the server


_BY_STATUS = {
    "succeeded": ExitCode.OK,
    "failed": ExitCode.FAILED,
    "error": ExitCode.ERROR,
    "timed_out": ExitCode.TIMED_OUT,
    "cancelled": ExitCode.CANCELLED,
}

HELP = (
    "Exit codes: 0 succeeded (or the command did what it was asked) · 1 build failed "
    "(the project's fault: dependencies, Dockerfile, tests) · 2 build error (the service's "
    "fault) · 3 timed out · 4 cancelled · 5 usage, configuration, connection or HTTP error · "
    "130 interrupted (Ctrl-C detaches; the build keeps running)."
)


def for_status(status: str) -> ExitCode:
    """The exit code for a build that ended with `status`; CLIENT if it is not a final one."""
    return _BY_STATUS.get(status, ExitCode.CLIENT)
