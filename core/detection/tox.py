"""Read a tox configuration the way tox reads it, as far as choosing a test environment needs.

Sources, first that exists: tox.ini, setup.cfg (`[tox:tox]` and `[testenv...]`), pyproject.toml
(`[tool.tox] legacy_tox_ini`, or tox 4's native `env_run_base` / `env.NAME` tables).

What is understood:

    envlist            with brace expansion: `py{310,311}-django{42,50}`
    inheritance        `[testenv:NAME]` falls back to `[testenv]`, or to the section its `base`
                       names; `{[section]key}` references are followed
    factor conditions  `py311: pytest`, `!py311: x`, `py311,py312: x`, `django42-py311: x`
    substitutions      {toxinidir}, {toxworkdir}, {envpython}, {envbindir}, {envsitepackagesdir},
                       {envtmpdir}, {envname}, {basepython}, {posargs:default}, {env:VAR:default},
                       {/}, {:}
    deps               requirement lines, `-r`/`-c` files, the project itself (`.`, `-e .[x]`)
    extras, commands, setenv

Nothing runs. A value that needs something unknown (an undefined variable, a substitution this
reader does not know) is reported, never guessed.
"""

from __future__ import annotations

import configparser
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A single choice is braced too: `py{38,311}-dj{41}` (django-model-utils) is py38-dj41, ...
_BRACE = re.compile(r"\{([^{}]*)\}")
# A factor condition ahead of a value: "py311: ...", "!docs,py3{10,11}: ...". The factors are
# identifiers, so "git+https://x" and "{posargs:x}" are not conditions.
_CONDITION = re.compile(
    r"^\s*(?P<cond>!?[A-Za-z0-9_.{},!-]+(?:\s*,\s*!?[A-Za-z0-9_.{},-]+)*)\s*:\s+"
)
# py311, py3.11, python3.11; a "t" suffix is the free-threaded build of that version.
_PY_FACTOR = re.compile(r"^(?:py(?:thon)?)?(\d)\.?(\d+)(t?)$")
_SUBSTITUTION = re.compile(r"\{([^{}]*)\}")


class ToxError(ValueError):
    """A tox configuration that cannot be read (invalid INI or TOML)."""


@dataclass
class ToxEnv:
    """One test environment, as tox would set it up."""

    name: str
    source: str  # "tox.ini", "setup.cfg", "pyproject.toml"
    deps: list[str] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)
    # PEP 735 dependency groups (tox 4's `dependency_groups`).
    groups: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    setenv: dict[str, str] = field(default_factory=dict)
    # Substitutions that could not be resolved, and lines dropped because of them.
    problems: list[str] = field(default_factory=list)


@dataclass
class ToxConfig:
    source: str
    envlist: list[str]
    sections: dict[str, dict[str, str]]
    pytest_configured: bool = False


def read_tox(root: Path) -> ToxConfig | None:
    """The project's tox configuration, or None without one."""
    path = root / "tox.ini"
    if path.is_file():
        return _from_ini(path.read_text(encoding="utf-8", errors="replace"), "tox.ini", prefix="")
    setup_cfg = root / "setup.cfg"
    if setup_cfg.is_file():
        text = setup_cfg.read_text(encoding="utf-8", errors="replace")
        if re.search(r"^\[(tox:tox|testenv)[\]:]", text, re.MULTILINE):
            return _from_ini(text, "setup.cfg", prefix="tox:")
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8", errors="replace"))
        except tomllib.TOMLDecodeError:
            return None  # reported by the detection that reads pyproject.toml itself
        tox = data.get("tool", {}).get("tox") if isinstance(data.get("tool"), dict) else None
        if isinstance(tox, dict):
            if isinstance(tox.get("legacy_tox_ini"), str):
                return _from_ini(tox["legacy_tox_ini"], "pyproject.toml", prefix="")
            return _from_toml(tox)
    return None


def _from_ini(text: str, source: str, *, prefix: str) -> ToxConfig:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text, source=source)
    except configparser.Error as exc:
        raise ToxError(f"{source} is not a valid INI file: {exc}") from exc
    sections = {name: dict(parser.items(name, raw=True)) for name in parser.sections()}
    # setup.cfg names the global section [tox:tox]; tox.ini names it [tox].
    head = sections.get(f"{prefix}tox" if prefix else "tox", {})
    envlist = expand_envlist(head.get("envlist", "") or head.get("env_list", ""))
    return ToxConfig(source, envlist, sections, pytest_configured="pytest" in sections)


