"""core.detection.ci_workflows: the test job of a GitHub Actions workflow or .gitlab-ci.yml."""

from __future__ import annotations

import re
from pathlib import Path

from core.detection.ci_workflows import CiJob, ci_test_job
from core.detection.test_sources import is_not_for_tests

_RUNNER = re.compile(r"\b(pytest|unittest|manage\.py test)\b")


def job_of(root: Path) -> CiJob | None:
    return ci_test_job(
        root,
        runs_tests=lambda command: bool(_RUNNER.search(command)),
        not_for_tests=is_not_for_tests,
    )


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_github_job_installs_and_commands(tmp_path: Path) -> None:
    write(
        tmp_path,
        ".github/workflows/ci.yml",
        "jobs:\n"
        "  lint:\n"
        "    steps:\n"
        "      - run: pip install flake8 && flake8 && pytest --collect-only\n"
        "  tests:\n"
        "    steps:\n"
        "      - run: |\n"
        "          python -m pip install -U pip wheel\n"
        "          pip install --requirement=req/ci.txt -c constraints.txt \\\n"
        "            -e '.[test,yaml]' 'attrs>=22' -i https://example.org/simple\n"
        "          uv pip install --system ${{ matrix.extra }}\n"
        "      - run: python -m unittest discover -s tests  # the suite\n",
    )
    job = job_of(tmp_path)
    assert job is not None
    assert job.label == ".github/workflows/ci.yml job 'tests'"
    assert job.installs == [
        "wheel",
        "-r req/ci.txt",
        "-c constraints.txt",
        "-e .[test,yaml]",
        "attrs>=22",
    ]
    assert job.skipped == ["${{matrix.extra}}"]
    assert job.commands == ["python -m unittest discover -s tests"]  # YAML drops the comment


def test_gitlab_job_scripts(tmp_path: Path) -> None:
    write(
        tmp_path,
        ".gitlab-ci.yml",
        "stages: [test]\n"
        "variables: {PIP_CACHE_DIR: .cache}\n"
        ".template:\n"
        "  script: [pytest]\n"
        "docs:\n"
        "  script: [pip install sphinx, pytest --doctest-glob=*.rst docs]\n"
        "unit:\n"
        "  before_script: [pip install -r requirements/ci]\n"
        "  script:\n"
        "    - python manage.py test --noinput\n",
    )
    job = job_of(tmp_path)
    assert job is not None
    assert job.label == ".gitlab-ci.yml job 'unit'"
    assert job.installs == ["-r requirements/ci"]
    assert job.commands == ["python manage.py test --noinput"]


def test_no_job_runs_tests(tmp_path: Path) -> None:
    write(tmp_path, ".github/workflows/release.yml", "jobs:\n  build:\n    steps: [{run: make}]\n")
    write(tmp_path, ".gitlab-ci.yml", "- not a mapping\n")
    assert job_of(tmp_path) is None


def test_invalid_or_huge_files_are_skipped(tmp_path: Path) -> None:
    write(tmp_path, ".github/workflows/a.yml", "jobs: [unclosed\n")
    write(tmp_path, ".github/workflows/b.yml", "# " + "x" * 300_000 + "\njobs: {}\n")
    write(
        tmp_path,
        ".github/workflows/c.yml",
        "jobs:\n  t:\n    steps:\n      - run: pip install six && pytest\n",
    )
    job = job_of(tmp_path)
    assert job is not None
    assert job.label == ".github/workflows/c.yml job 't'"
    assert job.installs == ["six"]
