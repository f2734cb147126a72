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
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import Engine, select
from starlette.concurrency import run_in_threadpool

from core.builds.logs import read_lines
from core.db import read_scope
from core.models import Build
from core.status import BuildStatus

log = logging.getLogger(__name__)

SSE_TYPE = "text/event-stream"
POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
# A tail whose poll has not come back for this long is stuck (a pool checkout gives up sooner).
STUCK_SECONDS = 60.0
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
    with read_scope(engine) as session:
        rows = read_lines(session, build_id, after=after, limit=PAGE)
        return [Line(row.seq, row.stream, row.text) for row in rows]


def _tail_state(engine: Engine, build_id: str, after: int) -> tuple[list[Line], bool]:
    """New lines after `after`, and whether the build is terminal (read before the lines, so a
    terminal answer means the lines read are all there will ever be)."""
    with read_scope(engine) as session:
        status = session.scalar(select(Build.status).where(Build.id == build_id))
        rows = read_lines(session, build_id, after=after, limit=PAGE)
        lines = [Line(row.seq, row.stream, row.text) for row in rows]
    terminal = status is None or status.terminal
    return lines, terminal and len(lines) < PAGE


class _Tail:
    """One build's shared tail: polls while anyone follows, keeps recent lines in memory.

    A poll that raises ends the tail (`failed`); one that has not come back for `stuck_after`
    seconds makes it `stuck`. Either way its followers replace it (`LogHub._current`)."""

    def __init__(self, engine: Engine, build_id: str, *, last: int, delay: float) -> None:
        self.engine = engine
        self.build_id = build_id
        self.last = last
        self.buffer: collections.deque[Line] = collections.deque(maxlen=BUFFER_LINES)
        self.done = False
        self.failed = False
        self.followers = 0
        self.changed = asyncio.Event()
        self.polled_at = time.monotonic()
        self._delay = delay
        self.task: asyncio.Task[None] = asyncio.create_task(self._run())

    def first_buffered(self) -> int:
        return self.buffer[0].seq if self.buffer else self.last + 1

    def healthy(self, stuck_after: float) -> bool:
        if self.done:
            return True
        return not self.failed and time.monotonic() - self.polled_at < stuck_after

    def _wake(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    async def _run(self) -> None:
        try:
            # A replacement waits a moment: a database that failed the last poll gets time back.
            await asyncio.sleep(self._delay)
            while not self.done:
                lines, done = await run_in_threadpool(
                    _tail_state, self.engine, self.build_id, self.last
                )
                self.polled_at = time.monotonic()
                if lines:
                    self.buffer.extend(lines)
                    self.last = lines[-1].seq
                self.done = done
                if lines or done:
                    self._wake()
                if not done and len(lines) < PAGE:
                    await asyncio.sleep(POLL_SECONDS)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning(
                "the log tail of build %s failed; it will be replaced", self.build_id, exc_info=True
            )
            self.failed = True
            self._wake()


class LogHub:
    """Per-process registry of tails; `follow` yields lines, and None as a keep-alive tick.

    A registered tail is always one that works: a failed or stuck one is unregistered, cancelled
    and replaced by the first follower that notices, and the others move to the replacement."""

    def __init__(self, engine: Engine, *, stuck_after: float = STUCK_SECONDS) -> None:
        self._engine = engine
        self._tails: dict[str, _Tail] = {}
        self._stuck_after = stuck_after

    def tails(self) -> dict[str, _Tail]:
        """The registered tails, by build id (for health checks and tests)."""
        return dict(self._tails)

    def _current(self, build_id: str, after: int, *, delay: float = 0.0) -> _Tail:
        tail = self._tails.get(build_id)
        if tail is None or (tail.done and tail.followers == 0):
            tail = _Tail(self._engine, build_id, last=after, delay=0.0)
            self._tails[build_id] = tail
        elif not tail.healthy(self._stuck_after):
            tail.task.cancel()
            tail = _Tail(self._engine, build_id, last=after, delay=delay)
            self._tails[build_id] = tail
        return tail

    def _leave(self, build_id: str, tail: _Tail) -> None:
        tail.followers -= 1
        if tail.followers == 0 and self._tails.get(build_id) is tail:
            del self._tails[build_id]
            tail.task.cancel()

    async def follow(
        self, build_id: str, after: int = 0, *, finished: bool = False
    ) -> AsyncIterator[Line | None]:
        """Every line after `after` until the build ends. `finished`: the build is known to be
        terminal, so its stored log is all there is: read at once, no tail."""
        if finished:
            async for line in _stored_lines(self._engine, build_id, after):
                yield line
            return
        tail = self._current(build_id, after)
        tail.followers += 1
        try:
            while True:
                if not tail.healthy(self._stuck_after) or self._tails.get(build_id) is not tail:
                    self._leave(build_id, tail)
                    tail = self._current(build_id, after, delay=POLL_SECONDS)
                    tail.followers += 1
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
                if tail.failed:
                    continue
                try:
                    await asyncio.wait_for(changed.wait(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield None
        finally:
            self._leave(build_id, tail)


async def _stored_lines(engine: Engine, build_id: str, after: int) -> AsyncIterator[Line]:
    while True:
        page = await run_in_threadpool(_lines_after, engine, build_id, after)
        for line in page:
            yield line
        if len(page) < PAGE:
            return
        after = page[-1].seq


async def plain_lines(engine: Engine, build_id: str, *, after: int = 0) -> AsyncIterator[bytes]:
    """Every stored line after `after`, as text, page by page."""
    while True:
        page = await run_in_threadpool(_lines_after, engine, build_id, after)
        if page:
            yield "".join(f"{line.text}\n" for line in page).encode()
            after = page[-1].seq
        if len(page) < PAGE:
            return


async def follow_lines(
    hub: LogHub, build_id: str, *, after: int = 0, finished: bool = False
) -> AsyncIterator[bytes]:
    async for line in hub.follow(build_id, after, finished=finished):
        if line is not None:
            yield f"{line.text}\n".encode()


async def sse_events(
    hub: LogHub, engine: Engine, build_id: str, *, after: int = 0, finished: bool = False
) -> AsyncIterator[bytes]:
    """Server-sent events: one per line (its id is the line number, for Last-Event-ID), comments
    as keep-alives, and a final `end` event carrying the build's status."""
    async for line in hub.follow(build_id, after, finished=finished):
        if line is None:
            yield b": keep-alive\n\n"
        else:
            yield _event(str(line.seq), line.stream, line.text)
    status = await run_in_threadpool(_status, engine, build_id)
    yield _event(None, "end", status.value)


def _status(engine: Engine, build_id: str) -> BuildStatus:
    with read_scope(engine) as session:
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
