"""Projects whose version comes from the VCS, uploaded without their .git.

setuptools-scm (and hatch-vcs, flit-scm, which use it), pdm-backend's `source = "scm"`,
poetry-dynamic-versioning and uv-dynamic-versioning all fail or invent a version when the
repository's history is absent, as it is in a zip made from a checkout or a source distribution
without PKG-INFO. Each has an environment variable that gives the version instead; the version is
the one PKG-INFO records (a source distribution), else 0.0.0 with a warning that says what to do.
"""

from __future__ import annotations

import email.parser
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SETUPTOOLS_SCM = (
    "setuptools-scm",
    "setuptools_scm",
    "hatch-vcs",
    "hatch_vcs",
    "flit-scm",
    "flit_scm",
)
_ENVIRONMENT = {
    "setuptools-scm": ("SETUPTOOLS_SCM_PRETEND_VERSION",),
    "pdm-backend": ("PDM_BUILD_SCM_VERSION",),
    "poetry-dynamic-versioning": ("POETRY_DYNAMIC_VERSIONING_BYPASS",),
    "uv-dynamic-versioning": ("UV_DYNAMIC_VERSIONING_BYPASS",),
}
FALLBACK = "0.0.0"


@dataclass
class ScmVersion:
    # Environment of the wheel build: the version for each tool that reads it.
    environment: dict[str, str] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def scm_version(root: Path, pyproject: dict[str, Any], setup_text: str) -> ScmVersion:
    result = ScmVersion()
    tools = _scm_tools(pyproject, setup_text)
    if not tools:
        return result
    if (root / ".git").exists():
        result.reasons.append(f"version: from git ({', '.join(tools)}; .git is in the upload)")
        return result
    version = _pkg_info_version(root)
    for tool in tools:
        for variable in _ENVIRONMENT[tool]:
            result.environment[variable] = version or FALLBACK
    if version is not None:
        result.reasons.append(
            f"version: {version} from PKG-INFO ({', '.join(tools)} reads the version from git, "
            "and the upload has no .git)"
        )
    else:
        result.warnings.append(
            f"version: {', '.join(tools)} read the version from git, and the upload has neither "
            f".git nor PKG-INFO: the package is built as version {FALLBACK} (upload with .git, or "
            "set a fallback version in the tool's configuration)"
        )
    return result


def _scm_tools(pyproject: dict[str, Any], setup_text: str) -> list[str]:
    build_system = pyproject.get("build-system", {})
    requires = build_system.get("requires", []) if isinstance(build_system, dict) else []
    names = {
        re.split(r"[<>=!~;\[ ]", item, maxsplit=1)[0].strip().lower().replace("_", "-")
        for item in requires
        if isinstance(item, str)
    }
    tool = pyproject.get("tool", {})
    tool = tool if isinstance(tool, dict) else {}
    found: list[str] = []
    if names & {n.replace("_", "-") for n in _SETUPTOOLS_SCM} or "use_scm_version" in setup_text:
        found.append("setuptools-scm")
    pdm_version = (
        tool.get("pdm", {}).get("version", {}) if isinstance(tool.get("pdm"), dict) else {}
    )
    if (
        "pdm-backend" in names
        and isinstance(pdm_version, dict)
        and pdm_version.get("source") == "scm"
    ):
        found.append("pdm-backend")
    for plugin in ("poetry-dynamic-versioning", "uv-dynamic-versioning"):
        if plugin in names:
            found.append(plugin)
    return found


def _pkg_info_version(root: Path) -> str | None:
    path = root / "PKG-INFO"
    if not path.is_file():
        return None
    headers = email.parser.Parser().parsestr(
        path.read_text(encoding="utf-8", errors="replace"), headersonly=True
    )
    version = headers.get("Version")
    if version and re.fullmatch(r"[0-9A-Za-z.+!_-]{1,64}", version.strip()):
        return version.strip()
    return None
