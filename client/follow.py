"""Following a build's log: server-sent events, and resuming after a dropped connection.

The server sends each log line as an event whose id is the line number and whose type is the
line's stream, then one `end` event whose data is the final status. `LogFollower` yields the
lines; when the connection drops or stalls it reconnects with `Last-Event-ID` set to the last
id it saw, so nothing is missed or shown twice (lines at or below that id are dropped anyway,
should a server replay them). A server that does not answer with an event stream is followed
with `?follow=true&after=N` plain text instead.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from enum import Enum

import httpx

from client.api import (
    SSE_TYPE,
    Api,
    ApiError,
    ConnectionFailed,
    complete_lines,
    iter_text,
)

TERMINAL = frozenset({"succeeded", "failed", "error", "timed_out", "cancelled"})
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_MAX_LINE = 1024 * 1024
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Event:
    """One dispatched server-sent event; `id` is the last event id in effect when it came."""

    type: str
    data: str
    id: str


class SSEDecoder:
    """The event-stream parser of the HTML standard ("9.2.6 Interpreting an event stream"):
    fed text as it arrives, returns the events completed so far."""

    def __init__(self) -> None:
        self.last_event_id = ""
        self.retry_ms: int | None = None
        self._data: list[str] = []
        self._type = ""
        self._id_buffer = ""
        self._line = ""  # an incomplete line, waiting for its end
        self._after_cr = False
        self._started = False

    def feed(self, text: str) -> list[Event]:
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._after_cr and text.startswith("\n"):
            text = text[1:]  # the LF of a CRLF split across two chunks
        if text:
            self._after_cr = text.endswith("\r")
        *lines, rest = _LINE_BREAK.split(self._line + text)
        self._line = rest[:_MAX_LINE]
        events = []
        for line in lines:
            event = self._process(line)
            if event is not None:
                events.append(event)
        return events

    def _process(self, line: str) -> Event | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: keep-alive
        name, colon, value = line.partition(":")
        if colon:
            value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._type = value
        elif name == "id":
            if "\x00" not in value:
                self._id_buffer = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> Event | None:
        self.last_event_id = self._id_buffer
        data, event_type = self._data, self._type or "message"
        self._data, self._type = [], ""
        if not data:
            return None
        return Event(type=event_type, data="\n".join(data), id=self.last_event_id)


@dataclass(frozen=True)
class LogLine:
    seq: int | None  # the line number, when the server said
    stream: str | None  # build, test or system, when the server said
    text: str


class _Outcome(Enum):
    DONE = "done"  # the build ended and every line was delivered
    DROPPED = "dropped"  # the stream stopped early: reconnect
    PLAIN = "plain"  # the server does not speak event streams: switch to plain text


class LogFollower:
    """Iterate over a build's log lines until the build ends; then `final_status` is set.

    Reconnects on a dropped or stalled connection, on 429/502/503/504 (honouring Retry-After),
    backing off; gives up with ConnectionFailed after `max_failures` attempts in a row that
    receive nothing. `on_retry(reason, after, delay)` is told of each reconnection that follows
    a failure (not of the quiet reconnects of an idle plain-text stream).
    """

    def __init__(
        self,
        api: Api,
        build_id: str,
        *,
        after: int = 0,
        max_failures: int = 8,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[str, int, float], None] | None = None,
    ) -> None:
        self.api = api
        self.build_id = build_id
        self.after = after  # the last line delivered
        self.last_event_id = str(after) if after else ""
        self.final_status: str | None = None
        self.max_failures = max_failures
        self.reconnects = 0
        self._sleep = sleep
        self._on_retry = on_retry
        self._sse = True
        self._failures = 0
        self._retry_seconds = 1.0

    def __iter__(self) -> Iterator[LogLine]:
        while True:
            delay: float | None = None
            try:
                outcome = yield from (self._follow_sse() if self._sse else self._follow_plain())
                if outcome is _Outcome.DONE:
                    return
                if outcome is _Outcome.PLAIN:
                    self._sse = False
                    continue
                reason = "the log stream ended before the build did"
            except httpx.ReadTimeout:
                if not self._sse:
                    # A plain-text follow is silent while the build is; just ask again.
                    self.reconnects += 1
                    continue
                reason = "the log stream stalled"
            except ConnectionFailed as exc:
                reason = exc.reason
            except httpx.TransportError as exc:
                reason = str(exc) or type(exc).__name__
            except ApiError as exc:
                if exc.status not in _RETRY_STATUSES:
                    raise
                reason = f"{exc.detail} ({exc.code})"
                delay = exc.retry_after
            self._failures += 1
            if self._failures > self.max_failures:
                raise ConnectionFailed(
                    f"Gave up following the log of {self.build_id} after {self.max_failures} "
                    f"attempts: {reason}. The build goes on; follow it again with "
                    f"`imagebuilder logs {self.build_id} --follow`."
                )
            if delay is None:
                delay = min(self._retry_seconds * 2 ** (self._failures - 1), 15.0)
            delay = min(delay, 60.0)
            if self._on_retry is not None:
                self._on_retry(reason, self.after, delay)
            self.reconnects += 1
            self._sleep(delay)

    def _follow_sse(self) -> Generator[LogLine, None, _Outcome]:
        headers = {"Accept": SSE_TYPE, "Cache-Control": "no-cache"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        try:
            with self.api.open_log(self.build_id, headers=headers) as response:
                media_type = response.headers.get("content-type", "").split(";")[0].strip()
                if media_type != SSE_TYPE:
                    return _Outcome.PLAIN
                decoder = SSEDecoder()
                for text in self._received(iter_text(response)):
                    for event in decoder.feed(text):
                        if decoder.retry_ms is not None:
                            self._retry_seconds = max(decoder.retry_ms / 1000, 0.1)
                        if event.type == "end":
                            self.final_status = event.data.strip()
                            return _Outcome.DONE
                        line = self._accept(event)
                        if line is not None:
                            yield line
                return _Outcome.DROPPED
        except ApiError as exc:
            if exc.status == 406:  # Not Acceptable: no event streams here
                return _Outcome.PLAIN
            raise

    def _accept(self, event: Event) -> LogLine | None:
        seq = int(event.id) if event.id.isascii() and event.id.isdigit() else None
        if seq is not None:
            if seq <= self.after:
                return None  # already shown: a replay after a reconnect
            self.after = seq
        if event.id:
            self.last_event_id = event.id
        stream = None if event.type == "message" else event.type
        return LogLine(seq=seq, stream=stream, text=event.data)

    def _received(self, chunks: Iterator[str]) -> Iterator[str]:
        for chunk in chunks:
            self._failures = 0  # bytes arrived (keep-alives included): the link works
            yield chunk

    def _follow_plain(self) -> Generator[LogLine, None, _Outcome]:
        params = {"follow": "true", "after": str(self.after)}
        with self.api.open_log(self.build_id, params=params) as response:
            for text in complete_lines(self._received(iter_text(response))):
                self.after += 1
                yield LogLine(seq=self.after, stream=None, text=text)
        # The server ends a followed stream when the build is over; make sure it is.
        build = self.api.get_build(self.build_id)
        if build["status"] in TERMINAL:
            self.final_status = build["status"]
            return _Outcome.DONE
        return _Outcome.DROPPED
