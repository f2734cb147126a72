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
import contextlib
import io
import os
import signal
import subprocess
import tarfile
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
from docker.types import LogConfig

DOCKER_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)
REPORT_DIR = "/tmp/.imagebuilder"
JUNIT_PATH = f"{REPORT_DIR}/junit.xml"
WORK_DIR = "/tmp/.imagebuilder/work"
MAX_REPORT_BYTES = 32 * 1024 * 1024
# A partial line longer than this is passed on as a line: output without newlines cannot grow a
# buffer without bound.
MAX_PARTIAL_LINE = 64 * 1024

# Runs the user's command with a shell, then prints the JUnit report after a marker line so it can
# be read back from the output: the root file system is read-only and /tmp is a tmpfs that dies
# with the container, where `docker cp` cannot reach. Tests often write next to their code
# (instance folders, databases, coverage files), so the working directory is first copied to the
# tmpfs and the tests run in the copy; the image itself stays read-only.
# Once the command ends, whatever it left running (a fork bomb's children, a server) is killed, so
# the wrapper can fork again; then it reports, with builtins only, whether the process limit
# refused a fork (the pids cgroup's "max" event count, v2 or v1 layout) and whether /tmp is full.
_TEST_WRAPPER = f"""mkdir -p {WORK_DIR} 2>/dev/null
source_dir=$(pwd)
if [ "$source_dir" != / ] && cp -R "$source_dir/." {WORK_DIR}/ 2>/dev/null; then
    cd {WORK_DIR}
else
    echo "[imagebuilder] tests run in $source_dir, read-only (it could not be copied to /tmp)"
fi
eval "$IMAGEBUILDER_TEST_COMMAND"
status=$?
kill -KILL -1 2>/dev/null
pids_refused=0
for events in /sys/fs/cgroup/pids.events /sys/fs/cgroup/pids/pids.events; do
    if [ -r "$events" ]; then read -r _ pids_refused < "$events"; break; fi
done
tmp_full=0
mkdir -p {REPORT_DIR} 2>/dev/null
{{ printf x > {REPORT_DIR}/.space; }} 2>/dev/null || tmp_full=1
printf '%s limits pids_refused=%s tmp_full=%s\\n' "$IMAGEBUILDER_REPORT_MARKER" \\
    "$pids_refused" "$tmp_full"
if [ -s {JUNIT_PATH} ]; then
    printf '%s report\\n' "$IMAGEBUILDER_REPORT_MARKER"; cat {JUNIT_PATH}; printf '\\n'
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
# For test output: returns False once it takes no more lines (the log is full); the output is
# then only scanned for the report, not split into lines.
OutputSink = Callable[[str], bool | None]


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


class CutLine(str):
    """A piece of a line longer than MAX_PARTIAL_LINE: its line goes on in the next piece."""

    __slots__ = ()


class LineSplitter:
    """Turns a byte stream into text lines: invalid UTF-8 replaced, partial lines kept for later;
    a line too long to hold comes out in pieces (`CutLine`, all but its last)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""

    def feed(self, data: bytes) -> list[str]:
        self._buffer += self._decoder.decode(data)
        *lines, self._buffer = self._buffer.split("\n")
        while len(self._buffer) > MAX_PARTIAL_LINE:
            lines.append(CutLine(self._buffer[:MAX_PARTIAL_LINE]))
            self._buffer = self._buffer[MAX_PARTIAL_LINE:]
        return lines

    def take_rest(self) -> str:
        """The partial line held for later (and forget it)."""
        rest, self._buffer = self._buffer, ""
        return rest

    def finish(self) -> list[str]:
        rest = self._buffer + self._decoder.decode(b"", final=True)
        self._buffer = ""
        return [rest] if rest else []


