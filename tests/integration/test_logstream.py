"""Following a log: every follower gets every line once, in order, and followers share one poll."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from sqlalchemy import Engine, event

from app.logstream import LogHub
from core.db import session_scope
from core.logs import LogSink, LogStream
from core.status import BuildStatus
from core.transitions import transition
from tests.factories import queued_build


def write_slowly(engine: Engine, build_id: str, lines: int, seconds: float) -> threading.Thread:
    """A worker writing `lines` lines over `seconds`, then ending the build."""

    def run() -> None:
        with LogSink(engine, build_id, max_bytes=10_000_000, flush_interval=0.05) as sink:
            for number in range(1, lines + 1):
                sink.write(LogStream.BUILD, f"line {number}")
                time.sleep(seconds / lines)
        with session_scope(engine) as session:
            transition(session, build_id, BuildStatus.SUCCEEDED)

    thread = threading.Thread(target=run)
    with session_scope(engine) as session:
        transition(session, build_id, BuildStatus.RUNNING)
    thread.start()
    return thread


async def follow_all(hub: LogHub, build_id: str, followers: int, after: int = 0) -> list[list[int]]:
    async def one() -> list[int]:
        return [line.seq async for line in hub.follow(build_id, after) if line is not None]

    return await asyncio.gather(*(one() for _ in range(followers)))


class SelectCounter:
    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)
        self._engine = engine

    def _seen(self, *args: Any) -> None:
        statement: str = args[2]
        if statement.lstrip().upper().startswith("SELECT") and "log_lines" in statement:
            self.count += 1

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)


class TestLogHub:
    def test_every_follower_gets_every_line_once_in_order(self, sqlite_engine: Engine) -> None:
        build_id = queued_build(sqlite_engine)
        writer = write_slowly(sqlite_engine, build_id, lines=300, seconds=2)
        results = asyncio.run(follow_all(LogHub(sqlite_engine), build_id, followers=5))
        writer.join()
        assert all(result == list(range(1, 301)) for result in results)

    def test_resumes_after_a_line_without_gaps_or_repeats(self, sqlite_engine: Engine) -> None:
        build_id = queued_build(sqlite_engine)
        writer = write_slowly(sqlite_engine, build_id, lines=100, seconds=1)
        writer.join()
        (result,) = asyncio.run(follow_all(LogHub(sqlite_engine), build_id, 1, after=42))
        assert result == list(range(43, 101))

    def test_followers_share_the_polling(self, sqlite_engine: Engine) -> None:
        def queries_for(followers: int) -> int:
            build_id = queued_build(sqlite_engine)
            counter = SelectCounter(sqlite_engine)
            writer = write_slowly(sqlite_engine, build_id, lines=60, seconds=3)
            try:
                asyncio.run(follow_all(LogHub(sqlite_engine), build_id, followers))
            finally:
                writer.join()
                counter.close()
            return counter.count

        alone, crowd = queries_for(1), queries_for(25)
        # Twenty-five followers cost a few catch-up reads more than one, not 25 times as much.
        assert crowd < alone + 2 * 25, (alone, crowd)
        assert crowd < 5 * alone, (alone, crowd)
