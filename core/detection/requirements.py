"""Read pip requirements files without pip: follow `-r`/`-c` includes and separate local installs.

The generated Dockerfile installs dependencies before the project's source is copied, so requirement
lines that point at the project itself (`.`, `-e .`) are taken out and installed with the source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_INCLUDE = ("-r", "--requirement")
_CONSTRAINT = ("-c", "--constraint")
_EDITABLE = ("-e", "--editable")
# pip expands ${VAR} (this form only) from the environment; the build has none of the user's.
_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)\}")
# As pip: a comment starts at "#" at the start of a line or after whitespace (a space or a tab).
_COMMENT = re.compile(r"(^|\s)#.*$")


class RequirementsError(ValueError):
    """A requirements file that cannot be read safely (missing include, escape, cycle)."""


@dataclass
class Requirements:
    lines: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    # Local paths (relative to the project root) that need the source: ".", "./libs/foo", ...
    local_paths: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def read_requirements(root: Path, relative: str) -> Requirements:
    """Flatten `relative` (a path under `root`) and everything it includes."""
    result = Requirements()
    _read(root.resolve(), root.resolve() / relative, result, seen=set(), constraint=False)
    return result


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        # As pip does: a comment line never continues, even when it ends in a backslash.
        if line.endswith("\\") and not line.lstrip().startswith("#"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        line = _COMMENT.sub("", line)
        if line.strip():
            lines.append(line.strip())
    if pending.strip():
        lines.append(pending.strip())
    return lines


def _inside(root: Path, path: Path) -> Path:
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise RequirementsError(f"{path.name}: includes a file outside the project")
    return resolved


def _read(
    root: Path, path: Path, result: Requirements, *, seen: set[Path], constraint: bool
) -> None:
    path = _inside(root, path)
    if path in seen:
        return
    seen.add(path)
    if not path.is_file():
        raise RequirementsError(f"{path.relative_to(root)} is included but does not exist")
    result.files.append(path.relative_to(root).as_posix())
    for line in _logical_lines(path.read_text(encoding="utf-8", errors="replace")):
        option, argument = _split_option(line)
        if option in _INCLUDE or option in _CONSTRAINT:
            variables = _VARIABLE.findall(argument)
            if variables:
                raise RequirementsError(
                    f"{path.relative_to(root)}: {line!r} names the environment variable "
                    f"{', '.join(variables)}, which is not set in the build; write the path "
                    "itself (relative to the file)"
                )
            nested = _inside(root, path.parent / argument)
            _read(root, nested, result, seen=seen, constraint=constraint or option in _CONSTRAINT)
            continue
        target = argument if option in _EDITABLE else line
        if _is_local_path(target):
            local = _inside(root, path.parent / target.split("[", 1)[0])
            extras = "[" + target.split("[", 1)[1] if "[" in target else ""
            relative = local.relative_to(root).as_posix()
            result.local_paths.append(relative + extras)
            continue
        (result.constraints if constraint else result.lines).append(line)


def _split_option(line: str) -> tuple[str, str]:
    """("-r", "x.txt") for "-r x.txt", "-rx.txt" or "--requirement=x.txt"; else ("", line)."""
    for long_form, short_form in (
        ("--requirement", "-r"),
        ("--constraint", "-c"),
        ("--editable", "-e"),
    ):
        for form in (long_form, short_form):
            if line == form or not line.startswith(form):
                continue
            rest = line[len(form) :]
            if rest[:1] in (" ", "=") or (form == short_form and rest[:1] not in ("-", "")):
                return short_form, rest.lstrip(" =").strip()
    return "", line


def _is_local_path(requirement: str) -> bool:
    head = requirement.split("[", 1)[0].strip()
    return head in (".", "..") or head.startswith(("./", "../", "/"))
