"""Where a project says what its tests need: its own automation first, nearby files second.

Order of preference:

    tox        the environment tox would run for this Python (tox.ini, setup.cfg, pyproject.toml):
               its deps (with -r/-c files followed), extras and commands
    nox        the test session of noxfile.py (read with `ast`): session.install(...) arguments
               and session.run(...) commands
    CI         the test job of a GitHub Actions workflow or .gitlab-ci.yml
    (core/detection/ci_workflows.py):
               its `pip install` arguments and test commands
    files      test requirement files by name, with any suffix (.txt, .in, .pip or none):
               tests/requirements*, requirements/{test,tests,testing,dev,...}, requirements-test*,
               test-requirements*, ...

When the automation names requirement files, those are what the tests get, and the nearby ones
are reported as ignored; files for other purposes (docs/requirements.txt, requirements/docs,
requirements/lint) are never test requirements. A line the service derived (from a tox or nox
file) that is not a requirement is a warning and left out: it is this reader's limit, not an
install failure of the project.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from core.detection.ci_workflows import ci_test_job
from core.detection.requirements import RequirementsError, read_requirements
from core.detection.tox import ToxConfig, ToxError, env, factors_of, read_tox, test_env_names

REQUIREMENT_SUFFIXES = (".txt", "", ".pip", ".in")
# Names of requirement files for the tests, best first ("dev" ones often carry linters too).
_TEST_STEMS = ("test", "tests", "testing", "dev", "develop", "development", "ci")
# Environments and sessions that do not run the tests.
_NOT_TESTS = frozenset(
    {
        "docs",
        "doc",
        "lint",
        "linting",
        "linters",
        "flake8",
        "mypy",
        "typing",
        "type",
        "types",
        "typecheck",
        "style",
        "format",
        "fmt",
        "pre-commit",
        "precommit",
        "pep8",
        "black",
        "isort",
        "ruff",
        "build",
        "release",
        "packaging",
        "package",
        "report",
        "clean",
        "readme",
        "spell",
        "bandit",
        "safety",
        "pylint",
        "manifest",
        "check",
        "checkqa",
        "qa",
        "coverage-report",
        "twine",
        "publish",
        "upload",
        "bump",
        "changelog",
        "dev",
        "devenv",
        "security",
        "audit",
        "pyright",
        "codespell",
        "docs-linkcheck",
        "linkcheck",
        "serve",
        "benchmark",
        "bench",
    }
)
# Tools that check, format or publish code rather than run its tests: left out of the test image
# (slow to install, and never imported by tests that do not test them).
CODE_TOOLS = frozenset(
    {
        "ruff",
        "black",
        "flake8",
        "pylint",
        "isort",
        "mypy",
        "pyright",
        "pre-commit",
        "autopep8",
        "yapf",
        "pycodestyle",
        "pydocstyle",
        "pyflakes",
        "bandit",
        "codespell",
        "twine",
        "build",
        "tox",
        "nox",
        "bump2version",
        "bump-my-version",
        "towncrier",
        "sphinx",
        "furo",
        "mkdocs",
        "mkdocs-material",
        "sphinx-rtd-theme",
        "check-manifest",
        "pip-tools",
        "ipython",
        "ipdb",
        "pdbpp",
        "blacken-docs",
        "doc8",
        "safety",
        "pip-audit",
        "vulture",
        "darglint",
        "interrogate",
        "commitizen",
        "setuptools-scm",
    }
)
_RUNNERS = re.compile(
    r"\b(pytest|py\.test|unittest|manage\.py\s+test|django-admin\s+test|runtests|trial|nose2?|"
    r"zope-testrunner|coverage\s+run)\b"
)


@dataclass
class TestSources:
    requirements: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    # The project's own extras the test environment installs (".[test]", `extras = test`).
    extras: list[str] = field(default_factory=list)
    # The dependency groups it installs (tox 4's `dependency_groups`, nox `--group`).
    groups: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    setenv: dict[str, str] = field(default_factory=dict)
    # "tox.ini [testenv:py311]", "noxfile.py session tests", or None.
    automation: str | None = None
    pytest_configured: bool = False
    # Requirement files read, and the ones seen but not used (with why).
    files: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def is_code_tool(name: str | None) -> bool:
    """A linter, formatter, type checker, docs or release tool (or a flake8 plugin, stub)."""
    if name is None:
        return False
    return (
        name in CODE_TOOLS
        or name.startswith(("flake8-", "types-", "sphinx-", "sphinxcontrib-", "mkdocs-"))
        or name.endswith("-stubs")
    )


def is_not_for_tests(name: str) -> bool:
    """A tox environment, nox session or dependency group named for something else than the
    tests: "docs", "lint", "typing", "py311-mypy"."""
    return bool(set(re.split(r"[-_]", name.lower())) & _NOT_TESTS)


def with_suffixes(stem: str) -> list[str]:
    return [stem + suffix for suffix in REQUIREMENT_SUFFIXES]


def find_requirement_file(root: Path, stems: tuple[str, ...]) -> str | None:
    """The first of `stems` that exists with a requirement suffix (a .txt before a .in)."""
    for stem in stems:
        for name in with_suffixes(stem):
            if (root / name).is_file():
                return name
    return None


def find_test_sources(root: Path, *, python: str) -> TestSources:
    result = TestSources()
    try:
        tox = read_tox(root)
    except ToxError as exc:
        result.warnings.append(f"{exc}; its test environment is not used")
        tox = None
    if tox is not None:
        result.pytest_configured = tox.pytest_configured
        _from_tox(root, tox, python, result)
    if result.automation is None and (root / "noxfile.py").is_file():
        _from_nox(root, result)
    if result.automation is None:
        _from_ci(root, result)
    nearby = _test_requirement_files(root)
    if result.files:
        for name in nearby:
            if name not in result.files:
                result.ignored.append(f"{name} (the {result.automation} does not install it)")
    else:
        for name in nearby:
            _read_file(root, name, result, origin=name)
    for name in _other_purpose_files(root):
        if name not in result.files:
            result.ignored.append(f"{name} (not for the tests)")
    for ignored in result.ignored:
        result.reasons.append(f"test dependencies: {ignored} ignored")
    return result


# --- tox ----------------------------------------------------------------------------------------


def _from_tox(root: Path, tox: ToxConfig, python: str, result: TestSources) -> None:
    names = test_env_names(tox, python)
    if not names:
        return
    runs_tests = [
        name
        for name in names
        if not (factors_of(name) & _NOT_TESTS)
        and any(_RUNNERS.search(command) for command in env(tox, name, python=python).commands)
    ]
    candidates = runs_tests or [n for n in names if not (factors_of(n) & _NOT_TESTS)]
    if not candidates:
        return
    chosen = env(tox, candidates[0], python=python)
    section = "testenv" if chosen.name == "testenv" else f"testenv:{chosen.name}"
    label = (
        f"{tox.source} [{section}]"
        if section in tox.sections
        else f"{tox.source} env {chosen.name}"
    )
    result.automation = label
    result.commands = chosen.commands
    result.setenv = chosen.setenv
    result.warnings += chosen.problems
    why = "runs the tests" if runs_tests else "the first test environment"
    result.reasons.append(f"test dependencies: {label} ({why} for Python {python})")
    for extra in chosen.extras:
        _add_extra(extra, result, label)
    for group in chosen.groups:
        if group not in result.groups:
            result.groups.append(group)
            result.reasons.append(f"test dependencies: group {group!r} ({label} installs it)")
    _deps(root, chosen.deps, result, label)


def _deps(root: Path, lines: list[str], result: TestSources, origin: str) -> None:
    """Requirement lines of a test environment: files followed, the project's own extras kept."""
    for line in lines:
        option, argument = _option(line)
        if option in ("-r", "-c"):
            _read_file(root, argument, result, origin=origin, constraint=option == "-c")
            continue
        target = argument if option == "-e" else line
        if _is_local(target):
            path, _, extras = target.partition("[")
            if path.rstrip("/") in (".", "./", ""):
                for extra in extras.rstrip("]").split(","):
                    if extra.strip():
                        _add_extra(extra.strip(), result, origin)
            else:
                result.warnings.append(
                    f"{origin}: the local path {target!r} is not installed for the tests"
                )
            continue
        if option:
            result.warnings.append(f"{origin}: the pip option {line!r} is left out")
            continue
        try:
            Requirement(line)
        except InvalidRequirement:
            result.warnings.append(
                f"{origin}: {line!r} is not a requirement this service can read; left out "
                "(a limit of the service; say it in a requirements file if the tests need it)"
            )
            continue
        result.requirements.append(line)


