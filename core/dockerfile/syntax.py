"""A user's Dockerfile as BuildKit reads it, or refused.

Every decision about a project's own Dockerfile (its stages, the images it reads, its mounts, the
frontend it asks for) is taken on what BuildKit's own parser makes of it: the `dockerfile` wheel
wraps `github.com/moby/buildkit/frontend/dockerfile/parser` (v0.12.5 in dockerfile 3.4.0). What
that parser leaves to later stages of BuildKit is done here only in the narrow, unambiguous forms;
anything else is refused with `DockerfileInvalid` (the pipeline's `dockerfile_invalid`), because a
false refusal costs a user an edit while a miss lets an image or a frontend through unchecked.

Where the wheel's parser (v0.12) and the daemon's built-in frontend differ (dockerd 20.10 vendors
BuildKit v0.8, which has no heredocs and keeps a line ending in an escape and a lone carriage
return apart), the Dockerfile is refused too: heredocs, lone `\\r`, NUL bytes.

The syntax directive is looked for as every BuildKit version does, together: `#` directives,
after a `#!` line, `//` directives, unknown directives before it, and a JSON document.

    parse(text) -> Dockerfile          instructions, ONBUILD triggers, escape token, stages
    frontend_reference(text)           the frontend a syntax directive names, if any
    parse_mount(value) -> Mount        a `--mount=` value, as BuildKit's parseMount reads it
    image_uses(text, build_args)       every image a Dockerfile reads (FROM, COPY --from, mounts)
    scope_cache_mounts(text, scope)    the same Dockerfile with every cache mount id under `scope`
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_BYTES = 256 * 1024
BUILDKIT_ARG_PREFIX = "BUILDKIT_"
_NOT_TRIGGERS = frozenset({"ONBUILD", "FROM", "MAINTAINER"})
_PLATFORM_ARGS = frozenset(
    f"{who}{key}" for who in ("BUILD", "TARGET") for key in ("OS", "ARCH", "PLATFORM", "VARIANT")
)
_STAGE_NAME = re.compile(r"[a-z][a-z0-9._-]*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A value that reads the same through BuildKit's flag splitter, its CSV reader and its expander.
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_./:@%+~=-]*")
_SCOPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]*")


@functools.cache
def _buildkit() -> Any:
    """BuildKit's parser, a Go library: loaded on first use, never at import. The Go runtime
    starts when its library loads and does not survive fork(); Celery's prefork pool forks its
    workers from a parent that imported this module, and a child would then hang in a parse."""
    import dockerfile

    return dockerfile


@functools.cache
def _known_instructions() -> frozenset[str]:
    return frozenset(name.upper() for name in _buildkit().all_cmds())


class DockerfileInvalid(ValueError):
    """The Dockerfile is refused; the message says why, for the user."""


@dataclass(frozen=True)
class Instruction:
    line: int  # first line, 1-based
    end_line: int
    keyword: str  # upper case
    flags: tuple[str, ...]  # `--name=value` as BuildKit split them (quotes removed)
    value: tuple[str, ...]  # the arguments as BuildKit's parser split them
    original: str  # the logical line: continuations joined, comment lines dropped
    json: bool = False
    trigger: Instruction | None = None  # for ONBUILD: the instruction it registers

    @property
    def arguments(self) -> str:
        """The text after the keyword (flags included), for the lint rules."""
        parts = self.original.split(None, 1)
        return parts[1] if len(parts) > 1 else ""


@dataclass(frozen=True)
class Stage:
    index: int
    name: str | None  # lower case, as BuildKit keys stages
    base: str  # the FROM image as written
    line: int


@dataclass(frozen=True)
class Dockerfile:
    escape: str
    instructions: tuple[Instruction, ...]

    @property
    def stages(self) -> list[Stage]:
        stages: list[Stage] = []
        for item in self.instructions:
            if item.keyword == "FROM":
                name = item.value[2].lower() if len(item.value) == 3 else None
                stages.append(Stage(len(stages), name, item.value[0], item.line))
        return stages

    def has_stage(self, name: str) -> bool:
        return any(stage.name == name.lower() for stage in self.stages)


@dataclass(frozen=True)
class Mount:
    type: str  # lower case; "bind" when not given
    options: Mapping[str, str | None]  # lower-case keys, the last of each; None: a bare flag


@dataclass(frozen=True)
class ImageUse:
    line: int
    instruction: str  # "FROM", "COPY --from", "RUN --mount" (kept for the allowlist messages)
    reference: str  # after substituting build arguments
    written: str  # as the Dockerfile spells it

    @property
    def kind(self) -> str:
        return self.instruction


# --- reading ------------------------------------------------------------------------------------


def parse(text: str, *, max_bytes: int | None = MAX_BYTES) -> Dockerfile:
    """The Dockerfile as BuildKit's parser reads it; DockerfileInvalid when it is refused (also
    when it is over `max_bytes`; None: the caller checked the size)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if max_bytes is not None and size > max_bytes:
        raise DockerfileInvalid(
            f"the Dockerfile is {size} bytes; at most {max_bytes} bytes are accepted"
        )
    if "\x00" in text:
        raise DockerfileInvalid("the Dockerfile contains a NUL byte")
    if re.search(r"\r(?!\n)", text):
        raise DockerfileInvalid(
            "the Dockerfile contains a carriage return that does not end a line "
            "(BuildKit versions split such lines differently)"
        )
    frontend = frontend_reference(text)
    if frontend is not None:
        raise DockerfileInvalid(
            f"the Dockerfile asks for the frontend {frontend!r} (a syntax directive): that image "
            "would run in the builder, so it is refused; remove the directive"
        )
    commands = _parse_commands(text)
    escape = _escape_token(text)
    instructions = tuple(_instruction(command, escape) for command in commands)
    _check_stages(instructions)
    return Dockerfile(escape, instructions)