class DockerEngine:
    def __init__(self, cli: str = "docker", *, timeout: float = 120, instance: str = "") -> None:
        self._cli = cli
        # Labels every container this service makes, so that garbage collection only ever
        # removes its own, never another service's on a shared daemon.
        self._instance = instance
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

    def host_name(self) -> str:
        """The name the daemon gives its machine (`docker info`): the build host."""
        try:
            name = self._client.info().get("Name")
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"the Docker daemon does not answer: {exc}") from exc
        return str(name or "unknown")

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
            # The low-level list: one call, no per-image inspect that fails for an image
            # deleted while listing.
            images = self._client.api.images()
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot list images: {exc}") from exc
        return {
            tag for image in images for tag in image.get("RepoTags") or () if tag != "<none>:<none>"
        }

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

    def remove_image(self, reference: str, *, every_tag: bool = False) -> None:
        """Remove an image or tag; a missing one is fine, one still in use is left alone.
        `every_tag`: an image id goes with all its tags (builds that reused a result share it)."""
        try:
            self._client.images.remove(reference, force=every_tag, noprune=False)
        except docker.errors.ImageNotFound:
            return
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                return
            raise DockerUnavailable(f"cannot remove image {reference}: {exc}") from exc
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot remove image {reference}: {exc}") from exc

    def read_image_files(
        self, image: str, paths: Iterable[str], *, build_id: str, max_bytes: int = 1024 * 1024
    ) -> dict[str, str | None]:
        """The text of regular files in an image, read from a container that is created, never
        started; None for a path that is missing, not a regular file, or over `max_bytes`."""
        try:
            container = self._client.containers.create(
                image,
                # Never run: any command will do, even one the image lacks.
                entrypoint=["/imagebuilder-never-started"],
                network_mode="none",
                labels={
                    "imagebuilder.build-id": build_id,
                    "imagebuilder.role": "inspect",
                    "imagebuilder.instance": self._instance,
                },
            )
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot create a container of {image}: {exc}") from exc
        try:
            return {path: self._read_file(container, path, max_bytes) for path in paths}
        finally:
            _remove(container)

    @staticmethod
    def _read_file(container: Container, path: str, max_bytes: int) -> str | None:
        try:
            stream, stat = container.get_archive(path)
        except docker.errors.NotFound:
            return None
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot read {path} from the image: {exc}") from exc
        # A symlink's or a large file's content is not read: the caller treats it as absent.
        if int((stat or {}).get("size", 0)) > max_bytes:
            return None
        buffer = io.BytesIO()
        try:
            for chunk in stream:
                buffer.write(chunk)
                if buffer.tell() > max_bytes + 64 * 1024:
                    return None
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot read {path} from the image: {exc}") from exc
        buffer.seek(0)
        with tarfile.open(fileobj=buffer) as archive:
            member = next(iter(archive.getmembers()), None)
            if member is None or not member.isreg():
                return None
            extracted = archive.extractfile(member)
            if extracted is None:
                return None
            return extracted.read(max_bytes).decode("utf-8", errors="replace")

    def build_containers(self) -> dict[str, str]:
        """Every container this service instance made: container id -> build id."""
        try:
            containers = self._client.containers.list(
                all=True, filters={"label": f"imagebuilder.instance={self._instance}"}
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

    def run_tests(self, spec: TestRun, on_line: OutputSink, watchdog: Watchdog) -> TestOutcome:
        """Run the test command in a locked-down container; removes it whatever happens.
        Output lines go to `on_line` until it returns False; later output is only counted."""
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
                read_only=spec.read_only,
                tmpfs={"/tmp": f"rw,nosuid,nodev,exec,size={spec.tmpfs_bytes},mode=1777"},
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                mem_limit=spec.memory_bytes,
                memswap_limit=spec.memory_bytes,
                nano_cpus=int(spec.cpus * 1e9),
                pids_limit=spec.pids_limit,
                labels={
                    "imagebuilder.build-id": spec.build_id,
                    "imagebuilder.role": spec.role,
                    "imagebuilder.instance": self._instance,
                },
                # Output is read by attaching, never stored by the daemon: a flood of output must
                # not fill the host's disk (json-file keeps every line, ~30 bytes of JSON each).
                log_config=LogConfig(type=LogConfig.types.NONE),
                detach=True,
            )
        except docker.errors.ImageNotFound as exc:
            raise DockerUnavailable(f"image {spec.image} vanished: {exc}") from exc
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot create the {spec.role} container: {exc}") from exc

    def _run(
        self, container: Container, marker: str | None, on_line: OutputSink, watchdog: Watchdog
    ) -> TestOutcome:
        output = OutputRouter(marker, on_line)
        try:
            # Attached before it starts, so no output is missed. The daemon passes output on only
            # as fast as it is read: a flood is slowed down, never buffered.
            stream = container.attach(stdout=True, stderr=True, stream=True, logs=False)
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot attach to the container: {exc}") from exc
        try:
            try:
                container.start()
            except DOCKER_ERRORS as exc:
                raise DockerUnavailable(f"cannot start the container: {exc}") from exc
            reader = _drain(stream, output)
            try:
                _wait(lambda timeout: _container_done(container, timeout), watchdog)
            except Stopped:
                _kill(container)
                raise
            finally:
                reader.join(timeout=10)
        finally:
            _close_stream(stream)
        try:
            container.reload()
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot inspect the container: {exc}") from exc
        state = container.attrs["State"]
        return TestOutcome(
            exit_code=int(state.get("ExitCode", -1)),
            oom_killed=bool(state.get("OOMKilled")),
            report=output.report_text if output.in_report else None,
            pids_limit_hit=output.limits.get("pids_refused", "0") not in ("", "0"),
            tmp_full=output.limits.get("tmp_full") == "1",
            output_bytes=output.total_bytes,
        )

    # --- supply chain --------------------------------------------------------------------------

    def find_image(self, reference: str) -> dict[str, Any] | None:
        """The image's attributes, or None when the daemon does not have it."""
        try:
            attrs: dict[str, Any] = self._client.images.get(reference).attrs
        except docker.errors.ImageNotFound:
            return None
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot inspect image {reference}: {exc}") from exc
        return attrs

    def run_capture(self, spec: CommandRun, watchdog: Watchdog, *, max_bytes: int) -> CapturedRun:
        """Run `spec` in the locked-down container (as `run_command` does) and keep its output
        lines, up to `max_bytes`; `truncated` says that more came."""
        lines: list[str] = []
        size = 0
        truncated = False

        def keep(line: str) -> bool:
            nonlocal size, truncated
            size += len(line) + 1
            if size > max_bytes:
                truncated = True
                return False
            lines.append(line)
            return True

        container = self._sandbox(spec)
        try:
            outcome = self._run(container, None, keep, watchdog)
        finally:
            _remove(container)
        return CapturedRun(outcome.exit_code, outcome.oom_killed, lines, truncated)

    def save_image(
        self, image_id: str, *, name: str | None = None, chunk_size: int = 1024 * 1024
    ) -> Iterator[bytes]:
        """`docker save` of one image, as tar chunks streamed from the daemon (nothing is held
        beyond one chunk). `name`, a tag of the image, goes into the archive so that
        `docker load` restores it."""
        try:
            image = self._client.images.get(image_id)
            chunks = image.save(chunk_size=chunk_size, named=name or False)
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot export image {image_id}: {exc}") from exc
        return _unavailable_on_error(chunks, f"the export of image {image_id} failed")

    def push(
        self, reference: str, auth: dict[str, str] | None, on_line: LineSink | None = None
    ) -> str | None:
        """Push a local tag to its registry; returns the digest the registry gave the manifest.
        Raises PushFailed when the registry refuses it. `auth` goes to the daemon only."""
        repository, tag = _repository_and_tag(reference)
        digest: str | None = None
        try:
            messages = self._client.images.push(
                repository, tag=tag, auth_config=auth, stream=True, decode=True
            )
            for message in messages:
                if not isinstance(message, dict):
                    continue
                if message.get("error") or message.get("errorDetail"):
                    detail = message.get("errorDetail") or {}
                    raise PushFailed(str(message.get("error") or detail.get("message") or detail))
                aux = message.get("aux")
                if isinstance(aux, dict) and isinstance(aux.get("Digest"), str):
                    digest = aux["Digest"]
                if on_line is not None and message.get("status") and not message.get("progress"):
                    layer = f"{message['id']}: " if message.get("id") else ""
                    on_line(f"{layer}{message['status']}")
        except docker.errors.APIError as exc:
            if exc.status_code is not None and exc.status_code < 500:
                raise PushFailed(str(exc.explanation or exc)) from exc
            raise DockerUnavailable(f"cannot push {reference}: {exc}") from exc
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot push {reference}: {exc}") from exc
        return digest


