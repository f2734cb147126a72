"""Two owners on one real build daemon: every way one owner could change what another's builds
run on is tried through the real pipeline, and shown refused or harmless, with the victim's image
and the base images unchanged (compared by image id after every test).

(The HTTP side, tags naming a registry host and a revoked bootstrap token, is in test_tenants.)
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine

from adapters.docker import DockerEngine
from core.access.namespaces import cache_scope
from core.builds.options import BuildOptions
from core.errors import TagNotAllowed
from core.settings import Settings
from core.status import BuildStatus
from tests.integration.builder import Builder, Outcome, builder_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@dataclass
class Tenants:
    builder: Builder
    base: str
    victim: str
    attacker: str
    # The victim's image (built first) and the image ids that must never change.
    victim_tag: str
    guarded: dict[str, str]

    def own(self, dockerfile: str, *, owner: str | None = None, **options: object) -> Outcome:
        """Build a project made of `dockerfile` (and a module) as the attacker (or `owner`)."""
        files = {"Dockerfile": dockerfile, "app.py": "print('hello')\n"}
        options.setdefault("run_tests", False)
        build_id = self.builder.submit_files(files, owner=owner or self.attacker, **options)
        return self.builder.run(build_id)


@pytest.fixture
def tenants(
    settings: Settings, sqlite_engine: Engine, docker_engine: DockerEngine
) -> Iterator[Tenants]:
    for builder in builder_for(settings, sqlite_engine, docker_engine):
        suffix = secrets.token_hex(4)  # fresh owners: fresh cache scopes on the shared daemon
        base = settings.runtime_image("3.11")
        tenants = Tenants(builder, base, f"victim{suffix}", f"attacker{suffix}", "", {})
        built = tenants.own(
            f"FROM {base}\nRUN echo 'the victim' > /victim.txt\n",
            owner=tenants.victim,
            tag="team/app:1",
        )
        assert built.build.status is BuildStatus.SUCCEEDED, built.log
        tenants.victim_tag = built.build.image_tag or ""
        guarded = [tenants.victim_tag, base, settings.builder_image("3.11")]
        tenants.guarded = {ref: docker_engine.image_info(ref)["Id"] for ref in guarded}
        yield tenants
        after = {ref: docker_engine.image_info(ref)["Id"] for ref in guarded}
        assert after == tenants.guarded


def refused(outcome: Outcome, *codes: str) -> None:
    assert outcome.build.status is BuildStatus.FAILED, outcome.log
    assert outcome.build.error_code in codes, outcome.log
    assert outcome.build.image_id is None


class TestImageNames:
    def test_a_tag_naming_the_base_image_lands_in_the_owners_namespace(
        self, tenants: Tenants, settings: Settings
    ) -> None:
        outcome = tenants.own(f"FROM {tenants.base}\nRUN echo pwned > /pwned\n", tag=tenants.base)

        assert outcome.build.status is BuildStatus.SUCCEEDED, outcome.log
        namespace = settings.image_namespace
        assert outcome.build.image_tag == f"{namespace}/{tenants.attacker}/{tenants.base}"
        # The victim's next generated build runs on the untouched base: no planted file.
        victim_build = tenants.builder.run(
            tenants.builder.submit("passing", owner=tenants.victim, tag="gen:1")
        )
        assert victim_build.build.status is BuildStatus.SUCCEEDED, victim_build.log
        files = tenants.builder.docker.read_image_files(
            victim_build.build.image_tag or "", ["/pwned"], build_id=victim_build.build.id
        )
        assert files == {"/pwned": None}

    def test_a_production_base_name_or_the_victims_tag_names_only_the_attackers_image(
        self, tenants: Tenants
    ) -> None:
        docker = tenants.builder.docker
        existed = docker.image_exists("python:3.11-slim")
        for tag in ("python:3.11-slim", "team/app:1"):
            outcome = tenants.own(f"FROM {tenants.base}\nRUN echo pwned > /pwned\n", tag=tag)
            assert outcome.build.status is BuildStatus.SUCCEEDED, outcome.log
            assert outcome.build.image_tag != tenants.victim_tag
            assert f"/{tenants.attacker}/" in (outcome.build.image_tag or "")
        assert docker.image_exists("python:3.11-slim") == existed

    def test_a_tag_naming_a_registry_host_is_refused(self, tenants: Tenants) -> None:
        with pytest.raises(TagNotAllowed):
            tenants.builder.submit("passing", owner=tenants.attacker, tag="registry.io/x/app:1")

    @pytest.mark.parametrize(
        "template",
        [
            "FROM {victim}\n",
            "FROM {base}\nCOPY --from={victim} /victim.txt /stolen.txt\n",
            "FROM {base}\nRUN --mount=type=bind,from={victim},target=/v cat /v/victim.txt\n",
            'FROM {base}\nRUN --mount="type=bind,from={victim},target=/v" true\n',
            "FROM {base}\nRUN --mount=TYPE=bind,FROM={victim},TARGET=/v true\n",
            "ARG IMAGE={victim}\nFROM ${{IMAGE}}\n",
            "FROM {base}\nONBUILD COPY --from={victim} /victim.txt /x\n",
            # Each way a hand-written reader disagreed with BuildKit's parser:
            "FROM {base}\nRUN echo \\\u00a0\nFROM {victim}\n",
            "# foo=bar\n# escape=`\nFROM {base} AS a\nFROM \\\n{victim}\n",
            "FROM {base}\nRUN echo \\\\\nFROM {victim}\n",
            "FROM {base}\nRUN \\\n  --mount=type=bind,\\\nfrom={victim},target=/x \\\n  true\n",
        ],
    )
    def test_no_dockerfile_reads_another_owners_image(
        self, tenants: Tenants, template: str
    ) -> None:
        text = template.format(victim=tenants.victim_tag, base=tenants.base)
        refused(tenants.own(text), "base_image_not_allowed", "dockerfile_invalid")

    def test_the_owner_may_build_on_its_own_images(self, tenants: Tenants) -> None:
        outcome = tenants.own(
            f"FROM {tenants.victim_tag}\nRUN cat /victim.txt\n", owner=tenants.victim
        )
        assert outcome.build.status is BuildStatus.SUCCEEDED, outcome.log


class TestFrontends:
    @pytest.mark.parametrize(
        "text",
        [
            "# syntax=docker/dockerfile:1\nFROM {base}\n",
            "#!/usr/bin/env buildctl\n# syntax=evil/frontend\nFROM {base}\n",
            "// syntax=evil/frontend\nFROM {base}\n",
            '{{"syntax": "evil/frontend"}}',
            "ARG BUILDKIT_SYNTAX=evil/frontend\nFROM {base}\n",
            "FROM {base}\nRUN <<EOF\necho\nEOF\n",
        ],
    )
    def test_a_frontend_or_what_buildkit_versions_read_differently_is_refused(
        self, tenants: Tenants, text: str
    ) -> None:
        refused(tenants.own(text.format(base=tenants.base)), "dockerfile_invalid")

    def test_buildkit_build_arguments_are_refused(self) -> None:
        for name in ("BUILDKIT_SYNTAX", "BUILDKIT_CACHE_MOUNT_NS", "buildkit_inline_cache"):
            with pytest.raises(ValidationError, match="BUILDKIT_"):
                BuildOptions(build_args={name: "x"})


def probe_cache(
    docker_cli: str, base: str, tmp_path: Path, mounts: dict[str, str]
) -> dict[str, bool]:
    """Which cache mount ids hold a planted file, seen by a build outside the service (the
    way a generated build of the owner would mount them)."""
    lines = [f"FROM {base}"]
    for number, cache_id in enumerate(mounts.values()):
        lines.append(
            f"RUN --mount=type=cache,id={cache_id},target=/c{number} "
            # Computed, so that BuildKit's echo of the command line cannot match.
            f"if [ -e /c{number}/planted ]; then echo seen-$((1000 + {number})); fi; "
            f"echo nonce {secrets.token_hex(8)}"
        )
    (tmp_path / "Dockerfile").write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        # No --no-cache: it would give the build fresh cache mounts. The nonce re-runs each step.
        [
            docker_cli,
            "build",
            "--progress=plain",
            "--iidfile",
            str(tmp_path / "iid"),
            str(tmp_path),
        ],
        env=os.environ | {"DOCKER_BUILDKIT": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    subprocess.run([docker_cli, "rmi", (tmp_path / "iid").read_text().strip()], check=False)
    output = result.stdout + result.stderr
    return {name: f"seen-{1000 + n}" in output for n, name in enumerate(mounts)}


class TestCaches:
    def test_cache_planting_never_reaches_another_owners_builds(
        self, tenants: Tenants, settings: Settings, tmp_path: Path
    ) -> None:
        victim = cache_scope(tenants.victim)
        outcome = tenants.own(
            f"FROM {tenants.base}\n"
            "RUN --mount=type=cache,target=/root/.cache/uv echo planted > /root/.cache/uv/planted\n"
            f"RUN --mount=type=cache,id={victim}-uv,target=/x,sharing=locked "
            "echo planted > /x/planted\n"
            'RUN --mount="type=cache,ID=/root/.cache/pip,target=/y" echo planted > /y/planted\n'
        )
        assert outcome.build.status is BuildStatus.SUCCEEDED, outcome.log

        seen = probe_cache(
            settings.docker_cli,
            tenants.base,
            tmp_path,
            {
                "victim uv": f"{victim}-uv",
                "victim pip": f"{victim}-pip",
                "unscoped uv": "/root/.cache/uv",
                "unscoped pip": "/root/.cache/pip",
                # The control: the attacker's own scope holds what it planted.
                "attacker's own": f"{cache_scope(tenants.attacker)}//root/.cache/uv",
            },
        )
        assert seen == {
            "victim uv": False,
            "victim pip": False,
            "unscoped uv": False,
            "unscoped pip": False,
            "attacker's own": True,
        }, outcome.log

    def test_a_cache_mount_in_onbuild_is_refused(self, tenants: Tenants) -> None:
        text = f"FROM {tenants.base}\nONBUILD RUN --mount=type=cache,target=/c true\n"
        refused(tenants.own(text), "dockerfile_invalid")


class TestRootUser:
    @pytest.mark.parametrize("spec", ["00", "+0", "toor", "toor:0"])
    def test_tests_never_run_as_uid_zero(self, tenants: Tenants, spec: str) -> None:
        outcome = tenants.own(
            f"FROM {tenants.base}\n"
            "RUN echo 'toor:x:0:0:root again:/root:/bin/sh' >> /etc/passwd\n"
            f"USER {spec}\n",
            run_tests=True,
            test_command='python3 -c \'import os, sys; print("uid", os.getuid()); '
            "sys.exit(os.getuid() == 0)'",
        )
        assert outcome.build.status is BuildStatus.SUCCEEDED, outcome.log
        assert "uid 65534" in outcome.log
        assert "is root (uid 0); running as nobody" in outcome.log


class TestAbuse:
    def test_a_huge_dockerfile_is_refused_and_not_stored(self, tenants: Tenants) -> None:
        # 20 MiB that does not compress past the archive's ratio limit.
        lines = [f"RUN echo {secrets.token_hex(24)}" for _ in range(350_000)]
        outcome = tenants.own(f"FROM {tenants.base}\n" + "\n".join(lines) + "\n")
        refused(outcome, "dockerfile_invalid")
        assert outcome.build.dockerfile is None
        assert len(str(outcome.build.plan)) < 100_000

    def test_a_daemon_error_printed_by_the_project_is_the_projects_failure(
        self, tenants: Tenants
    ) -> None:
        outcome = tenants.own(
            f"FROM {tenants.base}\n"
            "RUN echo 'read: connection reset by peer'; "
            "echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock'; "
            "echo 'error during connect: transport is closing'; exit 1\n"
        )
        refused(outcome, "build_failed")
        assert outcome.build.attempts == 1
        assert tenants.builder.requeued == []
