"""How builds, build lists, plans and tokens look on a terminal.

Everything here builds rich `Text` and `Table` objects from server data; no string is ever parsed
as rich markup, and every server-controlled string goes through `safe` (terminal.neutralise).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from client.terminal import neutralise

STATUS_STYLES = {
    "queued": "cyan",
    "running": "bold blue",
    "succeeded": "bold green",
    "failed": "bold red",
    "error": "bold magenta",
    "timed_out": "bold yellow",
    "cancelled": "yellow",
}


def safe(value: object) -> str:
    """A server-controlled value as text that is safe on a terminal; '-' for nothing."""
    if value is None or value == "":
        return "-"
    return neutralise(str(value))


def status_text(status: object) -> Text:
    text = safe(status)
    return Text(text, style=STATUS_STYLES.get(text, ""))


def format_bytes(size: object) -> str:
    if not isinstance(size, int | float) or isinstance(size, bool):
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def format_duration(seconds: object) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_time(value: object) -> str:
    moment = parse_time(value)
    if moment is None:
        return safe(value)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def elapsed(build: Mapping[str, Any], now: datetime | None = None) -> float | None:
    """Seconds from start to finish, or to now while it runs."""
    started = parse_time(build.get("started_at"))
    if started is None:
        return None
    finished = parse_time(build.get("finished_at")) or now or datetime.now(UTC)
    return max((finished - started).total_seconds(), 0.0)


def short_image_id(image_id: object) -> str:
    text = safe(image_id)
    algorithm, colon, digest = text.partition(":")
    return f"{algorithm}:{digest[:12]}" if colon else text[:19]


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


class _Rows:
    """Label/value lines, aligned without a table (a table pads every line with spaces)."""

    MIN_WIDTH = 10

    def __init__(self) -> None:
        self._rows: list[tuple[str, Text]] = []

    def add_row(self, label: str, value: Text) -> None:
        self._rows.append((label, value))

    @property
    def lines(self) -> list[Text]:
        width = max([self.MIN_WIDTH, *(len(label) + 2 for label, _ in self._rows)])
        lines = []
        for label, value in self._rows:
            line = Text(label.ljust(width), style="dim")
            line.append_text(value)
            lines.append(line)
        return lines


def _grid() -> _Rows:
    return _Rows()


def headline(build: Mapping[str, Any]) -> Text:
    line = Text()
    line.append("Build ")
    line.append(safe(build.get("id")), style="bold")
    line.append(" ")
    line.append_text(status_text(build.get("status")))
    phase = build.get("phase")
    if build.get("status") == "running" and phase:
        line.append(f" ({safe(phase)})", style="dim")
    return line


def _image_line(image: Mapping[str, Any]) -> Text:
    line = Text(safe(image.get("tag")), style="bold")
    line.append(f"  {short_image_id(image.get('id'))}  {format_bytes(image.get('size_bytes'))}")
    return line


def _tests_line(tests: Mapping[str, Any]) -> Text:
    line = Text()
    counts = [
        ("passed", "green"),
        ("failed", "red"),
        ("errors", "red"),
        ("skipped", "yellow"),
    ]
    for index, (name, style) in enumerate(counts):
        count = tests.get(name)
        if index:
            line.append(" · ")
        shown = safe(count) if count is not None else "0"
        line.append(f"{shown} {name}", style=style if isinstance(count, int) and count else "")
    command = tests.get("command")
    if command:
        line.append(f"  ({safe(command)}, exit {safe(tests.get('exit_code'))})", style="dim")
    return line


def _phases_line(phases: Iterable[Any]) -> Text | None:
    parts = [
        f"{safe(phase.get('phase'))} {format_duration(phase.get('duration_seconds'))}"
        if phase.get("duration_seconds") is not None
        else f"{safe(phase.get('phase'))} …"
        for phase in phases
        if isinstance(phase, Mapping)
    ]
    return Text(" · ".join(parts)) if parts else None


def _error_line(error: Mapping[str, Any]) -> Text:
    line = Text(safe(error.get("code")), style="bold red")
    message = error.get("message")
    if message:
        line.append(f": {safe(message)}")
    return line


def summary(build: Mapping[str, Any]) -> RenderableType:
    """The end-of-build summary: status, image, tests, phase durations, error."""
    grid = _grid()
    _add_outcome(grid, build, with_duration=True)
    return Group(Text(""), headline(build), *grid.lines)


def _add_outcome(grid: _Rows, build: Mapping[str, Any], *, with_duration: bool) -> None:
    """The rows that say how a build went: image, tests, phases, (duration,) error."""
    image = _mapping(build.get("image"))
    if image:
        grid.add_row("Image", _image_line(image))
    tests = _mapping(build.get("tests"))
    if tests:
        grid.add_row("Tests", _tests_line(tests))
    if build.get("reused_from"):
        grid.add_row(
            "Reused",
            Text(f"the result of {safe(build.get('reused_from'))} (same inputs; nothing rebuilt)"),
        )
    changes = _mapping(build.get("changes"))
    if changes:
        grid.add_row("Changes", changes_line(changes))
    phases = build.get("phases")
    if isinstance(phases, list):
        line = _phases_line(phases)
        if line is not None:
            grid.add_row("Phases", line)
    took = elapsed(build) if with_duration else None
    if took is not None:
        grid.add_row("Duration", Text(format_duration(took)))
    error = _mapping(build.get("error"))
    if error:
        grid.add_row("Error", _error_line(error))


def changes_line(changes: Mapping[str, Any]) -> Text:
    """Since the previous build: size, packages added/removed/upgraded, advisories."""
    parts = [f"since {safe(changes.get('previous'))}"]
    delta = changes.get("size_bytes_delta")
    if isinstance(delta, int):
        parts.append(f"size {'+' if delta >= 0 else '-'}{format_bytes(abs(delta))}")
    packages = _mapping(changes.get("packages"))
    if packages:
        counts = [
            f"{len(packages.get(key) or [])} {key}" for key in ("added", "removed", "changed")
        ]
        parts.append("packages " + ", ".join(counts))
        shown = [
            f"{safe(item.get('name'))} {safe(item.get('from'))}→{safe(item.get('to'))}"
            for item in (packages.get("changed") or [])[:5]
            if isinstance(item, Mapping)
        ]
        if shown:
            parts.append(", ".join(shown))
    advisories = _mapping(changes.get("advisories"))
    if advisories:
        parts.append(
            f"advisories {len(advisories.get('new') or [])} new, "
            f"{len(advisories.get('fixed') or [])} fixed"
        )
    return Text("; ".join(parts))


def details(build: Mapping[str, Any], page_url: str, api_url: str) -> RenderableType:
    """Everything about one build, for `status`."""
    grid = _grid()
    grid.add_row("URL", Text(safe(page_url)))
    grid.add_row("API", Text(safe(api_url)))
    for label, key in (("Created", "created_at"), ("Started", "started_at")):
        grid.add_row(label, Text(format_time(build.get(key))))
    if build.get("finished_at"):
        grid.add_row("Finished", Text(format_time(build.get("finished_at"))))
    took = elapsed(build)
    if took is not None:
        grid.add_row("Duration", Text(format_duration(took)))
    source = _mapping(build.get("source"))
    if source:
        grid.add_row(
            "Source",
            Text(
                f"{safe(source.get('filename'))}, {safe(source.get('files'))} files, "
                f"{format_bytes(source.get('size_bytes'))}, sha256 "
                f"{safe(source.get('sha256'))[:12]}"
            ),
        )
    options = _mapping(build.get("options"))
    shown = {
        key: value
        for key, value in options.items()
        if value not in (None, {}, True) or (key == "run_tests" and value is False)
    }
    if shown:
        grid.add_row(
            "Options", Text(", ".join(f"{safe(key)}={safe(value)}" for key, value in shown.items()))
        )
    _add_outcome(grid, build, with_duration=False)
    if build.get("cancel_requested") and build.get("status") not in _FINAL:
        grid.add_row("Cancel", Text("requested", style="yellow"))
    if build.get("rebuild_of"):
        grid.add_row("Rebuild of", Text(safe(build.get("rebuild_of"))))
    if build.get("host"):
        grid.add_row("Host", Text(safe(build.get("host"))))
    log = _mapping(build.get("log"))
    if log:
        truncated = " (truncated)" if log.get("truncated") else ""
        grid.add_row(
            "Log",
            Text(f"{safe(log.get('lines'))} lines, {format_bytes(log.get('bytes'))}{truncated}"),
        )
    return Group(headline(build), *grid.lines)


_FINAL = frozenset({"succeeded", "failed", "error", "timed_out", "cancelled"})


def builds_table(builds: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("ID", "STATUS", "PHASE/ERROR", "TAG", "CREATED", "DURATION"):
        table.add_column(column, no_wrap=column != "TAG")
    for build in builds:
        error = _mapping(build.get("error"))
        note = safe(error.get("code")) if error else safe(build.get("phase"))
        image = _mapping(build.get("image"))
        options = _mapping(build.get("options"))
        tag = image.get("tag") or options.get("tag")
        table.add_row(
            Text(safe(build.get("id"))),
            status_text(build.get("status")),
            Text(note, style="red" if error else "dim"),
            Text(safe(tag)),
            Text(format_time(build.get("created_at"))),
            Text(format_duration(elapsed(build))),
        )
    return table


def tokens_table(tokens: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    known = ("id", "owner", "admin", "prefix", "created_at", "last_used_at", "revoked_at")
    rows = list(tokens)
    columns = [key for key in known if any(key in token for token in rows)] or ["id", "owner"]
    for column in columns:
        table.add_column(column.upper().replace("_", " "), no_wrap=True)
    for token in rows:
        cells = []
        for column in columns:
            value = token.get(column)
            if column.endswith("_at"):
                cells.append(Text(format_time(value) if value else "-"))
            elif column == "admin":
                cells.append(Text("yes" if value else "no"))
            else:
                cells.append(Text(safe(value)))
        table.add_row(*cells)
    return table


def indexes_table(indexes: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("NAME", "SCOPE", "URL", "DEFAULT", "CREDENTIALS", "UPDATED"):
        table.add_column(column, no_wrap=column != "URL")
    for index in indexes:
        table.add_row(
            Text(safe(index.get("name"))),
            Text(safe(index.get("owner"))),
            Text(safe(index.get("url"))),
            Text("yes" if index.get("default") else "no"),
            Text("stored" if index.get("has_credentials") else "none"),
            Text(format_time(index["updated_at"]) if index.get("updated_at") else "-"),
        )
    return table


def plan_view(plan: Mapping[str, Any]) -> RenderableType:
    """A plan: its scalar decisions as a table, then its reasons and warnings as lists."""
    grid = _grid()
    lists: list[tuple[str, list[Any]]] = []
    for key, value in plan.items():
        if isinstance(value, list):
            lists.append((key, value))
        elif isinstance(value, Mapping):
            grid.add_row(
                safe(key), Text(", ".join(f"{safe(k)}={safe(v)}" for k, v in value.items()))
            )
        else:
            grid.add_row(safe(key), Text(safe(value)))
    parts: list[RenderableType] = list(grid.lines)
    for key, values in lists:
        if not values:
            continue
        parts.append(Text(f"\n{safe(key)}:", style="bold"))
        parts.extend(Text(f"  - {safe(value)}") for value in values)
    return Group(*parts)