def _from_toml(tox: dict[str, Any]) -> ToxConfig:
    """tox 4's native TOML: `env_run_base` is [testenv], `env.NAME` is [testenv:NAME]."""

    def section(table: Any) -> dict[str, str]:
        result: dict[str, str] = {}
        if not isinstance(table, dict):
            return result
        for key, value in table.items():
            if isinstance(value, str):
                result[key] = value
            elif isinstance(value, list) and key == "commands":
                result[key] = "\n".join(
                    " ".join(str(part) for part in command if isinstance(part, str))
                    for command in value
                    if isinstance(command, list)
                )
            elif isinstance(value, list):
                result[key] = "\n".join(str(item) for item in value if isinstance(item, str))
        return result

    sections = {"testenv": section(tox.get("env_run_base"))}
    envs = tox.get("env", {})
    for name, table in envs.items() if isinstance(envs, dict) else []:
        sections[f"testenv:{name}"] = section(table)
    envlist = tox.get("env_list", [])
    names = [str(item) for item in envlist] if isinstance(envlist, list) else []
    return ToxConfig("pyproject.toml", names, sections)


def expand_envlist(value: str) -> list[str]:
    names: list[str] = []
    for item in re.split(r"[\n,](?![^{]*\})", value):
        item = item.split("#", 1)[0].strip()
        if item:
            names += expand_braces(item)
    return names


def expand_braces(text: str) -> list[str]:
    """`py{310,311}-x` -> ["py310-x", "py311-x"]."""
    text = _expand_ranges(text)
    match = _BRACE.search(text)
    if match is None:
        return [text]
    head, tail = text[: match.start()], text[match.end() :]
    result: list[str] = []
    for choice in match.group(1).split(","):
        result += expand_braces(head + choice.strip() + tail)
    return result


def _expand_ranges(text: str) -> str:
    """tox 4's numeric ranges: `py3{9-12}` is `py3{9,10,11,12}`."""

    def expand(match: re.Match[str]) -> str:
        low, high = int(match.group(1)), int(match.group(2))
        if not 0 <= high - low <= 50:
            return match.group(0)
        return "{" + ",".join(str(n) for n in range(low, high + 1)) + "}"

    return re.sub(r"\{(\d+)-(\d+)\}", expand, text)


def factors_of(env_name: str) -> set[str]:
    return {factor for factor in env_name.split("-") if factor}


def python_factor(version: str) -> str:
    """The tox factor of a Python version: "3.11" -> "py311"."""
    return "py" + version.replace(".", "")


def python_of_factor(factor: str) -> str | None:
    match = _PY_FACTOR.match(factor)
    if match is None:
        return None
    return f"{match.group(1)}.{match.group(2)}{match.group(3)}"


def env(config: ToxConfig, name: str, *, python: str) -> ToxEnv:
    """The settings of environment `name` (a name of the envlist, or "testenv")."""
    factors = factors_of(name) if name != "testenv" else set()
    result = ToxEnv(name=name, source=config.source)
    section = _section_name(config, name)
    context = _Context(config, result, name, python)

    def values(key: str) -> list[str]:
        raw = _lookup(config, section, key)
        if raw is None:
            return []
        lines = _join_continuations(raw.splitlines())
        kept: list[str] = []
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            applies = _condition_applies(line, factors)
            if applies is None:
                continue
            substituted = context.substitute(applies, key)
            if substituted is not None:
                kept += [part.strip() for part in substituted.splitlines() if part.strip()]
        return kept

    result.deps = [_strip_comment(line) for line in values("deps")]
    result.deps = [line for line in result.deps if line]
    result.extras = [
        extra.strip()
        for line in values("extras")
        for extra in line.split(",")
        if extra.strip() and not extra.strip().startswith("#")
    ]
    result.groups = [
        group.strip()
        for line in values("dependency_groups")
        for group in line.split(",")
        if group.strip()
    ]
    result.commands = values("commands")
    for line in values("setenv") + values("set_env"):
        key, sep, value = line.partition("=")
        if sep:
            result.setenv[key.strip()] = value.strip()
    return result


def test_env_names(config: ToxConfig, python: str) -> list[str]:
    """Candidate environments in the order to try: the envlist's entries for this Python, then
    the rest of the envlist, then the bare [testenv]."""
    factor = python_factor(python)
    in_list = [name for name in config.envlist if "testenv" in _section_name(config, name)]
    for_python = [
        name for name in in_list if any(python_of_factor(f) == python for f in factors_of(name))
    ]
    unpinned = [
        name
        for name in in_list
        if not any(python_of_factor(f) for f in factors_of(name)) and name not in for_python
    ]
    others = [name for name in in_list if name not in for_python and name not in unpinned]
    result = for_python + unpinned + others
    if not result:
        # No envlist: tox runs the default environment; a section named for this Python is
        # what `tox -e py311` would run.
        sections = [
            name.partition(":")[2] for name in config.sections if name.startswith("testenv:")
        ]
        result = [name for name in sections if factor in factors_of(name)]
        if "testenv" in config.sections:
            result.append("testenv")
    return result


# --- internals ----------------------------------------------------------------------------------