def _parse_commands(text: str) -> tuple[Any, ...]:
    try:
        commands: tuple[Any, ...] = _buildkit().parse_string(text)
    except _buildkit().GoParseError as exc:
        raise DockerfileInvalid(f"BuildKit cannot parse it: {exc}") from exc
    for command in commands:
        if command.heredocs:
            raise DockerfileInvalid(
                f"line {command.start_line}: heredocs (`<<EOF`) are not supported by this "
                "builder's Dockerfile frontend"
            )
        if command.cmd.upper() not in _known_instructions():
            raise DockerfileInvalid(
                f"line {command.start_line}: unknown instruction {command.cmd.upper()}"
            )
    return commands


def _escape_token(text: str) -> str:
    """The escape token, as the parser took it from the directives: the leading comment lines
    (directives can only be there) are parsed with a probe that shows whether `\\` continues a
    line."""
    lines = text.lstrip("\ufeff").split("\n")
    leading = []
    for line in lines:
        if not line.strip().startswith("#"):
            break
        leading.append(line)
    probe = "\n".join([*leading, "FROM scratch", "RUN a \\", "b", ""])
    try:
        commands = _buildkit().parse_string(probe)
    except _buildkit().GoParseError as exc:
        raise DockerfileInvalid(f"BuildKit cannot parse its directives: {exc}") from exc
    return "\\" if len(commands) == 2 else "`"


def _instruction(command: Any, escape: str) -> Instruction:
    keyword = command.cmd.upper()
    trigger = None
    if keyword == "ONBUILD":
        trigger = _trigger(command)
    return Instruction(
        line=command.start_line,
        end_line=command.end_line,
        keyword=keyword,
        flags=tuple(command.flags),
        value=tuple(command.value),
        original=command.original,
        json=bool(command.json),
        trigger=trigger,
    )


