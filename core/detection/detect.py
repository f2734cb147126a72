"""Project detection: read a Python project's files and decide how to build and test it.

Pure: it reads a directory and returns a `Plan`; nothing runs. Every decision carries its reason,
shown to the user in the log and the build resource.

Dependencies, first that applies (a lockfile is honoured exactly):

    uv.lock / poetry.lock / pdm.lock   exported by uv / poetry / pdm inside the build (lock_tool)
    Pipfile.lock                       converted here to pinned, hashed lines (locked_requirements)
    Pipfile                            [packages] as requirement lines
    requirements*.txt                  flattened (-r/-c followed), plus [project.dependencies]
    pyproject [project]                static dependencies; dynamic ones come from the built wheel
    pyproject [tool.poetry]            translated from Poetry's constraint syntax
    setup.cfg [options]                install_requires
    setup.py                           from the built wheel (its dependencies may be computed)
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from core.detection.manifests import (
    SKIPPED_DIRS,
    ManifestError,
    SetupCall,
    SetupCfg,
    pipfile_dependencies,
    pipfile_hash,
    pipfile_lock_requirements,
    poetry_constraint,
    poetry_dependencies,
    read_json,
    read_setup_cfg,
    read_setup_py,
)
from core.detection.native import native_needs
from core.detection.pytest_config import plugin_needs, read_pytest_config
from core.detection.pyversion import NoPythonVersion, Statement, choose, file_pins, pin_of
from core.detection.requirements import RequirementsError, read_requirements
from core.detection.scm_version import scm_version
from core.detection.start_command import infer_start
from core.detection.test_runner import automation_command, runner_of, with_environment
from core.detection.test_sources import (
    TestSources,
    find_requirement_file,
    find_test_sources,
    is_code_tool,
    is_not_for_tests,
)

TEST_EXTRAS = ("test", "tests", "testing", "dev")
# Runtime requirement files, each with any suffix (.txt, none, .pip, .in; a .txt first).
RUNTIME_REQUIREMENT_STEMS = (
    "requirements",
    "requirements/base",
    "requirements/main",
    "requirements/prod",
    "requirements/production",
    "requirements/runtime",
    "requirements/install",
)
# Servers the inferred start command may need, added when the project does not depend on them.
SERVER_REQUIREMENTS = {"gunicorn": "gunicorn>=21.2", "uvicorn": "uvicorn>=0.20"}
# Build backends that compute the version from the VCS: .git must stay in the build context.
_VCS_VERSIONING = ("setuptools-scm", "setuptools_scm", "hatch-vcs", "versioningit", "dunamai")
_TEST_FILE = re.compile(r"^(test_.*|.*_test)\.py$")
_UNITTEST_FILE = re.compile(r"^test.*\.py$")


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
    # "pytest", "unittest", "django" or "custom": how test_command runs the tests.
    test_runner: str | None = None
    # Run when the guessed test command runs no test at all (pytest does not collect unittest's
    # test*.py files or a load_tests protocol): the other runner, tried before giving up.
    test_fallback: str | None = None
    start_command: list[str] | None = None
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    project_name: str | None = None
    # Where the runtime dependencies come from: "requirements.txt", "uv.lock", "setup.py", ...
    dependency_source: str = "none"
    # "uv", "poetry" or "pdm": the lock is exported by that tool inside the build, from
    # `lock_files` only (the dependency layer's key).
    lock_tool: str | None = None
    lock_files: list[str] = field(default_factory=list)
    # Packages of the lock that live in the project (workspace members, path dependencies):
    # left out of the export, built from `local_packages`.
    lock_local_packages: list[str] = field(default_factory=list)
    # Pinned, hashed lines from a lockfile converted here (Pipfile.lock), installed first.
    locked_requirements: list[str] = field(default_factory=list)
    locked_test_requirements: list[str] = field(default_factory=list)
    # Groups and extras holding the test dependencies, for the lock tool.
    test_groups: list[str] = field(default_factory=list)
    test_extras: list[str] = field(default_factory=list)
    # Local projects the requirements name (./libs/util): built as wheels with the project.
    local_packages: list[str] = field(default_factory=list)
    # Servers added to `requirements` because the start command needs them.
    server_requirements: list[str] = field(default_factory=list)
    # "web" (serves HTTP on `port`), "cli" (boot-checked with --help), "none".
    start_kind: str | None = None
    # The project declares its start command (Procfile, scripts): failing to boot fails the
    # build. A guessed one that fails to boot is a warning.
    start_declared: bool = False
    port: int | None = None
    # Patterns of the .dockerignore generated for the build; None when the project has its own.
    dockerignore: list[str] | None = None
    # Findings of the Dockerfile linter on the project's own Dockerfile.
    dockerfile_findings: list[dict[str, Any]] = field(default_factory=list)
    # What the test requirements came from: the test environment ("tox.ini [testenv]") and the
    # requirement files read.
    test_sources: list[str] = field(default_factory=list)
    # Environment of the wheel build (the version of a VCS-versioned project without .git).
    build_environment: dict[str, str] = field(default_factory=dict)
    # Extension modules the build files declare, and whether each was built (checked in the
    # image after the build: an optional extension may fall back to pure Python silently).
    extension_modules: list[str] = field(default_factory=list)
    extensions_built: dict[str, bool] = field(default_factory=dict)
    # Debian development packages the native code needs in the builder, each a group of
    # alternatives ("libfoo-dev|foo-dev"; the first apt knows is installed), and what the build
    # did with each: "installed <package>", "none <group>" (core/detection/native.py).
    system_packages: list[str] = field(default_factory=list)
    system_packages_result: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Project:
    """The parsed manifests of a project, read once."""

    root: Path
    pyproject: dict[str, Any]
    project: dict[str, Any]
    poetry: dict[str, Any]
    pipfile: dict[str, Any] | None
    setup_cfg: SetupCfg | None
    setup_py: SetupCall | None

    @property
    def name(self) -> str | None:
        for candidate in (
            self.project.get("name"),
            self.poetry.get("name"),
            self.setup_cfg.name if self.setup_cfg else None,
            self.setup_py.name if self.setup_py else None,
        ):
            if isinstance(candidate, str) and candidate:
                return candidate
        return None

    @property
    def tool(self) -> dict[str, Any]:
        tool = self.pyproject.get("tool", {})
        return tool if isinstance(tool, dict) else {}


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
    info = _read_project(root)
    plan = Plan(python_version=default_version, project_name=info.name)
    _choose_python(info, plan, available_versions, default_version, requested_version)
    if dockerfile is not None:
        if not (root / dockerfile).is_file():
            raise DetectionError(f"dockerfile {dockerfile!r} is not a file in the project")
        plan.dockerfile = dockerfile
        plan.reasons.append(f"dockerfile: the project's own {dockerfile} (option dockerfile)")
    elif (root / "Dockerfile").is_file():
        plan.dockerfile = "Dockerfile"
        plan.reasons.append("dockerfile: the project's own Dockerfile")
    _dependencies(info, plan)
    if plan.install_project:
        _scm_version(info, plan)
        _extension_modules(info, plan)
    _tests(info, plan, test_command)
    if plan.dockerfile is None:
        _system_packages(info, plan)
    _start(info, plan)
    plan.dockerignore = _dockerignore(info, plan)
    plan.requirements = _dedupe(plan.requirements)
    return plan


def _read_project(root: Path) -> _Project:
    pyproject = _load_toml(root / "pyproject.toml")
    project = pyproject.get("project", {})
    project = project if isinstance(project, dict) else {}
    tool = pyproject.get("tool", {})
    poetry = tool.get("poetry", {}) if isinstance(tool, dict) else {}
    pipfile = _load_toml(root / "Pipfile") if (root / "Pipfile").is_file() else None
    try:
        setup_cfg = read_setup_cfg(root / "setup.cfg") if (root / "setup.cfg").is_file() else None
    except ManifestError as exc:
        raise DetectionError(str(exc)) from exc
    setup_py = read_setup_py(root / "setup.py") if (root / "setup.py").is_file() else None
    return _Project(
        root,
        pyproject,
        project,
        poetry if isinstance(poetry, dict) else {},
        pipfile,
        setup_cfg,
        setup_py,
    )


def _load_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DetectionError(f"{path.name} is not valid TOML: {exc}") from exc


# --- Python version ---------------------------------------------------------------------------


def _choose_python(
    info: _Project,
    plan: Plan,
    available: Sequence[str],
    default: str,
    requested: str | None,
) -> None:
    pins = file_pins(info.root)
    if info.pipfile is not None:
        requires = info.pipfile.get("requires", {})
        if isinstance(requires, dict):
            for key in ("python_version", "python_full_version"):
                value = requires.get(key)
                pinned = pin_of(str(value)) if value is not None else None
                if pinned is not None:
                    pins.append(Statement(f"Pipfile [requires] {key}", pinned))
                    break
    constraints: list[Statement] = []
    if isinstance(info.project.get("requires-python"), str):
        constraints.append(Statement("requires-python", info.project["requires-python"]))
    poetry_python = info.poetry.get("dependencies", {})
    if isinstance(poetry_python, dict) and isinstance(poetry_python.get("python"), str):
        converted = poetry_constraint(poetry_python["python"])
        if converted:
            constraints.append(Statement("[tool.poetry.dependencies] python", converted))
        elif converted is None:
            plan.warnings.append(
                f"[tool.poetry.dependencies] python = {poetry_python['python']!r} "
                "cannot be checked (no PEP 440 form)"
            )
    if info.setup_cfg is not None and info.setup_cfg.python_requires:
        constraints.append(Statement("setup.cfg python_requires", info.setup_cfg.python_requires))
    if info.setup_py is not None and info.setup_py.python_requires:
        constraints.append(Statement("setup.py python_requires", info.setup_py.python_requires))
    try:
        choice = choose(
            pins=pins,
            constraints=constraints,
            available=available,
            default=default,
            requested=requested,
        )
    except NoPythonVersion as exc:
        raise DetectionError(str(exc)) from exc
    plan.python_version = choice.version
    plan.reasons.append(choice.reason)
    plan.warnings += choice.warnings


# --- Dependencies ------------------------------------------------------------------------------


def _dependencies(info: _Project, plan: Plan) -> None:
    root, project = info.root, info.project
    build_system = info.pyproject.get("build-system")
    packaged = _is_package(info)
    if _locked_dependencies(info, plan):
        plan.install_project = packaged
        return
    if info.pipfile is not None:
        converted = pipfile_dependencies(info.pipfile.get("packages"), where="Pipfile")
        plan.requirements += converted.requirements
        plan.warnings += converted.warnings
        plan.dependency_source = "Pipfile"
        plan.reasons.append("dependencies: Pipfile [packages] (no Pipfile.lock: resolved now)")
        if converted.local:
            plan.dependencies_from_source = True
    runtime_file = find_requirement_file(root, RUNTIME_REQUIREMENT_STEMS)
    if runtime_file is not None:
        requirements = _read_requirements(root, runtime_file)
        plan.requirements += requirements.lines
        plan.constraints += requirements.constraints
        plan.dependency_source = runtime_file
        plan.reasons.append(f"dependencies: {' + '.join(requirements.files)}")
        if any(path.split("[", 1)[0] == "." for path in requirements.local_paths):
            plan.install_project = True
        for path in requirements.local_paths:
            if path.split("[", 1)[0] != ".":
                plan.warnings.append(f"local requirement {path!r} is installed with the source")
                plan.dependencies_from_source = True
                plan.local_packages.append(path.split("[", 1)[0])
    if project:
        dynamic = project.get("dynamic", [])
        plan.install_project = plan.install_project or packaged
        if "dependencies" in dynamic:
            plan.install_project = True
            plan.dependencies_from_source = True
            plan.reasons.append(
                "dependencies: pyproject.toml declares them dynamic; read from the built wheel"
            )
        else:
            plan.requirements += _strings(project.get("dependencies", []))
            if "dependencies" in project or runtime_file is None:
                plan.reasons.append("dependencies: [project.dependencies] in pyproject.toml")
                if runtime_file is None:
                    plan.dependency_source = "pyproject.toml"
        if not packaged and not plan.install_project:
            plan.reasons.append(
                "project: not installed as a package (pyproject.toml has no [build-system]); "
                "it runs from its source"
            )
    elif isinstance(info.poetry.get("dependencies"), dict):
        converted = poetry_dependencies(info.poetry["dependencies"], where="[tool.poetry]")
        plan.requirements += converted.requirements
        plan.warnings += converted.warnings
        plan.install_project = packaged
        plan.dependencies_from_source = bool(converted.local)
        plan.dependency_source = "pyproject.toml [tool.poetry]"
        plan.reasons.append(
            "dependencies: [tool.poetry.dependencies] in pyproject.toml (no poetry.lock: "
            "resolved now)"
        )
    elif info.setup_cfg is not None and info.setup_cfg.install_requires is not None:
        plan.requirements += info.setup_cfg.install_requires
        plan.install_project = True
        plan.dependency_source = "setup.cfg"
        where = (
            f":{info.setup_cfg.install_requires_line}"
            if info.setup_cfg.install_requires_line
            else ""
        )
        plan.reasons.append(f"dependencies: setup.cfg{where} [options] install_requires")
    elif (root / "setup.py").is_file():
        plan.install_project = True
        plan.dependencies_from_source = True
        plan.dependency_source = "setup.py"
        literal = info.setup_py is not None and "install_requires" not in info.setup_py.dynamic
        plan.reasons.append(
            "dependencies: setup.py (read from the built wheel's metadata"
            + (
                ", so computed ones are right too)"
                if literal
                else ": install_requires is computed)"
            )
        )
    elif build_system and runtime_file is None and info.pipfile is None:
        plan.install_project = True
        plan.dependencies_from_source = True
        plan.dependency_source = "pyproject.toml [build-system]"
        plan.reasons.append(
            "dependencies: pyproject.toml has a [build-system]; read from the built wheel"
        )
    if not plan.requirements and not plan.install_project and not plan.locked_requirements:
        plan.reasons.append("dependencies: none declared")


def _extension_modules(info: _Project, plan: Plan) -> None:
    names = list(info.setup_py.extension_modules) if info.setup_py is not None else []
    setuptools = info.tool.get("setuptools", {})
    declared = setuptools.get("ext-modules", []) if isinstance(setuptools, dict) else []
    for item in declared if isinstance(declared, list) else []:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            names.append(item["name"])
    plan.extension_modules = _dedupe(names)
    if plan.extension_modules:
        plan.reasons.append(
            f"native: extension modules {', '.join(plan.extension_modules)} (each is checked "
            "in the image: an optional one may fall back to pure Python)"
        )


def _system_packages(info: _Project, plan: Plan) -> None:
    builds_native = plan.install_project and bool(
        plan.extension_modules or (info.setup_py is not None and info.setup_py.has_ext_modules)
    )
    names = [
        name
        for name in (_name_of(line) for line in [*plan.requirements, *plan.test_requirements])
        if name is not None
    ]
    needs = native_needs(
        info.root,
        project_name=info.name,
        pyproject_tool=info.tool,
        requirement_names=names,
        builds_native=builds_native,
    )
    plan.system_packages = needs.packages
    plan.reasons += needs.reasons
    if needs.packages:
        plan.reasons.append(
            "system packages: installed with apt-get in the builder (the first of each group "
            "that the Debian archive has); the runtime image gets the libraries the built "
            "modules link"
        )


def _scm_version(info: _Project, plan: Plan) -> None:
    setup_py = info.root / "setup.py"
    setup_text = (
        setup_py.read_text(encoding="utf-8", errors="replace") if setup_py.is_file() else ""
    )
    version = scm_version(info.root, info.pyproject, setup_text)
    plan.build_environment = version.environment
    plan.reasons += version.reasons
    plan.warnings += version.warnings


def _is_package(info: _Project) -> bool:
    """Whether the project builds as a wheel (and is then installed into the image)."""
    tool_uv = info.tool.get("uv", {})
    if isinstance(tool_uv, dict) and isinstance(tool_uv.get("package"), bool):
        return bool(tool_uv["package"])
    if info.poetry.get("package-mode") is False:
        return False
    # Without a [build-system], a [project] is installed only for its console scripts (pip would
    # build it with setuptools' defaults); otherwise it is an application run from its source,
    # as uv treats it.
    return (
        "build-system" in info.pyproject
        or (info.root / "setup.py").is_file()
        or (info.setup_cfg is not None and info.setup_cfg.name is not None)
        or bool(info.project.get("scripts"))
    )


def _locked_dependencies(info: _Project, plan: Plan) -> bool:
    """Use a lockfile when there is one; False when there is none."""
    root = info.root
    has_pyproject = (root / "pyproject.toml").is_file()
    found = [
        name
        for name in ("uv.lock", "poetry.lock", "pdm.lock", "Pipfile.lock")
        if (root / name).is_file()
    ]
    if not found:
        return False
    preferred: str | None = None
    if has_pyproject:
        if "poetry.lock" in found and info.poetry:
            preferred = "poetry.lock"
        elif "pdm.lock" in found and "pdm" in info.tool:
            preferred = "pdm.lock"
        elif "uv.lock" in found:
            preferred = "uv.lock"
        else:
            preferred = next((n for n in found if n in ("poetry.lock", "pdm.lock")), None)
    if preferred is None and "Pipfile.lock" in found and info.pipfile is not None:
        preferred = "Pipfile.lock"
    if preferred is None:
        plan.warnings.append(
            f"{', '.join(found)} ignored: no pyproject.toml or Pipfile that it belongs to"
        )
        return False
    ignored = [name for name in found if name != preferred]
    plan.dependency_source = preferred
    if ignored:
        plan.reasons.append(f"dependencies: {', '.join(ignored)} ignored ({preferred} is used)")
    runtime_file = find_requirement_file(root, RUNTIME_REQUIREMENT_STEMS)
    if runtime_file is not None:
        plan.reasons.append(f"dependencies: {runtime_file} ignored ({preferred} is used)")
    if preferred == "Pipfile.lock":
        _pipfile_lock(info, plan)
        return True
    tool = {"uv.lock": "uv", "poetry.lock": "poetry", "pdm.lock": "pdm"}[preferred]
    plan.lock_tool = tool
    if tool == "uv":
        _uv_local_packages(info, plan)
    plan.lock_files = ["pyproject.toml", preferred]
    command = {
        "uv": "uv export --frozen",
        "poetry": "poetry export (poetry-plugin-export)",
        "pdm": "pdm export",
    }[tool]
    plan.reasons.append(
        f"dependencies: {preferred}, installed exactly as locked ({command} in the build, "
        "keyed only by pyproject.toml and the lock)"
    )
    return True


def _uv_local_packages(info: _Project, plan: Plan) -> None:
    """Workspace members and path dependencies of a uv.lock: the export leaves them out (their
    source is not in the dependency layer) and they are built as wheels with the source."""
    lock = _load_toml(info.root / "uv.lock")
    packages = lock.get("package", [])
    root = info.root.resolve()
    for package in packages if isinstance(packages, list) else []:
        source = package.get("source", {}) if isinstance(package, dict) else {}
        kind = next((k for k in ("editable", "directory", "path") if k in source), None)
        name = package.get("name")
        if kind is None or not isinstance(name, str) or not isinstance(source[kind], str):
            continue
        relative = source[kind]
        target = (root / relative).resolve()
        if target == root:
            continue
        if root not in target.parents or not target.exists():
            plan.warnings.append(
                f"uv.lock: {name} comes from {relative!r}, which is not in the upload; "
                "include it in the zip"
            )
            continue
        plan.lock_local_packages.append(name)
        plan.local_packages.append(target.relative_to(root).as_posix())
        what = "workspace member" if kind == "editable" else "path dependency"
        plan.reasons.append(
            f"dependencies: {name} ({what} {relative}) built as a wheel with the source, "
            "not exported from uv.lock"
        )


def _pipfile_lock(info: _Project, plan: Plan) -> None:
    try:
        lock = read_json(info.root / "Pipfile.lock")
    except ManifestError as exc:
        raise DetectionError(str(exc)) from exc
    default = pipfile_lock_requirements(lock, "default")
    develop = pipfile_lock_requirements(lock, "develop")
    plan.locked_requirements = default.requirements
    plan.locked_test_requirements = develop.requirements
    plan.reasons.append(
        f"dependencies: Pipfile.lock [default], {len(default.requirements)} pinned and hashed "
        "packages, installed exactly as locked"
    )
    if default.local:
        plan.install_project = True
    recorded = lock.get("_meta", {}).get("hash", {}).get("sha256")
    if (
        info.pipfile is not None
        and isinstance(recorded, str)
        and recorded != pipfile_hash(info.pipfile)
    ):
        plan.warnings.append(
            "Pipfile.lock is out of date with Pipfile (its hash differs); the lock is installed "
            "as it is: run `pipenv lock`"
        )


def _read_requirements(root: Path, relative: str) -> Any:
    try:
        return read_requirements(root, relative)
    except RequirementsError as exc:
        raise DetectionError(str(exc)) from exc


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


# --- Tests --------------------------------------------------------------------------------------


def _tests(info: _Project, plan: Plan, test_command: str | None) -> None:
    root, pyproject, project = info.root, info.pyproject, info.project
    own_name = canonicalize_name(info.name) if info.name else None
    # Everything the project declares for its tests, whether installed from a lock or not:
    # the evidence for "does it use pytest".
    declared: list[str] = []
    locked = plan.lock_tool is not None
    sources = find_test_sources(root, python=plan.python_version)
    plan.warnings += sources.warnings
    # The extras its test environment installs, then the conventional names.
    test_extras = _dedupe([*sources.extras, *TEST_EXTRAS])

    def add(requirements: list[str], reason: str, *, from_lock: bool = False) -> None:
        kept = _without_self(requirements, own_name)
        declared.extend(kept)
        if not from_lock:
            plan.test_requirements.extend(kept)
        plan.reasons.append(f"test dependencies: {reason}")

    extras = project.get("optional-dependencies", {})
    for extra in test_extras:
        if isinstance(extras, dict) and extra in extras:
            if locked:
                plan.test_extras.append(extra)
            add(
                _extra(extras, extra, own_name),
                f"[project.optional-dependencies] {extra}",
                from_lock=locked,
            )
    groups = pyproject.get("dependency-groups", {})
    # The groups the test environment installs when it names them; else the conventional ones.
    test_groups = sources.groups or _default_groups(info, plan) or list(TEST_EXTRAS)
    for group in sources.groups:
        if not (isinstance(groups, dict) and group in groups):
            plan.warnings.append(
                f"dependency group {group!r} ({sources.automation} installs it) is not in "
                "[dependency-groups]"
            )
    for group in test_groups:
        if isinstance(groups, dict) and group in groups:
            if locked:
                plan.test_groups.append(group)
            add(_group(groups, group, set()), f"[dependency-groups] {group}", from_lock=locked)
    _tool_test_groups(info, plan, add)
    if plan.locked_test_requirements:
        declared.extend(plan.locked_test_requirements)
        plan.reasons.append("test dependencies: Pipfile.lock [develop], as locked")
    elif info.pipfile is not None and not plan.locked_requirements:
        converted = pipfile_dependencies(info.pipfile.get("dev-packages"), where="Pipfile")
        if converted.requirements:
            add(converted.requirements, "Pipfile [dev-packages]")
    if info.setup_cfg is not None:
        for extra in test_extras:
            if extra in info.setup_cfg.extras_require:
                add(info.setup_cfg.extras_require[extra], f"setup.cfg extras_require {extra}")
    if info.setup_py is not None and info.setup_py.tests_require:
        add(info.setup_py.tests_require, "setup.py tests_require")
    if info.setup_py is not None and info.setup_py.extras_require:
        for extra in test_extras:
            if extra in info.setup_py.extras_require:
                add(info.setup_py.extras_require[extra], f"setup.py extras_require {extra}")
    _missing_extras(info, sources, plan)
    plan.reasons += sources.reasons
    if sources.requirements:
        kept = _without_self(sources.requirements, own_name)
        declared.extend(kept)
        plan.test_requirements.extend(kept)
    plan.constraints = _dedupe(plan.constraints + sources.constraints)
    plan.test_requirements = [
        line for line in _dedupe(plan.test_requirements) if line not in plan.requirements
    ]
    tools = [line for line in plan.test_requirements if is_code_tool(_name_of(line))]
    if tools:
        plan.test_requirements = [line for line in plan.test_requirements if line not in tools]
        names = ", ".join(_dedupe([_name_of(line) or line for line in tools]))
        plan.reasons.append(
            f"test dependencies: {names} left out (linters, formatters, type checkers, docs or "
            "release tools: the tests do not run them)"
        )
    plan.test_sources = [*sources.files]
    if sources.automation is not None:
        plan.test_sources.insert(0, sources.automation)

    if test_command is not None:
        plan.test_command = test_command
        plan.test_runner = runner_of(test_command)
        plan.reasons.append(f"tests: {test_command!r} (option test_command)")
        if plan.test_runner == "pytest" and not _mentions(declared, "pytest"):
            plan.test_requirements.append("pytest")
        return
    command = _test_command(info, plan, declared, sources)
    if command is None:
        return
    plan.test_runner = runner_of(command)
    if plan.test_runner == "pytest":
        if not _mentions(declared, "pytest"):
            plan.test_requirements.append("pytest")
            if declared:
                plan.reasons.append("test dependencies: pytest added (the test command needs it)")
        command = _pytest_plugins(info, plan, declared, command)
    plan.test_command = with_environment(command, sources.setenv)
    if sources.setenv:
        plan.reasons.append(
            f"tests: run with {', '.join(sorted(sources.setenv))} set as {sources.automation} "
            "sets them"
        )


def _test_command(
    info: _Project, plan: Plan, declared: list[str], sources: TestSources
) -> str | None:
    """The command that runs the tests, its reason recorded; None when there are none."""
    root = info.root
    automated = automation_command(root, sources.commands) if sources.automation else None
    if automated is not None:
        command, why = automated
        plan.reasons.append(f"tests: {command} ({sources.automation}: {why})")
        return command
    evidence = _test_evidence(root, info.pyproject, info.setup_cfg, sources)
    if evidence is None:
        plan.reasons.append(
            "tests: none found (no tests/ folder, test_*.py file or pytest configuration)"
        )
        return None
    unittest_only = (
        None
        if "pytest" in evidence  # pytest configuration
        else _unittest_command(root, declared + plan.requirements, sources)
    )
    if unittest_only is not None:
        command, why = unittest_only
        plan.reasons.append(f"tests: {command} because {why}")
        return command
    plan.reasons.append(f"tests: python -m pytest because {evidence}")
    if not any("pytest" in command for command in sources.commands):
        plan.test_fallback = _unittest_discover(root)
        plan.reasons.append(
            f"tests: {plan.test_fallback} if pytest runs no test (pytest is a guess here: "
            "no automation of the project runs it)"
        )
    return "python -m pytest"


def _pytest_plugins(info: _Project, plan: Plan, declared: list[str], command: str) -> str:
    """Install the plugins the pytest configuration needs when the project declares them;
    otherwise take their options out of addopts. Returns the command to run."""
    config = read_pytest_config(info.root)
    installed = {
        name
        for name in (
            _name_of(line) for line in [*declared, *plan.requirements, *plan.test_requirements]
        )
        if name is not None
    }
    needs = plugin_needs(info.root, config, installed, _declarations_text(info.root))
    for requirement, why in needs.install.items():
        plan.test_requirements.append(requirement)
        plan.reasons.append(f"test dependencies: {requirement} added ({why})")
    if needs.addopts is None:
        return command
    for plugin, options in needs.removed.items():
        plan.reasons.append(
            f"tests: {' '.join(options)} taken out of {config.source} addopts ({plugin} is not "
            f"declared anywhere in the project; add it to the test requirements to keep them)"
        )
    return f"{command} -o {shlex.quote('addopts=' + shlex.join(needs.addopts))}"


def _declarations_text(root: Path) -> str:
    """Every file where a project may name a dependency, as one text to search."""
    paths = [
        root / name
        for name in ("pyproject.toml", "setup.cfg", "setup.py", "tox.ini", "noxfile.py", "Pipfile")
    ]
    for pattern in ("requirements*", "*requirements*", "requirements/*", "tests/requirements*"):
        paths += sorted(root.glob(pattern))
    for pattern in (".github/workflows/*.yml", ".github/workflows/*.yaml", ".gitlab-ci.yml"):
        paths += sorted(root.glob(pattern))
    texts = []
    for path in dict.fromkeys(paths):
        if path.is_file() and path.stat().st_size < 1_000_000:
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(texts)


def _default_groups(info: _Project, plan: Plan) -> list[str]:
    """uv's `default-groups` ("all" or a list): the groups `uv sync` installs, so the ones the
    tests run with; groups for docs, linting or typing are skipped, said so."""
    uv = info.tool.get("uv", {})
    value = uv.get("default-groups") if isinstance(uv, dict) else None
    groups = info.pyproject.get("dependency-groups", {})
    if value is None or not isinstance(groups, dict):
        return []
    names = list(groups) if value == "all" else _strings(value)
    skipped = [name for name in names if is_not_for_tests(name)]
    if skipped:
        plan.reasons.append(
            f"test dependencies: groups {', '.join(skipped)} of [tool.uv] default-groups "
            "skipped (docs, linting or typing: the tests do not need them)"
        )
    return [name for name in names if name not in skipped]


def _extra(extras: dict[str, Any], name: str, own_name: str | None) -> list[str]:
    """An extra's requirements, with `own[other]` (this project's other extras) followed."""
    result: list[str] = []
    pending, seen = [name], set()
    while pending:
        current = pending.pop(0)
        if current in seen:
            continue
        seen.add(current)
        for requirement in _strings(extras.get(current, [])):
            try:
                parsed = Requirement(requirement)
            except InvalidRequirement:
                result.append(requirement)
                continue
            if own_name is not None and canonicalize_name(parsed.name) == own_name:
                pending += sorted(parsed.extras)
            else:
                result.append(requirement)
    return result


def _missing_extras(info: _Project, sources: TestSources, plan: Plan) -> None:
    """Extras the test environment names that the project does not define: say so."""
    known: set[str] = set()
    extras = info.project.get("optional-dependencies", {})
    if isinstance(extras, dict):
        known |= set(extras)
    if info.setup_cfg is not None:
        known |= set(info.setup_cfg.extras_require)
    if info.setup_py is not None and info.setup_py.extras_require:
        known |= set(info.setup_py.extras_require)
    poetry_extras = info.poetry.get("extras", {})
    if isinstance(poetry_extras, dict):
        known |= set(poetry_extras)
    computed = info.setup_py is not None and "extras_require" in info.setup_py.dynamic
    for extra in sources.extras:
        if extra in known:
            continue
        if computed or "optional-dependencies" in info.project.get("dynamic", []):
            plan.warnings.append(
                f"extra {extra!r} ({sources.automation} installs it) is computed by the build "
                "and not installed for the tests: list its requirements in a requirements file "
                "or make extras_require a literal"
            )
        else:
            plan.warnings.append(
                f"extra {extra!r} ({sources.automation} installs it) is not defined by the project"
            )


def _tool_test_groups(info: _Project, plan: Plan, add: Any) -> None:
    locked = plan.lock_tool is not None
    poetry_groups = info.poetry.get("group", {})
    for group in TEST_EXTRAS:
        table = poetry_groups.get(group) if isinstance(poetry_groups, dict) else None
        if isinstance(table, dict) and isinstance(table.get("dependencies"), dict):
            converted = poetry_dependencies(table["dependencies"], where=f"poetry group {group}")
            if locked:
                plan.test_groups.append(group)
            add(
                converted.requirements,
                f"[tool.poetry.group.{group}.dependencies]",
                from_lock=locked,
            )
    legacy = info.poetry.get("dev-dependencies")
    if isinstance(legacy, dict):
        converted = poetry_dependencies(legacy, where="poetry dev-dependencies")
        if locked and "dev" not in plan.test_groups:
            plan.test_groups.append("dev")
        add(converted.requirements, "[tool.poetry.dev-dependencies]", from_lock=locked)
    poetry_extras = info.poetry.get("extras", {})
    if isinstance(poetry_extras, dict) and not info.project:
        for extra in TEST_EXTRAS:
            if extra in poetry_extras and locked:
                plan.test_extras.append(extra)
    pdm = info.tool.get("pdm", {})
    pdm_groups = pdm.get("dev-dependencies", {}) if isinstance(pdm, dict) else {}
    for group in TEST_EXTRAS:
        if isinstance(pdm_groups, dict) and group in pdm_groups:
            if locked and group not in plan.test_groups:
                plan.test_groups.append(group)
            add(
                _strings(pdm_groups[group]),
                f"[tool.pdm.dev-dependencies] {group}",
                from_lock=locked,
            )
    uv = info.tool.get("uv", {})
    uv_dev = uv.get("dev-dependencies") if isinstance(uv, dict) else None
    if isinstance(uv_dev, list):
        if locked and "dev" not in plan.test_groups:
            plan.test_groups.append("dev")
        add(_strings(uv_dev), "[tool.uv] dev-dependencies", from_lock=locked)


def _group(groups: dict[str, Any], name: str, seen: set[str]) -> list[str]:
    """A PEP 735 group's requirements, with `{include-group = ...}` followed."""
    if name in seen:
        return []
    seen.add(name)
    result: list[str] = []
    for item in groups.get(name, []) if isinstance(groups.get(name), list) else []:
        if isinstance(item, str):
            result.append(item)
        elif isinstance(item, dict) and isinstance(item.get("include-group"), str):
            result += _group(groups, item["include-group"], seen)
    return result