def _add_extra(extra: str, result: TestSources, origin: str) -> None:
    if extra not in result.extras:
        result.extras.append(extra)
        result.reasons.append(f"test dependencies: extra {extra!r} ({origin} installs it)")


def _option(line: str) -> tuple[str, str]:
    for long_form, short in (("--requirement", "-r"), ("--constraint", "-c"), ("--editable", "-e")):
        for form in (long_form, short):
            if line.startswith(form):
                rest = line[len(form) :]
                if rest[:1] in (" ", "=", "\t") or (form == short and rest and rest[0] != "-"):
                    return short, rest.lstrip(" =\t").strip()
    if line.startswith("-"):
        return line.split()[0], line
    return "", line


def _is_local(target: str) -> bool:
    head = target.split("[", 1)[0].strip()
    return head in (".", "..", "") or head.startswith(("./", "../", "/")) or head == "file:."


def _read_file(
    root: Path, name: str, result: TestSources, *, origin: str, constraint: bool = False
) -> None:
    relative = name.removeprefix("./")
    try:
        read = read_requirements(root, relative)
    except RequirementsError as exc:
        result.warnings.append(f"{origin}: {exc}; left out")
        return
    if constraint:
        result.constraints += read.lines + read.constraints
    else:
        result.requirements += read.lines
        result.constraints += read.constraints
    for path in read.local_paths:
        base, _, extras = path.partition("[")
        if base == ".":
            for extra in extras.rstrip("]").split(","):
                if extra.strip():
                    _add_extra(extra.strip(), result, relative)
    for file in read.files:
        if file not in result.files:
            result.files.append(file)
    what = "constraints" if constraint else "requirements"
    via = "" if origin == relative else f" (named by {origin})"
    result.reasons.append(f"test dependencies: {' + '.join(read.files)}{via} as {what}")


