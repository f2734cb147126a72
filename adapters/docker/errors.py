"""What can go wrong at the Docker boundary, and the one place daemon errors are translated.

`DockerUnavailable` is the service's fault (daemon or CLI unreachable, or failing); a build step
that exits non-zero is the project's (`BuildStepFailed`); a registry that refuses a push is the
deployment's (`PushFailed`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import docker.errors
import requests.exceptions

# Everything docker-py raises when the daemon or its socket fails.
DOCKER_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)


class DockerUnavailable(Exception):
    """The daemon (or the CLI) could not be reached or failed: the service's fault."""


class BuildStepFailed(Exception):
    """`docker build` exited non-zero: the project's fault. Carries the output's last lines."""

    def __init__(self, exit_code: int, tail: list[str]) -> None:
        super().__init__(f"docker build exited with {exit_code}")
        self.exit_code = exit_code
        self.tail = tail


class Stopped(Exception):
    """The watchdog asked to stop: `reason` is what it returned."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PushFailed(Exception):
    """The registry (or the daemon on its behalf) refused a push: credentials, name, quota."""


@contextmanager
def map_docker_errors(doing: str) -> Iterator[None]:
    """Raise any daemon failure inside the block as `DockerUnavailable("<doing>: <error>")`.

    Outcomes that are answers, not failures (an image that is not there, a container already
    gone), are caught inside the block, before they get here."""
    try:
        yield
    except DOCKER_ERRORS as exc:
        raise DockerUnavailable(f"{doing}: {exc}") from exc


def unavailable_on_error(chunks: Iterator[bytes], doing: str) -> Iterator[bytes]:
    """`chunks`, with a daemon failure while they stream raised as `DockerUnavailable`."""
    with map_docker_errors(doing):
        yield from chunks
