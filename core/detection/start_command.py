"""Infer how the image starts, by reading the project (Procfile, entry points, and the code's AST).

In order, the first that applies:

    Procfile `web:` line                      sh -c "exec <line>"   ($PORT is 8000)
    Django: manage.py -> settings module      gunicorn WSGI_APPLICATION, uvicorn ASGI_APPLICATION
    an app object in the code                 uvicorn module:app (FastAPI, Starlette)
                                              gunicorn module:app (Flask)
    an app factory in the code                uvicorn --factory module:create_app
                                              gunicorn 'module:create_app()'
    console scripts of an installed project   the first script
    a package with __main__.py                python -m package
    main.py, app.py, __main__.py at the root  python main.py

A web app is preferred over console scripts: a project that serves HTTP usually also ships
management commands, rarely the other way round. Files are recognised by what the code does
(`app = FastAPI()`), never by their names; names only order candidates that tie.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.detection.manifests import SKIPPED_DIRS

PORT = 8000
MAX_FILES = 3000
MAX_FILE_BYTES = 1024 * 1024

# Fully qualified constructors -> server kind.
_APP_CLASSES = {
    "fastapi.FastAPI": "asgi",
    "fastapi.applications.FastAPI": "asgi",
    "starlette.applications.Starlette": "asgi",
    "flask.Flask": "wsgi",
    "flask.app.Flask": "wsgi",
}
# Where an application object is never looked for: tooling folders, tests, docs, examples.
_SKIPPED = SKIPPED_DIRS | {
    "tests",
    "test",
    "testing",
    "docs",
    "doc",
    "examples",
    "migrations",
    "scripts",
    "benchmarks",
}
_IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")


@dataclass
class StartPlan:
    command: list[str]
    # "web": serves HTTP on `port`; "cli": runs and exits (boot-checked with --help);
    # "none": nothing to start (python's REPL).
    kind: str
    reason: str
    server: str | None = None  # "gunicorn" or "uvicorn" when the command needs it
    port: int | None = None
    notes: list[str] = field(default_factory=list)
    # The project says how it starts (Procfile, console scripts); False when guessed from the
    # code, whose failure to boot is then a warning (a library is not a site).
    declared: bool = False


@dataclass(frozen=True)
class _App:
    module: str
    attribute: str
    kind: str  # "asgi" | "wsgi"
    factory: bool
    path: str
    line: int
    framework: str

    @property
    def rank(self) -> tuple[int, int, str]:
        # App objects before factories, shallow modules first, then by name.
        return (1 if self.factory else 0, self.module.count("."), self.module)


def infer_start(
    root: Path,
    *,
    scripts: dict[str, str],
    scripts_source: str,
    installed: bool,
) -> StartPlan:
    """The start command for the project at `root` and why."""
    notes: list[str] = []
    procfile = _procfile_web(root)
    if procfile is not None:
        line, number = procfile
        server = _server_of(line)
        return StartPlan(
            ["/bin/sh", "-c", f"exec {line}"],
            "web",
            f"start: {line!r} because Procfile:{number} declares the web process",
            server=server,
            port=PORT,
            declared=True,
        )
    django = _django(root)
    if django is not None:
        return django
    apps = sorted(_find_apps(root), key=lambda app: app.rank)
    if apps:
        app = apps[0]
        if len(apps) > 1:
            others = ", ".join(f"{a.path}:{a.line}" for a in apps[1:4])
            notes.append(f"start: other app candidates ignored: {others}")
        if scripts:
            notes.append(
                f"start: console scripts ({', '.join(scripts)}) not used: a web app was found"
            )
        return _web_command(app, notes)
    if scripts:
        name = next(iter(scripts))
        if installed:
            return StartPlan(
                [name],
                "cli",
                f"start: {name} because {scripts_source} defines it",
                notes=notes,
                declared=True,
            )
        notes.append(f"start: script {name} ignored: the project is not installed as a package")
    package = _main_package(root)
    if package is not None:
        module, path = package
        return StartPlan(
            ["python", "-m", module],
            "cli",
            f"start: python -m {module} because {path} exists",
            notes=notes,
        )
    for name in ("main.py", "app.py", "__main__.py"):
        if (root / name).is_file():
            return StartPlan(
                ["python", name],
                "cli",
                f"start: python {name} because it exists at the project root",
                notes=notes,
            )
    return StartPlan(["python"], "none", "start: python (no entry point found)", notes=notes)


def _web_command(app: _App, notes: list[str]) -> StartPlan:
    target = f"{app.module}:{app.attribute}"
    made = f"{app.framework}()"
    if app.kind == "asgi":
        command = ["uvicorn", "--host", "0.0.0.0", "--port", str(PORT)]
        command += ["--factory", target] if app.factory else [target]
        server = "uvicorn"
    else:
        command = ["gunicorn", "--bind", f"0.0.0.0:{PORT}"]
        command.append(f"{target}()" if app.factory else target)
        server = "gunicorn"
    shown = " ".join(command[:1] + command[-1:])
    why = (
        f"{app.path}:{app.line} defines factory {app.attribute}() returning {made}"
        if app.factory
        else f"{app.path}:{app.line} creates {made}"
    )
    return StartPlan(command, "web", f"start: {shown} because {why}", server, PORT, notes)


# --- Procfile -----------------------------------------------------------------------------------


def _procfile_web(root: Path) -> tuple[str, int] | None:
    path = root / "Procfile"
    if not path.is_file():
        return None
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()):
        kind, _, command = line.partition(":")
        if kind.strip() == "web" and command.strip():
            return command.strip(), number + 1
    return None


def _server_of(command: str) -> str | None:
    words = command.split()
    for index, word in enumerate(words):
        if word in ("gunicorn", "uvicorn"):
            return word
        if word == "-m" and index + 1 < len(words) and words[index + 1] in ("gunicorn", "uvicorn"):
            return words[index + 1]
    return None


# --- Django -------------------------------------------------------------------------------------


def _django(root: Path) -> StartPlan | None:
    manage = root / "manage.py"
    if not manage.is_file():
        return None
    tree = _parse(manage)
    settings_module = None
    line = 0
    for node in ast.walk(tree) if tree else ():
        if (
            isinstance(node, ast.Call)
            and len(node.args) == 2
            and all(isinstance(arg, ast.Constant) for arg in node.args)
            and node.args[0].value == "DJANGO_SETTINGS_MODULE"  # type: ignore[attr-defined]
        ):
            settings_module = str(node.args[1].value)  # type: ignore[attr-defined]
            line = node.lineno
            break
    if settings_module is None:
        return None
    settings_path = _module_path(root, settings_module)
    values = _string_assignments(settings_path) if settings_path else {}
    why = f"manage.py:{line} sets DJANGO_SETTINGS_MODULE={settings_module}"
    shown_settings = settings_path.relative_to(root).as_posix() if settings_path else "settings"
    asgi = values.get("ASGI_APPLICATION")
    wsgi = values.get("WSGI_APPLICATION")
    if asgi is not None:
        target = _colon(asgi[0])
        return StartPlan(
            ["uvicorn", "--host", "0.0.0.0", "--port", str(PORT), target],
            "web",
            f"start: uvicorn {target} because {why} and {shown_settings}:{asgi[1]} sets "
            "ASGI_APPLICATION",
            "uvicorn",
            PORT,
        )
    if wsgi is not None:
        target = _colon(wsgi[0])
        reason = f"{shown_settings}:{wsgi[1]} sets WSGI_APPLICATION"
    else:
        package = settings_module.rpartition(".")[0]
        target = f"{package}.wsgi:application" if package else "wsgi:application"
        reason = "Django's default WSGI module is assumed"
    return StartPlan(
        ["gunicorn", "--bind", f"0.0.0.0:{PORT}", target],
        "web",
        f"start: gunicorn {target} because {why} and {reason}",
        "gunicorn",
        PORT,
    )


def _colon(dotted: str) -> str:
    module, _, attribute = dotted.rpartition(".")
    return f"{module}:{attribute}"


def _module_path(root: Path, module: str) -> Path | None:
    parts = module.split(".")
    for base in (root, root / "src"):
        for candidate in (
            base.joinpath(*parts).with_suffix(".py"),
            base.joinpath(*parts, "__init__.py"),
        ):
            if candidate.is_file():
                return candidate
    return None


def _string_assignments(path: Path) -> dict[str, tuple[str, int]]:
    tree = _parse(path)
    found: dict[str, tuple[str, int]] = {}
    for node in tree.body if tree else []:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            found[node.targets[0].id] = (node.value.value, node.lineno)
    return found


# --- apps in the code ---------------------------------------------------------------------------


def _find_apps(root: Path) -> list[_App]:
    modules = list(_modules(root))
    apps: list[_App] = []
    factories: dict[str, _App] = {}  # "module.function" -> factory
    pending: list[tuple[str, str, str, int, str]] = []  # module-level `x = f()` calls
    for module, package, path, tree in modules:
        imports = _imports(tree, package)
        local_factories: dict[str, _App] = {}
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                framework = _constructs_app(node, imports)
                if framework is not None and _callable_without_arguments(node):
                    app = _App(
                        module,
                        node.name,
                        _APP_CLASSES[framework],
                        True,
                        path,
                        node.lineno,
                        framework.rpartition(".")[2],
                    )
                    local_factories[node.name] = app
                    factories[f"{module}.{node.name}"] = app
        for node in tree.body:
            target, value = _assignment(node)
            if target is None or not isinstance(value, ast.Call):
                continue
            called = _qualified(value.func, imports)
            if called in _APP_CLASSES:
                apps.append(
                    _App(
                        module,
                        target,
                        _APP_CLASSES[called],
                        False,
                        path,
                        node.lineno,
                        called.rpartition(".")[2],
                    )
                )
            elif isinstance(value.func, ast.Name) and value.func.id in local_factories:
                factory = local_factories[value.func.id]
                apps.append(
                    _App(module, target, factory.kind, False, path, node.lineno, factory.framework)
                )
            elif called is not None:
                pending.append((module, target, called, node.lineno, path))
    for module, target, called, line, path in pending:
        known = factories.get(called)
        if known is not None:
            apps.append(_App(module, target, known.kind, False, path, line, known.framework))
    return apps + list(factories.values())


def _assignment(node: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        if isinstance(target, ast.Name):
            return target.id, node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
        return node.target.id, node.value
    return None, None


def _constructs_app(
    function: ast.FunctionDef | ast.AsyncFunctionDef, imports: dict[str, str]
) -> str | None:
    returns = any(
        isinstance(node, ast.Return) and node.value is not None for node in ast.walk(function)
    )
    if not returns:
        return None
    local_imports = dict(imports)
    for node in ast.walk(function):
        if isinstance(node, ast.ImportFrom | ast.Import):
            local_imports.update(_import_names(node, ""))
    for node in ast.walk(function):
        if isinstance(node, ast.Call):
            called = _qualified(node.func, local_imports)
            if called in _APP_CLASSES:
                return called
    return None


def _callable_without_arguments(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    args = function.args
    required = len(args.posonlyargs) + len(args.args) - len(args.defaults)
    required_kw = sum(1 for default in args.kw_defaults if default is None)
    return required <= 0 and required_kw == 0


def _imports(tree: ast.Module, package: str) -> dict[str, str]:
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update(_import_names(node, package))
        elif isinstance(node, ast.Try | ast.If):
            for child in ast.walk(node):
                if isinstance(child, ast.Import | ast.ImportFrom):
                    names.update(_import_names(child, package))
    return names


def _import_names(node: ast.Import | ast.ImportFrom, package: str) -> dict[str, str]:
    names: dict[str, str] = {}
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname:
                names[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                names[top] = top
        return names
    base = node.module or ""
    if node.level:
        parts = package.split(".") if package else []
        anchor = parts[: len(parts) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    for alias in node.names:
        names[alias.asname or alias.name] = f"{base}.{alias.name}" if base else alias.name
    return names


def _qualified(func: ast.expr, imports: dict[str, str]) -> str | None:
    parts: list[str] = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        return None
    head = imports.get(func.id)
    if head is None:
        return None
    return ".".join([head, *reversed(parts)])


def _modules(root: Path) -> Iterator[tuple[str, str, str, ast.Module]]:
    """(module, its package, relative path, tree) for each importable file, src/ stripped."""
    count = 0
    for directory, subdirs, files in os.walk(root):
        relative_dir = Path(directory).relative_to(root)
        subdirs[:] = sorted(
            d
            for d in subdirs
            if d not in _SKIPPED and not d.startswith(".") and _IDENTIFIER.match(d)
        )
        for name in sorted(files):
            if not name.endswith(".py") or name in (
                "setup.py",
                "noxfile.py",
                "conftest.py",
                "manage.py",
            ):
                continue
            stem = name[:-3]
            if not _IDENTIFIER.match(stem) or stem.startswith("test_") or stem.endswith("_test"):
                continue
            path = Path(directory) / name
            count += 1
            if count > MAX_FILES or path.stat().st_size > MAX_FILE_BYTES:
                return
            tree = _parse(path)
            if tree is None:
                continue
            parts = list(relative_dir.parts)
            if parts[:1] == ["src"]:
                parts = parts[1:]
            package = ".".join(parts)
            dotted = ".".join([*parts, stem]) if stem != "__init__" else package
            if dotted:
                yield dotted, package, path.relative_to(root).as_posix(), tree


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_bytes(), str(path))
    except (SyntaxError, ValueError, OSError):
        return None


def _main_package(root: Path) -> tuple[str, str] | None:
    for base in (root, root / "src"):
        if not base.is_dir():
            continue
        for child in sorted(base.iterdir()):
            if (
                child.is_dir()
                and _IDENTIFIER.match(child.name)
                and child.name not in _SKIPPED
                and (child / "__main__.py").is_file()
            ):
                return child.name, (child / "__main__.py").relative_to(root).as_posix()
    return None