def _without_self(requirements: list[str], own_name: str | None) -> list[str]:
    # "myproject[extra]" inside myproject's own extras means "these other extras too".
    return [req for req in requirements if _name_of(req) != own_name]


def _name_of(requirement: str) -> str | None:
    try:
        return canonicalize_name(Requirement(requirement.split(" --hash", 1)[0]).name)
    except InvalidRequirement:
        return None


def _mentions(requirements: list[str], name: str) -> bool:
    return any(_name_of(req) == name for req in requirements)


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _test_evidence(
    root: Path, pyproject: dict[str, Any], setup_cfg: SetupCfg | None, sources: TestSources
) -> str | None:
    if "pytest" in pyproject.get("tool", {}):
        return "pyproject.toml has [tool.pytest.ini_options]"
    if (root / "pytest.ini").is_file():
        return "pytest.ini exists"
    if setup_cfg is not None and setup_cfg.pytest_configured:
        return "setup.cfg has [tool:pytest]"
    if sources.pytest_configured:
        return "tox.ini has [pytest]"
    for name in ("tests", "test"):
        if (root / name).is_dir() and any(_python_files(root / name)):
            return f"{name}/ holds Python files"
    if _is_django(root):
        for path in _python_files(root):
            if path.name == "tests.py" or path.parent.name == "tests":
                return f"{path.relative_to(root).as_posix()} holds Django tests"
    for path in _python_files(root):
        if _TEST_FILE.match(path.name):
            return f"{path.relative_to(root).as_posix()} is a test file"
    return None