def _trigger(command: Any) -> Instruction:
    """The instruction an ONBUILD registers. BuildKit stores its text and parses it again, with
    the default escape token, in every build that starts FROM this image."""
    text = re.sub(r"(?is)^\s*ONBUILD\s*", "", command.original)
    where = f"line {command.start_line}: ONBUILD"
    try:
        (inner,) = _buildkit().parse_string(text + "\n")
    except (_buildkit().GoParseError, ValueError) as exc:
        raise DockerfileInvalid(f"{where} does not hold exactly one instruction") from exc
    keyword = inner.cmd.upper()
    if inner.heredocs or keyword not in _known_instructions() or keyword in _NOT_TRIGGERS:
        raise DockerfileInvalid(f"{where} {keyword} is not allowed")
    return Instruction(
        line=command.start_line,
        end_line=command.end_line,
        keyword=keyword,
        flags=tuple(inner.flags),
        value=tuple(inner.value),
        original=inner.original,
        json=bool(inner.json),
    )


def _check_stages(instructions: tuple[Instruction, ...]) -> None:
    seen: set[str] = set()
    for item in instructions:
        if item.keyword != "FROM":
            continue
        value = item.value
        if len(value) == 3 and value[1].lower() == "as":
            name = value[2].lower()
            if not _STAGE_NAME.fullmatch(name):
                raise DockerfileInvalid(f"line {item.line}: invalid stage name {value[2]!r}")
            if name in seen:
                raise DockerfileInvalid(f"line {item.line}: duplicate stage name {value[2]!r}")
            seen.add(name)
        elif len(value) != 1 or not value[0]:
            raise DockerfileInvalid(
                f"line {item.line}: FROM takes an image and optionally `AS name`"
            )


# --- the syntax directive -----------------------------------------------------------------------


def frontend_reference(text: str) -> str | None:
    """The frontend a syntax directive asks for, looked for in every form some BuildKit version
    reads: `# syntax=` or `// syntax=` among the leading directives (unknown directives do not
    end them, a first `#!` line is skipped, whitespace around them is allowed), and any document
    that starts like JSON (BuildKit reads `{"syntax": ...}`, and no Dockerfile starts with `{`)."""
    body = text.lstrip("\ufeff")
    if body.lstrip(" \t\r\n\f\v").startswith("{"):
        return body.strip()[:80] or "{"
    lines = [line.removesuffix("\r") for line in body.split("\n")]
    if lines and lines[0].lstrip().startswith("#!"):
        lines = lines[1:]
    for comment in ("#", "//"):
        directive = re.compile(rf"\s*{re.escape(comment)}\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.*?)\s*")
        for line in lines:
            match = directive.fullmatch(line)
            if match is None:
                break
            if match.group(1).lower() == "syntax":
                return match.group(2)
    return None


# --- mounts -------------------------------------------------------------------------------------


def parse_mount(value: str) -> Mount:
    """A `--mount=` value as BuildKit reads it: one record of Go's encoding/csv (quoted fields,
    doubled quotes), keys case-insensitive, the last of a key wins, type `bind` by default."""
    options: dict[str, str | None] = {}
    for field in _csv_record(value):
        key, sep, option = field.partition("=")
        options[key.lower()] = option if sep else None
    kind = options.get("type") or "bind"
    return Mount(kind.lower(), options)


def _csv_record(value: str) -> list[str]:
    """Go's csv.Reader.Read of one line, strict: a stray quote is an error, as it is there."""
    if value == "" or "\n" in value or "\r" in value:
        raise DockerfileInvalid(f"--mount={value!r}: not a single CSV record")
    fields: list[str] = []
    index = 0
    while True:
        if value.startswith('"', index):
            field = []
            index += 1
            while True:
                end = value.find('"', index)
                if end < 0:
                    raise DockerfileInvalid(f"--mount={value}: unterminated quote")
                field.append(value[index:end])
                index = end + 1
                if value.startswith('"', index):
                    field.append('"')
                    index += 1
                    continue
                break
            fields.append("".join(field))
            if index == len(value):
                return fields
            if value[index] != ",":
                raise DockerfileInvalid(f"--mount={value}: text after a closing quote")
            index += 1
        else:
            end = value.find(",", index)
            field_text = value[index:] if end < 0 else value[index:end]
            if '"' in field_text:
                raise DockerfileInvalid(f"--mount={value}: a quote inside an unquoted field")
            fields.append(field_text)
            if end < 0:
                return fields
            index = end + 1


