"""Serving a build's log: a plain download, a followed stream, and server-sent events.

Each poll opens its own short session, so a long-lived follower holds no transaction open.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from sqlalchemy import Engine, select

from core.db import session_scope
from core.logs import read_lines
from core.models import Build, LogLine
from core.status import BuildStatus

SSE_TYPE = "text/event-stream"
POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
PAGE = 2000


def _poll(engine: Engine, build_id: str, after: int) -> tuple[list[LogLine], BuildStatus]:
    with session_scope(engine) as session:
        lines = list(read_lines(session, build_id, after=after, limit=PAGE))
        status = session.scalar(select(Build.status).where(Build.id == build_id))
    return lines, status or BuildStatus.ERROR


def _lines(engine: Engine, build_id: str, after: int, follow: bool) -> Iterator[LogLine | None]:
    """Every line after `after`; when following, waits for more until the build is terminal.
    Yields None while idle so callers can send keep-alives."""
    while True:
        lines, status = _poll(engine, build_id, after)
        yield from lines
        if lines:
            after = lines[-1].seq
            if len(lines) == PAGE:
                continue
        if not follow or status.terminal:
            # One more read: lines flushed between the read and the status check.
            tail, _ = _poll(engine, build_id, after)
            yield from tail
            if not tail:
                return
            after = tail[-1].seq
            continue
        yield None
        time.sleep(POLL_SECONDS)


def plain_lines(engine: Engine, build_id: str, *, after: int = 0) -> Iterator[bytes]:
    for line in _lines(engine, build_id, after, follow=False):
        if line is not None:
            yield (line.text + "\n").encode()


def follow_lines(engine: Engine, build_id: str, *, after: int = 0) -> Iterator[bytes]:
    for line in _lines(engine, build_id, after, follow=True):
        if line is not None:
            yield (line.text + "\n").encode()


def sse_events(
    engine: Engine, build_id: str, *, after: int = 0, follow: bool = True
) -> Iterator[bytes]:
    last_sent = time.monotonic()
    for line in _lines(engine, build_id, after, follow=follow):
        now = time.monotonic()
        if line is None:
            if now - last_sent > KEEPALIVE_SECONDS:
                last_sent = now
                yield b": keep-alive\n\n"
            continue
        last_sent = now
        yield _event(str(line.seq), line.stream, line.text)
    _, status = _poll(engine, build_id, 0)
    yield _event(None, "end", status.value)


def _event(event_id: str | None, event: str, data: str) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()