def _unittest_command(
    root: Path, declared: list[str], sources: TestSources
) -> tuple[str, str] | None:
    """`python -m unittest discover ...` when the tests are unittest-only and nothing mentions
    pytest anywhere; None otherwise (pytest runs unittest tests too, with a JUnit report).

    pytest is "mentioned" by a pytest* requirement, pytest configuration, a conftest.py, an
    `import pytest` in a test file, or a tox/nox command that runs it."""
    if any((_name_of(req) or "").startswith("pytest") for req in declared):
        return None
    if sources.pytest_configured or any("pytest" in command for command in sources.commands):
        return None
    if any(
        (root / name).is_file() for name in ("pytest.ini", "conftest.py")
    ) or "pytest" in _load_toml_quiet(root / "pyproject.toml").get("tool", {}):
        return None
    if _is_django(root):
        tests = [
            path
            for path in _python_files(root)
            if path.name.startswith("test") or path.parent.name == "tests"
        ]
        if tests and not any("pytest" in _imported_modules(path) for path in tests):
            return (
                "python manage.py test -v 2",
                "it is a Django project (manage.py) whose tests do not use pytest",
            )
        return None
    settings = _django_test_settings(root)
    if settings is not None:
        module, settings_file = settings
        tests = [p for p in _python_files(root) if p.name.startswith("test")]
        if not any("pytest" in _imported_modules(p) for p in tests):
            return (
                f"python -m django test --settings={module} -v 2",
                f"it is a reusable Django app: {settings_file} is its test settings module "
                "(it sets INSTALLED_APPS) and its tests do not use pytest",
            )
    start = next((name for name in ("tests", "test") if (root / name).is_dir()), None)
    top = root / start if start else root
    files = [path for path in _python_files(top) if _UNITTEST_FILE.match(path.name)]
    if start is None:
        files = [path for path in files if path.parent == root]
    if not files:
        return None
    uses_unittest = False
    for path in files + [p for p in _python_files(top) if p.name == "conftest.py"]:
        imported = _imported_modules(path)
        if "pytest" in imported or path.name == "conftest.py":
            return None
        uses_unittest = uses_unittest or "unittest" in imported
    if not uses_unittest:
        return None
    where = f"{start}/" if start else "the project root"
    command = _unittest_discover(root)
    return command, f"the tests in {where} use unittest only and nothing mentions pytest"


