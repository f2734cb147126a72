"""client.follow: parsing server-sent events, and following a log across dropped connections.

The follower runs against a real local HTTP server (tests/unit/client_fakes.py), so drops,
stalls and reconnections go through real sockets.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from client.api import Api, ApiError, ConnectionFailed
from client.follow import Event, LogFollower, SSEDecoder
from tests.unit.client_fakes import FakeServer, Received, Reply, build, sse

LOGS = "/api/v1/builds/b_1/logs"
BUILD = "/api/v1/builds/b_1"
SSE = "text/event-stream"


def decode(*chunks: str) -> list[Event]:
    decoder = SSEDecoder()
    return [event for chunk in chunks for event in decoder.feed(chunk)]


class TestSSEDecoder:
    def test_events_carry_type_data_and_id(self) -> None:
        events = decode("id: 1\nevent: build\ndata: hello\n\nid: 2\ndata: plain\n\n")

        assert events == [
            Event(type="build", data="hello", id="1"),
            Event(type="message", data="plain", id="2"),
        ]

    def test_data_lines_join_with_newlines(self) -> None:
        assert decode("data: one\ndata: two\ndata\n\n") == [
            Event(type="message", data="one\ntwo\n", id="")
        ]

    @pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
    def test_every_line_ending_whole_or_split_char_by_char(self, newline: str) -> None:
        text = newline.join(["id: 7", "event: test", "data: x", "", "data: y", "", ""])
        expected = [Event("test", "x", "7"), Event("message", "y", "7")]

        assert decode(text) == expected
        assert decode(*text) == expected

    def test_crlf_split_between_chunks_is_one_line_end(self) -> None:
        assert decode("data: a\r", "\n\r", "\n") == [Event("message", "a", "")]

    def test_comments_keep_alives_and_unknown_fields_are_ignored(self) -> None:
        assert decode(": keep-alive\n\nfoo: bar\ndata: x\n\n") == [Event("message", "x", "")]

    def test_id_persists_and_an_id_with_nul_is_ignored(self) -> None:
        decoder = SSEDecoder()
        events = decoder.feed("id: 5\ndata: a\n\ndata: b\n\nid: 6\x00\ndata: c\n\n")

        assert [event.id for event in events] == ["5", "5", "5"]
        assert decoder.last_event_id == "5"

    def test_event_without_data_only_moves_the_last_id(self) -> None:
        decoder = SSEDecoder()

        assert decoder.feed("id: 9\nevent: build\n\n") == []
        assert decoder.last_event_id == "9"

    def test_one_space_after_the_colon_is_dropped(self) -> None:
        assert decode("data:  two spaces\ndata:none\n\n") == [
            Event("message", " two spaces\nnone", "")
        ]

    def test_retry_bom_and_an_unfinished_event(self) -> None:
        decoder = SSEDecoder()

        assert decoder.feed("\ufeffretry: 2500\ndata: done\n\ndata: unfinished") == [
            Event("message", "done", "")
        ]
        assert decoder.retry_ms == 2500


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        yield fake


def follow(
    server: FakeServer, *, after: int = 0, max_failures: int = 8, read_timeout: float = 5.0
) -> tuple[LogFollower, list[tuple[int | None, str | None, str]], list[float]]:
    sleeps: list[float] = []
    api = Api(server.url, "tok", timeout=httpx.Timeout(5.0, read=read_timeout))
    follower = LogFollower(api, "b_1", after=after, max_failures=max_failures, sleep=sleeps.append)
    try:
        lines = [(line.seq, line.stream, line.text) for line in follower]
    finally:
        api.close()
    return follower, lines, sleeps


class TestFollowingEvents:
    def test_resumes_after_a_drop_with_last_event_id(self, server: FakeServer) -> None:
        def logs(request: Received) -> Reply:
            if len(server.requests_to("GET", LOGS)) == 1:
                # Two events, then the connection drops in the middle of a third.
                first = sse(("1", "build", "one"), ("2", "build", "two"))
                return Reply(body=[first, b"id: 3\nevent: test\ndata: thr"], content_type=SSE)
            body = sse(("3", "test", "three"), ("4", "system", "four"), (None, "end", "failed"))
            return Reply(body=body, content_type=SSE)

        server.on("GET", LOGS, logs)

        follower, lines, sleeps = follow(server)

        assert lines == [
            (1, "build", "one"),
            (2, "build", "two"),
            (3, "test", "three"),
            (4, "system", "four"),
        ]
        assert follower.final_status == "failed"
        requests = server.requests_to("GET", LOGS)
        assert [r.headers.get("last-event-id") for r in requests] == [None, "2"]
        assert all(r.headers["accept"] == SSE for r in requests)
        assert all(r.headers["authorization"] == "Bearer tok" for r in requests)
        assert sleeps == [1.0]

    def test_starts_after_a_given_line(self, server: FakeServer) -> None:
        server.on("GET", LOGS, Reply(body=sse((None, "end", "succeeded")), content_type=SSE))

        follow(server, after=41)

        assert server.requests_to("GET", LOGS)[0].headers["last-event-id"] == "41"

    def test_lines_a_server_replays_are_not_shown_twice(self, server: FakeServer) -> None:
        def logs(request: Received) -> Reply:
            # This server ignores Last-Event-ID and always starts from the top.
            events: list[tuple[str | None, str, str]] = [("1", "build", "a"), ("2", "build", "b")]
            if len(server.requests_to("GET", LOGS)) > 1:
                events += [("3", "build", "c"), (None, "end", "succeeded")]
            return Reply(body=sse(*events), content_type=SSE)

        server.on("GET", LOGS, logs)

        _, lines, _ = follow(server)

        assert [text for _, _, text in lines] == ["a", "b", "c"]

    def test_stalled_stream_is_reopened(self, server: FakeServer) -> None:
        def logs(request: Received) -> Reply:
            if len(server.requests_to("GET", LOGS)) == 1:
                # One event, then silence longer than the read timeout (no keep-alives).
                return Reply(
                    body=[sse(("1", "build", "a")), sse(("2", "build", "late"))],
                    content_type=SSE,
                    pause=1.5,
                )
            return Reply(
                body=sse(("2", "build", "b"), (None, "end", "succeeded")), content_type=SSE
            )

        server.on("GET", LOGS, logs)

        follower, lines, _ = follow(server, read_timeout=0.3)

        assert [text for _, _, text in lines] == ["a", "b"]
        assert follower.reconnects == 1

    def test_honours_retry_after_when_busy(self, server: FakeServer) -> None:
        def logs(request: Received) -> Reply:
            if len(server.requests_to("GET", LOGS)) == 1:
                return Reply.problem(503, "unavailable", "Try again.", Retry_After="7")
            return Reply(body=sse((None, "end", "succeeded")), content_type=SSE)

        server.on("GET", LOGS, logs)

        follower, _, sleeps = follow(server)

        assert sleeps == [7.0]
        assert follower.final_status == "succeeded"

    def test_server_retry_field_sets_the_reconnection_delay(self, server: FakeServer) -> None:
        def logs(request: Received) -> Reply:
            if len(server.requests_to("GET", LOGS)) == 1:
                return Reply(body=b"retry: 250\n\n" + sse(("1", "build", "a")), content_type=SSE)
            return Reply(body=sse((None, "end", "succeeded")), content_type=SSE)

        server.on("GET", LOGS, logs)

        _, _, sleeps = follow(server)

        assert sleeps == [0.25]

    def test_gives_up_after_consecutive_failures_with_backoff(self, server: FakeServer) -> None:
        server.on("GET", LOGS, Reply(body=b"", content_type=SSE))

        with pytest.raises(ConnectionFailed, match="after 3 attempts"):
            follow(server, max_failures=3)

        assert len(server.requests_to("GET", LOGS)) == 4

    def test_backoff_doubles(self, server: FakeServer) -> None:
        sleeps: list[float] = []
        server.on("GET", LOGS, Reply(body=b"", content_type=SSE))
        with Api(server.url, "tok") as api:
            follower = LogFollower(api, "b_1", max_failures=4, sleep=sleeps.append)
            with pytest.raises(ConnectionFailed):
                list(follower)

        assert sleeps == [1.0, 2.0, 4.0, 8.0]

    def test_a_missing_build_is_not_retried(self, server: FakeServer) -> None:
        server.on("GET", LOGS, Reply.problem(404, "build_not_found", "No build with id 'b_1'."))

        with pytest.raises(ApiError) as raised:
            follow(server)

        assert (raised.value.status, raised.value.code) == (404, "build_not_found")
        assert len(server.requests_to("GET", LOGS)) == 1

    def test_an_unreachable_server_is_retried_then_reported(self) -> None:
        with FakeServer() as gone:
            url = gone.url
        sleeps: list[float] = []
        with Api(url, "tok") as api:
            follower = LogFollower(api, "b_1", max_failures=2, sleep=sleeps.append)
            with pytest.raises(ConnectionFailed, match=r"cannot connect.*logs b_1 --follow"):
                list(follower)

        assert len(sleeps) == 2


class TestFollowingPlainText:
    def test_falls_back_to_follow_true_and_resumes_with_after(self, server: FakeServer) -> None:
        def logs(request: Received) -> Reply:
            if "follow" not in request.query:
                return Reply(body=b"not an event stream\n", content_type="text/plain")
            if request.query["after"] == "0":
                return Reply(body=[b"a\nb\n", b"half a li"], content_type="text/plain")
            return Reply(body=b"half a line\nc\n", content_type="text/plain")

        builds = iter([build(status="running"), build(status="succeeded")])
        server.on("GET", LOGS, logs)
        server.on("GET", BUILD, lambda _request: Reply.json(next(builds)))

        follower, lines, sleeps = follow(server)

        assert lines == [(1, None, "a"), (2, None, "b"), (3, None, "half a line"), (4, None, "c")]
        assert follower.final_status == "succeeded"
        plain = [r.query for r in server.requests_to("GET", LOGS) if "follow" in r.query]
        assert plain == [{"follow": "true", "after": "0"}, {"follow": "true", "after": "2"}]
        assert sleeps == [1.0]

    def test_not_acceptable_also_means_plain_text(self, server: FakeServer) -> None:
        def logs(request: Received) -> Reply:
            if request.headers.get("accept") == SSE:
                return Reply.problem(406, "not_acceptable", "No event streams.")
            return Reply(body=b"only line\n", content_type="text/plain")

        server.on("GET", LOGS, logs)
        server.on("GET", BUILD, Reply.json(build(status="cancelled")))

        follower, lines, _ = follow(server)

        assert lines == [(1, None, "only line")]
        assert follower.final_status == "cancelled"
