"""The build pipeline: from a claimed build to a terminal state.

    claim ─► preparing (extract, detect, render or lint) ─► building (BuildKit) ─► testing
    (locked-down container, JUnit report) ─► scanning (native libraries, boot check) ─► tag
    ─► succeeded

Checks of the runtime image, after the tests pass:
- native libraries: `ldd` over every shared object in its site-packages, in a locked-down
  container; a library that is not found fails the build `missing_native_library`.
- boot: the inferred start command runs in a locked-down container (no network: a server on
  0.0.0.0 is probed from inside it on 127.0.0.1). A web app must answer HTTP on its port before a
  deadline, a command must exit 0 for `--help`; otherwise `boot_failed`, with its output.
A project's own Dockerfile is read by BuildKit's own parser (core.dockerfile.syntax) and linted
(findings in the log and the plan); it is refused `dockerfile_invalid` when it is too large, names a
remote frontend (a syntax directive), cannot be read with certainty, or when a build argument (or
its ARG) starts with BUILDKIT_ (BUILDKIT_SYNTAX also picks a frontend).

Every outcome is a terminal transition: the project's faults are `failed` with a code, a stop
request is `cancelled`, a deadline is `timed_out`, and the service's faults are `error` (or the
build is handed back to the queue while attempts remain; the task decides). The workspace, the
test container and unwanted images are removed whatever happens.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry import trace
from sqlalchemy import Engine, Row, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from adapters.docker import (
    BuildStepFailed,
    CommandRun,
    DockerEngine,
    DockerUnavailable,
    ImageBuild,
    Stopped,
    TestOutcome,
    TestRun,
)
from adapters.docker.bases import available_python_versions
from core.access.secret_box import SecretUnreadable
from core.builds.changes import changes_since_previous, project_of
from core.builds.logs import LogSink, LogStream
from core.builds.options import BuildOptions
from core.builds.preparation import Preparation, PreparationRefused, Prepared, prepare
from core.builds.reuse import release
from core.db import retrying, session_scope, utcnow
from core.detection.detect import Plan
from core.detection.native import NATIVE_RECORD_DIR
from core.detection.test_runner import runner_of
from core.dockerfile.image_user import needs_image_files, unprivileged_user
from core.dockerfile.render import CA_SECRET_ID, FRESH_ARG
from core.dockerfile.syntax import parse as read_dockerfile
from core.models import Build
from core.observability import tracing
from core.results.diagnose import classify_build_failure
from core.results.junit import TestCounts, parse_junit, summarize
from core.results.test_output import pytest_counts, unittest_counts
from core.settings import MiB, Settings
from core.sources.store import source_store
from core.status import BuildStatus, Failure, Phase
from core.supply_chain.provenance import image_labels
from core.transitions import enter_phase, transition
from worker import build_secrets
from worker.reuse import ReuseStep
from worker.supply_chain import base_image_digest, publish_image, scan_image

log = logging.getLogger(__name__)

PYTEST_NO_TESTS = 5
# pytest's exit code when collection errors (or a keyboard interrupt) stopped the session.
PYTEST_INTERRUPTED = 2
# How long a web app may take to answer, and a command to finish `--help`.
BOOT_SECONDS = 30
_BOOT_DEADLINE = "boot_deadline"

# Lists "<shared object>: <library> => not found" for every shared object in the site-packages
# of the image's Python (the venv's, for generated images). Python walks the folders: minimal
# images may lack find(1).
_LDD_WRAPPER = """
py=$(command -v python || command -v python3) || { echo "no python: skipped"; exit 0; }
command -v ldd >/dev/null || { echo "no ldd in the image: skipped"; exit 0; }
exec "$py" -c "$IMAGEBUILDER_LDD"
"""
_LDD_SCRIPT = """import os, site, subprocess
for top in site.getsitepackages():
    for folder, _, names in os.walk(top):
        for name in names:
            if name.endswith(".so") or ".so." in name:
                path = os.path.join(folder, name)
                result = subprocess.run(["ldd", path], capture_output=True, text=True)
                for line in result.stdout.splitlines():
                    if "=> not found" in line:
                        print(f"{path}: {line.strip()}", flush=True)