# --- CI ---------------------------------------------------------------------------------------


def _from_ci(root: Path, result: TestSources) -> None:
    job = ci_test_job(
        root,
        runs_tests=lambda command: bool(_RUNNERS.search(command)),
        not_for_tests=is_not_for_tests,
    )
    if job is None:
        return
    result.automation = job.label
    result.commands = job.commands
    result.reasons.append(
        f"test dependencies: {job.label} (it runs the tests; the project has no tox or nox "
        "test environment)"
    )
    for line in job.skipped:
        result.warnings.append(
            f"{job.label}: {line!r} depends on CI variables; left out (name it in a requirements "
            "file if the tests need it)"
        )
    _deps(root, job.installs, result, job.label)


# --- files --------------------------------------------------------------------------------------


def _test_requirement_files(root: Path) -> list[str]:
    """Test requirement files by name: the test-specific ones, or else the dev ones."""
    specific: list[str] = []
    general: list[str] = []
    for folder in ("tests", "test", "testing"):
        found = find_requirement_file(root, (f"{folder}/requirements",))
        if found:
            specific.append(found)
    for stem in _TEST_STEMS:
        target = specific if stem.startswith("test") else general
        for candidate in (
            f"requirements/{stem}",
            f"requirements-{stem}",
            f"requirements_{stem}",
            f"{stem}-requirements",
            f"{stem}_requirements",
            f"requirements/requirements-{stem}",
        ):
            found = find_requirement_file(root, (candidate,))
            if found and found not in target:
                target.append(found)
    return specific or general


def _other_purpose_files(root: Path) -> list[str]:
    found = []
    for stem in ("docs/requirements", "doc/requirements", "requirements/docs", "requirements-docs"):
        name = find_requirement_file(root, (stem,))
        if name:
            found.append(name)
    return found


# --- nox ----------------------------------------------------------------------------------------


def _from_nox(root: Path, result: TestSources) -> None:
    try:
        tree = ast.parse((root / "noxfile.py").read_bytes())
    except (SyntaxError, ValueError):
        result.warnings.append("noxfile.py does not parse; its sessions are not used")
        return
    bindings: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                strings = _strings(node.value, {})
                if strings is not None:
                    bindings[target.id] = strings
    sessions = [
        (name, node)
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and (name := _session_name(node)) is not None
    ]
    if not sessions:
        return
    chosen = next(
        (
            (name, node)
            for name, node in sessions
            if "test" in name.lower() and not (set(re.split(r"[-_]", name)) & _NOT_TESTS)
        ),
        None,
    )
    if chosen is None:
        chosen = next(
            (
                (name, node)
                for name, node in sessions
                if any(_RUNNERS.search(c) for c in _nox_calls(node, "run", bindings))
            ),
            None,
        )
    if chosen is None:
        return
    name, function = chosen
    label = f"noxfile.py session {name!r}"
    result.automation = label
    result.reasons.append(f"test dependencies: {label} (it runs the tests)")
    result.commands = _nox_calls(function, "run", bindings)
    lines: list[str] = []
    for call in _calls(function, "install"):
        args = _call_strings(call, bindings)
        index = 0
        while index < len(args):
            arg = args[index]
            if arg in ("-r", "--requirement", "-c", "--constraint", "-e", "--editable") and (
                index + 1 < len(args)
            ):
                lines.append(f"{arg} {args[index + 1]}")
                index += 2
                continue
            if not arg.startswith("-"):
                lines.append(arg)
            index += 1
    _deps(root, lines, result, label)


def _session_name(node: ast.FunctionDef) -> str | None:
    for decorator in node.decorator_list:
        func = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name != "session":
            continue
        if isinstance(decorator, ast.Call):
            for keyword in decorator.keywords:
                if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                    return str(keyword.value.value)
        return node.name
    return None


def _calls(function: ast.FunctionDef, method: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(function)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == method
    ]


def _nox_calls(function: ast.FunctionDef, method: str, bindings: dict[str, list[str]]) -> list[str]:
    return [" ".join(_call_strings(call, bindings)) for call in _calls(function, method)]


def _call_strings(call: ast.Call, bindings: dict[str, list[str]]) -> list[str]:
    found: list[str] = []
    for arg in call.args:
        value = arg.value if isinstance(arg, ast.Starred) else arg
        strings = _strings(value, bindings)
        if strings is not None:
            found += strings
    return found


def _strings(node: ast.expr, bindings: dict[str, list[str]]) -> list[str] | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name) and node.id in bindings:
        return bindings[node.id]
    if isinstance(node, ast.List | ast.Tuple):
        items: list[str] = []
        for item in node.elts:
            strings = _strings(item, bindings)
            if strings is None:
                return None
            items += strings
        return items
    return None
