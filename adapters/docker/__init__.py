"""The Docker boundary: the only package that talks to a Docker daemon (docker-py and the CLI).

`engine` drives the daemon, `errors` says what went wrong (and `map_docker_errors` translates
daemon failures in one place), `runs` holds what the engine is asked to run and what it reports,
`output` splits streams into log lines, `bases` says which Python versions a daemon can build, and
`image_scripts/` holds the shell scripts that run inside images.
"""

from adapters.docker.engine import DockerEngine
from adapters.docker.errors import (
    BuildStepFailed,
    DockerUnavailable,
    PushFailed,
    Stopped,
    map_docker_errors,
)
from adapters.docker.runs import (
    CapturedRun,
    CommandOutcome,
    CommandRun,
    ImageBuild,
    LineSink,
    OutputSink,
    TestOutcome,
    TestRun,
    Watchdog,
)

__all__ = [
    "BuildStepFailed",
    "CapturedRun",
    "CommandOutcome",
    "CommandRun",
    "DockerEngine",
    "DockerUnavailable",
    "ImageBuild",
    "LineSink",
    "OutputSink",
    "PushFailed",
    "Stopped",
    "TestOutcome",
    "TestRun",
    "Watchdog",
    "map_docker_errors",
]