def _unittest_discover(root: Path) -> str:
    """unittest's discovery of the tests/ (or test/) folder, else of the project root."""
    start = next((name for name in ("tests", "test") if (root / name).is_dir()), None)
    if start is None:
        return "python -m unittest discover -v"
    if (root / start / "__init__.py").is_file():
        return f"python -m unittest discover -v -s {start} -t ."
    return f"python -m unittest discover -v -s {start}"


def _django_test_settings(root: Path) -> tuple[str, str] | None:
    """("tests.settings", "tests/settings.py"): a settings module of a Django app's tests, found
    by what it does (a module-level INSTALLED_APPS) in the test folders or at the root."""
    for folder in ("tests", "test", "testapp", "."):
        top = root / folder
        if not top.is_dir():
            continue
        candidates = top.glob("*.py") if folder == "." else _python_files(top)
        for path in sorted(candidates):
            if "settings" not in path.stem:
                continue
            if _assigns(path, "INSTALLED_APPS"):
                relative = path.relative_to(root)
                module = ".".join(relative.with_suffix("").parts)
                return module, relative.as_posix()
    return None


def _assigns(path: Path, name: str) -> bool:
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError):
        return False
    return any(
        isinstance(node, ast.Assign)
        and any(isinstance(target, ast.Name) and target.id == name for target in node.targets)
        for node in tree.body
    )


