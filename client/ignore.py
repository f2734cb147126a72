"""Ignore files: Docker's .dockerignore and git's .gitignore, each with its own semantics.

They look alike and differ in ways that matter:

.dockerignore (moby/patternmatcher, as BuildKit applies it)
    One file at the build context root. Each pattern is matched against the whole path from the
    root (`*.pyc` only matches at the top; write `**/*.pyc` for everywhere) and also excludes
    everything below a matching folder. `!` re-includes, even inside an excluded folder. The last
    matching pattern wins. Lines are trimmed, `#` starts a comment only in the first column,
    patterns are cleaned like paths (`./a//b/` is `a/b`, a leading `/` is dropped).

.gitignore (gitignore(5), git's wildmatch)
    One file per folder, for that folder and below; deeper files take precedence. A pattern
    without a `/` (other than a trailing one) matches a name at any depth; with one, it is
    anchored to the file's folder. A trailing `/` matches folders only. `**` spans folders only
    as `**/`, `/**/` or `/**`. Trailing spaces are dropped unless escaped. Once a folder is
    excluded nothing inside it can be re-included (git never looks inside).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

_BOM = "\ufeff"


class IgnoreFileError(ValueError):
    """An ignore file has a pattern the tool it belongs to would refuse."""


# --- .dockerignore ---------------------------------------------------------------------------


class _MatchKind(Enum):
    EXACT = "exact"
    PREFIX = "prefix"
    SUFFIX = "suffix"
    REGEXP = "regexp"


# Regex metacharacters that are literal in a Go filepath pattern (patternmatcher's shouldEscape).
_GO_LITERAL_META = frozenset(".+()|{}$")
# fsutil: an exception with one of these (after a trailing /** or /*) may match anywhere.
_WILDCARD_CHARS = frozenset("*[]?^\\")


@dataclass(frozen=True)
class DockerPattern:
    text: str  # cleaned, without the leading "!"
    exclusion: bool  # a "!" pattern: re-includes what it matches
    kind: _MatchKind
    regex: re.Pattern[str] | None

    def matches(self, path: str) -> bool:
        if self.kind is _MatchKind.EXACT:
            return path == self.text
        if self.kind is _MatchKind.PREFIX:
            return path.startswith(self.text[:-2])
        if self.kind is _MatchKind.SUFFIX:
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regex is not None
        return self.regex.fullmatch(path) is not None

    def without_trailing_glob(self) -> str:
        return self.text.removesuffix("/**").removesuffix("/*")


class DockerIgnore:
    """The patterns of one .dockerignore, matched as BuildKit matches them."""

    def __init__(self, patterns: Sequence[DockerPattern]) -> None:
        self.patterns = tuple(patterns)
        self.has_exclusions = any(pattern.exclusion for pattern in self.patterns)
        # BuildKit skips an excluded folder unless an exception could match inside it; with a
        # wildcard exception it cannot tell, so it looks inside every excluded folder.
        self._prefix_exceptions_only = not any(
            pattern.exclusion and _WILDCARD_CHARS & set(pattern.without_trailing_glob())
            for pattern in self.patterns
        )

    @classmethod
    def parse(cls, text: str, source: str = ".dockerignore") -> DockerIgnore:
        patterns = []
        for number, line in enumerate(text.removeprefix(_BOM).splitlines(), start=1):
            cleaned = _dockerignore_line(line)
            if cleaned is None:
                continue
            try:
                patterns.append(_docker_pattern(cleaned))
            except IgnoreFileError as exc:
                raise IgnoreFileError(f"{source}, line {number}: {exc}") from None
        return cls(patterns)

    def excludes(self, path: str) -> bool:
        """Whether `path` (relative, '/'-separated) is left out of the build context."""
        parents = path.split("/")[:-1]
        matched = False
        for pattern in self.patterns:
            # Only a pattern that could change the outcome is tried (as patternmatcher does).
            if pattern.exclusion != matched:
                continue
            match = pattern.matches(path) or any(
                pattern.matches("/".join(parents[: depth + 1])) for depth in range(len(parents))
            )
            if match:
                matched = not pattern.exclusion
        return matched

    def may_skip_folder(self, path: str) -> bool:
        """For an excluded folder: whether nothing inside it can be re-included by a `!`."""
        if not self.has_exclusions:
            return True
        if not self._prefix_exceptions_only:
            return False
        inside = path + "/"
        return not any(
            (pattern.without_trailing_glob() + "/").startswith(inside)
            for pattern in self.patterns
            if pattern.exclusion
        )


def _dockerignore_line(line: str) -> str | None:
    """A line as ignorefile.ReadAll leaves it: None for comments and blanks."""
    if line.startswith("#"):
        return None
    pattern = line.strip()
    if not pattern:
        return None
    invert = pattern.startswith("!")
    if invert:
        pattern = pattern[1:].strip()
    if pattern:
        pattern = _go_clean(pattern)
        if len(pattern) > 1 and pattern.startswith("/"):
            pattern = pattern[1:]
    return "!" + pattern if invert else pattern


def _go_clean(path: str) -> str:
    """Go's path.Clean: no empty or '.' elements, '..' resolved lexically, no trailing slash."""
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
                continue
            if rooted:
                continue
        parts.append(part)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def _docker_pattern(cleaned: str) -> DockerPattern:
    exclusion = cleaned.startswith("!")
    if exclusion:
        cleaned = cleaned[1:]
        if not cleaned:
            raise IgnoreFileError('illegal exclusion pattern: "!"')
    kind, regex_text = _docker_translate(cleaned)
    regex = None
    if kind is _MatchKind.REGEXP:
        regex = _compile(regex_text, cleaned)
    return DockerPattern(text=cleaned, exclusion=exclusion, kind=kind, regex=regex)


