"""Engine, sessions and the declarative base.

The edge (a request, a task) owns the session and commits; functions below only add and flush.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from core.settings import Settings, get_settings

log = logging.getLogger(__name__)
T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware timestamps on every backend (SQLite forgets the zone; we put UTC back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


# An execution option marking a transaction that only reads (see `read_scope`).
READ_ONLY = "imagebuilder_read_only"


def make_engine(
    url: str, *, pool_size: int = 10, max_overflow: int = 10, pool_timeout: float = 10.0
) -> Engine:
    """An engine with a bounded pool: `pool_size` kept, `max_overflow` more under load, and a
    checkout that waits at most `pool_timeout` seconds."""
    pool = {"pool_size": pool_size, "max_overflow": max_overflow, "pool_timeout": pool_timeout}
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **pool
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # A short connect timeout: with the database down, the API answers 503 at once instead of
    # holding requests for the driver's default of minutes.
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 3}, **pool)


def _sqlite_begin(conn: Connection) -> None:
    # A writing transaction takes the write lock at once (IMMEDIATE), so concurrent writers queue
    # on busy_timeout instead of failing with "database is locked" on lock upgrade. A reading one
    # takes no lock at all: in WAL mode readers never wait for writers, nor writers for readers.
    read_only = conn.get_execution_options().get(READ_ONLY, False)
    # Straight to the driver: every read runs this, and a statement through the engine's
    # machinery costs several times the BEGIN itself.
    conn.connection.driver_connection.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")  # type: ignore[union-attr]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling would fight our explicit BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@functools.cache
def _engine_for(url: str, pool_size: int, max_overflow: int, pool_timeout: float) -> Engine:
    return make_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout
    )


def get_engine(settings: Settings | None = None) -> Engine:
    settings = settings or get_settings()
    return _engine_for(
        settings.sqlalchemy_url,
        settings.database_pool_size,
        settings.database_max_overflow,
        settings.database_pool_timeout_seconds,
    )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def retrying(
    engine: Engine,
    work: Callable[[Session], T],
    *,
    patience_seconds: float = 600.0,
    first_delay: float = 0.5,
) -> T:
    """Run `work` in its own transaction, retrying while the database is unreachable.

    For the worker, whose results must be recorded once the database is back: an outage shorter
    than `patience_seconds` delays the write instead of losing it.
    """
    deadline = time.monotonic() + patience_seconds
    delay = first_delay
    while True:
        try:
            with session_scope(engine) as session:
                return work(session)
        except (OperationalError, InterfaceError) as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning(
                "database unavailable (%s); retrying in %.1f s", exc.__class__.__name__, delay
            )
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A unit of work for tasks and scripts: commits on success, rolls back on error."""
    with session_factory(engine)() as session, session.begin():
        yield session


@contextmanager
def read_scope(engine: Engine) -> Iterator[Session]:
    """A session that only reads: on SQLite it takes no lock, so readers never queue behind the
    worker's log writes. Its connection goes back to the pool when the block ends: use it inside
    one blocking call, never across an await or a hop between threads."""
    with Session(_reader(engine), expire_on_commit=False) as session:
        yield session


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """`read_scope` for hot paths that read rows, not objects: a Core connection, without the
    ORM session's bookkeeping. The same rules: one blocking call, back to the pool at the end."""
    with _reader(engine).connect() as connection:
        yield connection


@functools.cache
def _reader(engine: Engine) -> Engine:
    # One per engine, made once: the same pool, with the read-only option on every connection.
    return engine.execution_options(**{READ_ONLY: True})
