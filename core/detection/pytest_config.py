"""What a project's pytest configuration needs: plugins implied by `addopts` and ini keys.

pytest reads the first of pytest.ini [pytest], pyproject.toml [tool.pytest.ini_options],
tox.ini [pytest], setup.cfg [tool:pytest]. An option a plugin adds (`--cov`, `--ds=`, `-n 4`,
`-p xdist`, `--benchmark-skip`) is a usage error without that plugin, so every test "fails" before
one runs. For each such plugin: nothing to do when the test environment has it; install it when
the project declares it anywhere (another extra, group, requirement file or automation file);
otherwise run pytest with those options taken out of addopts (`-o addopts=...`), and say so.
Options pytest has itself (`--doctest-modules`, `-ra`, `--strict-markers`) are left alone.
"""

from __future__ import annotations

import configparser
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

# Option (or option prefix, ending in "-") -> the distribution that adds it.
_OPTIONS: dict[str, str] = {
    "--cov": "pytest-cov",
    "--cov-": "pytest-cov",
    "--no-cov": "pytest-cov",
    "--no-cov-on-fail": "pytest-cov",
    "--ds": "pytest-django",
    "--dc": "pytest-django",
    "--reuse-db": "pytest-django",
    "--create-db": "pytest-django",
    "--nomigrations": "pytest-django",
    "--no-migrations": "pytest-django",
    "--migrations": "pytest-django",
    "-n": "pytest-xdist",
    "--numprocesses": "pytest-xdist",
    "--dist": "pytest-xdist",
    "--maxprocesses": "pytest-xdist",
    "--benchmark-": "pytest-benchmark",
    "--timeout": "pytest-timeout",
    "--timeout-method": "pytest-timeout",
    "--reruns": "pytest-rerunfailures",
    "--reruns-delay": "pytest-rerunfailures",
    "--only-rerun": "pytest-rerunfailures",
    "--randomly-": "pytest-randomly",
    "--asyncio-mode": "pytest-asyncio",
    "--mypy": "pytest-mypy",
    "--flake8": "pytest-flake8",
    "--black": "pytest-black",
    "--isort": "pytest-isort",
    "--ruff": "pytest-ruff",
    "--pylint": "pytest-pylint",
    "--html": "pytest-html",
    "--self-contained-html": "pytest-html",
    "--hypothesis-": "hypothesis",
    "--snapshot-update": "syrupy",
    "--doctest-glob-ext": "pytest-doctestplus",
    "--doctest-rst": "pytest-doctestplus",
    "--doctest-plus": "pytest-doctestplus",
    "--mpl": "pytest-mpl",
}
# Options that take a value in the next word when not written `--opt=value`.
_WITH_VALUE = frozenset(
    {
        "--ds",
        "--dc",
        "-n",
        "--numprocesses",
        "--dist",
        "--maxprocesses",
        "--cov-report",
        "--cov-config",
        "--cov-fail-under",
        "--cov-context",
        "--timeout",
        "--timeout-method",
        "--reruns",
        "--reruns-delay",
        "--only-rerun",
        "--asyncio-mode",
        "--html",
        "--randomly-seed",
        "--benchmark-sort",
        "--benchmark-columns",
        "--benchmark-min-rounds",
        "--benchmark-max-time",
        "--benchmark-warmup",
        "--benchmark-json",
        "--benchmark-save",
        "--benchmark-storage",
        "--benchmark-group-by",
        "--hypothesis-profile",
        "--hypothesis-seed",
    }
)
# `--cov` takes an optional value: the next word unless it is an option.
_OPTIONAL_VALUE = frozenset({"--cov"})
# `-p NAME` module names -> distribution.
_PLUGIN_MODULES = {
    "xdist": "pytest-xdist",
    "xdist.plugin": "pytest-xdist",
    "pytest_cov": "pytest-cov",
    "pytest_django": "pytest-django",
    "randomly": "pytest-randomly",
    "pytest_randomly": "pytest-randomly",
    "pytest_asyncio": "pytest-asyncio",
    "anyio": "anyio",
    "pytest_benchmark": "pytest-benchmark",
    "pytest_timeout": "pytest-timeout",
    "pytest_mock": "pytest-mock",
    "pytester": "",
}
# ini keys a plugin defines, whose plugin the tests then rely on (the settings of a Django
# project, the event loop of async tests).
_INI_KEYS = {
    "DJANGO_SETTINGS_MODULE": "pytest-django",
    "django_find_project": "pytest-django",
    "asyncio_mode": "pytest-asyncio",
}


@dataclass
class PytestConfig:
    source: str | None = None
    addopts: list[str] = field(default_factory=list)
    ini: dict[str, str] = field(default_factory=dict)
    required_plugins: list[str] = field(default_factory=list)


