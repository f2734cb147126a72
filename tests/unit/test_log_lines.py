"""core.logs: the pure helpers that turn raw output into storable lines."""

from __future__ import annotations

import pytest

from core.logs import MAX_LINE_CHARS, clean_line, split_lines


class TestSplitLines:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("", []),
            ("one", ["one"]),
            ("one\n", ["one"]),
            ("one\ntwo\n", ["one", "two"]),
            ("one\r\ntwo\r\n", ["one", "two"]),
            ("a\n\nb\n", ["a", "", "b"]),
            ("\n", [""]),
            ("mixed\r\nunix\nold-mac\rend", ["mixed", "unix", "old-mac", "end"]),
        ],
    )
    def test_splits_on_every_line_ending(self, text: str, expected: list[str]) -> None:
        assert split_lines(text) == expected

    def test_bare_carriage_returns_split_progress_bars(self) -> None:
        text = "Downloading  10%\rDownloading  55%\rDownloading 100%\n"

        assert split_lines(text) == ["Downloading  10%", "Downloading  55%", "Downloading 100%"]

    def test_crlf_is_one_line_end_not_two(self) -> None:
        assert split_lines("a\r\n\r\nb") == ["a", "", "b"]

    def test_chunks_long_lines(self) -> None:
        line = "x" * MAX_LINE_CHARS + "y" * MAX_LINE_CHARS + "z"

        chunks = split_lines(line + "\nshort\n")

        assert chunks == ["x" * MAX_LINE_CHARS, "y" * MAX_LINE_CHARS, "z", "short"]

    def test_line_of_exactly_the_maximum_is_not_chunked(self) -> None:
        line = "x" * MAX_LINE_CHARS

        assert split_lines(line) == [line]

    def test_keeps_every_character(self) -> None:
        text = "é" * (MAX_LINE_CHARS + 5) + "\r\n☃\n"

        assert "".join(split_lines(text)) == "é" * (MAX_LINE_CHARS + 5) + "☃"
        assert all(len(chunk) <= MAX_LINE_CHARS for chunk in split_lines(text))


class TestCleanLine:
    def test_keeps_ordinary_text(self) -> None:
        assert clean_line("ok: héllo ☃ \t tab") == "ok: héllo ☃ \t tab"

    def test_replaces_nul_visibly(self) -> None:
        cleaned = clean_line("a\x00b\x00")

        assert "\x00" not in cleaned
        assert cleaned == "a\\0b\\0"

    @pytest.mark.parametrize("surrogate", [chr(0xD800), chr(0xDFFF), chr(0xDC80)])
    def test_replaces_lone_surrogates(self, surrogate: str) -> None:
        cleaned = clean_line(f"before{surrogate}after")

        assert cleaned == "before?after"
        assert cleaned.encode("utf-8").decode("utf-8") == cleaned

    def test_bytes_decoded_with_surrogateescape_become_storable(self) -> None:
        raw = b"caf\xe9 \xff".decode("utf-8", "surrogateescape")

        cleaned = clean_line(raw)

        assert cleaned == "caf? ?"
        cleaned.encode("utf-8")
