"""The Docker boundary: the only module that talks to the Docker daemon.

Images are built by the Docker CLI with BuildKit (docker-py only drives the legacy builder, which
has no cache or secret mounts); everything else goes through docker-py. Daemon and CLI failures
are wrapped into `DockerUnavailable`, a build step's failure into `BuildStepFailed`.

Long operations take a `Watchdog`: called about once a second, it returns why the operation must
stop (cancelled, deadline passed) or None. Stopping kills the build client (BuildKit then cancels
the solve) or the test container.
"""

from __future__ import annotations

import codecs
import collections
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container

DOCKER_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)
REPORT_DIR = "/tmp/.imagebuilder"
JUNIT_PATH = f"{REPORT_DIR}/junit.xml"
WORK_DIR = "/tmp/.imagebuilder/work"
MAX_REPORT_BYTES = 32 * 1024 * 1024

# Runs the user's command with a shell, then prints the JUnit report after a marker line so it can
# be read back from the output: the root file system is read-only and /tmp is a tmpfs that dies
# with the container, where `docker cp` cannot reach. Tests often write next to their code
# (instance folders, databases, coverage files), so the working directory is first copied to the
# tmpfs and the tests run in the copy; the image itself stays read-only.
_TEST_WRAPPER = f"""mkdir -p {WORK_DIR} 2>/dev/null
source_dir=$(pwd)
if [ "$source_dir" != / ] && cp -R "$source_dir/." {WORK_DIR}/ 2>/dev/null; then
    cd {WORK_DIR}
else
    echo "[imagebuilder] tests run in $source_dir, read-only (it could not be copied to /tmp)"
fi
eval "$IMAGEBUILDER_TEST_COMMAND"
status=$?
if [ -s {JUNIT_PATH} ]; then
    printf '\\n%s\\n' "$IMAGEBUILDER_REPORT_MARKER"; cat {JUNIT_PATH}; printf '\\n'
fi
exit $status
"""


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


Watchdog = Callable[[], str | None]
LineSink = Callable[[str], None]


class _Poller(Protocol):
    def __call__(self, timeout: float) -> bool: ...


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
    oom_killed: bool
    report: str | None


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
    entrypoint: list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CommandOutcome:
    exit_code: int
    oom_killed: bool
    # The last lines of its output (stdout and stderr), also streamed to `on_line`.
    output: list[str]


