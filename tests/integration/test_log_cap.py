"""core.builds.logs.LogSink on SQLite and PostgreSQL: the cap holds against floods of output, the
service's own lines survive it, and lines keep the stream that wrote them."""

from __future__ import annotations

from sqlalchemy import Engine

from core.builds.logs import (
    MIN_LINE_BYTES,
    SYSTEM_RESERVE_BYTES,
    LogSink,
    LogStream,
    iter_all_lines,
)
from core.db import session_scope
from core.models import Build
from tests.factories import queued_build


class TestLogCap:
    def test_a_flood_of_empty_lines_stops_at_the_line_cap(self, engine: Engine) -> None:
        build_id = queued_build(engine)
        with LogSink(engine, build_id, max_bytes=64 * 1024) as sink:
            for _ in range(100):
                sink.write(LogStream.TEST, "\n" * 1000)
        lines = list(iter_all_lines(engine, build_id))
        assert len(lines) == 64 * 1024 // MIN_LINE_BYTES + 1
        assert [line.stream for line in lines].count("system") == 1
        assert "log truncated" in lines[-1].text

    def test_write_says_when_output_is_no_longer_stored(self, engine: Engine) -> None:
        build_id = queued_build(engine)
        with LogSink(engine, build_id, max_bytes=1000) as sink:
            assert sink.write(LogStream.TEST, "x" * 500)
            assert not sink.full
            assert not sink.write(LogStream.TEST, "x" * 600)
            assert sink.full
            assert not sink.write(LogStream.BUILD, "more")

    def test_service_lines_are_kept_after_the_cap_within_a_reserve(self, engine: Engine) -> None:
        build_id = queued_build(engine)
        with LogSink(engine, build_id, max_bytes=1000) as sink:
            sink.write(LogStream.TEST, "x" * 2000)
            sink.write(LogStream.TEST, "dropped")
            sink.write(LogStream.SYSTEM, "[imagebuilder] tests: exit code 1")
            for _ in range(SYSTEM_RESERVE_BYTES // 100):
                sink.write(LogStream.SYSTEM, "[imagebuilder] " + "y" * 100)
        lines = list(iter_all_lines(engine, build_id))
        texts = [line.text for line in lines]
        assert "dropped" not in texts
        assert "[imagebuilder] tests: exit code 1" in texts
        assert len([text for text in texts if "log truncated" in text]) == 1
        with session_scope(engine) as session:
            build = session.get_one(Build, build_id)
            assert build.log_truncated
            assert build.log_bytes <= 1000 + SYSTEM_RESERVE_BYTES
            assert build.log_bytes == sum(len(text.encode()) + 1 for text in texts)

    def test_lines_keep_their_stream_and_system_messages_stay_one_line(
        self, engine: Engine
    ) -> None:
        build_id = queued_build(engine)
        with LogSink(engine, build_id, max_bytes=100_000) as sink:
            sink.write(LogStream.TEST, "[imagebuilder] tests: exit code 0, 99 passed")
            sink.write(LogStream.SYSTEM, "[imagebuilder] failed: x\n[imagebuilder] forged")
            sink.write(LogStream.TEST, "nul\x00 \x1b]8;;http://evil\x07link\x1b]8;;\x07")
        lines = [(line.stream, line.text) for line in iter_all_lines(engine, build_id)]
        assert lines == [
            ("test", "[imagebuilder] tests: exit code 0, 99 passed"),
            ("system", "[imagebuilder] failed: x \u21b5 [imagebuilder] forged"),
            ("test", "nul\\0 link"),
        ]