def _docker_translate(pattern: str) -> tuple[_MatchKind, str]:
    """patternmatcher's Pattern.compile: a match kind and, for REGEXP, the regular expression."""
    regex = "^"
    kind = _MatchKind.EXACT
    position = 0
    step = 0
    while position < len(pattern):
        char = pattern[position]
        position += 1
        if char == "*":
            if position < len(pattern) and pattern[position] == "*":
                position += 1
                if position < len(pattern) and pattern[position] == "/":
                    position += 1
                if position == len(pattern):
                    if kind is _MatchKind.EXACT:
                        kind = _MatchKind.PREFIX
                    else:
                        regex += ".*"
                        kind = _MatchKind.REGEXP
                else:
                    regex += "(.*/)?"
                    kind = _MatchKind.REGEXP
                if step == 0:
                    kind = _MatchKind.SUFFIX
            else:
                regex += "[^/]*"
                kind = _MatchKind.REGEXP
        elif char == "?":
            regex += "[^/]"
            kind = _MatchKind.REGEXP
        elif char in _GO_LITERAL_META:
            regex += "\\" + char
        elif char == "\\":
            if position == len(pattern):
                raise IgnoreFileError(f"bad pattern {pattern!r}: it ends in a backslash")
            regex += re.escape(pattern[position])
            position += 1
            kind = _MatchKind.REGEXP
        elif char in "[]":
            regex += char
            kind = _MatchKind.REGEXP
        else:
            regex += char  # as Go does: "^" and "-" keep their regex meaning inside "[...]"
        step += 1
    return kind, regex + "$"


