"""Read the dependency manifests that are not pip requirement files, without running anything.

setup.py is read with `ast` (keyword arguments of the `setup()` call whose values are literals, or
names bound to literals at module level); setup.cfg with configparser; Poetry's and Pipenv's
dependency tables are translated to PEP 508 lines; Pipfile.lock is turned into pinned, hashed
requirement lines exactly as `pipenv requirements` does (tox and nox:
`core/detection/test_sources.py`).
"""

from __future__ import annotations

import ast
import configparser
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

# Folders that hold no project code of interest: tools' caches, virtual environments, builds.
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


class ManifestError(ValueError):
    """A manifest that cannot be read (invalid JSON, INI); the message names the file."""


# --- setup.py -----------------------------------------------------------------------------------


@dataclass
class SetupCall:
    """What the `setup()` call of a setup.py says; None where it is not a literal."""

    line: int
    name: str | None = None
    install_requires: list[str] | None = None
    extras_require: dict[str, list[str]] | None = None
    # setuptools' legacy declaration of the test requirements (`python setup.py test`).
    tests_require: list[str] | None = None
    python_requires: str | None = None
    console_scripts: dict[str, str] = field(default_factory=dict)
    has_ext_modules: bool = False
    # Dotted names of the extension modules it declares (Extension("pkg._speedups", ...)).
    extension_modules: list[str] = field(default_factory=list)
    # Keywords present but computed (not literals): their values are known only by running it.
    dynamic: list[str] = field(default_factory=list)


_UNKNOWN = object()


