"""Project detection: read a Python project's files and decide how to build and test it.

Pure: it reads a directory and returns a `Plan`; nothing runs. Every decision carries its reason,
shown to the user in the log and the build resource.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from core.requirements import RequirementsError, read_requirements

TEST_EXTRAS = ("test", "tests", "testing", "dev")
TEST_REQUIREMENT_FILES = (
    "requirements-test.txt",
    "requirements-tests.txt",
    "requirements-testing.txt",
    "requirements-dev.txt",
    "test-requirements.txt",
    "dev-requirements.txt",
    "requirements/test.txt",
    "requirements/tests.txt",
    "requirements/dev.txt",
)
RUNTIME_REQUIREMENT_FILES = ("requirements.txt", "requirements/base.txt", "requirements/prod.txt")
SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".venv",
        "venv",
        "env",
        ".tox",
        ".nox",
        "node_modules",
        "__pycache__",
        "build",
        "dist",
        ".mypy_cache",
        ".pytest_cache",
        "site-packages",
    }
)
_TEST_FILE = re.compile(r"^(test_.*|.*_test)\.py$")


class DetectionError(ValueError):
    """The project cannot be built as given; the message says what to fix."""


@dataclass
class Plan:
    python_version: str
    requirements: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    test_requirements: list[str] = field(default_factory=list)
    # Build and install the project itself (it has a build system), after its source is copied.
    install_project: bool = False
    # Its dependencies are only known by building it (dynamic metadata, setup.py).
    dependencies_from_source: bool = False
    dockerfile: str | None = None
    test_command: str | None = None
    start_command: list[str] | None = None
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def detect(
    root: Path,
    *,
    available_versions: Sequence[str],
    default_version: str,
    requested_version: str | None = None,
    dockerfile: str | None = None,
    test_command: str | None = None,
) -> Plan:
    """Decide how to build and test the project at `root`."""
    pyproject = _load_pyproject(root)
    project = pyproject.get("project", {}) if isinstance(pyproject.get("project"), dict) else {}
    plan = Plan(python_version=default_version)
    plan.python_version = _choose_python(
        root, project, plan, available_versions, default_version, requested_version
    )
    if dockerfile is not None:
        if not (root / dockerfile).is_file():
            raise DetectionError(f"dockerfile {dockerfile!r} is not a file in the project")
        plan.dockerfile = dockerfile
        plan.reasons.append(f"dockerfile: the project's own {dockerfile} (option dockerfile)")
    elif (root / "Dockerfile").is_file():
        plan.dockerfile = "Dockerfile"
        plan.reasons.append("dockerfile: the project's own Dockerfile")
    _dependencies(root, pyproject, project, plan)
    _tests(root, pyproject, project, plan, test_command)
    plan.start_command = _start_command(root, project, plan)
    return plan


def _load_pyproject(root: Path) -> dict[str, Any]:
    path = root / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DetectionError(f"pyproject.toml is not valid TOML: {exc}") from exc


# --- Python version ---------------------------------------------------------------------------


def _choose_python(
    root: Path,
    project: dict[str, Any],
    plan: Plan,
    available: Sequence[str],
    default: str,
    requested: str | None,
) -> str:
    if requested is not None:
        plan.reasons.append(f"python {requested}: option python_version")
        return requested
    pinned = _pinned_version(root)
    if pinned is not None:
        version, source = pinned
        plan.reasons.append(f"python {version}: {source}")
        return version
    spec_text = project.get("requires-python")
    if isinstance(spec_text, str):
        try:
            spec = SpecifierSet(spec_text)
        except InvalidSpecifier:
            plan.warnings.append(f"requires-python {spec_text!r} is not a valid specifier; ignored")
        else:
            candidates = [
                v
                for v in available
                if spec.contains(Version(v + ".0"), prereleases=True)
                or spec.contains(Version(v + ".99"), prereleases=True)
            ]
            if default in candidates:
                plan.reasons.append(
                    f"python {default}: the default, allowed by requires-python {spec_text!r}"
                )
                return default
            if candidates:
                chosen = max(candidates, key=Version)
                plan.reasons.append(
                    f"python {chosen}: newest available allowed by requires-python {spec_text!r}"
                )
                return chosen
            raise DetectionError(
                f"requires-python {spec_text!r} allows none of the available "
                f"Python versions ({', '.join(available)})"
            )
    plan.reasons.append(f"python {default}: the service default (nothing in the project pins one)")
    return default


def _pinned_version(root: Path) -> tuple[str, str] | None:
    for name, pattern in (
        (".python-version", r"^\s*(?:python-?)?(3\.\d+)"),
        ("runtime.txt", r"^\s*python-(3\.\d+)"),
    ):
        path = root / name
        if path.is_file():
            match = re.match(pattern, path.read_text(encoding="utf-8", errors="replace"))
            if match:
                return match.group(1), f"{name} says {match.group(1)}"
    return None


# --- Dependencies ------------------------------------------------------------------------------


def _dependencies(
    root: Path, pyproject: dict[str, Any], project: dict[str, Any], plan: Plan
) -> None:
    has_build = "build-system" in pyproject or bool(project) or (root / "setup.py").is_file()
    runtime_file = next(
        (name for name in RUNTIME_REQUIREMENT_FILES if (root / name).is_file()), None
    )
    if runtime_file is not None:
        requirements = _read_requirements(root, runtime_file)
        plan.requirements += requirements.lines
        plan.constraints += requirements.constraints
        plan.reasons.append(f"dependencies: {' + '.join(requirements.files)}")
        if any(path.split("[", 1)[0] == "." for path in requirements.local_paths):
            plan.install_project = True
        for path in requirements.local_paths:
            if path.split("[", 1)[0] != ".":
                plan.warnings.append(f"local requirement {path!r} is installed with the source")
                plan.dependencies_from_source = True
    if project:
        dynamic = project.get("dynamic", [])
        plan.install_project = True
        if "dependencies" in dynamic:
            plan.dependencies_from_source = True
            plan.reasons.append(
                "dependencies: pyproject.toml declares them dynamic; installed with the project"
            )
        else:
            plan.requirements += _strings(project.get("dependencies", []))
            plan.reasons.append("dependencies: [project.dependencies] in pyproject.toml")
    elif (root / "setup.py").is_file():
        plan.install_project = True
        plan.dependencies_from_source = True
        plan.reasons.append("dependencies: setup.py (installed with the project)")
    elif has_build and runtime_file is None:
        plan.install_project = True
        plan.dependencies_from_source = True
        plan.reasons.append(
            "dependencies: pyproject.toml has a [build-system]; installed with the project"
        )
    if not plan.requirements and not plan.install_project:
        plan.reasons.append("dependencies: none declared")


def _read_requirements(root: Path, relative: str) -> Any:
    try:
        return read_requirements(root, relative)
    except RequirementsError as exc:
        raise DetectionError(str(exc)) from exc


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


# --- Tests --------------------------------------------------------------------------------------


def _tests(
    root: Path,
    pyproject: dict[str, Any],
    project: dict[str, Any],
    plan: Plan,
    test_command: str | None,
) -> None:
    own_name = canonicalize_name(project["name"]) if isinstance(project.get("name"), str) else None
    extras = project.get("optional-dependencies", {})
    for extra in TEST_EXTRAS:
        if isinstance(extras, dict) and extra in extras:
            plan.test_requirements += _without_self(_strings(extras[extra]), own_name)
            plan.reasons.append(f"test dependencies: [project.optional-dependencies] {extra}")
    groups = pyproject.get("dependency-groups", {})
    for group in TEST_EXTRAS:
        if isinstance(groups, dict) and group in groups:
            plan.test_requirements += _without_self(_strings(groups[group]), own_name)
            plan.reasons.append(f"test dependencies: [dependency-groups] {group}")
    for name in TEST_REQUIREMENT_FILES:
        if (root / name).is_file():
            requirements = _read_requirements(root, name)
            plan.test_requirements += requirements.lines
            plan.reasons.append(f"test dependencies: {name}")
    plan.test_requirements = _dedupe(plan.test_requirements)

    if test_command is not None:
        plan.test_command = test_command
        plan.reasons.append(f"tests: {test_command!r} (option test_command)")
    else:
        evidence = _test_evidence(root, pyproject)
        if evidence is None:
            plan.reasons.append(
                "tests: none found (no tests/ folder, test_*.py file or pytest configuration)"
            )
            return
        plan.test_command = "python -m pytest"
        plan.reasons.append(f"tests: python -m pytest because {evidence}")
    if "pytest" in plan.test_command and not _mentions(plan.test_requirements, "pytest"):
        plan.test_requirements.append("pytest")


def _without_self(requirements: list[str], own_name: str | None) -> list[str]:
    # "myproject[extra]" inside myproject's own extras means "these other extras too".
    return [req for req in requirements if _name_of(req) != own_name]


def _name_of(requirement: str) -> str | None:
    try:
        return canonicalize_name(Requirement(requirement).name)
    except InvalidRequirement:
        return None


def _mentions(requirements: list[str], name: str) -> bool:
    return any(_name_of(req) == name for req in requirements)


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _test_evidence(root: Path, pyproject: dict[str, Any]) -> str | None:
    if "pytest" in pyproject.get("tool", {}):
        return "pyproject.toml has [tool.pytest.ini_options]"
    if (root / "pytest.ini").is_file():
        return "pytest.ini exists"
    for name in ("tests", "test"):
        if (root / name).is_dir() and any(_python_files(root / name)):
            return f"{name}/ holds Python files"
    for path in _python_files(root):
        if _TEST_FILE.match(path.name):
            return f"{path.relative_to(root).as_posix()} is a test file"
    return None


def _python_files(top: Path) -> Iterator[Path]:
    for directory, subdirs, files in os.walk(top):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIPPED_DIRS and not d.startswith("."))
        for name in sorted(files):
            if name.endswith(".py"):
                yield Path(directory) / name


# --- Start command -----------------------------------------------------------------------------


def _start_command(root: Path, project: dict[str, Any], plan: Plan) -> list[str] | None:
    scripts = project.get("scripts", {})
    if isinstance(scripts, dict) and scripts:
        name = next(iter(scripts))
        plan.reasons.append(f"start: {name} because [project.scripts] defines it")
        return [name]
    for name in ("main.py", "app.py", "__main__.py"):
        if (root / name).is_file():
            plan.reasons.append(f"start: python {name} because it exists at the project root")
            return ["python", name]
    plan.reasons.append("start: python (no entry point found)")
    return ["python"]
