"""Reads on the hottest paths (a status poll, the start of a log follow) without a hop to a worker
thread.

Measured (README "Under load"): handing a poll's read to the thread pool cost more CPU than the
read itself: the hop, the waking of a worker thread and the GIL handover back. So a hot read runs
on the event loop's own thread, written once as a plain function of a `Connection`:

- PostgreSQL: through SQLAlchemy's asyncio engine on psycopg's async connections (the same
  driver), `run_sync` running that function with every query awaited, not blocked on. This pool is
  the API process's second one, small because a poll holds a connection only for its queries:
  `HOT_READ_POOL_SIZE` + `HOT_READ_MAX_OVERFLOW` connections more per API process. Its reads
  are autocommitted, and a connection is not pinged before use: one round trip per query.
- SQLite: inline, on a connection of its own. The database is a local file in WAL mode, where a
  read never waits for a writer (no lock, `BEGIN` not `BEGIN IMMEDIATE`), so the read is a few
  tens of microseconds of CPU, less than the hop it saves.

Everything else that reads or writes still runs in the thread pool (`API_THREADS`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.db import make_engine, read_connection
from core.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")

HOT_READ_POOL_SIZE = 8
HOT_READ_MAX_OVERFLOW = 8
HOT_READ_APPLICATION = "imagebuilder-api-hot-reads"


class HotReads:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._settings = settings
        self._inline: Engine | None = None
        if engine.dialect.name == "sqlite":
            # A connection of its own: the loop runs one inline read at a time, so it never
            # waits for a connection that handler threads hold.
            self._inline = make_engine(settings.sqlalchemy_url, pool_size=1, max_overflow=0)
        self._async: AsyncEngine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(
        self, read: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`read(connection, *args, **kwargs)` in one read-only transaction, on this thread."""
        if self._inline is not None:
            with read_connection(self._inline) as connection:
                return read(connection, *args, **kwargs)
        try:
            return await self._run_async(read, *args, **kwargs)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            # A pooled connection the server had closed (a restart): the pool is now emptied, so
            # a second try opens a fresh one. This replaces a ping before every checkout, which
            # would cost a round trip per poll.
            return await self._run_async(read, *args, **kwargs)

    async def _run_async(
        self, read: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        async with self._async_engine().connect() as connection:
            return await connection.run_sync(read, *args, **kwargs)

    def _async_engine(self) -> AsyncEngine:
        # An async connection belongs to the event loop that opened it. A server has one loop per
        # process; a test client may start a new one per request, which then gets a new pool.
        loop = asyncio.get_running_loop()
        if self._async is None or self._loop is not loop:
            if self._async is not None:
                self._async.sync_engine.dispose(close=False)  # its loop is gone or not ours
            self._async = create_async_engine(
                self._settings.sqlalchemy_url,
                pool_size=HOT_READ_POOL_SIZE,
                max_overflow=HOT_READ_MAX_OVERFLOW,
                pool_timeout=self._settings.database_pool_timeout_seconds,
                # No BEGIN and ROLLBACK around the reads: two round trips less per poll, and no
                # consistency lost, since at PostgreSQL's READ COMMITTED every statement takes
                # its own snapshot inside a transaction too.
                isolation_level="AUTOCOMMIT",
                # Named, so that pg_stat_activity tells these connections from the others.
                connect_args={"connect_timeout": 3, "application_name": HOT_READ_APPLICATION},
            )
            self._loop = loop
        return self._async

    async def close(self) -> None:
        if self._inline is not None:
            self._inline.dispose()
        if self._async is not None and self._loop is asyncio.get_running_loop():
            await self._async.dispose()
        self._async = None
