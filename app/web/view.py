"""How the dashboard shows things: the template environment and the small formatters it uses.

Templates autoescape everything; nothing here marks text as safe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from core.builds.resources import BuildOut, TestsOut
from core.errors import InvalidOption
from core.status import BuildStatus

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
STATIC_PREFIX = "/ui/static"

STATUS_LABELS: dict[BuildStatus, str] = {
    BuildStatus.QUEUED: "queued",
    BuildStatus.RUNNING: "running",
    BuildStatus.SUCCEEDED: "succeeded",
    BuildStatus.FAILED: "failed",
    BuildStatus.ERROR: "error",
    BuildStatus.TIMED_OUT: "timed out",
    BuildStatus.CANCELLED: "cancelled",
}


def duration(seconds: float | None) -> str:
    """`42s`, `3m 05s`, `1h 02m`; an em dash when unknown."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{max(seconds, 0):.1f}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def filesize(size: int | None) -> str:
    """Decimal units, as `docker images` shows them."""
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def build_seconds(build: BuildOut, now: datetime) -> float | None:
    """How long the build has run: to its end, or to `now` while it runs."""
    if build.started_at is None:
        return None
    end = build.finished_at or (None if build.status.terminal else now)
    return None if end is None else (end - build.started_at).total_seconds()


@dataclass(frozen=True)
class PhaseRow:
    name: str
    seconds: float | None
    current: bool


@dataclass(frozen=True)
class Timeline:
    rows: list[PhaseRow]
    total: float


def timeline(build: BuildOut, now: datetime) -> Timeline:
    """Each phase with its duration; the phase under way counts up to `now`."""
    rows = []
    for phase in build.phases:
        current = phase.duration_seconds is None and not build.status.terminal
        seconds = phase.duration_seconds
        if current:
            seconds = max((now - phase.started_at).total_seconds(), 0.0)
        rows.append(PhaseRow(name=phase.phase.value, seconds=seconds, current=current))
    return Timeline(rows=rows, total=sum(row.seconds or 0.0 for row in rows))


def tests_summary(tests: TestsOut | None) -> str:
    if tests is None:
        return "—"
    parts = [f"{tests.passed} passed"]
    for count, label in (
        (tests.failed, "failed"),
        (tests.errors, "errors"),
        (tests.skipped, "skipped"),
    ):
        if count:
            parts.append(f"{count} {label}")
    return ", ".join(parts)


def timestamp(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(moment: datetime, now: datetime) -> str:
    """`12s ago`, `5m ago`, `3h ago`, then the date."""
    seconds = (now - moment).total_seconds()
    if seconds < 60:
        return f"{max(int(seconds), 0)}s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)}m ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h ago"
    return moment.strftime("%Y-%m-%d")


def short_digest(digest: str | None) -> str:
    if not digest:
        return "—"
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}:{value[:12]}" if value else digest[:12]


def build_args_field(text: str) -> str:
    """The upload form's build arguments, one `NAME=value` a line (or a JSON object), as the JSON
    object string the API takes."""
    stripped = text.strip()
    if not stripped or stripped.startswith("{"):
        return stripped
    args: dict[str, str] = {}
    for number, line in enumerate(stripped.splitlines(), start=1):
        if not line.strip():
            continue
        name, equals, value = line.partition("=")
        if not equals or not name.strip():
            raise InvalidOption(f"build_args line {number} must read NAME=value")
        args[name.strip()] = value
    return json.dumps(args)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        duration=duration,
        filesize=filesize,
        tests_summary=tests_summary,
        timestamp=timestamp,
        ago=ago,
        short_digest=short_digest,
    )
    env.globals.update(
        build_seconds=build_seconds,
        timeline=timeline,
        status_label=lambda status: STATUS_LABELS.get(status, str(status)),
        static=lambda name: f"{STATIC_PREFIX}/{name}",
    )
    return env


templates = Jinja2Templates(env=_environment())
