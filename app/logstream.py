"""Serving a build's log: a plain download, a followed stream, and server-sent events.

Followers share one tail per build and process (`LogHub`): a single poll of the database every
half second serves every follower of that build, however many there are. A follower that
connects late, or falls behind the tail's buffer, reads the gap from the database page by page.
Each database read is its own short session, so no transaction stays open while a log streams.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import Engine, select
from starlette.concurrency import run_in_threadpool

from core.db import session_scope
from core.logs import read_lines
from core.models import Build
from core.status import BuildStatus

SSE_TYPE = "text/event-stream"
POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
PAGE = 2000
BUFFER_LINES = 20_000
# Line numbers are 32-bit in the database.
MAX_LINE_NUMBER = 2**31 - 1


@dataclass(frozen=True)
class Line:
    """A log line detached from its session."""

    seq: int
    stream: str
    text: str


def _lines_after(engine: Engine, build_id: str, after: int) -> list[Line]:
    with session_scope(engine) as session:
        rows = read_lines(session, build_id, after=after, limit=PAGE)
        return [Line(row.seq, row.stream, row.text) for row in rows]


def _tail_state(engine: Engine, build_id: str, after: int) -> tuple[list[Line], bool]:
    """New lines after `after`, and whether the build is terminal (read before the lines, so a
    terminal answer means the lines read are all there will ever be)."""
    with session_scope(engine) as session:
        status = session.scalar(select(Build.status).where(Build.id == build_id))
        rows = read_lines(session, build_id, after=after, limit=PAGE)
        lines = [Line(row.seq, row.stream, row.text) for row in rows]
    terminal = status is None or status.terminal
    return lines, terminal and len(lines) < PAGE


class _Tail:
    """One build's shared tail: polls while anyone follows, keeps recent lines in memory."""

    def __init__(self, engine: Engine, build_id: str) -> None:
        self.engine = engine
        self.build_id = build_id
        self.last = 0
        self.buffer: collections.deque[Line] = collections.deque(maxlen=BUFFER_LINES)
        self.done = False
        self.followers = 0
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def first_buffered(self) -> int:
        return self.buffer[0].seq if self.buffer else self.last + 1

    async def run(self) -> None:
        while self.followers > 0 and not self.done:
            lines, done = await run_in_threadpool(
                _tail_state, self.engine, self.build_id, self.last
            )
            if lines:
                self.buffer.extend(lines)
                self.last = lines[-1].seq
            self.done = done
            if lines or done:
                self.changed.set()
                self.changed = asyncio.Event()
            if not done and len(lines) < PAGE:
                await asyncio.sleep(POLL_SECONDS)


class LogHub:
    """Per-process registry of tails; `follow` yields lines, and None as a keep-alive tick."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._tails: dict[str, _Tail] = {}

    async def follow(self, build_id: str, after: int = 0) -> AsyncIterator[Line | None]:
        tail = self._tails.get(build_id)
        if tail is None or tail.done:
            # Registered before any await, so concurrent followers find and share it.
            tail = _Tail(self._engine, build_id)
            self._tails[build_id] = tail
        tail.followers += 1
        if tail.task is None:
            tail.task = asyncio.create_task(tail.run())
        try:
            while True:
                # Taken first: a change signalled while this round reads is not missed.
                changed = tail.changed
                # Behind the buffer: read the gap straight from the database.
                while after < tail.first_buffered() - 1:
                    page = await run_in_threadpool(_lines_after, self._engine, build_id, after)
                    page = [line for line in page if line.seq < tail.first_buffered()]
                    if not page:
                        break
                    for line in page:
                        yield line
                    after = page[-1].seq
                skip = max(0, after + 1 - tail.first_buffered())
                for line in list(itertools.islice(tail.buffer, skip, None)):
                    yield line
                    after = line.seq
                if tail.done and after >= tail.last:
                    return
                try:
                    await asyncio.wait_for(changed.wait(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield None
        finally:
            tail.followers -= 1
            if tail.followers == 0 and self._tails.get(build_id) is tail:
                del self._tails[build_id]


async def plain_lines(engine: Engine, build_id: str, *, after: int = 0) -> AsyncIterator[bytes]:
    """Every stored line after `after`, as text, page by page."""
    while True:
        page = await run_in_threadpool(_lines_after, engine, build_id, after)
        if page:
            yield "".join(f"{line.text}\n" for line in page).encode()
            after = page[-1].seq
        if len(page) < PAGE:
            return


async def follow_lines(hub: LogHub, build_id: str, *, after: int = 0) -> AsyncIterator[bytes]:
    async for line in hub.follow(build_id, after):
        if line is not None:
            yield f"{line.text}\n".encode()


async def sse_events(
    hub: LogHub, engine: Engine, build_id: str, *, after: int = 0
) -> AsyncIterator[bytes]:
    """Server-sent events: one per line (its id is the line number, for Last-Event-ID), comments
    as keep-alives, and a final `end` event carrying the build's status."""
    async for line in hub.follow(build_id, after):
        if line is None:
            yield b": keep-alive\n\n"
        else:
            yield _event(str(line.seq), line.stream, line.text)
    status = await run_in_threadpool(_status, engine, build_id)
    yield _event(None, "end", status.value)


def _status(engine: Engine, build_id: str) -> BuildStatus:
    with session_scope(engine) as session:
        return session.scalar(select(Build.status).where(Build.id == build_id)) or BuildStatus.ERROR


def last_event_id(request: Request, *, default: int = 0) -> int:
    """The line an SSE client saw last (`Last-Event-ID`); anything else than a line number that
    can exist is ignored."""
    value = request.headers.get("last-event-id", "")
    if value.isascii() and value.isdigit() and len(value) <= 10 and int(value) <= MAX_LINE_NUMBER:
        return int(value)
    return default


def _event(event_id: str | None, event: str, data: str) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()