def _section_name(config: ToxConfig, env_name: str) -> str:
    # setup.cfg names them [testenv] and [testenv:NAME] too (only the global one differs).
    if env_name == "testenv":
        return "testenv"
    own = f"testenv:{env_name}"
    return own if own in config.sections else "testenv"


def _lookup(config: ToxConfig, section: str, key: str, depth: int = 0) -> str | None:
    values = config.sections.get(section, {})
    if key in values:
        return values[key]
    if depth > 8 or section == "testenv":
        return None
    base = values.get("base")
    parent = f"testenv:{base.strip()}" if base and base.strip() != "testenv" else "testenv"
    if parent == section:
        return None
    return _lookup(config, parent, key, depth + 1)


def _join_continuations(lines: list[str]) -> list[str]:
    joined: list[str] = []
    pending = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    if pending:
        joined.append(pending)
    return joined


def _strip_comment(line: str) -> str:
    # As pip: a comment starts at a "#" after whitespace (a space or a tab).
    return re.split(r"\s#", line, maxsplit=1)[0].strip()


def _condition_applies(line: str, factors: set[str]) -> str | None:
    """The line without its factor condition when the condition holds; None when it does not;
    the line itself when it has no condition."""
    match = _CONDITION.match(line)
    if match is None:
        return line
    condition = match.group("cond")
    if condition.startswith("{") and "}" not in condition:
        return line
    rest = line[match.end() :]
    for alternative in expand_braces(condition.replace(" ", "")):
        for option in alternative.split(","):
            required = [f for f in option.split("-") if f]
            if required and all(
                (f[1:] not in factors) if f.startswith("!") else (f in factors) for f in required
            ):
                return rest
    return None


class _Context:
    def __init__(self, config: ToxConfig, env: ToxEnv, name: str, python: str) -> None:
        self.config = config
        self.env = env
        self.name = name
        self.python = python

    def substitute(self, line: str, key: str, depth: int = 0) -> str | None:
        """`line` with its substitutions done; None (with a problem noted) when one cannot be."""
        failed: list[str] = []

        def replace(match: re.Match[str]) -> str:
            value = self._value(match.group(1), depth)
            if value is None:
                failed.append(match.group(0))
                return ""
            return value

        # Innermost first, so `{env:X:{posargs:tests}}` resolves in two passes.
        result = line
        for _ in range(4):
            if failed or _SUBSTITUTION.search(result) is None:
                break
            result = _SUBSTITUTION.sub(replace, result)
        if failed:
            self.env.problems.append(
                f"{self.config.source} [{_section_name(self.config, self.name)}] {key}: "
                f"{line!r} left out ({', '.join(failed)} cannot be known before the build)"
            )
            return None
        return result

    def _value(self, inner: str, depth: int) -> str | None:
        simple = {
            "toxinidir": ".",
            "tox_root": ".",
            "toxworkdir": ".tox",
            "work_dir": ".tox",
            "envdir": "/opt/venv",
            "env_dir": "/opt/venv",
            "envpython": "python",
            "env_python": "python",
            "envbindir": "/opt/venv/bin",
            "env_bin_dir": "/opt/venv/bin",
            "envsitepackagesdir": f"/opt/venv/lib/python{self.python}/site-packages",
            "env_site_packages_dir": f"/opt/venv/lib/python{self.python}/site-packages",
            "envtmpdir": "/tmp/tox",
            "env_tmp_dir": "/tmp/tox",
            "envlogdir": "/tmp/tox/log",
            "envname": self.name,
            "env_name": self.name,
            "basepython": "python",
            "homedir": "/tmp",
            "distshare": "/tmp/distshare",
            "/": "/",
            ":": ":",
            "": "",
        }
        if inner in simple:
            return simple[inner]
        if inner == "posargs" or inner.startswith("posargs:"):
            return inner.partition(":")[2]
        if inner.startswith(("env:", "tty:")):
            parts = inner.split(":", 2)
            if inner.startswith("env:"):
                variable = parts[1] if len(parts) > 1 else ""
                if variable in self.env.setenv:
                    return self.env.setenv[variable]
                return parts[2] if len(parts) > 2 else None
            return parts[2] if len(parts) > 2 else ""
        reference = re.match(r"^\[(?P<section>[^\]]*)\](?P<key>.+)$", inner)
        if reference and depth < 8:
            section = reference.group("section") or _section_name(self.config, self.name)
            raw = _lookup(self.config, section, reference.group("key").strip())
            if raw is None:
                return None
            factors = factors_of(self.name) if self.name != "testenv" else set()
            lines = []
            for line in _join_continuations(raw.splitlines()):
                line = line.strip()
                kept = _condition_applies(line, factors) if line else None
                if kept is None or kept.startswith("#"):
                    continue
                substituted = self.substitute(kept, reference.group("key"), depth + 1)
                if substituted is None:
                    return None
                lines.append(substituted)
            return "\n".join(lines)
        return None