class OutputRouter:
    """Routes a container's output. Lines go to `on_line` until it wants no more; from then on
    the bytes are only scanned for the wrapper's marker, which is cheap even for gigabytes. After
    the marker, lines belong to the wrapper: its findings (`limits`) and the JUnit report."""

    def __init__(self, marker: str | None, on_line: OutputSink) -> None:
        self._marker = marker
        self._marker_bytes = marker.encode() if marker else b""
        self._on_line = on_line
        self._splitter = LineSplitter()
        self._forwarding = True
        self._carry = b""
        self.in_wrapper = False
        self.in_report = False
        self.report: list[str] = []
        self._report_size = 0
        self.limits: dict[str, str] = {}
        self.total_bytes = 0

    def feed(self, chunk: bytes) -> None:
        if not self.in_wrapper:
            self.total_bytes += len(chunk)
        if self.in_wrapper or self._forwarding:
            self._lines(self._splitter.feed(chunk))
            return
        if not self._marker_bytes:
            return
        data = self._carry + chunk
        found = data.find(self._marker_bytes)
        if found < 0:
            self._carry = data[-(len(self._marker_bytes) - 1) :]
            return
        self._carry = b""
        self.in_wrapper = True
        self._splitter = LineSplitter()
        self._lines(self._splitter.feed(data[found:]))

    def finish(self) -> None:
        self._lines(self._splitter.finish())

    def _lines(self, lines: list[str]) -> None:
        for line in lines:
            self._line(line)
        if not (self.in_wrapper or self._forwarding):
            # Output stopped being taken: what remains of a partial line may hold the marker.
            self._carry = self._splitter.take_rest().encode()

    def _line(self, line: str) -> None:
        at = line.find(self._marker) if self._marker else -1
        if at >= 0:
            if at > 0 and not self.in_wrapper:
                self._forward(line[:at])
            self.in_wrapper = True
            self._wrapper_line(line[at + len(self._marker or "") :].strip())
        elif self.in_report:
            # pytest writes its JUnit report on one line: pieces of a cut line are joined again.
            piece = line if isinstance(line, CutLine) else line + "\n"
            self._report_size += len(piece)
            if self._report_size <= MAX_REPORT_BYTES:
                self.report.append(piece)
        elif not self.in_wrapper:
            self._forward(line)

    @property
    def report_text(self) -> str:
        """The JUnit report as the wrapper printed it (without the newline it adds)."""
        return "".join(self.report).removesuffix("\n")

    def _forward(self, line: str) -> None:
        if self._forwarding and self._on_line(line) is False:
            self._forwarding = False

    def _wrapper_line(self, command: str) -> None:
        kind, _, rest = command.partition(" ")
        if kind == "limits":
            self.limits = dict(item.partition("=")[::2] for item in rest.split())
        elif kind == "report":
            self.in_report, self._report_size = True, 0
            self.report.clear()