def _is_django(root: Path) -> bool:
    manage = root / "manage.py"
    return manage.is_file() and "DJANGO_SETTINGS_MODULE" in manage.read_text(
        encoding="utf-8", errors="replace"
    )


def _load_toml_quiet(path: Path) -> dict[str, Any]:
    try:
        return _load_toml(path)
    except DetectionError:
        return {}


def _imported_modules(path: Path) -> set[str]:
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError):
        return set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def _python_files(top: Path) -> Iterator[Path]:
    for directory, subdirs, files in os.walk(top):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIPPED_DIRS and not d.startswith("."))
        for name in sorted(files):
            if name.endswith(".py"):
                yield Path(directory) / name


# --- Start command -----------------------------------------------------------------------------


def _start(info: _Project, plan: Plan) -> None:
    scripts, source = _console_scripts(info)
    start = infer_start(
        info.root, scripts=scripts, scripts_source=source, installed=plan.install_project
    )
    plan.start_command = start.command
    plan.start_kind = start.kind
    plan.start_declared = start.declared
    plan.port = start.port
    plan.reasons.append(start.reason)
    plan.reasons += start.notes
    if start.server is None or plan.dockerfile is not None:
        return
    runtime = plan.requirements + plan.locked_requirements + _lock_runtime_names(info, plan)
    if _mentions(runtime, start.server):
        return
    requirement = SERVER_REQUIREMENTS[start.server]
    plan.server_requirements.append(requirement)
    plan.requirements.append(requirement)
    plan.reasons.append(
        f"dependencies: {requirement} added (the start command needs {start.server}; "
        "the project does not depend on it)"
    )


