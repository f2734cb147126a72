"""Build logs: a sink that batches lines into the database, and readers that page through them.

Writers run in the worker; every flush is its own short transaction, so the API can serve a log
while the build is still writing it. A log is capped (`max_log_bytes`, and a line count derived
from it, since every row has a cost of its own): past the cap one notice is written and later
build and test output is counted but not stored. The service's own lines (stream "system") may use
a small reserve beyond the cap, so a truncated log still shows how the build ended.

Lines are untrusted output. They are stored neutralised (`clean_line`): SGR colour sequences stay
(the dashboard renders them), every other escape sequence and control character goes, so a log
viewed in a terminal cannot move the cursor, rewrite earlier lines, set titles, write the
clipboard or hide links. A line's `stream` says who wrote it: a test that prints
"[imagebuilder] ..." is still stream "test", and a system message is always exactly one line.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Sequence
from enum import StrEnum
from types import TracebackType
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from core.db import retrying, session_scope, utcnow
from core.models import Build, LogLine

log = logging.getLogger(__name__)
MAX_LINE_CHARS = 16_384
# A log keeps at most max_bytes / MIN_LINE_BYTES lines: a flood of empty lines is bytes-cheap but
# costs a row each.
MIN_LINE_BYTES = 32
# Room for the service's own lines after the output filled the log.
SYSTEM_RESERVE_BYTES = 64 * 1024
SYSTEM_RESERVE_LINES = 200

# Escape sequences as terminals parse them (ECMA-48): CSI (7-bit and 8-bit), the string
# sequences (OSC, DCS, SOS, PM, APC) up to their terminator or the end of the line, every other
# escape; then any other control character but tab (C0, DEL, C1). Mirrors app/web/static/ansi.js.
_CONTROL = re.compile(
    r"(?:\x1b\[|\x9b)([0-?]*)([ -/]*)([@-~])"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|$)"
    r"|\x1b[ -/]*[0-~]?"
    r"|[\x00-\x08\x0a-\x1f\x7f-\x9f]",
    re.DOTALL,
)
_SGR_PARAMS = re.compile(r"[0-9;:]*")


class LogStream(StrEnum):
    BUILD = "build"
    TEST = "test"
    SYSTEM = "system"


def clean_line(text: str) -> str:
    """Make one line storable anywhere and harmless to show: NUL becomes a visible `\\0`
    (PostgreSQL refuses NUL), lone surrogates `?`; SGR colour sequences are kept, every other
    escape sequence and control character but tab is dropped."""
    text = text.replace("\x00", "\\0").encode("utf-8", "replace").decode("utf-8")
    if _CONTROL.search(text) is None:
        return text
    text = _CONTROL.sub(_keep_sgr, text)
    last = text.rfind("\x1b[")
    if last >= 0 and text[last + 2 : text.index("m", last)] not in ("", "0"):
        text += "\x1b[0m"  # a terminal showing the log keeps no colour (or concealment) past it
    return text


def _keep_sgr(match: re.Match[str]) -> str:
    params, intermediates, final = match.group(1, 2, 3)
    sgr = final == "m" and not intermediates and _SGR_PARAMS.fullmatch(params or "")
    return f"\x1b[{params}m" if sgr else ""


def system_line(text: str) -> str:
    """A system message as exactly one line: its line breaks shown, not kept, and cut rather than
    chunked, so no part of it can pass for a line of its own."""
    line = " \u21b5 ".join(split_lines(text, chunk=False))
    return line if len(line) <= MAX_LINE_CHARS else line[: MAX_LINE_CHARS - 1] + "\u2026"


def split_lines(text: str, *, chunk: bool = True) -> list[str]:
    """Split output into lines, treating a bare carriage return (progress bars) as a line end.
    Lines longer than MAX_LINE_CHARS are cut into several unless `chunk` is false."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not chunk:
        return lines
    return [piece for line in lines for piece in _chunks(line)]


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
        max_lines: int | None = None,
        flush_interval: float = 0.5,
        max_batch: int = 500,
    ) -> None:
        self._engine = engine
        self._build_id = build_id
        self._max_bytes = max_bytes
        self._max_lines = (
            max_lines if max_lines is not None else max(max_bytes // MIN_LINE_BYTES, 1)
        )
        self._flush_interval = flush_interval
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
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

    @property
    def full(self) -> bool:
        """True once build and test output are no longer stored."""
        return self._truncated

    def write(self, stream: LogStream, text: str) -> bool:
        """Append `text` (one or more lines; a system message is always one line) to the log.
        Returns False once output is no longer stored, so a producer may stop sending it."""
        lines = [system_line(text)] if stream is LogStream.SYSTEM else split_lines(text)
        flush_now = False
        with self._lock:
            for line in lines:
                self._append(stream, clean_line(line))
            flush_now = len(self._pending) >= self._max_batch
            full = self._truncated
        if flush_now:
            self.flush()
        return not full

    def _append(self, stream: LogStream, line: str) -> None:
        size = len(line.encode()) + 1
        if stream is LogStream.SYSTEM:
            fits = (
                self._bytes + size <= self._max_bytes + SYSTEM_RESERVE_BYTES
                and self._seq < self._max_lines + SYSTEM_RESERVE_LINES
            )
        else:
            fits = (
                not self._truncated
                and self._bytes + size <= self._max_bytes
                and self._seq < self._max_lines
            )
            if not fits and not self._truncated:
                self._truncated = True
                self._store(
                    LogStream.SYSTEM,
                    f"[imagebuilder] log truncated: it reached the {self._max_bytes // 1024} KiB "
                    "limit; later build and test output is not stored",
                )
        if not fits:
            self.dropped_bytes += size
            return
        self._store(stream, line)

    def _store(self, stream: LogStream, line: str) -> None:
        self._seq += 1
        self._bytes += len(line.encode()) + 1
        self._pending.append(
            {
                "build_id": self._build_id,
                "seq": self._seq,
                "at": utcnow(),
                "stream": stream.value,
                "text": line,
            }
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
                    # A Core insert: a flood of lines costs a fraction of what ORM objects do.
                    session.execute(insert(LogLine), batch)
                    session.execute(
                        update(Build)
                        .where(Build.id == self._build_id)
                        .values(log_lines=seq, log_bytes=total, log_truncated=truncated)
                    )
            except (OperationalError, InterfaceError) as exc:
                log.warning("log flush for %s failed, kept for later: %s", self._build_id, exc)
                with self._lock:
                    self._pending = batch + self._pending
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