def _mounts(item: Instruction) -> list[Mount]:
    mounts = []
    for flag in item.flags:
        name, sep, value = flag.partition("=")
        if name.lower() != "--mount":
            continue
        if name != "--mount" or not sep:
            raise DockerfileInvalid(f"line {item.line}: cannot read the flag {flag!r}")
        mounts.append(parse_mount(value))
    return mounts


def _copy_from(item: Instruction) -> str | None:
    source = None
    for flag in item.flags:
        name, sep, value = flag.partition("=")
        if name.lower() != "--from":
            continue
        if name != "--from" or not sep:
            raise DockerfileInvalid(f"line {item.line}: cannot read the flag {flag!r}")
        source = value
    return source


# --- images -------------------------------------------------------------------------------------


def image_uses(text: str, build_args: Mapping[str, str] | None = None) -> list[ImageUse]:
    """Every image (not stage) the Dockerfile reads: FROM, COPY --from and RUN --mount=from=,
    those of its ONBUILD triggers included, with the global ARGs (overridden by the build
    arguments) substituted in FROM as BuildKit does. A `$` in a --from or from= value is refused
    (BuildKit versions expand it differently), and so is any substitution this cannot do exactly.
    """
    parsed = parse(text, max_bytes=None)
    names = [stage.name for stage in parsed.stages if stage.name]
    values = _global_args(parsed, build_args or {})
    uses: list[ImageUse] = []
    stage_index = -1
    earlier: set[str] = set()
    for item in parsed.instructions:
        if item.keyword == "FROM":
            written = item.value[0]
            image = _expand(written, values, parsed.escape, item.line)
            if image.lower() not in earlier and image != "scratch":
                uses.append(ImageUse(item.line, "FROM", image, written))
            stage_index += 1
            if len(item.value) == 3:
                earlier.add(item.value[2].lower())
        elif item.trigger is not None:
            # A trigger runs in another Dockerfile's build: none of these stages exist there.
            uses += _flag_images(item.trigger, set(), 0)
        elif stage_index >= 0:
            uses += _flag_images(item, set(names), stage_index)
    return uses


def stage_bases(text: str, build_args: Mapping[str, str] | None = None) -> list[tuple[Stage, str]]:
    """Each stage with the image or stage its FROM names, global ARGs substituted."""
    parsed = parse(text, max_bytes=None)
    values = _global_args(parsed, build_args or {})
    return [
        (stage, _expand(stage.base, values, parsed.escape, stage.line)) for stage in parsed.stages
    ]


def _flag_images(item: Instruction, stages: set[str], before: int) -> list[ImageUse]:
    sources: list[tuple[str, str]] = []
    if item.keyword in ("COPY", "ADD"):
        source = _copy_from(item)
        if source is not None:
            sources.append(("COPY --from", source))
    elif item.keyword == "RUN":
        sources += [
            ("RUN --mount", mount.options["from"] or "")
            for mount in _mounts(item)
            if mount.options.get("from") is not None
        ]
    uses = []
    for label, source in sources:
        if "$" in source:
            raise DockerfileInvalid(
                f"line {item.line}: {label}={source}: variables are not accepted here"
            )
        if source.isdigit() and int(source) < before:
            continue  # an earlier stage, by index
        if source.lower() in stages:
            continue
        uses.append(ImageUse(item.line, label, source, source))
    return uses


