"""Which runner runs a project's tests, from the commands of its own test environment.

A tox environment or nox session that runs `python manage.py test`, `python -m unittest ...` or
the project's own script (`python runtests.py`) says how its authors run the tests; pytest is the
default otherwise (it runs unittest tests too, with a JUnit report). The runner is recorded in the
plan and on the build (`tests.runner`): `pytest`, `unittest`, `django` or `custom`.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

RUNNERS = ("pytest", "unittest", "django", "custom")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def runner_of(command: str) -> str:
    words = _words(command)
    if any(word in ("pytest", "py.test") or word.endswith("/pytest") for word in words):
        return "pytest"
    if _module(words) == "pytest":
        return "pytest"
    if _django_test(words):
        return "django"
    if _module(words) == "unittest":
        return "unittest"
    return "custom"


def automation_command(root: Path, commands: list[str]) -> tuple[str, str] | None:
    """The test command the automation's `commands` amount to, with why; None when they run
    pytest (the default) or nothing this service can run the same way."""
    for line in commands:
        words = _words(line.lstrip("-").strip())
        if not words:
            continue
        unwrapped = _without_coverage(words)
        if unwrapped is None:
            continue
        words = unwrapped
        if words[0] in ("pytest", "py.test") or _module(words) == "pytest":
            return None
        if _django_test(words):
            args = words[words.index("test") + 1 :]
            head = (
                ["python", "manage.py", "test"]
                if "manage.py" in " ".join(words)
                else ["python", "-m", "django", "test"]
            )
            if not any(arg.startswith(("-v", "--verbosity")) for arg in args):
                args += ["-v", "2"]
            return shlex.join(head + args), f"{line!r} is how the project runs its tests"
        if _module(words) == "unittest":
            index = words.index("unittest")
            args = words[index + 1 :]
            if not any(arg in ("-v", "--verbose") for arg in args):
                args = ["-v", *args] if args[:1] != ["discover"] else ["discover", "-v", *args[1:]]
            return shlex.join(["python", "-m", "unittest", *args]), (
                f"{line!r} is how the project runs its tests"
            )
        script = _script(root, words)
        if script is not None:
            return shlex.join(["python", *script]), (
                f"{line!r} is how the project runs its tests (its own runner script)"
            )
    return None


def with_environment(command: str, setenv: dict[str, str]) -> str:
    """`command` preceded by the test environment's variables (tox `setenv`)."""
    assignments = [
        # The service passes its own pytest options (the JUnit report) in PYTEST_ADDOPTS:
        # the environment's are added to them, not put in their place.
        f'{name}="${{{name}:-}} "{shlex.quote(value)}'
        if name == "PYTEST_ADDOPTS"
        else f"{name}={shlex.quote(value)}"
        for name, value in sorted(setenv.items())
        if _ENV_NAME.match(name)
    ]
    return " ".join([*assignments, command]) if assignments else command


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def _module(words: list[str]) -> str | None:
    if len(words) >= 3 and _is_python(words[0]) and words[1] == "-m":
        return words[2]
    return None


def _is_python(word: str) -> bool:
    return re.fullmatch(r"(.*/)?python(3(\.\d+)?)?", word) is not None


def _django_test(words: list[str]) -> bool:
    text = " ".join(words[:4])
    return (
        re.search(r"(^|\s)(\S*/)?manage\.py test\b", text) is not None
        or re.search(r"^django-admin(\.py)? test\b", text) is not None
        or (_module(words) == "django" and "test" in words[3:4])
    )


def _without_coverage(words: list[str]) -> list[str] | None:
    """`coverage run [opts] -m pytest ...` -> `python -m pytest ...`; other coverage commands
    (report, combine) are no test command (None)."""
    if words[0] != "coverage" and _module(words) != "coverage":
        return words
    rest = words[1:] if words[0] == "coverage" else words[3:]
    if not rest or rest[0] != "run":
        return None
    index = 1
    while index < len(rest) and rest[index].startswith("-") and rest[index] != "-m":
        index += 1 if "=" in rest[index] or rest[index] in ("-p", "--parallel-mode") else 2
    remaining = rest[index:]
    if remaining[:1] == ["-m"]:
        return ["python", *remaining]
    return ["python", *remaining] if remaining else None


def _script(root: Path, words: list[str]) -> list[str] | None:
    """`python runtests.py ARGS` (or `./runtests.py`) when the script is in the project."""
    if _is_python(words[0]) and len(words) >= 2 and words[1].endswith(".py"):
        target = words[1:]
    elif words[0].endswith(".py"):
        target = words
    else:
        return None
    path = (root / target[0]).resolve()
    if root.resolve() not in path.parents or not path.is_file():
        return None
    return [target[0].removeprefix("./"), *target[1:]]
