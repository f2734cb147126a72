"""What the supply chain lets through: base images by allowlist, findings by severity.

Base images. A project's own Dockerfile names the images it builds on in `FROM`, `COPY --from=`
and `RUN --mount=...,from=`; each must match a pattern of the allowlist, checked before anything is
built (BuildKit would pull and run them). References are resolved as BuildKit does: global `ARG`s
(declared before the first `FROM`) with their defaults, overridden by the build arguments; stage
names and `scratch` are not images. A reference is compared in its familiar form (`python:3.11`)
and its canonical one (`docker.io/library/python:3.11`). In patterns `*` and `?` stay within one
path segment, `**` crosses them: `python:3.*-slim`, `registry.example.com/base/**`.

Severity policy: findings at or above the policy fail the build; "none" only reports them. An
advisory without a rating counts as "low" (reported always, blocking only under "low").
"""

from __future__ import annotations

import platform
import re
import shlex
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from core.advisories import Finding
from core.dockerfile_lint import Instruction, parse

POLICIES = ("none", "low", "medium", "high", "critical")
_RANK = {"unknown": 1, "low": 1, "medium": 2, "high": 3, "critical": 4}
_POLICY_RANK = {"none": None, "low": 1, "medium": 2, "high": 3, "critical": 4}

DEFAULT_DOMAIN = "docker.io"
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def blocking(findings: Iterable[Finding], policy: str) -> list[Finding]:
    """The findings that the policy turns into a failed build."""
    threshold = _POLICY_RANK[policy]
    if threshold is None:
        return []
    return [f for f in findings if _RANK.get(f.severity, 1) >= threshold]


# --- image references ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageReference:
    domain: str
    path: str
    tag: str | None
    digest: str | None

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    @property
    def canonical(self) -> str:
        return f"{self.domain}/{self.path}{self._suffix()}"

    @property
    def familiar(self) -> str:
        path = self.path
        if self.domain == DEFAULT_DOMAIN:
            path = path.removeprefix("library/")
            return path + self._suffix()
        return f"{self.domain}/{path}{self._suffix()}"

    @property
    def repository(self) -> str:
        """domain/path, without tag or digest."""
        return f"{self.domain}/{self.path}"

    def forms(self) -> list[str]:
        """Every spelling a pattern may be written against (with an implicit `:latest`)."""
        forms = [self.familiar, self.canonical]
        if self.tag is None and self.digest is None:
            forms += [f"{self.familiar}:latest", f"{self.canonical}:latest"]
        return forms


_REFERENCE = re.compile(
    r"^(?P<name>[a-zA-Z0-9][a-zA-Z0-9._\-/:]*?)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}))?"
    r"(?:@(?P<digest>[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-fA-F0-9]{32,}))?$"
)


_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")


def parse_reference(text: str) -> ImageReference | None:
    """`[domain/]path[:tag][@digest]` as Docker reads it; None when it is not a reference."""
    match = _REFERENCE.match(text.strip())
    if match is None:
        return None
    name = match.group("name")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if not _PATH.fullmatch(path):
        return None
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"library/{path}"
    return ImageReference(domain.lower(), path, match.group("tag"), match.group("digest"))


def _compile(pattern: str) -> re.Pattern[str]:
    parts = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**", index):
            parts.append(".*")
            index += 2
            continue
        char = pattern[index]
        parts.append("[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char))
        index += 1
    return re.compile("".join(parts))


def is_allowed(reference: str, patterns: Iterable[str]) -> bool:
    """Whether an image reference matches one of the allowlist's patterns."""
    parsed = parse_reference(reference)
    if parsed is None:
        return False
    forms = parsed.forms()
    return any(_compile(p).fullmatch(form) for p in patterns for form in forms)


# --- the images a Dockerfile uses ---------------------------------------------------------------


@dataclass(frozen=True)
class BaseImageUse:
    line: int
    instruction: str  # "FROM", "COPY --from", "RUN --mount"
    reference: str  # after substituting build arguments
    written: str  # as the Dockerfile spells it


@dataclass(frozen=True)
class Violation:
    line: int
    reference: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reference or '(empty)'}: {self.reason}"


