"""Build logs: a sink that batches lines into the database, and readers that page through them.

Writers run in the worker; every flush is its own short transaction, so the API can serve a log
while the build is still writing it. A log is capped (`max_log_bytes`): past the cap one notice is
written and the rest is counted but not stored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from enum import StrEnum
from types import TracebackType

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from core.db import retrying, session_scope, utcnow
from core.models import Build, LogLine

log = logging.getLogger(__name__)
MAX_LINE_CHARS = 16_384


class LogStream(StrEnum):
    BUILD = "build"
    TEST = "test"
    SYSTEM = "system"


def clean_line(text: str) -> str:
    """Make one line storable anywhere: no NUL (PostgreSQL refuses it), no lone surrogates."""
    text = text.replace("\x00", "\\0")
    return text.encode("utf-8", "replace").decode("utf-8")


def split_lines(text: str) -> list[str]:
    """Split output into lines, treating a bare carriage return (progress bars) as a line end."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [chunk for line in lines for chunk in _chunks(line)]


def _chunks(line: str) -> list[str]:
    if len(line) <= MAX_LINE_CHARS:
        return [line]
    return [line[i : i + MAX_LINE_CHARS] for i in range(0, len(line), MAX_LINE_CHARS)]


class LogSink:
    """Thread-safe, batched appender for one build's log. Use as a context manager."""

    def __init__(
        self,
        engine: Engine,
        build_id: str,
        *,
        max_bytes: int,
        flush_interval: float = 0.5,
        max_batch: int = 500,
    ) -> None:
        self._engine = engine
        self._build_id = build_id
        self._max_bytes = max_bytes
        self._flush_interval = flush_interval
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: list[LogLine] = []
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        with session_scope(engine) as session:
            build = session.get_one(Build, build_id)
            self._seq = build.log_lines
            self._bytes = build.log_bytes
            self._truncated = build.log_truncated
        self.dropped_bytes = 0

    def __enter__(self) -> LogSink:
        self._thread = threading.Thread(target=self._flush_periodically, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def write(self, stream: LogStream, text: str) -> None:
        """Append `text` (one or more lines) to the log."""
        flush_now = False
        with self._lock:
            for line in split_lines(text):
                self._append(stream, clean_line(line))
            flush_now = len(self._pending) >= self._max_batch
        if flush_now:
            self.flush()

    def _append(self, stream: LogStream, line: str) -> None:
        size = len(line.encode()) + 1
        if self._truncated:
            self.dropped_bytes += size
            return
        if self._bytes + size > self._max_bytes:
            self._truncated = True
            self.dropped_bytes += size
            line = (
                f"[imagebuilder] log truncated: it reached the {self._max_bytes // 1024} KiB "
                "limit; later output is not stored"
            )
            stream = LogStream.SYSTEM
            size = len(line) + 1
        self._seq += 1
        self._bytes += size
        self._pending.append(
            LogLine(build_id=self._build_id, seq=self._seq, at=utcnow(), stream=stream, text=line)
        )

    def flush(self) -> bool:
        """Write what is pending; False (lines kept for the next flush) if the database failed."""
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, []
                seq, total, truncated = self._seq, self._bytes, self._truncated
            if not batch:
                return True
            try:
                with session_scope(self._engine) as session:
                    session.add_all(batch)
                    session.execute(
                        update(Build)
                        .where(Build.id == self._build_id)
                        .values(log_lines=seq, log_bytes=total, log_truncated=truncated)
                    )
            except (OperationalError, InterfaceError) as exc:
                log.warning("log flush for %s failed, kept for later: %s", self._build_id, exc)
                with self._lock:
                    self._pending = [_detached(line) for line in batch] + self._pending
                return False
            return True

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        # The last lines matter most (the outcome): wait for a database that is briefly away.
        retrying(self._engine, lambda _session: self._flush_or_raise())

    def _flush_or_raise(self) -> None:
        if not self.flush():
            raise OperationalError("flush", {}, Exception("log flush failed"))

    def _flush_periodically(self) -> None:
        while not self._closed.wait(self._flush_interval):
            self.flush()


def _detached(line: LogLine) -> LogLine:
    """A fresh copy of a line whose insert was rolled back (the old object is tied to that try)."""
    return LogLine(
        build_id=line.build_id, seq=line.seq, at=line.at, stream=line.stream, text=line.text
    )


def read_lines(
    session: Session, build_id: str, *, after: int = 0, limit: int = 1000
) -> Sequence[LogLine]:
    """Lines with seq > after, in order, at most `limit` of them."""
    return session.scalars(
        select(LogLine)
        .where(LogLine.build_id == build_id, LogLine.seq > after)
        .order_by(LogLine.seq)
        .limit(limit)
    ).all()


def iter_all_lines(engine: Engine, build_id: str, *, page: int = 2000) -> Iterator[LogLine]:
    """Every stored line, page by page, each page in its own short session."""
    after = 0
    while True:
        with session_scope(engine) as session:
            lines = read_lines(session, build_id, after=after, limit=page)
        yield from lines
        if len(lines) < page:
            return
        after = lines[-1].seq
