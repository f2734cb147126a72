"""Structured logs: one JSON object per line, with the build id on every line logged for a build.

The worker sets `current_build` while it runs a build; every record logged meanwhile, by our code
or a library, carries `build_id`. Secrets never reach these logs: tokens are not logged anywhere.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

current_build: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_build", default=None
)


@contextmanager
def logging_for_build(build_id: str) -> Iterator[None]:
    token = current_build.set(build_id)
    try:
        yield
    finally:
        current_build.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        build_id = getattr(record, "build_id", None) or current_build.get()
        if build_id:
            entry["build_id"] = build_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", *, json_lines: bool = True) -> None:
    """Route every logger (ours, uvicorn's, Celery's) through one handler on the root logger."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    access = logging.getLogger("uvicorn.access")
    # uvicorn --no-access-log leaves its access logger with no handler and no propagation: keep
    # it that way (a line per request costs the API as much as a status poll's queries).
    access_off = not access.handlers and not access.propagate
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task"):
        if name == "uvicorn.access" and access_off:
            continue
        named = logging.getLogger(name)
        named.handlers[:] = []
        named.propagate = True
