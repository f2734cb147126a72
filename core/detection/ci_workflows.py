"""The test job of a project's CI configuration: what it installs and how it runs the tests.

Read when the project's own test automation (tox, nox) names nothing: GitHub Actions workflows
(`.github/workflows/*.yml`, each job's `run:` steps) and `.gitlab-ci.yml` (each job's
`before_script` and `script`). Parsed with PyYAML's safe loader (no tags, no code), bounded in
size and in the number of nodes walked. The chosen job is the first whose commands run a test
runner and whose name is not for something else (docs, lint); from it come the `pip install`
arguments (`-r file`, `-e .[test]`, package names) and the test commands. Arguments holding CI
variables (`${{ matrix.x }}`, `$VAR`) cannot be known here and are left out, said so.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 256 * 1024
MAX_NODES = 20_000
_PATTERNS = (".github/workflows/*.yml", ".github/workflows/*.yaml", ".gitlab-ci.yml")
# GitLab's top-level keys that are not jobs.
_GITLAB_KEYWORDS = frozenset(
    {"stages", "variables", "default", "include", "workflow", "image", "services", "cache"}
)
_SEPARATORS = re.compile(r"\s*(?:&&|\|\||;)\s*")
# Options of `pip install` that take a value (left out with it, unless -r/-c/-e).
_VALUE_OPTIONS = frozenset(
    {"-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--target", "-t", "--prefix"}
)


@dataclass
class CiJob:
    label: str
    # Requirement lines as a tox `deps` list reads them: "-r file", "-e .[test]", "name>=1".
    installs: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def ci_test_job(
    root: Path, *, runs_tests: Callable[[str], bool], not_for_tests: Callable[[str], bool]
) -> CiJob | None:
    """The first CI job that runs the tests, or None."""
    for pattern in _PATTERNS:
        for path in sorted(root.glob(pattern)):
            relative = path.relative_to(root).as_posix()
            for name, commands in _jobs(path, gitlab=pattern == ".gitlab-ci.yml"):
                if not_for_tests(name) or not any(runs_tests(c) for c in commands):
                    continue
                job = CiJob(label=f"{relative} job {name!r}")
                for command in commands:
                    if runs_tests(command) and not _install_args(command):
                        job.commands.append(command)
                    for arg_line in _install_lines(command, job):
                        if arg_line not in job.installs:
                            job.installs.append(arg_line)
                return job
    return None


def _jobs(path: Path, *, gitlab: bool) -> list[tuple[str, list[str]]]:
    if not path.is_file() or path.stat().st_size > MAX_BYTES:
        return []
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace"))
    except yaml.YAMLError:
        return []
    if not isinstance(document, dict):
        return []
    budget = [MAX_NODES]
    jobs: list[tuple[str, list[str]]] = []
    if gitlab:
        for name, job in document.items():
            is_job = isinstance(name, str) and isinstance(job, dict)
            if is_job and not name.startswith(".") and name not in _GITLAB_KEYWORDS:
                scripts = [job.get("before_script"), job.get("script")]
                jobs.append((name, _commands(scripts, budget)))
        return jobs
    github_jobs = document.get("jobs")
    if not isinstance(github_jobs, dict):
        return []
    for name, job in github_jobs.items():
        if not isinstance(job, dict) or not isinstance(job.get("steps"), list):
            continue
        runs = [step.get("run") for step in job["steps"] if isinstance(step, dict)]
        jobs.append((str(name), _commands(runs, budget)))
    return jobs


def _commands(scripts: list[Any], budget: list[int]) -> list[str]:
    """Shell commands of `run:` blocks or `script:` lists, continuations joined and `&&`/`;`
    split."""
    texts: list[str] = []

    def walk(value: Any) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            return
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for script in scripts:
        walk(script)
    commands: list[str] = []
    for text in texts:
        for line in text.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                commands += [part for part in _SEPARATORS.split(line) if part]
    return commands


def _install_args(command: str) -> list[str] | None:
    """The arguments after `pip install` (`python -m pip`, `uv pip`, `pip3`), or None."""
    # A GitHub expression is one word, whatever spaces it holds.
    command = re.sub(r"\$\{\{.*?\}\}", lambda m: re.sub(r"\s+", "", m.group(0)), command)
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return None
    for index, word in enumerate(words[:-1]):
        if re.fullmatch(r"(.*/)?pip3?(\.\d+)?", word) and words[index + 1] == "install":
            return words[index + 2 :]
    return None


def _install_lines(command: str, job: CiJob) -> list[str]:
    args = _install_args(command)
    if args is None:
        return []
    lines: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        option = arg.split("=", 1)[0]
        value: str | None = None
        if option in ("-r", "--requirement", "-c", "--constraint", "-e", "--editable"):
            if "=" in arg:
                value = arg.split("=", 1)[1]
            elif index + 1 < len(args):
                value = args[index + 1]
                index += 1
            if value is not None:
                short = {"--requirement": "-r", "--constraint": "-c", "--editable": "-e"}
                lines.append(f"{short.get(option, option)} {value}")
        elif option in _VALUE_OPTIONS:
            index += 0 if "=" in arg else 1
        elif not arg.startswith("-") and arg not in ("pip", "tox", "nox"):
            lines.append(arg)
        index += 1
    kept = []
    for line in lines:
        if "$" in line:
            job.skipped.append(line)
        else:
            kept.append(line)
    return kept