def _console_scripts(info: _Project) -> tuple[dict[str, str], str]:
    scripts = info.project.get("scripts")
    if isinstance(scripts, dict) and scripts:
        return {str(k): str(v) for k, v in scripts.items()}, "[project.scripts]"
    poetry_scripts = info.poetry.get("scripts")
    if isinstance(poetry_scripts, dict) and poetry_scripts:
        return {str(k): str(v) for k, v in poetry_scripts.items()}, "[tool.poetry.scripts]"
    if info.setup_cfg is not None and info.setup_cfg.console_scripts:
        return info.setup_cfg.console_scripts, "setup.cfg [options.entry_points] console_scripts"
    if info.setup_py is not None and info.setup_py.console_scripts:
        return info.setup_py.console_scripts, f"setup.py:{info.setup_py.line} console_scripts"
    return {}, ""


def _lock_runtime_names(info: _Project, plan: Plan) -> list[str]:
    """Direct runtime dependencies a lock tool installs (declared in pyproject.toml)."""
    if plan.lock_tool is None:
        return []
    names = _strings(info.project.get("dependencies", []))
    deps = info.poetry.get("dependencies")
    if isinstance(deps, dict):
        names += [name for name in deps if canonicalize_name(name) != "python"]
    return names


# --- .dockerignore ------------------------------------------------------------------------------


