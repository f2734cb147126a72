"""adapters.docker.output.OutputRouter: a container's output split into log lines, the wrapper's
findings and the JUnit report, in bounded memory whatever the container prints."""

from __future__ import annotations

from adapters.docker.output import MAX_PARTIAL_LINE, OutputRouter

MARKER = "::imagebuilder-report::0123456789abcdef::"
TAIL = f"{MARKER} limits pids_refused=3 tmp_full=0\n{MARKER} report\n<testsuites/>\n\n".encode()


class Sink:
    def __init__(self, takes: int = 1_000_000) -> None:
        self.lines: list[str] = []
        self.takes = takes

    def __call__(self, line: str) -> bool:
        self.lines.append(line)
        return len(self.lines) < self.takes


def route(chunks: list[bytes], sink: Sink) -> OutputRouter:
    router = OutputRouter(MARKER, sink)
    for chunk in chunks:
        router.feed(chunk)
    router.finish()
    return router


class TestOutputRouter:
    def test_a_report_on_one_line_longer_than_a_partial_line_comes_back_whole(self) -> None:
        # pytest writes its JUnit XML on one line; a big suite's is megabytes long.
        cases = "".join(f'<testcase name="t{n}" classname="m"/>' for n in range(20_000))
        report = f'<testsuites><testsuite tests="20000">{cases}</testsuite></testsuites>'
        assert len(report) > 3 * MAX_PARTIAL_LINE
        tail = f"{MARKER} report\n{report}\n\n".encode()

        router = route([b"log line\n", tail[:1000], tail[1000:]], Sink())

        assert router.report_text == report + "\n"

    def test_lines_go_to_the_sink_and_the_wrapper_tail_does_not(self) -> None:
        sink = Sink()

        router = route([b"one\ntw", b"o\n", TAIL], sink)

        assert sink.lines == ["one", "two"]
        assert router.limits == {"pids_refused": "3", "tmp_full": "0"}
        assert router.in_report
        assert router.report_text == "<testsuites/>\n"

    def test_output_without_a_final_newline_keeps_its_last_line(self) -> None:
        sink = Sink()

        route([b"no newline at the end", TAIL], sink)

        assert sink.lines == ["no newline at the end"]

    def test_past_what_the_sink_takes_only_the_marker_is_looked_for(self) -> None:
        sink = Sink(takes=2)
        flood = b"y\n" * 100_000

        # The marker is cut across two chunks to show it is still found.
        cut = len(MARKER) // 2
        router = route([flood, flood + TAIL[:cut], TAIL[cut:]], sink)

        assert sink.lines == ["y", "y"]
        assert router.limits["pids_refused"] == "3"
        assert router.report_text == "<testsuites/>\n"
        assert router.total_bytes >= 2 * len(flood)

    def test_the_marker_in_the_same_chunk_as_the_line_that_filled_the_sink(self) -> None:
        sink = Sink(takes=1)

        router = route([b"first\nsecond\n" + TAIL], sink)

        assert sink.lines == ["first"]
        assert router.in_report

    def test_a_line_without_newlines_is_passed_on_in_bounded_pieces(self) -> None:
        sink = Sink()

        route([b"x" * (MAX_PARTIAL_LINE // 2)] * 9 + [b"\n"], sink)

        assert all(len(line) <= MAX_PARTIAL_LINE for line in sink.lines)
        assert sum(len(line) for line in sink.lines) == 9 * (MAX_PARTIAL_LINE // 2)

    def test_invalid_utf8_is_replaced(self) -> None:
        sink = Sink()

        route([b"caf\xe9 \xff\xfe ok\n"], sink)

        assert sink.lines == ["caf\ufffd \ufffd\ufffd ok"]

    def test_without_a_marker_everything_is_output(self) -> None:
        sink: list[str] = []
        router = OutputRouter(None, sink.append)

        router.feed(b"a\nb")
        router.finish()

        assert sink == ["a", "b"]
        assert not router.in_report
