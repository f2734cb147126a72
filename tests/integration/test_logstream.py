"""Following a log: every follower gets every line once, in order, and followers share one poll."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError

from app.logstream import LogHub
from core.builds.logs import LogSink, LogStream
from core.db import session_scope
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


class FailingStatusReads:
    """Makes the next `times` reads of a build's status fail, as a database outage would."""

    def __init__(self, engine: Engine, times: int) -> None:
        self.left = times
        self._engine = engine
        event.listen(engine, "before_cursor_execute", self._fail)

    def _fail(self, *args: Any) -> None:
        statement: str = args[2]
        if self.left > 0 and statement.lstrip().startswith("SELECT builds.status"):
            self.left -= 1
            raise OperationalError(statement, None, Exception("database went away"))

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._fail)


class TestBrokenTails:
    def test_a_tail_that_raises_is_replaced_and_followers_get_every_line(
        self, sqlite_engine: Engine
    ) -> None:
        build_id = queued_build(sqlite_engine)
        hub = LogHub(sqlite_engine)
        failing = FailingStatusReads(sqlite_engine, times=2)
        writer = write_slowly(sqlite_engine, build_id, lines=100, seconds=1)
        try:
            results = asyncio.run(follow_all(hub, build_id, followers=3))
        finally:
            writer.join()
            failing.close()
        assert failing.left == 0
        assert all(result == list(range(1, 101)) for result in results)
        assert hub.tails() == {}

    def test_a_stuck_tail_is_replaced(self, sqlite_engine: Engine) -> None:
        build_id = queued_build(sqlite_engine)
        hub = LogHub(sqlite_engine, stuck_after=1.0)
        release, hang_over = threading.Event(), threading.Event()

        def hang_once(*args: Any) -> None:
            statement: str = args[2]
            if statement.lstrip().startswith("SELECT builds.status"):
                event.remove(sqlite_engine, "before_cursor_execute", hang_once)
                release.wait(30)
                hang_over.set()

        event.listen(sqlite_engine, "before_cursor_execute", hang_once)
        writer = write_slowly(sqlite_engine, build_id, lines=20, seconds=0.5)

        async def follow_and_unstick() -> list[list[int]]:
            async def keepalive_soon() -> None:
                # The keep-alive tick is when followers look at their tail's health.
                await asyncio.sleep(1.5)
                for tail in hub.tails().values():
                    tail.changed.set()

            unstick = asyncio.create_task(keepalive_soon())
            results = await follow_all(hub, build_id, followers=2)
            # Served by the replacement while the stuck poll still hangs.
            assert not hang_over.is_set()
            await unstick
            return results

        try:
            results = asyncio.run(follow_and_unstick())
        finally:
            release.set()
            writer.join()
        assert all(result == list(range(1, 21)) for result in results)
        assert hub.tails() == {}