def read_setup_py(path: Path) -> SetupCall | None:
    """The literal keyword arguments of the `setup()` call in `path`, or None without one."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"), str(path))
    except (SyntaxError, ValueError):
        return None
    bindings: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                bindings[target.id] = node.value
    call = next(
        (
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and _call_name(node.func) == "setup"
        ),
        None,
    )
    if call is None:
        return None
    result = SetupCall(line=call.lineno, extension_modules=_extension_names(tree, path.parent))
    for keyword in call.keywords:
        if keyword.arg is None:
            result.dynamic.append("**kwargs")
            continue
        value = _literal(keyword.value, bindings, depth=0)
        if value is _UNKNOWN:
            result.dynamic.append(keyword.arg)
            continue
        _apply_setup_keyword(result, keyword.arg, value)
    return result


def _extension_names(tree: ast.Module, root: Path) -> list[str]:
    """Names of `Extension(...)` calls anywhere in setup.py, and of the .pyx files a
    `cythonize("pattern")` call names."""
    names: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        called = _call_name(node.func)
        if called in ("Extension", "Pybind11Extension", "RustExtension"):
            first = node.args[0] if node.args else None
            keyword = next((k.value for k in node.keywords if k.arg == "name"), None)
            value = first if first is not None else keyword
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                names.append(value.value)
        elif called == "cythonize":
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names += _pyx_modules(root, arg.value)
    return list(dict.fromkeys(names))


def _pyx_modules(root: Path, pattern: str) -> list[str]:
    if pattern.startswith("/") or ".." in pattern:
        return []
    modules = []
    for path in sorted(root.glob(pattern))[:100]:
        if path.suffix == ".pyx":
            parts = path.relative_to(root).with_suffix("").parts
            modules.append(".".join(parts[1:] if parts[0] == "src" else parts))
    return modules


def _apply_setup_keyword(result: SetupCall, name: str, value: Any) -> None:
    if name == "name" and isinstance(value, str):
        result.name = value
    elif name == "install_requires":
        result.install_requires = _requirement_list(value)
    elif name == "tests_require":
        result.tests_require = _requirement_list(value)
    elif name == "extras_require" and isinstance(value, dict):
        result.extras_require = {
            str(key): _requirement_list(item) or [] for key, item in value.items()
        }
    elif name == "python_requires" and isinstance(value, str):
        result.python_requires = value
    elif name == "entry_points" and isinstance(value, dict):
        result.console_scripts = _console_scripts(value.get("console_scripts"))
    elif name == "ext_modules":
        result.has_ext_modules = bool(value)


def _call_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _literal(node: ast.expr, bindings: dict[str, ast.expr], depth: int) -> Any:
    """A literal value, following module-level names and `+` of lists; _UNKNOWN otherwise."""
    if depth > 8:
        return _UNKNOWN
    if isinstance(node, ast.Name):
        bound = bindings.get(node.id)
        return _UNKNOWN if bound is None else _literal(bound, bindings, depth + 1)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = _literal(node.left, bindings, depth + 1)
        right = _literal(node.right, bindings, depth + 1)
        if isinstance(left, list | tuple) and isinstance(right, list | tuple):
            return [*left, *right]
        if isinstance(left, str) and isinstance(right, str):
            return left + right
        return _UNKNOWN
    if isinstance(node, ast.List | ast.Tuple):
        items = [_literal(item, bindings, depth + 1) for item in node.elts]
        return _UNKNOWN if any(item is _UNKNOWN for item in items) else items
    if isinstance(node, ast.Dict):
        keys = [_literal(k, bindings, depth + 1) if k is not None else _UNKNOWN for k in node.keys]
        values = [_literal(v, bindings, depth + 1) for v in node.values]
        if any(item is _UNKNOWN for item in (*keys, *values)):
            return _UNKNOWN
        return dict(zip(keys, values, strict=True))
    if isinstance(node, ast.Call) and _call_name(node.func) in ("Extension", "Pybind11Extension"):
        return ["<extension>"]
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _UNKNOWN


def _requirement_list(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [line.strip() for line in value.splitlines() if line.strip()]
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return [item.strip() for item in value if item.strip()]
    return None


def _console_scripts(value: Any) -> dict[str, str]:
    lines = value.splitlines() if isinstance(value, str) else value
    scripts: dict[str, str] = {}
    if isinstance(lines, list | tuple):
        for line in lines:
            if isinstance(line, str) and "=" in line:
                name, _, target = line.partition("=")
                scripts[name.strip()] = target.strip()
    return scripts


# --- setup.cfg ----------------------------------------------------------------------------------


@dataclass
class SetupCfg:
    name: str | None = None
    install_requires: list[str] | None = None
    install_requires_line: int | None = None
    extras_require: dict[str, list[str]] = field(default_factory=dict)
    python_requires: str | None = None
    console_scripts: dict[str, str] = field(default_factory=dict)
    pytest_configured: bool = False


def read_setup_cfg(path: Path) -> SetupCfg:
    text = path.read_text(encoding="utf-8", errors="replace")
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text, source=path.name)
    except configparser.Error as exc:
        raise ManifestError(f"{path.name} is not a valid INI file: {exc}") from exc
    result = SetupCfg(pytest_configured=parser.has_section("tool:pytest"))
    if parser.has_option("metadata", "name"):
        result.name = parser.get("metadata", "name").strip()
    if parser.has_option("options", "install_requires"):
        value = parser.get("options", "install_requires")
        result.install_requires = _cfg_requirements(value, path.parent)
        result.install_requires_line = _line_of(text, "install_requires")
    if parser.has_option("options", "python_requires"):
        result.python_requires = parser.get("options", "python_requires").strip()
    if parser.has_section("options.extras_require"):
        for extra, value in parser.items("options.extras_require"):
            result.extras_require[extra] = _cfg_requirements(value, path.parent) or []
    if parser.has_option("options.entry_points", "console_scripts"):
        lines = parser.get("options.entry_points", "console_scripts").splitlines()
        result.console_scripts = _console_scripts([line for line in lines if line.strip()])
    return result


def _cfg_requirements(value: str, root: Path) -> list[str] | None:
    value = value.strip()
    if value.startswith("file:"):
        # `file: requirements.in`: setuptools reads plain requirement lines from the files.
        lines: list[str] = []
        for name in value.removeprefix("file:").split(","):
            target = (root / name.strip()).resolve()
            if root.resolve() not in target.parents or not target.is_file():
                return None
            lines += target.read_text(encoding="utf-8", errors="replace").splitlines()
        value = "\n".join(lines)
    return [
        line.split(" #", 1)[0].strip()
        for line in value.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def _line_of(text: str, needle: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith(needle):
            return number
    return None


# --- Poetry -------------------------------------------------------------------------------------


_POETRY_VERSION = re.compile(
    r"^\s*(?P<op>\^|~(?!=))?\s*(?P<version>\d+(?:\.\d+)*)(?P<star>\.\*)?\s*$"
)


def poetry_constraint(constraint: str) -> str | None:
    """A Poetry version constraint as a PEP 440 specifier ("" for any); None if it has none.

    `^1.2.3` is `>=1.2.3,<2.0.0`, `~1.2` is `>=1.2,<1.3`, a bare version is `==`, and `||`
    alternatives cannot be expressed in PEP 440 (None)."""
    text = constraint.strip()
    if text in ("", "*"):
        return ""
    if "||" in text or "|" in text:
        return None
    parts = [part.strip() for part in re.split(r",|\s+(?=[<>=!~^])", text) if part.strip()]
    specifiers: list[str] = []
    for part in parts:
        converted = _poetry_single(part)
        if converted is None:
            return None
        specifiers.append(converted)
    result = ",".join(item for item in specifiers if item)
    try:
        SpecifierSet(result)
    except InvalidSpecifier:
        return None
    return result


def _poetry_single(part: str) -> str | None:
    match = _POETRY_VERSION.match(part)
    if match is None:
        compact = re.sub(r"\s+", "", part)
        return compact if re.match(r"^(==|!=|<=|>=|<|>|~=|===)\S+$", compact) else None
    numbers = [int(piece) for piece in match.group("version").split(".")]
    version = match.group("version")
    if match.group("star"):
        return f"=={version}.*"
    if match.group("op") == "^":
        index = next((i for i, n in enumerate(numbers) if n != 0), len(numbers) - 1)
        upper = [*numbers[:index], numbers[index] + 1]
        return f">={version},<{'.'.join(map(str, _pad(upper, len(numbers))))}"
    if match.group("op") == "~":
        if len(numbers) == 1:
            return f">={version},<{numbers[0] + 1}"
        upper = [numbers[0], numbers[1] + 1]
        return f">={version},<{'.'.join(map(str, _pad(upper, len(numbers))))}"
    return f"=={version}"


def _pad(numbers: list[int], length: int) -> list[int]:
    return numbers + [0] * max(0, min(length, 3) - len(numbers))


def python_marker(constraint: str) -> str | None:
    """A Poetry `python = "..."` restriction of one dependency as a PEP 508 marker."""
    specifier = poetry_constraint(constraint)
    if not specifier:
        return None
    return " and ".join(
        f'python_version {item.operator} "{item.version}"'
        for item in SpecifierSet(specifier)
        if item.operator in ("<", "<=", ">", ">=", "==", "!=")
    )


@dataclass
class Converted:
    requirements: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Names of path dependencies (they need the source, like `-e .`).
    local: list[str] = field(default_factory=list)


def poetry_dependencies(table: Any, *, where: str) -> Converted:
    """`[tool.poetry.dependencies]`-style table -> PEP 508 lines (optional ones left out)."""
    result = Converted()
    if not isinstance(table, dict):
        return result
    for name, spec in table.items():
        if canonicalize_name(name) == "python":
            continue
        for item in spec if isinstance(spec, list) else [spec]:
            line = _poetry_line(name, item, result, where)
            if line is not None:
                result.requirements.append(line)
    return result


def _poetry_line(name: str, spec: Any, result: Converted, where: str) -> str | None:
    if isinstance(spec, str):
        specifier = poetry_constraint(spec)
        if specifier is None:
            result.warnings.append(f"{where}: {name} = {spec!r} has no PEP 440 form; unpinned")
            specifier = ""
        return f"{name}{specifier}"
    if not isinstance(spec, dict) or spec.get("optional") is True:
        return None
    extras = spec.get("extras") or []
    head = f"{name}[{','.join(extras)}]" if extras else name
    markers = [str(spec["markers"])] if isinstance(spec.get("markers"), str) else []
    if isinstance(spec.get("python"), str):
        marker = python_marker(spec["python"])
        if marker:
            markers.append(marker)
    if isinstance(spec.get("platform"), str):
        markers.append(f'sys_platform == "{spec["platform"]}"')
    marker_text = "; " + " and ".join(f"({m})" if " or " in m else m for m in markers)
    marker_text = marker_text if markers else ""
    if isinstance(spec.get("git"), str):
        ref = spec.get("rev") or spec.get("tag") or spec.get("branch")
        url = f"git+{spec['git']}" + (f"@{ref}" if ref else "")
        return f"{head} @ {url}{' ' if markers else ''}{marker_text}"
    if isinstance(spec.get("url"), str):
        return f"{head} @ {spec['url']}{' ' if markers else ''}{marker_text}"
    if isinstance(spec.get("path"), str):
        result.local.append(name)
        result.warnings.append(f"{where}: {name} is a path dependency; installed with the source")
        return None
    specifier = poetry_constraint(str(spec.get("version", "*")))
    if specifier is None:
        result.warnings.append(f"{where}: {name} has no PEP 440 form; unpinned")
        specifier = ""
    return f"{head}{specifier}{marker_text}"


# --- Pipenv -------------------------------------------------------------------------------------


def pipfile_dependencies(table: Any, *, where: str) -> Converted:
    """A Pipfile `[packages]` table -> PEP 508 lines."""
    result = Converted()
    if not isinstance(table, dict):
        return result
    for name, spec in table.items():
        if isinstance(spec, str):
            version = "" if spec.strip() in ("", "*") else spec.strip()
            if version and version[0].isdigit():
                version = f"=={version}"
            result.requirements.append(f"{name}{version}")
            continue
        if not isinstance(spec, dict):
            continue
        extras = spec.get("extras") or []
        head = f"{name}[{','.join(extras)}]" if extras else name
        marker = f"; {spec['markers']}" if isinstance(spec.get("markers"), str) else ""
        if isinstance(spec.get("path"), str) or isinstance(spec.get("file"), str):
            result.local.append(name)
            continue
        if isinstance(spec.get("git"), str):
            ref = spec.get("ref")
            url = f"git+{spec['git']}" + (f"@{ref}" if ref else "")
            result.requirements.append(f"{head} @ {url}{' ' if marker else ''}{marker}")
            continue
        version = str(spec.get("version", "*")).strip()
        version = "" if version in ("", "*") else version
        result.requirements.append(f"{head}{version}{marker}")
    if result.local:
        result.warnings.append(
            f"{where}: path dependencies ({', '.join(result.local)}) are installed with the source"
        )
    return result


def pipfile_lock_requirements(lock: dict[str, Any], section: str) -> Converted:
    """One section of Pipfile.lock ("default" or "develop") as pinned, hashed lines."""
    result = Converted()
    packages = lock.get(section, {})
    if not isinstance(packages, dict):
        return result
    for name, entry in sorted(packages.items()):
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("path"), str) or isinstance(entry.get("file"), str):
            result.local.append(name)
            continue
        extras = entry.get("extras") or []
        head = f"{name}[{','.join(sorted(extras))}]" if extras else name
        marker = f"; {entry['markers']}" if isinstance(entry.get("markers"), str) else ""
        if isinstance(entry.get("git"), str):
            ref = entry.get("ref")
            url = f"git+{entry['git']}" + (f"@{ref}" if ref else "")
            result.requirements.append(f"{head} @ {url}{' ' if marker else ''}{marker}")
            continue
        line = f"{head}{entry.get('version', '')}{marker}"
        hashes = entry.get("hashes") or []
        line += "".join(f" --hash={digest}" for digest in hashes if isinstance(digest, str))
        result.requirements.append(line)
    return result


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path.name} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ManifestError(f"{path.name} is not a JSON object")
    return data


def pipfile_hash(pipfile: dict[str, Any]) -> str:
    """The hash pipenv records in Pipfile.lock's `_meta`: stale when the Pipfile changed."""
    data: dict[str, Any] = {
        "_meta": {"sources": pipfile.get("source", []), "requires": pipfile.get("requires", {})},
        "default": pipfile.get("packages", {}),
        "develop": pipfile.get("dev-packages", {}),
    }
    for category, values in pipfile.items():
        if category not in ("source", "requires", "packages", "dev-packages", "pipenv", "scripts"):
            data[category] = values
    content = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(content.encode("utf-8")).hexdigest()