print("native libraries: checked", flush=True)
"""
# Starts the command in the background and probes its port from inside the container.
_BOOT_WRAPPER = """"$@" &
app=$!
python -c "$IMAGEBUILDER_PROBE" "$app"
status=$?
kill -TERM "$app" 2>/dev/null
exit $status
"""
_BOOT_PROBE = """import os, sys, time, urllib.error, urllib.request
pid, port = int(sys.argv[1]), int(os.environ["IMAGEBUILDER_PORT"])
deadline = time.monotonic() + float(os.environ["IMAGEBUILDER_BOOT_SECONDS"])
def running():
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
while time.monotonic() < deadline:
    if not running():
        print("[imagebuilder] boot check: the process exited before answering", flush=True)
        sys.exit(3)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            code = response.status
    except urllib.error.HTTPError as error:
        code = error.code
    except OSError:
        time.sleep(0.3)
        continue
    print(f"[imagebuilder] boot check: HTTP {code} on port {port}", flush=True)
    sys.exit(0)
print(f"[imagebuilder] boot check: nothing answered on port {port} in time", flush=True)
sys.exit(4)
"""


class ProjectFault(Exception):
    """The project cannot be built or tested: ends the build `failed` with this failure."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Watchdog:
    """Answers "must this build stop?" for the Docker boundary, and beats the heartbeat."""

    def __init__(self, engine: Engine, build_id: str, settings: Settings) -> None:
        self._engine = engine
        self._build_id = build_id
        self._heartbeat_every = settings.heartbeat_seconds
        self._last_beat = 0.0
        self.deadline = float("inf")

    def limit(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def __call__(self) -> str | None:
        if time.monotonic() > self.deadline:
            return BuildStatus.TIMED_OUT.value
        now = time.monotonic()
        try:
            row = self._beat_and_read(now)
        except (OperationalError, InterfaceError):
            return None  # the database is away: keep building; the outcome waits for it
        if row.cancel_requested_at is not None:
            return BuildStatus.CANCELLED.value
        if row.status is not BuildStatus.RUNNING:
            return BuildStatus.CANCELLED.value  # moved by someone else (sweeper, admin)
        return None

    def _beat_and_read(self, now: float) -> Row[BuildStatus, datetime | None]:
        with session_scope(self._engine) as session:
            if now - self._last_beat >= self._heartbeat_every:
                session.execute(
                    update(Build)
                    .where(Build.id == self._build_id, Build.status == BuildStatus.RUNNING)
                    .values(heartbeat_at=utcnow())
                )
                self._last_beat = now
            return session.execute(
                select(Build.status, Build.cancel_requested_at).where(Build.id == self._build_id)
            ).one()


@dataclass
class Result:
    status: BuildStatus
    failure: Failure | None = None
    fields: dict[str, Any] = field(default_factory=dict)


class Pipeline:
    """Runs one claimed build. `run()` never raises for a project's fault; infrastructure faults
    (DockerUnavailable) propagate so the task can retry or end the build `error`."""

    def __init__(
        self, settings: Settings, engine: Engine, docker_engine: DockerEngine, build_id: str
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.docker = docker_engine
        self.build_id = build_id
        self.workspace = settings.workspaces_dir / build_id
        self.watchdog = Watchdog(engine, build_id, settings)
        self.fields: dict[str, Any] = {}
        self._images_to_remove: list[str] = []
        self._provenance_labels: dict[str, str] = {}
        self._users: dict[str, str] = {}
        self.owner = ""
        self.rebuild_of: str | None = None
        self._phase_span: trace.Span | None = None
        # Package index secrets: handed to BuildKit, masked in every log line, removed after.
        self.secrets = build_secrets.BuildSecrets()
        self._test_tail: list[str] = []

    # --- entry ---------------------------------------------------------------------------------

    def run(self, sink: LogSink) -> Result:
        self.sink = sink
        with session_scope(self.engine) as session:
            build = session.get_one(Build, self.build_id)
            options = BuildOptions.model_validate(build.options)
            tag = build.image_tag or ""
            self.source_sha256 = build.source_sha256
            attempt = build.attempts
            self.owner = build.owner
            self.rebuild_of = build.rebuild_of
        self.say(f"build {self.build_id}, attempt {attempt}, on worker {worker_name()}")
        host = self.settings.build_host or self.docker.host_name()
        self._save({"host": host})
        self.say(f"build host: {host}")
        self._start_phase_span(Phase.PREPARING)
        try:
            return self._run(options, tag)
        except ProjectFault as fault:
            self.say(f"failed: {fault.failure.message}")
            return Result(BuildStatus.FAILED, fault.failure, self.fields)
        except Stopped as stop:
            status = BuildStatus(stop.reason)
            cancelled = status is BuildStatus.CANCELLED
            self.say(f"stopped: {'cancel requested' if cancelled else 'deadline passed'}")
            failure = (
                Failure("timed_out", "The build or its tests ran past the time limit.")
                if status is BuildStatus.TIMED_OUT
                else None
            )
            return Result(status, failure, self.fields)
        finally:
            self._end_phase_span()
            self.secrets.remove()

    def _run(self, options: BuildOptions, tag: str) -> Result:
        prepared = self._prepare(options)
        plan = prepared.plan
        self.fields["project"] = project_of(options, plan.project_name)
        dockerfile, generated = prepared.dockerfile_path, prepared.generated
        dockerfile_text = dockerfile.read_text(encoding="utf-8", errors="replace")
        base, root = prepared.base_image, prepared.root
        # The provenance's essentials, as labels of the image itself.
        self._provenance_labels = image_labels(
            source_sha256=self.source_sha256,
            base_image=base,
            base_image_digest=base_image_digest(self.docker, base) if base else None,
        )

        reused = self._reuse(
            prepared.tree, options, dockerfile_text, plan.python_version, tag, generated
        )
        if reused is not None:
            return reused

        self._phase(Phase.BUILDING)
        self.watchdog.limit(self.settings.build_timeout_seconds)
        image_id = self._build(
            root,
            dockerfile,
            "runtime" if generated else None,
            options,
            generated,
        )

        if options.run_tests and plan.test_command is not None:
            self._phase(Phase.TESTING)
            test_target = (
                "test"
                if generated or read_dockerfile(dockerfile_text, max_bytes=None).has_stage("test")
                else None
            )
            test_image = image_id
            if test_target is not None:
                test_image = self._build(root, dockerfile, test_target, options, generated)
                self._images_to_remove.append(test_image)
            self.watchdog.limit(self.settings.test_timeout_seconds)
            self._test(test_image, plan)
        elif options.run_tests and self.settings.require_tests:
            raise ProjectFault(
                Failure("no_tests_found", "No tests were found, and tests are required.")
            )
        else:
            self.say(
                "tests: skipped ("
                + ("option run_tests=false" if not options.run_tests else "none found")
                + ")"
            )

        self._phase(Phase.SCANNING)
        self.watchdog.limit(self.settings.test_timeout_seconds)
        self._check_native_libraries(image_id)
        if generated and (plan.system_packages or plan.extension_modules):
            self._native_record(image_id, plan)
        if generated and plan.extension_modules:
            self._check_extensions(image_id, plan)
        if generated:
            self._check_boot(image_id, plan)
        else:
            self.say("boot check: skipped (the project's own Dockerfile sets how it starts)")
        rejection = scan_image(
            self.settings,
            self.engine,
            self.docker,
            self.build_id,
            image_id,
            tag=tag,
            dockerfile_text=dockerfile_text,
            generated=generated,
            options=options,
            say=self.say,
            watchdog=self.watchdog,
            fields=self.fields,
        )
        if rejection is not None:
            return Result(rejection.status, rejection.failure, self.fields)

        self.docker.tag(image_id, tag)
        self._images_to_remove = [i for i in self._images_to_remove if i != image_id]
        info = self.docker.image_info(image_id)
        self.fields |= {"image_id": image_id, "image_size_bytes": int(info.get("Size", 0))}
        self.say(f"image {tag} ({image_id[:19]}, {int(info.get('Size', 0)) / 1e6:.1f} MB)")
        # After tagging: pushing needs the tag, and a failed push must not untag the image.
        return self._publish(image_id, tag)

    # --- steps ---------------------------------------------------------------------------------

    def _publish(self, image_id: str, tag: str) -> Result:
        """Push (when a registry is set) and record the provenance of the tagged image: the
        build's end, whether it built the image or took an earlier build's."""
        rejection = publish_image(
            self.settings,
            self.engine,
            self.docker,
            self.build_id,
            image_id,
            tag=tag,
            say=self.say,
            enter_phase=self._phase,
            fields=self.fields,
        )
        if rejection is not None:
            return Result(rejection.status, rejection.failure, self.fields)
        return Result(BuildStatus.SUCCEEDED, None, self.fields)

    def _reuse(
        self,
        tree: str,
        options: BuildOptions,
        dockerfile_text: str,
        python: str,
        tag: str,
        generated: bool,
    ) -> Result | None:
        """The result of an earlier build with the same inputs, taken as this build's (and
        published like a built one); None when this build must build."""
        if options.no_cache:
            self.say(
                "reuse: off (no_cache=true): building afresh, without the layer cache"
                if generated
                else "reuse: off (no_cache=true); a project's own Dockerfile is built with the "
                "layer cache (change a line above a step to run it again)"
            )
            return None
        if not self.settings.reuse_results:
            return None
        if self.rebuild_of is not None:
            # Asking for a rebuild is asking for a build (flaky tests, newer dependencies).
            self.say(f"reuse: off for a rebuild of {self.rebuild_of}")
            return None
        step = ReuseStep(
            self.settings,
            self.engine,
            self.docker,
            build_id=self.build_id,
            owner=self.owner,
            say=self.say,
            must_stop=self.watchdog,
        )
        key = step.key(tree, options, dockerfile_text, python, self.secrets.index_urls)
        if key is None:
            return None
        self.fields["reuse_key"] = key
        # Waiting for an identical build is bounded like a build.
        self.watchdog.limit(self.settings.build_timeout_seconds)
        earlier = step.earlier_result(key)
        if earlier is None:
            return None
        self.fields |= step.take(earlier, tag)
        return self._publish(earlier.image_id, tag)

    def _prepare(self, options: BuildOptions) -> Prepared:
        shutil.rmtree(self.workspace, ignore_errors=True)
        self.workspace.mkdir(parents=True)
        # From the store the API wrote it to: a folder on this machine, or the database.
        stored = source_store(self.settings, self.engine)
        source = stored.local_copy(self.source_sha256, self.workspace)
        if source is None:
            raise ProjectFault(
                Failure("source_missing", "The stored source of this build is gone.")
            )
        context = Preparation(
            settings=self.settings,
            owner=self.owner,
            build_id=self.build_id,
            available_versions=available_python_versions(self.settings, self.docker),
            take_credentials=self._take_credentials,
            image_present=self.docker.image_exists,
            say=self.say,
        )
        try:
            prepared = prepare(source, self.workspace, options, context)
        except PreparationRefused as refused:
            if refused.plan is not None:
                self.fields["plan"] = refused.plan.to_dict()
            if refused.dockerfile is not None:
                self._save({"dockerfile": refused.dockerfile, "plan": self.fields["plan"]})
            raise ProjectFault(refused.failure) from refused
        self.fields["plan"] = prepared.plan.to_dict()
        self._save({"dockerfile": prepared.dockerfile, "plan": self.fields["plan"]})
        return prepared

    def _take_credentials(self, root: Path) -> str | None:
        """The package index secrets of this build, with the credentials found in the project's
        files taken out of them; returns the plan's warning about those."""
        try:
            self.secrets = build_secrets.prepare(root, self.engine, self.settings, self.owner)
        except SecretUnreadable as exc:
            raise ProjectFault(Failure("package_index_unreadable", exc.detail)) from exc
        if self.secrets.summary is not None:
            self.say(self.secrets.summary)
        return self.secrets.warning

    def _build(
        self,
        root: Path,
        dockerfile: Path,
        target: str | None,
        options: BuildOptions,
        generated: bool,
    ) -> str:
        self.say(f"docker build{' --target ' + target if target else ''}")
        secrets = {CA_SECRET_ID: self.settings.ca_bundle} if self.settings.ca_bundle else {}
        secrets |= self.secrets.files
        spec = ImageBuild(
            context=root,
            dockerfile=dockerfile,
            target=target,
            build_args=self._build_args(options, generated),
            # Labels that change with every build go on the command line, never in the
            # Dockerfile: the layers stay cached and the generated file stays stable.
            labels={
                "imagebuilder.build-id": self.build_id,
                "org.opencontainers.image.created": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            | self._provenance_labels,
            secrets=secrets,
        )
        try:
            image_id = self.docker.build(spec, self._build_line, self.watchdog)
        except BuildStepFailed as exc:
            tail = [self._redact(line) for line in exc.tail]
            raise ProjectFault(classify_build_failure(tail, generated=generated)) from exc
        self._images_to_remove.append(image_id)
        return image_id

    def _build_args(self, options: BuildOptions, generated: bool) -> dict[str, str]:
        """The user's build arguments; with no_cache, a generated Dockerfile's FRESH_ARG set to
        this build: every step from its first stage on runs again (the test stage, built after,
        reuses what this build just made)."""
        if options.no_cache and generated:
            return options.build_args | {FRESH_ARG: self.build_id}
        return dict(options.build_args)

    def _user(self, image_id: str) -> str:
        """The numeric user the image's processes run as, unless that is root (however it is
        spelled, through the image's own /etc/passwd): then nobody. Resolved once per image."""
        if image_id not in self._users:
            spec = (self.docker.image_info(image_id).get("Config") or {}).get("User") or ""
            files: dict[str, str | None] = {"/etc/passwd": None, "/etc/group": None}
            if needs_image_files(spec):
                files = self.docker.read_image_files(image_id, list(files), build_id=self.build_id)
            user, why = unprivileged_user(spec, files["/etc/passwd"], files["/etc/group"])
            self.say(f"user: {why}")
            self._users[image_id] = user
        return self._users[image_id]

    def _test(self, image_id: str, plan: Plan) -> None:
        command, runner = plan.test_command or "", plan.test_runner or "custom"
        outcome, counts = self._run_tests(image_id, command, runner)
        ran_nothing = outcome.exit_code != 0 and (counts is None or counts.total == 0)
        if plan.test_fallback and ran_nothing and not self._limits_hit(outcome):
            # The runner was a guess and collected nothing: the project's tests may be of a
            # kind only the other runner finds (unittest's test*.py, a load_tests protocol).
            fallback = plan.test_fallback
            self.say(
                f"tests: {runner} ran no test (exit code {outcome.exit_code}); trying {fallback}"
            )
            second, second_counts = self._run_tests(image_id, fallback, runner_of(fallback))
            if second_counts is not None and second_counts.total:
                why = (
                    f"tests: {fallback} ran the tests: {command} ran none (exit code "
                    f"{outcome.exit_code}), so the project's tests are of a kind it does not "
                    "collect"
                )
                plan.reasons.append(why)
                self.say(why)
                command, runner = fallback, runner_of(fallback)
                plan.test_command, plan.test_runner = command, runner
                outcome, counts = second, second_counts
                self.fields["plan"] = plan.to_dict()
            else:
                self.say(f"tests: {fallback} ran no test either")
        tests: dict[str, Any] = {
            "command": command,
            "runner": runner,
            "exit_code": outcome.exit_code,
        }
        tests |= {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
        if counts is not None:
            tests |= {
                "passed": counts.passed,
                "failed": counts.failed,
                "errors": counts.errors,
                "skipped": counts.skipped,
            }
        self.fields["tests"] = tests
        self._verdict(outcome, counts, runner, fallback=plan.test_fallback if ran_nothing else None)

    def _run_tests(
        self, image_id: str, command: str, runner: str
    ) -> tuple[TestOutcome, TestCounts | None]:
        user = self._user(image_id)
        self.say(f"tests: {command} (runner {runner}; no network, user {user}, read-only root)")
        output: collections.deque[str] = collections.deque(maxlen=50)

        def test_line(line: str) -> bool:
            line = self._redact(line)
            output.append(line)
            return self.sink.write(LogStream.TEST, line)  # False: the log is full

        outcome = self.docker.run_tests(
            TestRun(
                image=image_id,
                command=command,
                build_id=self.build_id,
                memory_bytes=self.settings.test_memory_bytes,
                cpus=self.settings.test_cpus,
                pids_limit=self.settings.test_pids_limit,
                tmpfs_bytes=self.settings.test_tmpfs_bytes,
                user=user,
            ),
            test_line,
            self.watchdog,
        )
        counts = parse_junit(outcome.report) if outcome.report else None
        if counts is None and outcome.report:
            self.say("tests: the JUnit report cannot be read; counts from the runner's summary")
        if counts is None:
            counts = unittest_counts(list(output)) or pytest_counts(list(output))
        self.say(
            f"tests: exit code {outcome.exit_code}" + (f", {summarize(counts)}" if counts else "")
        )
        self._test_tail = list(output)
        return outcome, counts

    def _verdict(
        self, outcome: TestOutcome, counts: TestCounts | None, runner: str, *, fallback: str | None
    ) -> None:
        limits = self._limits_hit(outcome)
        for limit in limits:
            self.say(f"tests: the tests {limit}")
        if self.sink.full:
            self.say(f"tests: {outcome.output_bytes / MiB:.1f} MiB of output in all")
        # The command's verdict stands when it passed (a limit may have stopped a child whose
        # failure the tests expected); when it failed, the limit it hit is the likelier reason.
        if outcome.exit_code == 0:
            return
        counted = f" ({summarize(counts)})" if counts is not None and counts.total else ""
        if outcome.oom_killed:
            raise ProjectFault(
                Failure(
                    "oom_killed",
                    f"The tests ran out of memory and were killed{counted}: "
                    f"the limit is {self.settings.test_memory_bytes // MiB} MiB.",
                )
            )
        if limits:
            raise ProjectFault(
                Failure("resource_limit", f"The tests {' and '.join(limits)}{counted}.")
            )
        no_tests = outcome.exit_code == PYTEST_NO_TESTS and (counts is None or counts.total == 0)
        if no_tests:
            if self.settings.require_tests:
                raise ProjectFault(
                    Failure("no_tests_found", "The test command collected no tests.")
                )
            self.say("tests: none collected; not required")
            return
        # Errors while collecting stop pytest (exit code 2) before any test runs; when they are
        # imports of modules not installed, a test requirement is missing (a syntax error in
        # the code stays a failure of the tests).
        interrupted = runner == "pytest" and outcome.exit_code == PYTEST_INTERRUPTED
        nothing_ran = counts is not None and counts.passed == 0 and counts.failed == 0
        if interrupted and nothing_ran and _missing_modules(self._test_tail):
            raise ProjectFault(_not_collected(runner, outcome.exit_code, fallback, self._test_tail))
        if counts is not None and counts.total:
            raise ProjectFault(
                Failure(
                    "tests_failed",
                    f"Tests failed: {summarize(counts)}"
                    + (_service_hint(self._test_tail) if counts.passed == 0 else ""),
                )
            )
        if runner == "custom" and counts is None:
            # A runner of its own may print no counts: its exit code is its verdict.
            raise ProjectFault(
                Failure(
                    "tests_failed",
                    f"Tests failed: the test command exited with {outcome.exit_code}",
                )
            )
        raise ProjectFault(_not_collected(runner, outcome.exit_code, fallback))

    def _limits_hit(self, outcome: TestOutcome) -> list[str]:
        """What the sandbox refused the tests, as phrases ("hit the limit of 256 processes")."""
        limits = []
        if outcome.oom_killed:
            limits.append("had a process killed for lack of memory")
        if outcome.pids_limit_hit:
            limits.append(f"hit the limit of {self.settings.test_pids_limit} processes")
        if outcome.tmp_full:
            limits.append(f"filled /tmp ({self.settings.test_tmpfs_bytes // MiB} MiB)")
        return limits

    def _check(self, spec_image: str, command: list[str], **extra: Any) -> CommandRun:
        return CommandRun(
            image=spec_image,
            command=command,
            build_id=self.build_id,
            memory_bytes=self.settings.test_memory_bytes,
            cpus=self.settings.test_cpus,
            pids_limit=self.settings.test_pids_limit,
            tmpfs_bytes=self.settings.test_tmpfs_bytes,
            user=self._user(spec_image),
            **extra,
        )

    def _check_native_libraries(self, image_id: str) -> None:
        outcome = self.docker.run_command(
            self._check(
                image_id,
                [],
                role="ldd",
                entrypoint=["/bin/sh", "-c", _LDD_WRAPPER],
                environment={"IMAGEBUILDER_LDD": _LDD_SCRIPT},
            ),
            lambda line: None,
            self.watchdog,
        )
        missing = [line for line in outcome.output if "=> not found" in line]
        if not missing:
            skipped = next((line for line in outcome.output if "skipped" in line), None)
            self.say(f"native libraries: {skipped or 'every shared object finds its libraries'}")
            return
        for line in missing:
            self.say(f"native libraries: {line.strip()}")
        library = missing[0].rpartition(": ")[2].partition(" =>")[0]
        needer = missing[0].split(": ", 1)[0]
        libraries = {line.rpartition(": ")[2].split(" =>")[0].strip() for line in missing}
        others = sorted(libraries - {library.strip()})
        raise ProjectFault(
            Failure(
                "missing_native_library",
                f"{library.strip()} is missing from the image at run time (needed by "
                f"{needer.rsplit('/', 1)[-1]}"
                + (f"; also missing: {', '.join(others)}" if others else "")
                + "). Install the package that provides it in the runtime image, or use a "
                "wheel that bundles it.",
            )
        )

    def _native_record(self, image_id: str, plan: Plan) -> None:
        """What the builder installed for the native code, and what the runtime image added for
        the libraries the compiled modules link (the files the generated Dockerfile leaves)."""
        system = f"{NATIVE_RECORD_DIR}/system-packages.txt"
        runtime = f"{NATIVE_RECORD_DIR}/runtime-packages.txt"
        files = self.docker.read_image_files(image_id, [system, runtime], build_id=self.build_id)
        lines = [line.strip() for line in (files[system] or "").splitlines() if line.strip()]
        plan.system_packages_result = lines
        for line in lines:
            state, _, what = line.partition(" ")
            if state == "installed":
                self.say(f"system packages: {what} installed in the builder")
            else:
                warning = (
                    f"system packages: no Debian package for {what.replace('|', ' or ')}"
                    if state == "none"
                    else f"system packages: {line}"
                ) + " (a native extension that needs it is not built; see its check below)"
                plan.warnings.append(warning)
                self.say(f"warning: {warning}")
        needed = (files[runtime] or "").split()
        if needed:
            self.say(f"native libraries: from Debian packages {', '.join(needed)} (in the image)")
        self.fields["plan"] = plan.to_dict()

    def _check_extensions(self, image_id: str, plan: Plan) -> None:
        """Whether each declared extension module is in the installed package: optional ones
        (speedups) fall back to pure Python silently when they fail to compile."""
        outcome = self.docker.run_command(
            self._check(
                image_id,
                ["python", "-I", "-c", _EXTENSION_PROBE, *plan.extension_modules],
                role="extensions",
            ),
            lambda line: None,
            self.watchdog,
        )
        for line in outcome.output:
            marker, _, rest = line.strip().partition(" ")
            if marker != "imagebuilder-extension":
                continue
            name, state, origin = [*rest.split(" ", 2), "", ""][:3]
            if name not in plan.extension_modules:
                continue
            plan.extensions_built[name] = state == "built"
            if state == "built":
                self.say(f"native extensions: {name} built ({origin})")
            else:
                warning = (
                    f"native extensions: {name} was not built, so its pure-Python fallback (if "
                    "any) runs; the build log above says why (often a missing header: a "
                    "system development package)"
                )
                plan.warnings.append(warning)
                self.say(f"warning: {warning}")
        self.fields["plan"] = plan.to_dict()

    def _check_boot(self, image_id: str, plan: Plan) -> None:
        # The image boots as it would be run: able to write in its own folders (an app's
        # instance folder, a SQLite file); still without network, root or capabilities.
        command = plan.start_command or []
        if plan.start_kind == "web" and plan.port is not None:
            spec = self._check(
                image_id,
                command,
                role="boot",
                read_only=False,
                entrypoint=["/bin/sh", "-c", _BOOT_WRAPPER, "imagebuilder-boot"],
                environment={
                    "IMAGEBUILDER_PROBE": _BOOT_PROBE,
                    "IMAGEBUILDER_PORT": str(plan.port),
                    "IMAGEBUILDER_BOOT_SECONDS": str(BOOT_SECONDS),
                },
            )
            what = f"{' '.join(command)} must answer HTTP on port {plan.port}"
        elif plan.start_kind == "cli" and command:
            spec = self._check(image_id, [*command, "--help"], role="boot", read_only=False)
            what = f"{' '.join(command)} --help must exit 0"
        else:
            self.say("boot check: skipped (no start command to check)")
            return
        self.say(f"boot check: {what} (no network, within {BOOT_SECONDS} s)")
        output: list[str] = []
        try:
            outcome = self.docker.run_command(
                spec, self._boot_line(output), self._boot_watchdog(BOOT_SECONDS * 2)
            )
        except Stopped as stop:
            if stop.reason != _BOOT_DEADLINE:
                raise
            if plan.start_kind == "cli":
                self.say(f"boot check: still running after {BOOT_SECONDS * 2} s; it started")
                return
            self._boot_failed(plan, f"The app did not answer in time: {what}.")
            return
        if outcome.exit_code == 0:
            self.say("boot check: passed")
            return
        last = next((line for line in reversed(output) if line.strip()), "")
        self._boot_failed(
            plan,
            f"The image does not start: {what}, but it exited with {outcome.exit_code}"
            + (f": {last.strip()}" if last else "")
            + ("" if not outcome.oom_killed else " (out of memory)"),
        )

    def _boot_failed(self, plan: Plan, message: str) -> None:
        """A start command the project declares must start; a guessed one (a library has no
        site to serve) that does not is a warning in the plan and the log."""
        if plan.start_declared:
            raise ProjectFault(Failure("boot_failed", message))
        warning = (
            f"boot check: {message} The start command was guessed, so the build goes on; "
            "declare one (a Procfile web line or a console script) to have it checked"
        )
        plan.warnings.append(warning)
        self.fields["plan"] = plan.to_dict()
        self.say(f"warning: {warning}")

    def _boot_line(self, output: list[str]) -> Callable[[str], None]:
        def write(line: str) -> None:
            line = self._redact(line)
            output.append(line)
            self.sink.write(LogStream.TEST, line)

        return write

    def _boot_watchdog(self, seconds: float) -> Callable[[], str | None]:
        end = time.monotonic() + seconds

        def check() -> str | None:
            return self.watchdog() or (_BOOT_DEADLINE if time.monotonic() > end else None)

        return check

    # --- helpers -------------------------------------------------------------------------------

    def say(self, message: str) -> None:
        self.sink.write(LogStream.SYSTEM, f"[imagebuilder] {self._redact(message)}")

    def _build_line(self, line: str) -> None:
        self.sink.write(LogStream.BUILD, self._redact(line))

    def _redact(self, text: str) -> str:
        """Without URL credentials, and with this build's index passwords masked."""
        return self.secrets.redact(text)

    def _phase(self, phase: Phase) -> None:
        moved = retrying(self.engine, lambda session: enter_phase(session, self.build_id, phase))
        if not moved:
            raise Stopped(BuildStatus.CANCELLED.value)
        self._start_phase_span(phase)
        self.say(f"phase: {phase}")

    def _start_phase_span(self, phase: Phase) -> None:
        # One span per phase, children of the task's span; a phase ends where the next begins.
        self._end_phase_span()
        self._phase_span = tracing.tracer().start_span(
            f"pipeline.{phase.value}", attributes={"imagebuilder.build_id": self.build_id}
        )

    def _end_phase_span(self) -> None:
        if self._phase_span is not None:
            self._phase_span.end()
            self._phase_span = None

    def _save(self, values: dict[str, Any]) -> None:
        query = update(Build).where(Build.id == self.build_id).values(values)
        retrying(self.engine, lambda session: session.execute(query))

    def cleanup(self) -> None:
        """Remove the workspace and the images nobody asked for. Called once the build is terminal,
        so the user does not wait for it."""
        for image in self._images_to_remove:
            try:
                self.docker.remove_image(image)
            except DockerUnavailable as exc:
                log.warning("could not remove image %s of build %s: %s", image, self.build_id, exc)
        shutil.rmtree(self.workspace, ignore_errors=True)


# Prints, for each module named, whether it is a compiled extension in the installed packages
# (run with -I: the project's source in the working directory does not count).
_EXTENSION_PROBE = """\
import importlib.machinery, importlib.util, sys
for name in sys.argv[1:]:
    try:
        spec = importlib.util.find_spec(name)
    except Exception:
        spec = None
    origin = (spec.origin or "") if spec else ""
    built = origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    print("imagebuilder-extension", name, "built" if built else "missing", origin or "-")
"""


# What a test that needs a service (a database, a cache, the network) prints when it has none.
_NO_SERVICE = re.compile(
    r"Connection refused|could not connect to server|Cannot assign requested address|"
    r"Temporary failure in name resolution|Name or service not known|Network is unreachable",
    re.IGNORECASE,
)


_NO_MODULE = re.compile(r"No module named '([A-Za-z0-9_.]+)'")


def _missing_modules(tail: list[str]) -> list[str]:
    """Top-level modules an ImportError in the output names as not installed."""
    return sorted({m.group(1).split(".")[0] for line in tail for m in _NO_MODULE.finditer(line)})


def _service_hint(tail: list[str]) -> str:
    """Why no test passed, when the output says a connection failed: tests run with no network
    and no services."""
    line = next((line.strip() for line in reversed(tail) if _NO_SERVICE.search(line)), None)
    if line is None:
        return ""
    return (
        f". No test passed, and the output shows a failed connection ({line[:200]}): the tests "
        "run without network or services (databases, caches). Make them use an in-process "
        "substitute (SQLite, a fake) when the service is absent, or give the option "
        "test_command to run the tests that need none."
    )


def _not_collected(
    runner: str, exit_code: int, fallback: str | None = None, tail: list[str] | None = None
) -> Failure:
    """The test command failed before any test ran: collection or usage, not a test's verdict."""
    tried = f" ({fallback} was tried too and ran none)" if fallback else ""
    missing = _missing_modules(tail or [])
    if missing:
        tried += (
            f"; the tests import {', '.join(missing)}, which is not installed: add the package "
            "that provides it to the test requirements"
        )
    hint = {
        "pytest": "an import error of a test module (a test requirement missing), a conftest "
        "that fails, or an option of a plugin that is not installed",
        "django": "the settings module not found or a missing test requirement",
        "unittest": "an import error of a test module (a test requirement missing)",
    }.get(runner, "the runner itself failing")
    return Failure(
        "tests_not_collected",
        f"The test command ({runner}) exited with {exit_code} before any test ran{tried}: usually "
        f"{hint} (see the test log). Name the test requirements in requirements-test.txt (or "
        "a test extra, group or tox environment), or give the option test_command.",
    )


def finish(engine: Engine, build_id: str, result: Result) -> bool:
    """Record the result and move the build to its terminal status, in one transaction; waits out
    a database outage rather than lose the outcome."""

    def record(session: Session) -> bool:
        moved = transition(session, build_id, result.status, failure=result.failure)
        if not moved:
            return False
        if result.fields:
            session.execute(update(Build).where(Build.id == build_id).values(result.fields))
        release(session, build_id=build_id)
        if result.status is BuildStatus.SUCCEEDED:
            build = session.get_one(Build, build_id)
            build.changes = changes_since_previous(session, build)
        return True

    return retrying(engine, record)