_VARIABLE = re.compile(
    r"\\\$|\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-+])(?P<word>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


def _substitute(text: str, values: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "\\$":
            return "$"
        name = match.group("braced") or match.group("plain")
        value = values.get(name)
        op, word = match.group("op"), match.group("word") or ""
        if op in (":-", "-"):
            unset = value is None or (op == ":-" and value == "")
            return _substitute(word, values) if unset else value or ""
        if op in (":+", "+"):
            set_ = value is not None and (op == "+" or value != "")
            return _substitute(word, values) if set_ else ""
        return value or ""

    return _VARIABLE.sub(replace, text)


def _platform_args() -> dict[str, str]:
    # BuildKit predefines these for FROM; a Dockerfile may pick an image by architecture.
    arch = _ARCH.get(platform.machine().lower(), platform.machine().lower())
    values = {"OS": "linux", "ARCH": arch, "PLATFORM": f"linux/{arch}", "VARIANT": ""}
    return {f"{who}{key}": value for who in ("BUILD", "TARGET") for key, value in values.items()}


def _arg_definitions(arguments: str) -> list[tuple[str, str | None]]:
    try:
        words = shlex.split(arguments)
    except ValueError:
        words = arguments.split()
    definitions = []
    for word in words:
        name, sep, default = word.partition("=")
        definitions.append((name, default if sep else None))
    return definitions


@dataclass(frozen=True)
class _From:
    """A FROM line: the image as written, as resolved, and the stage's alias (lowercased)."""

    line: int
    written: str
    image: str
    alias: str | None


def _walk(
    text: str, build_args: Mapping[str, str] | None
) -> Iterator[tuple[Instruction, _From | None, Mapping[str, str]]]:
    """Each instruction after the global ARGs, with its FROM parsed, and the values of the
    global ARGs (build arguments overriding defaults) that FROM and flags may use."""
    build_args = build_args or {}
    values = _platform_args()
    seen_from = False
    for item in parse(text):
        if item.keyword == "ARG" and not seen_from:
            for name, default in _arg_definitions(item.arguments):
                if name in build_args:
                    values[name] = build_args[name]
                elif default is not None:
                    values[name] = _substitute(default, values)
            continue
        parsed = None
        if item.keyword == "FROM":
            seen_from = True
            words = [w for w in item.arguments.split() if not w.startswith("--")]
            written = words[0] if words else ""
            alias = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else None
            parsed = _From(item.line, written, _substitute(written, values), alias)
        yield item, parsed, values


def image_uses(text: str, build_args: Mapping[str, str] | None = None) -> list[BaseImageUse]:
    """Every image (not stage) the Dockerfile builds on or copies from, with arguments resolved."""
    stages: list[str] = []
    uses: list[BaseImageUse] = []

    def external(name: str) -> bool:
        return name.lower() not in stages and name.lower() != "scratch"

    for item, from_, values in _walk(text, build_args):
        if from_ is not None:
            if not from_.written:
                uses.append(BaseImageUse(from_.line, "FROM", "", ""))
                continue
            if external(from_.image):
                uses.append(BaseImageUse(from_.line, "FROM", from_.image, from_.written))
            stages.append(from_.alias or f"#{len(stages)}")
        elif item.keyword in ("COPY", "RUN"):
            uses += _flag_images(item.line, item.keyword, item.arguments, values, external)
    return uses


def _flag_images(
    line: int,
    keyword: str,
    arguments: str,
    values: Mapping[str, str],
    external: Callable[[str], bool],
) -> list[BaseImageUse]:
    found = []
    for word in arguments.split():
        if not word.startswith("--"):
            break  # flags come first
        source: str | None = None
        if keyword == "COPY" and word.startswith("--from="):
            source = word.removeprefix("--from=")
        elif keyword == "RUN" and word.startswith("--mount="):
            for option in word.removeprefix("--mount=").split(","):
                key, _, value = option.partition("=")
                if key == "from":
                    source = value
        if source is None or source.isdigit():
            continue
        image = _substitute(source, values)
        if external(image):
            label = "COPY --from" if keyword == "COPY" else "RUN --mount"
            found.append(BaseImageUse(line, label, image, source))
    return found


def check_base_images(
    text: str, allowlist: Iterable[str], build_args: Mapping[str, str] | None = None
) -> list[Violation]:
    """The image uses that the allowlist refuses; [] when the allowlist is empty (off)."""
    patterns = list(allowlist)
    if not patterns:
        return []
    violations = []
    for use in image_uses(text, build_args):
        if not use.reference:
            violations.append(
                Violation(use.line, use.written, "the image is empty once arguments are resolved")
            )
        elif parse_reference(use.reference) is None:
            violations.append(Violation(use.line, use.reference, "not a valid image reference"))
        elif not is_allowed(use.reference, patterns):
            violations.append(Violation(use.line, use.reference, "not on the allowlist"))
    return violations


def final_base_image(
    text: str, build_args: Mapping[str, str] | None = None, target: str | None = None
) -> str | None:
    """The image the built stage (`target`, else the last) ultimately starts from; None for
    `scratch` or when it cannot be told."""
    stages: dict[str, str] = {}
    order: list[str] = []
    for _item, from_, _values in _walk(text, build_args):
        if from_ is None or not from_.written:
            continue
        name = from_.alias or f"#{len(order)}"
        stages[name] = from_.image
        order.append(name)
    if not order:
        return None
    current = stages.get(target.lower()) if target else stages[order[-1]]
    for _ in range(len(order)):
        if current is None or current.lower() == "scratch":
            return None
        if current.lower() not in stages:
            return current
        current = stages[current.lower()]
    return None
