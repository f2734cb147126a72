"""The Docker daemon, as the service uses it: the only module that talks to one.

Images are built by the Docker CLI with BuildKit (docker-py only drives the legacy builder, which
has no cache or secret mounts); everything else goes through docker-py. Daemon and CLI failures
are raised as `DockerUnavailable` (through `map_docker_errors`), a build step's failure as
`BuildStepFailed`.

Long operations take a `Watchdog`: called about once a second, it returns why the operation must
stop (cancelled, deadline passed) or None. Stopping kills the build client (BuildKit then cancels
the solve) or the test container.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterable, Iterator
from importlib import resources
from typing import Any, Protocol

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container
from docker.types import LogConfig

from adapters.docker.errors import (
    DOCKER_ERRORS,
    BuildStepFailed,
    DockerUnavailable,
    PushFailed,
    Stopped,
    map_docker_errors,
    unavailable_on_error,
)
from adapters.docker.output import OutputRouter, chunks_of, close_stream, drain, pump
from adapters.docker.runs import (
    JUNIT_PATH,
    REPORT_DIR,
    WORK_DIR,
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

# The test container's entrypoint, a POSIX shell script shipped as package data.
TEST_WRAPPER = (
    resources.files("adapters.docker").joinpath("image_scripts/test_wrapper.sh").read_text()
)


class _Poller(Protocol):
    def __call__(self, timeout: float) -> bool: ...


class DockerEngine:
    def __init__(self, cli: str = "docker", *, timeout: float = 120, instance: str = "") -> None:
        self._cli = cli
        # Labels every container this service makes, so that garbage collection only ever
        # removes its own, never another service's on a shared daemon.
        self._instance = instance
        with map_docker_errors("cannot reach the Docker daemon"):
            # DOCKER_HOST (and DOCKER_TLS_VERIFY, DOCKER_CERT_PATH) select the daemon, for the
            # CLI and docker-py alike.
            self._client = docker.from_env(timeout=int(max(timeout, 1)))

    def close(self) -> None:
        self._client.close()

    def ping(self) -> None:
        with map_docker_errors("the Docker daemon does not answer"):
            self._client.ping()

    def host_name(self) -> str:
        """The name the daemon gives its machine (`docker info`): the build host."""
        with map_docker_errors("the Docker daemon does not answer"):
            name = self._client.info().get("Name")
        return str(name or "unknown")

    def _answers(self) -> bool:
        try:
            self._client.ping()
        except DOCKER_ERRORS:
            return False
        return True

    def image_exists(self, reference: str) -> bool:
        with map_docker_errors(f"cannot inspect image {reference}"):
            try:
                self._client.images.get(reference)
            except docker.errors.ImageNotFound:
                return False
        return True

    def local_tags(self) -> set[str]:
        """Every `repository:tag` the daemon holds, in one call."""
        with map_docker_errors("cannot list images"):
            # The low-level list: one call, no per-image inspect that fails for an image
            # deleted while listing.
            images = self._client.api.images()
        return {
            tag for image in images for tag in image.get("RepoTags") or () if tag != "<none>:<none>"
        }

    def image_info(self, reference: str) -> dict[str, Any]:
        with map_docker_errors(f"cannot inspect image {reference}"):
            attrs: dict[str, Any] = self._client.images.get(reference).attrs
        return attrs

    def tag(self, image_id: str, reference: str) -> None:
        repository, _, tag = reference.rpartition(":")
        if not repository or "/" in tag:
            repository, tag = reference, "latest"
        with map_docker_errors(f"cannot tag {image_id} as {reference}"):
            self._client.images.get(image_id).tag(repository, tag)

    def remove_image(self, reference: str, *, every_tag: bool = False) -> None:
        """Remove an image or tag; a missing one is fine, one still in use is left alone.
        `every_tag`: an image id goes with all its tags (builds that reused a result share it)."""
        with map_docker_errors(f"cannot remove image {reference}"):
            try:
                self._client.images.remove(reference, force=every_tag, noprune=False)
            except docker.errors.ImageNotFound:
                return
            except docker.errors.APIError as exc:
                if exc.status_code == 409:
                    return
                raise

    def read_image_files(
        self, image: str, paths: Iterable[str], *, build_id: str, max_bytes: int = 1024 * 1024
    ) -> dict[str, str | None]:
        """The text of regular files in an image, read from a container that is created, never
        started; None for a path that is missing, not a regular file, or over `max_bytes`."""
        with map_docker_errors(f"cannot create a container of {image}"):
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
        try:
            return {path: self._read_file(container, path, max_bytes) for path in paths}
        finally:
            _remove(container)

    @staticmethod
    def _read_file(container: Container, path: str, max_bytes: int) -> str | None:
        with map_docker_errors(f"cannot read {path} from the image"):
            try:
                stream, stat = container.get_archive(path)
            except docker.errors.NotFound:
                return None
        # A symlink's or a large file's content is not read: the caller treats it as absent.
        if int((stat or {}).get("size", 0)) > max_bytes:
            return None
        buffer = io.BytesIO()
        with map_docker_errors(f"cannot read {path} from the image"):
            for chunk in stream:
                buffer.write(chunk)
                if buffer.tell() > max_bytes + 64 * 1024:
                    return None
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
        with map_docker_errors("cannot list containers"):
            containers = self._client.containers.list(
                all=True, filters={"label": f"imagebuilder.instance={self._instance}"}
            )
        return {c.id or "": c.labels.get("imagebuilder.build-id", "") for c in containers}

    def remove_container(self, container_id: str) -> None:
        with map_docker_errors(f"cannot remove container {container_id}"):
            try:
                self._client.containers.get(container_id).remove(force=True)
            except docker.errors.NotFound:
                return

    def remove_containers(self, labels: dict[str, str]) -> int:
        """Force-remove every container carrying all `labels` (orphans of a lost worker)."""
        filters: dict[str, str | list[str] | bool] = {
            "label": [f"{key}={value}" for key, value in labels.items()]
        }
        with map_docker_errors("cannot remove containers"):
            containers = self._client.containers.list(all=True, filters=filters)
            for container in containers:
                container.remove(force=True)
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
        reader = pump(chunks_of(process.stdout), forward)
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
                entrypoint=["/bin/sh", "-c", TEST_WRAPPER],
                environment={
                    "IMAGEBUILDER_TEST_COMMAND": spec.command,
                    "IMAGEBUILDER_REPORT_MARKER": marker,
                    "IMAGEBUILDER_WORK_DIR": WORK_DIR,
                    "IMAGEBUILDER_REPORT_DIR": REPORT_DIR,
                    "IMAGEBUILDER_JUNIT_PATH": JUNIT_PATH,
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
        with map_docker_errors(f"cannot create the {spec.role} container"):
            try:
                return self._client.containers.create(
                    spec.image,
                    command=spec.command or None,
                    entrypoint=spec.entrypoint,
                    environment={
                        "HOME": "/tmp",
                        "PYTHONDONTWRITEBYTECODE": "1",
                        **spec.environment,
                    },
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
                    # Output is read by attaching, never stored by the daemon: a flood of output
                    # must not fill the host's disk (json-file keeps every line, ~30 bytes of JSON
                    # each).
                    log_config=LogConfig(type=LogConfig.types.NONE),
                    detach=True,
                )
            except docker.errors.ImageNotFound as exc:
                raise DockerUnavailable(f"image {spec.image} vanished: {exc}") from exc

    def _run(
        self, container: Container, marker: str | None, on_line: OutputSink, watchdog: Watchdog
    ) -> TestOutcome:
        output = OutputRouter(marker, on_line)
        with map_docker_errors("cannot attach to the container"):
            # Attached before it starts, so no output is missed. The daemon passes output on only
            # as fast as it is read: a flood is slowed down, never buffered.
            stream = container.attach(stdout=True, stderr=True, stream=True, logs=False)
        try:
            with map_docker_errors("cannot start the container"):
                container.start()
            reader = drain(stream, output)
            try:
                _wait(lambda timeout: _container_done(container, timeout), watchdog)
            except Stopped:
                _kill(container)
                raise
            finally:
                reader.join(timeout=10)
        finally:
            close_stream(stream)
        with map_docker_errors("cannot inspect the container"):
            container.reload()
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
        with map_docker_errors(f"cannot inspect image {reference}"):
            try:
                attrs: dict[str, Any] = self._client.images.get(reference).attrs
            except docker.errors.ImageNotFound:
                return None
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
        with map_docker_errors(f"cannot export image {image_id}"):
            image = self._client.images.get(image_id)
            chunks = image.save(chunk_size=chunk_size, named=name or False)
        return unavailable_on_error(chunks, f"the export of image {image_id} failed")

    def push(
        self, reference: str, auth: dict[str, str] | None, on_line: LineSink | None = None
    ) -> str | None:
        """Push a local tag to its registry; returns the digest the registry gave the manifest.
        Raises PushFailed when the registry refuses it. `auth` goes to the daemon only."""
        repository, tag = _repository_and_tag(reference)
        digest: str | None = None
        with map_docker_errors(f"cannot push {reference}"):
            try:
                messages = self._client.images.push(
                    repository, tag=tag, auth_config=auth, stream=True, decode=True
                )
                for message in messages:
                    if not isinstance(message, dict):
                        continue
                    if message.get("error") or message.get("errorDetail"):
                        detail = message.get("errorDetail") or {}
                        raise PushFailed(
                            str(message.get("error") or detail.get("message") or detail)
                        )
                    aux = message.get("aux")
                    if isinstance(aux, dict) and isinstance(aux.get("Digest"), str):
                        digest = aux["Digest"]
                    if (
                        on_line is not None
                        and message.get("status")
                        and not message.get("progress")
                    ):
                        layer = f"{message['id']}: " if message.get("id") else ""
                        on_line(f"{layer}{message['status']}")
            except docker.errors.APIError as exc:
                if exc.status_code is not None and exc.status_code < 500:
                    raise PushFailed(str(exc.explanation or exc)) from exc
                raise
        return digest


def _remove(container: Container) -> None:
    with map_docker_errors("cannot remove container"):
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: a removal is already in progress
                raise


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
    with map_docker_errors("lost the Docker daemon while waiting for tests"):
        try:
            container.wait(timeout=timeout)
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
            if "timed out" in str(exc).lower() or isinstance(exc, requests.exceptions.ReadTimeout):
                return False
            raise
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
    # An APIError: it has stopped already.
    with (
        map_docker_errors("cannot stop the test container"),
        contextlib.suppress(docker.errors.APIError),
    ):
        container.kill()


def _daemon_unreachable(tail: Iterable[str]) -> bool:
    """Whether the CLI itself said it lost the daemon. Only its own lines count: in plain
    progress every line of a build step starts with `#<step>`, and the closing error quotes the
    failed command, so what a project prints can never make its failure the service's fault."""
    return any(
        line.startswith(("Cannot connect to the Docker daemon", "error during connect"))
        for line in tail
    )


def _repository_and_tag(reference: str) -> tuple[str, str]:
    repository, _, tag = reference.rpartition(":")
    if not repository or "/" in tag:
        return reference, "latest"
    return repository, tag
