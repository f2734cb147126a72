"""Turning a container's or the CLI's byte stream into log lines, and finding the test
wrapper's report in it."""

from __future__ import annotations

import codecs
import contextlib
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from adapters.docker.errors import DOCKER_ERRORS
from adapters.docker.runs import LineSink, OutputSink

MAX_REPORT_BYTES = 32 * 1024 * 1024
# A partial line longer than this is passed on as a line: output without newlines cannot grow a
# buffer without bound.
MAX_PARTIAL_LINE = 64 * 1024


class CutLine(str):
    """A piece of a line longer than MAX_PARTIAL_LINE: its line goes on in the next piece."""

    __slots__ = ()


class LineSplitter:
    """Turns a byte stream into text lines: invalid UTF-8 replaced, partial lines kept for later;
    a line too long to hold comes out in pieces (`CutLine`, all but its last)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""

    def feed(self, data: bytes) -> list[str]:
        self._buffer += self._decoder.decode(data)
        *lines, self._buffer = self._buffer.split("\n")
        while len(self._buffer) > MAX_PARTIAL_LINE:
            lines.append(CutLine(self._buffer[:MAX_PARTIAL_LINE]))
            self._buffer = self._buffer[MAX_PARTIAL_LINE:]
        return lines

    def take_rest(self) -> str:
        """The partial line held for later (and forget it)."""
        rest, self._buffer = self._buffer, ""
        return rest

    def finish(self) -> list[str]:
        rest = self._buffer + self._decoder.decode(b"", final=True)
        self._buffer = ""
        return [rest] if rest else []


class OutputRouter:
    """Routes a container's output. Lines go to `on_line` until it wants no more; from then on
    the bytes are only scanned for the wrapper's marker, which is cheap even for gigabytes. After
    the marker, lines belong to the wrapper: its findings (`limits`) and the JUnit report."""

    def __init__(self, marker: str | None, on_line: OutputSink) -> None:
        self._marker = marker
        self._marker_bytes = marker.encode() if marker else b""
        self._on_line = on_line
        self._splitter = LineSplitter()
        self._forwarding = True
        self._carry = b""
        self.in_wrapper = False
        self.in_report = False
        self.report: list[str] = []
        self._report_size = 0
        self.limits: dict[str, str] = {}
        self.total_bytes = 0

    def feed(self, chunk: bytes) -> None:
        if not self.in_wrapper:
            self.total_bytes += len(chunk)
        if self.in_wrapper or self._forwarding:
            self._lines(self._splitter.feed(chunk))
            return
        if not self._marker_bytes:
            return
        data = self._carry + chunk
        found = data.find(self._marker_bytes)
        if found < 0:
            self._carry = data[-(len(self._marker_bytes) - 1) :]
            return
        self._carry = b""
        self.in_wrapper = True
        self._splitter = LineSplitter()
        self._lines(self._splitter.feed(data[found:]))

    def finish(self) -> None:
        self._lines(self._splitter.finish())

    def _lines(self, lines: list[str]) -> None:
        for line in lines:
            self._line(line)
        if not (self.in_wrapper or self._forwarding):
            # Output stopped being taken: what remains of a partial line may hold the marker.
            self._carry = self._splitter.take_rest().encode()

    def _line(self, line: str) -> None:
        at = line.find(self._marker) if self._marker else -1
        if at >= 0:
            if at > 0 and not self.in_wrapper:
                self._forward(line[:at])
            self.in_wrapper = True
            self._wrapper_line(line[at + len(self._marker or "") :].strip())
        elif self.in_report:
            # pytest writes its JUnit report on one line: pieces of a cut line are joined again.
            piece = line if isinstance(line, CutLine) else line + "\n"
            self._report_size += len(piece)
            if self._report_size <= MAX_REPORT_BYTES:
                self.report.append(piece)
        elif not self.in_wrapper:
            self._forward(line)

    @property
    def report_text(self) -> str:
        """The JUnit report as the wrapper printed it (without the newline it adds)."""
        return "".join(self.report).removesuffix("\n")

    def _forward(self, line: str) -> None:
        if self._forwarding and self._on_line(line) is False:
            self._forwarding = False

    def _wrapper_line(self, command: str) -> None:
        kind, _, rest = command.partition(" ")
        if kind == "limits":
            self.limits = dict(item.partition("=")[::2] for item in rest.split())
        elif kind == "report":
            self.in_report, self._report_size = True, 0
            self.report.clear()


def drain(chunks: Iterable[bytes], output: OutputRouter) -> threading.Thread:
    """Feed `chunks` to `output` on a thread."""

    def run() -> None:
        try:
            for chunk in chunks:
                output.feed(chunk)
        except (*DOCKER_ERRORS, ValueError):
            pass  # the stream ends (or is closed) when the container dies; the waiter reports it
        finally:
            output.finish()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def close_stream(stream: Any) -> None:
    with contextlib.suppress(*DOCKER_ERRORS):  # a daemon that went away is reported elsewhere
        stream.close()  # shuts the socket down if the stream is still open
        # docker-py leaves the response, which holds the socket, to the garbage collector.
        response = getattr(stream, "_response", None)
        if response is not None:
            response.close()


def chunks_of(stream: Any) -> Iterator[bytes]:
    while chunk := stream.read1(65536):
        yield chunk


def pump(chunks: Iterable[bytes], on_line: LineSink) -> threading.Thread:
    """Read `chunks` on a thread, calling `on_line` for each complete line."""

    def run() -> None:
        splitter = LineSplitter()
        try:
            for chunk in chunks:
                for line in splitter.feed(chunk):
                    on_line(line)
        except DOCKER_ERRORS:
            pass  # the stream ends when the container or process is killed; the waiter reports it
        finally:
            for line in splitter.finish():
                on_line(line)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread
