"""The CI recipes in docs/ci run as written: their shell commands, taken from the YAML, run in a
copy of a project against the running service, with the client installed the way the recipe
installs it (from this checkout's client/ instead of a git URL). A passing project ends with an
SBOM; a failing one fails the job with the build's exit code and never reaches the SBOM step."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import PROJECTS, ROOT, require
from tests.e2e.conftest import Service

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.redis, pytest.mark.slow]

RECIPES = ROOT / "docs" / "ci"


@dataclass(frozen=True)
class Step:
    name: str
    script: str
    env: dict[str, str]


@dataclass
class JobRun:
    failed_step: str | None
    exit_code: int
    output: str


@pytest.fixture(scope="module")
def runner_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh Python with pip, like a CI runner's: nothing of this checkout installed."""
    uv = shutil.which("uv") or str(ROOT / ".venv" / "bin" / "uv")
    require(Path(uv).exists(), "uv (pip install uv)")
    venv = tmp_path_factory.mktemp("runner") / "venv"
    subprocess.run([uv, "venv", "--seed", "--quiet", "--python", "3.11", str(venv)], check=True)
    return venv / "bin"


@pytest.fixture(scope="module")
def client_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("client-source") / "client"
    shutil.copytree(ROOT / "client", copy, ignore=shutil.ignore_patterns("build", "__pycache__"))
    return copy


def github_steps(expressions: Mapping[str, str]) -> list[Step]:
    workflow = yaml.safe_load((RECIPES / "github-actions.yml").read_text())
    (job,) = workflow["jobs"].values()

    def evaluate(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            expression = match.group(1).strip()
            assert expression in expressions, f"the test cannot evaluate ${{{{ {expression} }}}}"
            return expressions[expression]

        return re.sub(r"\$\{\{(.*?)\}\}", one, text)

    env = {name: evaluate(str(value)) for name, value in job.get("env", {}).items()}
    return [
        Step(step.get("name", "run"), evaluate(step["run"]), env)
        for step in job["steps"]
        if "run" in step
    ]


def gitlab_steps(predefined: Mapping[str, str]) -> list[Step]:
    pipeline = yaml.safe_load((RECIPES / "gitlab-ci.yml").read_text())
    job = pipeline["image"]
    env = dict(predefined)
    for name, value in job.get("variables", {}).items():
        env[name] = re.sub(r"\$(\w+)", lambda m: env.get(m.group(1), ""), str(value))
    # GitLab runs before_script and script in one shell, stopping at the first failure.
    lines = [*job.get("before_script", []), *job["script"]]
    return [Step("script", "\n".join(lines), env)]


def run_job(steps: list[Step], workdir: Path, bin_dir: Path, service_env: dict[str, str]) -> JobRun:
    output = []
    for step in steps:
        env = {
            key: value
            for key, value in os.environ.items()
            if key.startswith(("PIP_", "SSL_CERT", "UV_")) or key in ("HOME", "LANG")
        }
        env |= step.env | service_env | {"PATH": f"{bin_dir}:/usr/bin:/bin"}
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step.script],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        output.append(f"== {step.name}\n{done.stdout}\n{done.stderr}")
        if done.returncode != 0:
            return JobRun(step.name, done.returncode, "\n".join(output))
    return JobRun(None, 0, "\n".join(output))


def checkout(project: str, tmp_path: Path) -> Path:
    workdir = tmp_path / project
    shutil.copytree(PROJECTS / project, workdir)
    return workdir


class TestRecipes:
    def test_github_actions_builds_then_fetches_the_sbom(
        self, service: Service, runner_python: Path, client_source: Path, tmp_path: Path
    ) -> None:
        steps = github_steps(
            {
                "vars.IMAGEBUILDER_URL": service.url,
                "secrets.IMAGEBUILDER_TOKEN": service.token,
                "github.event.repository.name": "recipe-passing",
                "github.sha": "0123abc",
            }
        )
        assert [s.name for s in steps][-1] == "Fetch the SBOM"
        workdir = checkout("passing", tmp_path)
        job = run_job(steps, workdir, runner_python, {"IMAGEBUILDER_CLIENT": str(client_source)})
        assert job.failed_step is None, job.output + service.logs()
        build: dict[str, Any] = json.loads((workdir / "build.json").read_text())
        assert build["status"] == "succeeded"
        assert build["options"]["tag"] == "recipe-passing:0123abc"
        sbom = json.loads((workdir / "sbom.cdx.json").read_text())
        assert sbom["bomFormat"] == "CycloneDX"
        assert json.loads((workdir / "provenance.json").read_text())["subject"]

    def test_gitlab_ci_fails_the_job_with_the_builds_exit_code(
        self, service: Service, runner_python: Path, client_source: Path, tmp_path: Path
    ) -> None:
        steps = gitlab_steps({"CI_PROJECT_NAME": "recipe-failing", "CI_COMMIT_SHORT_SHA": "0a1b"})
        workdir = checkout("failing_test", tmp_path)
        service_env = {
            "IMAGEBUILDER_URL": service.url,
            "IMAGEBUILDER_TOKEN": service.token,
            "IMAGEBUILDER_CLIENT": str(client_source),
        }
        job = run_job(steps, workdir, runner_python, service_env)
        assert (job.failed_step, job.exit_code) == ("script", 1), job.output
        build = json.loads((workdir / "build.json").read_text())
        assert (build["status"], build["error"]["code"]) == ("failed", "tests_failed")
        assert build["options"]["tag"] == "recipe-failing:0a1b"
        assert not (workdir / "sbom.cdx.json").exists()