_ALWAYS_IGNORED = (
    "**/__pycache__",
    "**/*.py[cod]",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    ".coverage",
    "htmlcov",
    "node_modules",
    ".idea",
    ".vscode",
    "**/.DS_Store",
    "*.egg-info",
)


def _dockerignore(info: _Project, plan: Plan) -> list[str] | None:
    """Patterns for a generated .dockerignore: caches, VCS data, virtual environments and build
    artifacts, but never what the build reads (a referenced dist/ wheel, .git for VCS versions).
    None when the project has its own .dockerignore."""
    root = info.root
    if (root / ".dockerignore").exists():
        return None
    patterns = list(_ALWAYS_IGNORED)
    requires = " ".join(_strings(info.pyproject.get("build-system", {}).get("requires", [])))
    if any(name in requires for name in _VCS_VERSIONING):
        plan.reasons.append(".dockerignore: .git kept (the build backend versions from it)")
    else:
        patterns += [".git", ".hg", ".svn"]
    for child in sorted(root.iterdir()) if root.is_dir() else []:
        if child.is_dir() and (child / "pyvenv.cfg").is_file():
            patterns.append(child.name)
    for name in (".venv", "venv"):
        if name not in patterns:
            patterns.append(name)
    referenced = " ".join(
        plan.requirements
        + plan.constraints
        + plan.test_requirements
        + plan.locked_requirements
        + [f"{path}/" for path in plan.local_packages]
    )
    for artifact in ("build", "dist"):
        directory = root / artifact
        if f"{artifact}/" in referenced:
            continue
        if directory.is_dir() and (directory / "__init__.py").exists():
            continue  # a package that happens to be called so
        patterns.append(artifact)
    return patterns