class LineSplitter:
    """Turns a byte stream into text lines: invalid UTF-8 replaced, partial lines kept for later."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""

    def feed(self, data: bytes) -> list[str]:
        self._buffer += self._decoder.decode(data)
        *lines, self._buffer = self._buffer.split("\n")
        return lines

    def finish(self) -> list[str]:
        rest = self._buffer + self._decoder.decode(b"", final=True)
        self._buffer = ""
        return [rest] if rest else []


class DockerEngine:
    def __init__(self, cli: str = "docker", *, timeout: float = 120) -> None:
        self._cli = cli
        try:
            # DOCKER_HOST (and DOCKER_TLS_VERIFY, DOCKER_CERT_PATH) select the daemon, for the
            # CLI and docker-py alike.
            self._client = docker.from_env(timeout=int(max(timeout, 1)))
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot reach the Docker daemon: {exc}") from exc

    def close(self) -> None:
        self._client.close()

    def ping(self) -> None:
        try:
            self._client.ping()
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"the Docker daemon does not answer: {exc}") from exc

    def _answers(self) -> bool:
        try:
            self._client.ping()
        except DOCKER_ERRORS:
            return False
        return True

    def image_exists(self, reference: str) -> bool:
        try:
            self._client.images.get(reference)
        except docker.errors.ImageNotFound:
            return False
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot inspect image {reference}: {exc}") from exc
        return True

    def local_tags(self) -> set[str]:
        """Every `repository:tag` the daemon holds, in one call."""
        try:
            images = self._client.images.list()
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot list images: {exc}") from exc
        return {tag for image in images for tag in image.tags}

    def image_info(self, reference: str) -> dict[str, Any]:
        try:
            attrs: dict[str, Any] = self._client.images.get(reference).attrs
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot inspect image {reference}: {exc}") from exc
        return attrs

    def tag(self, image_id: str, reference: str) -> None:
        repository, _, tag = reference.rpartition(":")
        if not repository or "/" in tag:
            repository, tag = reference, "latest"
        try:
            self._client.images.get(image_id).tag(repository, tag)
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot tag {image_id} as {reference}: {exc}") from exc

    def remove_image(self, reference: str) -> None:
        """Remove an image or tag; a missing one is fine, one still in use is left alone."""
        try:
            self._client.images.remove(reference, noprune=False)
        except docker.errors.ImageNotFound:
            return
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                return
            raise DockerUnavailable(f"cannot remove image {reference}: {exc}") from exc
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot remove image {reference}: {exc}") from exc

    def build_containers(self) -> dict[str, str]:
        """Every container this service made: container id -> build id."""
        try:
            containers = self._client.containers.list(
                all=True, filters={"label": "imagebuilder.build-id"}
            )
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot list containers: {exc}") from exc
        return {c.id or "": c.labels.get("imagebuilder.build-id", "") for c in containers}

    def remove_container(self, container_id: str) -> None:
        try:
            self._client.containers.get(container_id).remove(force=True)
        except docker.errors.NotFound:
            return
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot remove container {container_id}: {exc}") from exc

    def remove_containers(self, labels: dict[str, str]) -> int:
        """Force-remove every container carrying all `labels` (orphans of a lost worker)."""
        filters: dict[str, str | list[str] | bool] = {
            "label": [f"{key}={value}" for key, value in labels.items()]
        }
        try:
            containers = self._client.containers.list(all=True, filters=filters)
            for container in containers:
                container.remove(force=True)
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot remove containers: {exc}") from exc
        return len(containers)

    # --- builds --------------------------------------------------------------------------------

    def build(self, spec: ImageBuild, on_line: LineSink, watchdog: Watchdog) -> str:
        """Build with BuildKit, streaming every output line to `on_line`; returns the image id."""
        iidfile = spec.dockerfile.with_name(spec.dockerfile.name + ".iid")
        iidfile.unlink(missing_ok=True)
        command = [self._cli, "build", "--progress=plain", "--iidfile", str(iidfile)]
        command += ["-f", str(spec.dockerfile)]
        if spec.target:
            command += ["--target", spec.target]
        for name, value in spec.build_args.items():
            command += ["--build-arg", f"{name}={value}"]
        for name, value in spec.labels.items():
            command += ["--label", f"{name}={value}"]
        for secret_id, path in spec.secrets.items():
            command += ["--secret", f"id={secret_id},src={path}"]
        command.append(str(spec.context))
        env = os.environ | {"DOCKER_BUILDKIT": "1", "BUILDKIT_PROGRESS": "plain"}
        try:
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise DockerUnavailable(f"cannot run {self._cli}: {exc}") from exc
        tail: collections.deque[str] = collections.deque(maxlen=200)

        def forward(line: str) -> None:
            tail.append(line)
            on_line(line)

        assert process.stdout is not None
        reader = _pump(_chunks(process.stdout), forward)
        try:
            _wait(lambda timeout: _process_done(process, timeout), watchdog)
        except Stopped:
            _terminate(process)
            raise
        finally:
            reader.join(timeout=10)
            process.stdout.close()
        if process.returncode != 0:
            # A build also fails when the daemon goes away mid-build; then it is not the
            # project's fault. Whatever the CLI printed, a daemon that does not answer now is.
            if _daemon_unreachable(tail) or not self._answers():
                raise DockerUnavailable("the Docker daemon was lost during the build")
            raise BuildStepFailed(process.returncode, list(tail))
        image_id = iidfile.read_text().strip()
        iidfile.unlink(missing_ok=True)
        return image_id

    # --- tests ---------------------------------------------------------------------------------

    def run_tests(self, spec: TestRun, on_line: LineSink, watchdog: Watchdog) -> TestOutcome:
        """Run the test command in a locked-down container; removes it whatever happens."""
        marker = f"::imagebuilder-report::{os.urandom(12).hex()}::"
        container = self._sandbox(
            CommandRun(
                image=spec.image,
                command=[],
                build_id=spec.build_id,
                memory_bytes=spec.memory_bytes,
                cpus=spec.cpus,
                pids_limit=spec.pids_limit,
                tmpfs_bytes=spec.tmpfs_bytes,
                user=spec.user,
                role="test",
                entrypoint=["/bin/sh", "-c", _TEST_WRAPPER],
                environment={
                    "IMAGEBUILDER_TEST_COMMAND": spec.command,
                    "IMAGEBUILDER_REPORT_MARKER": marker,
                    "PYTEST_ADDOPTS": f"-p no:cacheprovider --junitxml={JUNIT_PATH}",
                    "CI": "true",
                },
            )
        )
        try:
            return self._run(container, marker, on_line, watchdog)
        finally:
            _remove(container)

    def run_command(
        self, spec: CommandRun, on_line: LineSink, watchdog: Watchdog
    ) -> CommandOutcome:
        """Run `spec.command` in a locked-down container (as the tests run) and wait for it."""
        tail: collections.deque[str] = collections.deque(maxlen=200)

        def forward(line: str) -> None:
            tail.append(line)
            on_line(line)

        container = self._sandbox(spec)
        try:
            outcome = self._run(container, None, forward, watchdog)
        finally:
            _remove(container)
        return CommandOutcome(outcome.exit_code, outcome.oom_killed, list(tail))

    def _sandbox(self, spec: CommandRun) -> Container:
        """A created (not started) container: no network, non-root, no capabilities, read-only
        root with a tmpfs /tmp, memory/CPU/pids limits, labelled with the build."""
        try:
            return self._client.containers.create(
                spec.image,
                command=spec.command or None,
                entrypoint=spec.entrypoint,
                environment={"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1", **spec.environment},
                user=spec.user,
                network_mode="none",
                read_only=True,
                tmpfs={"/tmp": f"rw,nosuid,nodev,exec,size={spec.tmpfs_bytes},mode=1777"},
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                mem_limit=spec.memory_bytes,
                memswap_limit=spec.memory_bytes,
                nano_cpus=int(spec.cpus * 1e9),
                pids_limit=spec.pids_limit,
                labels={"imagebuilder.build-id": spec.build_id, "imagebuilder.role": spec.role},
                detach=True,
            )
        except docker.errors.ImageNotFound as exc:
            raise DockerUnavailable(f"image {spec.image} vanished: {exc}") from exc
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot create the {spec.role} container: {exc}") from exc

    def _run(
        self, container: Container, marker: str | None, on_line: LineSink, watchdog: Watchdog
    ) -> TestOutcome:
        report: list[str] = []
        in_report = False
        report_size = 0

        def route(line: str) -> None:
            nonlocal in_report, report_size
            if marker is not None and line == marker:
                in_report, report_size = True, 0
                report.clear()
            elif in_report:
                report_size += len(line) + 1
                if report_size <= MAX_REPORT_BYTES:
                    report.append(line)
            else:
                on_line(line)

        try:
            container.start()
            stream = container.logs(stream=True, follow=True, stdout=True, stderr=True)
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot start the container: {exc}") from exc
        reader = _pump(stream, route)
        try:
            _wait(lambda timeout: _container_done(container, timeout), watchdog)
        except Stopped:
            _kill(container)
            raise
        finally:
            reader.join(timeout=10)
        try:
            container.reload()
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot inspect the container: {exc}") from exc
        state = container.attrs["State"]
        return TestOutcome(
            exit_code=int(state.get("ExitCode", -1)),
            oom_killed=bool(state.get("OOMKilled")),
            report="\n".join(report) if in_report else None,
        )


def _remove(container: Container) -> None:
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # 409: a removal is already in progress
            raise DockerUnavailable(f"cannot remove container: {exc}") from exc
    except DOCKER_ERRORS as exc:
        raise DockerUnavailable(f"cannot remove container: {exc}") from exc


def _chunks(stream: Any) -> Iterator[bytes]:
    while chunk := stream.read1(65536):
        yield chunk


def _pump(chunks: Iterable[bytes], on_line: LineSink) -> threading.Thread:
    """Read `chunks` on a thread, calling `on_line` for each complete line."""

    def run() -> None:
        splitter = LineSplitter()
        try:
            for chunk in chunks:
                for line in splitter.feed(chunk):
                    on_line(line)
        except DOCKER_ERRORS:
            pass  # the stream ends when the container or process is killed; the waiter reports it
        finally:
            for line in splitter.finish():
                on_line(line)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _wait(done: _Poller, watchdog: Watchdog) -> None:
    """Poll `done` once a second until it is true, or raise Stopped when the watchdog says so."""
    while not done(1.0):
        reason = watchdog()
        if reason is not None:
            raise Stopped(reason)


def _process_done(process: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def _container_done(container: Container, timeout: float) -> bool:
    try:
        container.wait(timeout=timeout)
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
        if "timed out" in str(exc).lower() or isinstance(exc, requests.exceptions.ReadTimeout):
            return False
        raise DockerUnavailable(f"lost the Docker daemon while waiting for tests: {exc}") from exc
    except DOCKER_ERRORS as exc:
        raise DockerUnavailable(f"lost the Docker daemon while waiting for tests: {exc}") from exc
    return True


def _terminate(process: subprocess.Popen[bytes]) -> None:
    # The CLI is its own process group leader; closing its session makes BuildKit cancel the solve.
    for signum, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)


def _kill(container: Container) -> None:
    try:
        container.kill()
    except docker.errors.APIError:
        pass  # already stopped
    except DOCKER_ERRORS as exc:
        raise DockerUnavailable(f"cannot stop the test container: {exc}") from exc


def _daemon_unreachable(tail: Iterable[str]) -> bool:
    text = "\n".join(tail)
    return any(
        needle in text
        for needle in (
            "Cannot connect to the Docker daemon",
            "error during connect",
            "connection reset by peer",
            "transport is closing",
            "server did not provide an image ID",
        )
    )
