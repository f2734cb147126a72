"""Choose the Python version from everything a project says about it, and report disagreements.

Two kinds of statements:

    pins         .python-version, runtime.txt, Pipfile [requires] python_version: "run on 3.X"
    constraints  requires-python, Poetry's `python = "^3.10"`, setup.py/setup.cfg
                 python_requires: "3.X must satisfy this" (installers enforce them)

The option wins. Otherwise the first pin is used when the constraints allow it and a base image
exists for it; when they do not, the closest version that the constraints allow and that is
available is used, and the conflict is a warning (in the plan and the log), never silent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version


class NoPythonVersion(ValueError):
    """The constraints allow none of the available versions."""


@dataclass(frozen=True)
class Statement:
    source: str  # "runtime.txt", "requires-python", ... as shown to the user
    value: str  # "3.11" for a pin, the specifier text for a constraint


@dataclass
class Choice:
    version: str
    reason: str
    warnings: list[str] = field(default_factory=list)


_PINS = (
    (".python-version", re.compile(r"^\s*(?:c?python-?)?(3\.\d+)(?:\.\d+)?\s*$")),
    ("runtime.txt", re.compile(r"^\s*python-(3\.\d+)")),
)


def file_pins(root: Path) -> list[Statement]:
    """Pins from .python-version (first usable line) and runtime.txt."""
    found: list[Statement] = []
    for name, pattern in _PINS:
        path = root / name
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines()[:5]:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            match = pattern.match(line)
            if match:
                found.append(Statement(name, match.group(1)))
            break
    return found


def pin_of(text: str) -> str | None:
    """ "3.11" from "3.11", "3.11.4"; None for anything else."""
    match = re.match(r"^\s*(3\.\d+)(?:\.\d+)?\s*$", text)
    return match.group(1) if match else None


def allows(specifier: SpecifierSet, version: str) -> bool:
    """Whether some release of `version` ("3.11") satisfies `specifier` (`>=3.11.4,<3.11.9`
    allows 3.11: some of its patch releases)."""
    return any(
        specifier.contains(Version(f"{version}.{patch}"), prereleases=True) for patch in range(100)
    )


def allows_every_patch(specifier: SpecifierSet, version: str) -> bool:
    return all(
        specifier.contains(Version(f"{version}.{patch}"), prereleases=True) for patch in range(100)
    )


def choose(
    *,
    pins: Sequence[Statement],
    constraints: Sequence[Statement],
    available: Sequence[str],
    default: str,
    requested: str | None,
) -> Choice:
    warnings: list[str] = []
    specs: list[tuple[Statement, SpecifierSet]] = []
    for statement in constraints:
        try:
            specs.append((statement, SpecifierSet(statement.value)))
        except InvalidSpecifier:
            warnings.append(
                f"{statement.source} {statement.value!r} is not a valid specifier; ignored"
            )

    distinct_pins = {pin.value for pin in pins}
    if len(distinct_pins) > 1:
        warnings.append(
            "conflicting Python versions: "
            + ", ".join(f"{pin.source} says {pin.value}" for pin in pins)
        )

    def patch_warnings(version: str) -> list[str]:
        return [
            f"{statement.source} {statement.value!r} allows only some {version}.x releases; the "
            f"base image's {version} release is used (the install fails if it is not one of them)"
            for statement, spec in specs
            if allows(spec, version) and not allows_every_patch(spec, version)
        ]

    choice = _choose(pins, specs, warnings, available, default, requested)
    choice.warnings += patch_warnings(choice.version)
    return choice


def _choose(
    pins: Sequence[Statement],
    specs: list[tuple[Statement, SpecifierSet]],
    warnings: list[str],
    available: Sequence[str],
    default: str,
    requested: str | None,
) -> Choice:
    def excluded_by(version: str) -> list[Statement]:
        return [statement for statement, spec in specs if not allows(spec, version)]

    if requested is not None:
        for statement in excluded_by(requested):
            warnings.append(
                f"conflict: option python_version={requested} but {statement.source} "
                f"{statement.value!r} excludes it"
            )
        return Choice(requested, f"python {requested}: option python_version", warnings)

    allowed = [v for v in available if not excluded_by(v)]
    if specs and not allowed:
        described = " and ".join(f"{s.source} {s.value!r}" for s, _ in specs)
        raise NoPythonVersion(
            f"{described} allows none of the available Python versions ({', '.join(available)})"
        )
    if pins:
        pin = pins[0]
        excluded = excluded_by(pin.value)
        if not excluded and pin.value in available:
            constraint_note = (
                f", allowed by {' and '.join(f'{s.source} {s.value!r}' for s, _ in specs)}"
                if specs
                else ""
            )
            return Choice(
                pin.value,
                f"python {pin.value}: {pin.source} says {pin.value}{constraint_note}",
                warnings,
            )
        chosen = _closest(pin.value, allowed)
        if excluded:
            warnings.append(
                f"conflict: {pin.source} says {pin.value} but "
                + " and ".join(f"{s.source} {s.value!r}" for s in excluded)
                + f" excludes it; building with {chosen}, the closest allowed version "
                "(make them agree)"
            )
        else:
            warnings.append(
                f"{pin.source} says {pin.value}, which this builder does not have "
                f"({', '.join(available)}); building with {chosen}, the closest allowed"
            )
        return Choice(
            chosen,
            f"python {chosen}: closest to {pin.source} {pin.value} "
            "that is allowed and available (see warnings)",
            warnings,
        )
    if specs:
        text = " and ".join(f"{s.source} {s.value!r}" for s, _ in specs)
        if default in allowed:
            return Choice(default, f"python {default}: the default, allowed by {text}", warnings)
        chosen = max(allowed, key=Version)
        return Choice(chosen, f"python {chosen}: newest available allowed by {text}", warnings)
    return Choice(
        default,
        f"python {default}: the service default (nothing in the project pins one)",
        warnings,
    )


def _closest(pin: str, candidates: Sequence[str]) -> str:
    if not candidates:
        return pin
    target = Version(pin).minor
    # Nearest minor version; on a tie the newer one.
    return min(candidates, key=lambda v: (abs(Version(v).minor - target), -Version(v).minor))