def _drain(chunks: Iterable[bytes], output: OutputRouter) -> threading.Thread:
    """Feed `chunks` to `output` on a thread."""

    def run() -> None:
        try:
            for chunk in chunks:
                output.feed(chunk)
        except (*DOCKER_ERRORS, ValueError):
            pass  # the stream ends (or is closed) when the container dies; the waiter reports it
        finally:
            output.finish()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _close_stream(stream: Any) -> None:
    with contextlib.suppress(*DOCKER_ERRORS):  # a daemon that went away is reported elsewhere
        stream.close()  # shuts the socket down if the stream is still open
        # docker-py leaves the response, which holds the socket, to the garbage collector.
        response = getattr(stream, "_response", None)
        if response is not None:
            response.close()


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
    """Whether the CLI itself said it lost the daemon. Only its own lines count: in plain
    progress every line of a build step starts with `#<step>`, and the closing error quotes the
    failed command, so what a project prints can never make its failure the service's fault."""
    return any(
        line.startswith(("Cannot connect to the Docker daemon", "error during connect"))
        for line in tail
    )


# --- supply chain --------------------------------------------------------------------------------


class PushFailed(Exception):
    """The registry (or the daemon on its behalf) refused a push: credentials, name, quota."""


@dataclass(frozen=True)
class CapturedRun:
    exit_code: int
    oom_killed: bool
    lines: list[str]
    truncated: bool


def _repository_and_tag(reference: str) -> tuple[str, str]:
    repository, _, tag = reference.rpartition(":")
    if not repository or "/" in tag:
        return reference, "latest"
    return repository, tag


def _unavailable_on_error(chunks: Iterator[bytes], what: str) -> Iterator[bytes]:
    try:
        yield from chunks
    except DOCKER_ERRORS as exc:
        raise DockerUnavailable(f"{what}: {exc}") from exc