@dataclass
class PluginNeeds:
    # Distributions to install, each with the reason.
    install: dict[str, str] = field(default_factory=dict)
    # The addopts to run with (None: unchanged), and what was taken out.
    addopts: list[str] | None = None
    removed: dict[str, list[str]] = field(default_factory=dict)


def read_pytest_config(root: Path) -> PytestConfig:
    ini_files = (
        ("pytest.ini", "pytest"),
        ("pyproject.toml", None),
        ("tox.ini", "pytest"),
        ("setup.cfg", "tool:pytest"),
    )
    for name, section in ini_files:
        path = root / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        values = _from_pyproject(text) if section is None else _from_ini(text, section)
        if values is None:
            continue
        addopts = values.get("addopts", "")
        try:
            words = shlex.split(addopts)
        except ValueError:
            words = addopts.split()
        required = values.get("required_plugins", "").split()
        return PytestConfig(f"{name}", words, values, required)
    return PytestConfig()


def _from_ini(text: str, section: str) -> dict[str, str] | None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    if not parser.has_section(section):
        return None
    return {key: " ".join(value.split()) for key, value in parser.items(section, raw=True)}


def _from_pyproject(text: str) -> dict[str, str] | None:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    tool = data.get("tool", {})
    pytest = tool.get("pytest", {}) if isinstance(tool, dict) else {}
    options = pytest.get("ini_options") if isinstance(pytest, dict) else None
    if not isinstance(options, dict):
        return None
    values: dict[str, str] = {}
    for key, value in options.items():
        if isinstance(value, list):
            values[key] = " ".join(shlex.quote(str(item)) for item in value)
        else:
            values[key] = str(value)
    return values


def plugin_needs(
    root: Path, config: PytestConfig, installed: set[str], declared_anywhere: str
) -> PluginNeeds:
    """What `config` needs beyond `installed` (canonical names the test environment gets).

    `declared_anywhere` is the text of every file where the project names its dependencies."""
    needs = PluginNeeds()
    if config.source is None:
        return needs

    def declared(distribution: str) -> bool:
        pattern = re.escape(distribution).replace(r"\-", "[-_.]")
        return re.search(rf"(?<![\w.-]){pattern}(?![\w-])", declared_anywhere, re.I) is not None

    for requirement in config.required_plugins:
        name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower()
        if name and name not in installed:
            needs.install[requirement] = f"{config.source} required_plugins names it"
    for key, distribution in _INI_KEYS.items():
        if key in config.ini and distribution not in installed:
            needs.install.setdefault(
                distribution, f"{config.source} sets {key}, which {distribution} reads"
            )
    kept: list[str] = []
    words = list(config.addopts)
    index = 0
    while index < len(words):
        word = words[index]
        plugin, consumed = _plugin_of(root, words, index)
        index += consumed
        option = words[index - consumed : index]
        if plugin is None or plugin in installed or plugin in needs.install:
            kept += option
            continue
        if declared(plugin):
            needs.install[plugin] = (
                f"{config.source} addopts {word!r} needs it; the project declares it"
            )
            kept += option
            continue
        needs.removed.setdefault(plugin, []).append(" ".join(option))
    if needs.removed:
        needs.addopts = kept
    return needs


def _plugin_of(root: Path, words: list[str], index: int) -> tuple[str | None, int]:
    """The distribution behind the option at `index` (None for pytest's own), and how many
    words the option spans."""
    word = words[index]
    name, has_value, _ = word.partition("=")
    following = words[index + 1] if index + 1 < len(words) else None
    if word == "-p" or (word.startswith("-p") and not word.startswith("--")):
        module = word[2:].lstrip("=") or following or ""
        span = 1 if word[2:] else 2
        if module.startswith("no:") or module == "":
            return None, span
        distribution = _PLUGIN_MODULES.get(module)
        if distribution is None:
            local = root / (module.replace(".", "/") + ".py")
            local_package = root / module.replace(".", "/") / "__init__.py"
            if local.is_file() or local_package.is_file() or "." in module:
                return None, span
            distribution = module.replace("_", "-")
        return (distribution or None), span
    if re.match(r"^-n\S", word):  # -n4, -nauto
        return "pytest-xdist", 1
    distribution = _OPTIONS.get(name)
    if distribution is None:
        prefix = next((p for p in _OPTIONS if p.endswith("-") and name.startswith(p)), None)
        distribution = _OPTIONS[prefix] if prefix else None
    if distribution is None:
        return None, 1
    if has_value:
        return distribution, 1
    if name in _WITH_VALUE and following is not None:
        return distribution, 2
    if name in _OPTIONAL_VALUE and following is not None and not following.startswith("-"):
        return distribution, 2
    return distribution, 1