def _compile(regex: str, pattern: str) -> re.Pattern[str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "possible nested set" and similar FutureWarnings
            return re.compile(regex)
    except re.error as exc:
        raise IgnoreFileError(f"bad pattern {pattern!r}: {exc}") from None


# --- .gitignore ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GitPattern:
    base: str  # the folder of the file it came from, relative to the walk's origin ("" = origin)
    negated: bool
    folders_only: bool
    name_only: bool  # no "/" in it: matched against the last path component, at any depth
    regex: re.Pattern[str]

    def matches(self, path: str, is_folder: bool) -> bool:
        if self.folders_only and not is_folder:
            return False
        if self.base:
            if not path.startswith(self.base + "/"):
                return False
            path = path[len(self.base) + 1 :]
        subject = path.rsplit("/", 1)[-1] if self.name_only else path
        return self.regex.fullmatch(subject) is not None


class GitIgnore:
    """The .gitignore patterns in effect in one folder: its own file's and its parents'."""

    def __init__(self, patterns: Iterable[GitPattern] = ()) -> None:
        self.patterns = tuple(patterns)

    def extended(self, text: str, base: str) -> GitIgnore:
        """These patterns plus those of the file `text` found in folder `base`."""
        return GitIgnore(self.patterns + tuple(parse_gitignore(text, base)))

    def excludes(self, path: str, is_folder: bool) -> bool:
        """Whether git would ignore `path` (relative to the origin), given its parents are not."""
        for pattern in reversed(self.patterns):
            if pattern.matches(path, is_folder):
                return not pattern.negated
        return False


def parse_gitignore(text: str, base: str = "") -> list[GitPattern]:
    patterns = []
    for raw in text.removeprefix(_BOM).split("\n"):
        line = raw.removesuffix("\r")
        if not line or line.startswith("#"):
            continue
        line = _trim_trailing_spaces(line)
        negated = line.startswith("!")
        if negated:
            line = line[1:]
        folders_only = line.endswith("/")
        if folders_only:
            line = line[:-1]
        if not line:
            continue
        name_only = "/" not in line
        line = line.removeprefix("/")
        patterns.append(
            GitPattern(
                base=base,
                negated=negated,
                folders_only=folders_only,
                name_only=name_only,
                regex=re.compile(_wildmatch_regex(line), re.DOTALL),
            )
        )
    return patterns


def _trim_trailing_spaces(line: str) -> str:
    end = 0
    position = 0
    while position < len(line):
        if line[position] == "\\" and position + 1 < len(line):
            position += 2
            end = position
        elif line[position] == " ":
            position += 1
        else:
            position += 1
            end = position
    return line[:end]


_NEVER = "(?!)"
_CHARACTER_CLASSES = {
    "alnum": "a-zA-Z0-9",
    "alpha": "a-zA-Z",
    "blank": " \\t",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "\\x21-\\x7e",
    "lower": "a-z",
    "print": "\\x20-\\x7e",
    "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    "space": " \\t\\n\\r\\f\\v",
    "upper": "A-Z",
    "xdigit": "0-9A-Fa-f",
}


def _wildmatch_regex(pattern: str) -> str:
    """git's wildmatch with WM_PATHNAME as a regular expression (for fullmatch)."""
    out: list[str] = []
    position = 0
    length = len(pattern)
    while position < length:
        char = pattern[position]
        if char == "*":
            run_end = position
            while run_end < length and pattern[run_end] == "*":
                run_end += 1
            at_start = position == 0 or pattern[position - 1] == "/"
            at_end = run_end == length or pattern[run_end] == "/"
            if run_end - position >= 2 and at_start and at_end:
                if run_end == length:
                    out.append(".*")  # "/**" at the end, or a lone "**": everything
                    position = run_end
                else:
                    out.append("(?:.*/)?")  # "**/": zero or more folders
                    position = run_end + 1
            else:
                out.append("[^/]*")
                position = run_end
        elif char == "?":
            out.append("[^/]")
            position += 1
        elif char == "[":
            bracket, position = _bracket(pattern, position)
            if bracket is None:
                return _NEVER  # wildmatch aborts on an unterminated or invalid bracket
            out.append(bracket)
        elif char == "\\":
            if position + 1 == length:
                return _NEVER  # a trailing backslash is an invalid pattern: it matches nothing
            out.append(re.escape(pattern[position + 1]))
            position += 2
        else:
            out.append(re.escape(char))
            position += 1
    return "".join(out)


def _bracket(pattern: str, start: int) -> tuple[str | None, int]:
    """The bracket expression at `start` ("["): a regex class that never matches '/'."""
    position = start + 1
    negated = position < len(pattern) and pattern[position] in "!^"
    if negated:
        position += 1
    items: list[str] = []
    first = True
    while position < len(pattern):
        char = pattern[position]
        if char == "]" and not first:
            body = "".join(items)
            if negated:
                return f"[^/{body}]", position + 1
            return (f"(?!/)[{body}]" if body else _NEVER), position + 1
        first = False
        if char == "[" and pattern.startswith("[:", position):
            close = pattern.find(":]", position + 2)
            if close < 0:
                return None, position
            name = pattern[position + 2 : close]
            if name not in _CHARACTER_CLASSES:
                return None, position
            items.append(_CHARACTER_CLASSES[name])
            position = close + 2
            continue
        if char == "\\":
            position += 1
            if position == len(pattern):
                return None, position
            char = pattern[position]
        low = char
        position += 1
        if (
            position + 1 < len(pattern)
            and pattern[position] == "-"
            and pattern[position + 1] != "]"
        ):
            high = pattern[position + 1]
            position += 2
            if high == "\\":
                if position == len(pattern):
                    return None, position
                high = pattern[position]
                position += 1
            if low <= high:
                items.append(f"{re.escape(low)}-{re.escape(high)}")
            continue
        items.append(re.escape(low))
    return None, position