def _global_args(parsed: Dockerfile, build_args: Mapping[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in parsed.instructions:
        if item.keyword == "FROM":
            break
        if item.keyword != "ARG":
            continue
        for word in item.value:
            name, sep, default = word.partition("=")
            if name in build_args:
                values[name] = build_args[name]
            elif sep:
                values[name] = _expand(default, values, parsed.escape, item.line)
    return values


def refused_build_args(names: Mapping[str, str] | list[str], text: str | None = None) -> list[str]:
    """Build arguments (and ARGs the Dockerfile declares) that BuildKit itself reads: names
    starting with BUILDKIT_ switch frontends, cache namespaces and other builder behaviour."""
    refused = [name for name in names if name.upper().startswith(BUILDKIT_ARG_PREFIX)]
    if text is not None:
        for item in parse(text, max_bytes=None).instructions:
            arg = item.trigger if item.trigger is not None else item
            if arg.keyword == "ARG":
                refused += [
                    word.partition("=")[0]
                    for word in arg.value
                    if word.upper().startswith(BUILDKIT_ARG_PREFIX)
                ]
    return refused


def _expand(word: str, values: Mapping[str, str], escape: str, line: int) -> str:
    """BuildKit's shell-word expansion in its plain forms: quotes, the escape token, $NAME,
    ${NAME}, ${NAME:-word}, ${NAME-word}, ${NAME:+word}, ${NAME+word}. Anything else refused."""

    def refuse(why: str) -> DockerfileInvalid:
        return DockerfileInvalid(f"line {line}: cannot resolve {word!r} with certainty: {why}")

    out: list[str] = []
    index = 0
    quote: str | None = None
    while index < len(word):
        char = word[index]
        if quote == "'":
            if char == "'":
                quote = None
            else:
                out.append(char)
            index += 1
            continue
        if char in "'\"" and (quote is None or quote == char):
            quote = None if quote == char else char
            index += 1
            continue
        if char == escape:
            if quote is not None or index + 1 >= len(word):
                raise refuse("an escape")
            out.append(word[index + 1])
            index += 2
            continue
        if char == "$":
            text, index = _variable(word, index, values, escape, line, refuse)
            out.append(text)
            continue
        out.append(char)
        index += 1
    if quote is not None:
        raise refuse("an unterminated quote")
    return "".join(out)


def _variable(
    word: str,
    index: int,
    values: Mapping[str, str],
    escape: str,
    line: int,
    refuse: Any,
) -> tuple[str, int]:
    rest = word[index + 1 :]
    if not rest.startswith("{"):
        match = _NAME.match(rest)
        if match is None:
            raise refuse("a `$` without a name")
        return _value(match.group(0), values, refuse), index + 1 + match.end()
    close = rest.find("}")
    if close < 0:
        raise refuse("an unterminated ${")
    inner = rest[1:close]
    match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])(.*))?", inner, re.S)
    if match is None or "$" in (match.group(3) or "") or "{" in inner:
        raise refuse(f"the substitution ${{{inner}}}")
    name, operator, alternative = match.group(1), match.group(2), match.group(3) or ""
    end = index + 1 + close + 1
    if operator is None:
        return _value(name, values, refuse), end
    current = None if name not in values else _value(name, values, refuse)
    is_set = current is not None and (not operator.startswith(":") or current != "")
    other = _expand(alternative, values, escape, line)
    if operator.endswith("-"):
        return (current or "") if is_set else other, end
    return other if is_set else "", end


def _value(name: str, values: Mapping[str, str], refuse: Any) -> str:
    if name in _PLATFORM_ARGS:
        raise refuse(f"${name} depends on the builder's platform")
    return values.get(name, "")


# --- cache mounts -------------------------------------------------------------------------------


def scope_cache_mounts(text: str, scope: str) -> str:
    """The Dockerfile with every `RUN --mount=type=cache` given `id=<scope>/<its id, or its
    target>`, everything else unchanged (line numbers too). BuildKit keys cache mounts by id, so
    builds of different scopes never share one. A cache mount this cannot rewrite with certainty,
    or one inside ONBUILD (it would run unscoped in a later build), is DockerfileInvalid."""
    if not _SCOPE.fullmatch(scope):
        raise ValueError(f"scope {scope!r}: letters, digits and ._/- only")
    parsed = parse(text, max_bytes=None)
    lines = text.split("\n")
    rewritten: dict[int, list[Mount]] = {}
    for number, item in enumerate(parsed.instructions):
        if item.trigger is not None and any(m.type == "cache" for m in _mounts(item.trigger)):
            raise DockerfileInvalid(f"line {item.line}: a cache mount inside ONBUILD is refused")
        if item.keyword != "RUN" or not any(m.type == "cache" for m in _mounts(item)):
            continue
        flags = [_scoped_flag(flag, scope, item.line) for flag in item.flags]
        rest = json.dumps(list(item.value)) if item.json else item.value[0]
        span = item.end_line - item.line + 1
        lines[item.line - 1 : item.end_line] = [f"RUN {' '.join(flags)} {rest}"] + [""] * (span - 1)
        rewritten[number] = [
            parse_mount(flag.partition("=")[2]) for flag in flags if _is_mount(flag)
        ]
    result = "\n".join(lines)
    if rewritten:
        _verify(parsed, parse(result, max_bytes=len(result.encode()) + 1), rewritten)
    return result


def _is_mount(flag: str) -> bool:
    return flag.startswith("--mount=")


def _scoped_flag(flag: str, scope: str, line: int) -> str:
    def refuse(why: str) -> DockerfileInvalid:
        return DockerfileInvalid(
            f"line {line}: cannot scope the cache mount {flag!r} with certainty: {why}; "
            "write it as plain key=value pairs"
        )

    name, _, value = flag.partition("=")
    if not _is_mount(flag):
        if not re.fullmatch(r"--[a-z]+", name) or not _PLAIN_VALUE.fullmatch(
            value.replace(",", "")
        ):
            raise refuse(f"the flag {flag!r}")
        return flag
    mount = parse_mount(value)
    options = dict(mount.options)
    for key, option in options.items():
        if not re.fullmatch(r"[a-z]+", key) or not _PLAIN_VALUE.fullmatch(option or ""):
            raise refuse(f"the option {key}")
    if mount.type != "cache":
        return "--mount=" + _join(options)
    original_id = options.get("id") or options.get("target") or options.get("dst")
    original_id = original_id or options.get("destination")
    if not original_id:
        raise refuse("it has neither id nor target")
    options["id"] = f"{scope}/{original_id}"
    return "--mount=" + _join(options)


def _join(options: Mapping[str, str | None]) -> str:
    return ",".join(key if value is None else f"{key}={value}" for key, value in options.items())


def _verify(before: Dockerfile, after: Dockerfile, rewritten: Mapping[int, list[Mount]]) -> None:
    """The rewritten Dockerfile must parse to the same instructions, the cache mounts aside."""

    def same(a: Instruction, b: Instruction) -> bool:
        return (a.keyword, a.value, a.json, a.line) == (b.keyword, b.value, b.json, b.line)

    ok = len(before.instructions) == len(after.instructions) and before.escape == after.escape
    for number, (old, new) in enumerate(zip(before.instructions, after.instructions, strict=False)):
        if not ok:
            break
        if number in rewritten:
            ok = same(old, new) and _mounts(new) == rewritten[number]
            ok = ok and [f for f in old.flags if not _is_mount(f)] == [
                f for f in new.flags if not _is_mount(f)
            ]
        else:
            ok = same(old, new) and old.flags == new.flags and old.trigger == new.trigger
    if not ok:
        raise DockerfileInvalid("the cache mounts cannot be scoped with certainty")
