"""core.builds.logs: the pure helpers that turn raw output into storable lines."""

from __future__ import annotations

import pytest

from core.builds.logs import MAX_LINE_CHARS, clean_line, split_lines, system_line


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


class TestEscapesAreNeutralised:
    """Output shown in a terminal (the plain-text log) must not be able to act on it."""

    @pytest.mark.parametrize(
        "sgr",
        ["\x1b[31m", "\x1b[1;32m", "\x1b[38;5;208m", "\x1b[38;2;1;2;3m", "\x1b[38:5:1m", "\x1b[m"],
    )
    def test_keeps_sgr_colours(self, sgr: str) -> None:
        assert clean_line(f"{sgr}colour\x1b[0m") == f"{sgr}colour\x1b[0m"

    @pytest.mark.parametrize(
        ("raw", "shown"),
        [
            ("\x1b]8;;http://evil.example/\x07click\x1b]8;;\x07", "click"),  # OSC 8 link
            ("\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\", "click"),  # ST ending
            ("a\x1b]0;title\x07b", "ab"),  # window title
            ("a\x1b]52;c;ZXZpbA==\x07b", "ab"),  # clipboard write
            ("a\x1b]0;never terminated", "a"),  # an open string eats the rest of its line
            ("a\x1bP+q544e\x1b\\b", "ab"),  # DCS
            ("a\x1b_apc\x1b\\b", "ab"),  # APC
            ("\x1b[2J\x1b[Hcleared", "cleared"),  # erase screen, cursor home
            ("\x1b[1A\x1b[2Kover", "over"),  # rewrite the previous line
            ("a\x1b[?1049hb", "ab"),  # alternate screen
            ("a\x1b[6nb", "ab"),  # cursor position report: makes a terminal type
            ("a\x1b[31;1xb", "ab"),  # CSI with another final byte
            ("a\x1b[1 mb", "ab"),  # intermediate byte: not an SGR
            ("a\x1bcb", "ab"),  # full reset
            ("a\x1b7b\x1b8", "ab"),  # save and restore the cursor
            ("a\x1b", "a"),  # lone ESC
            ("a\x9b2Jb", "ab"),  # 8-bit CSI
            ("a\x9d0;t\x9cb", "ab"),  # 8-bit OSC and ST
            ("a\x07b\x08c\x0bd\x0ce\x7ff\x85g\x1ah", "abcdefgh"),  # C0, DEL, C1
            ("a\rb\nc", "abc"),  # line breaks inside a line
        ],
    )
    def test_drops_every_other_escape_and_control(self, raw: str, shown: str) -> None:
        assert clean_line(raw) == shown

    def test_eight_bit_sgr_is_kept_in_its_seven_bit_form(self) -> None:
        assert clean_line("\x9b31mred\x9b0m") == "\x1b[31mred\x1b[0m"

    def test_keeps_tab(self) -> None:
        assert clean_line("a\tb") == "a\tb"

    @pytest.mark.parametrize("line", ["\x1b[8mhidden", "\x1b[31mred", "\x1b[0m\x1b[41mbg"])
    def test_colour_left_on_is_reset_at_the_end_of_its_line(self, line: str) -> None:
        assert clean_line(line) == line + "\x1b[0m"

    def test_a_forged_service_line_is_kept_as_text(self) -> None:
        forged = "[imagebuilder] tests: exit code 0, 99 passed"

        assert clean_line(forged) == forged


class TestSystemLine:
    def test_a_system_message_is_one_line(self) -> None:
        line = system_line("failed: x\n[imagebuilder] tests: exit code 0\rmore")

        assert split_lines(line) == [line]
        assert line == "failed: x \u21b5 [imagebuilder] tests: exit code 0 \u21b5 more"

    def test_a_long_system_message_is_cut_not_chunked(self) -> None:
        forged = "[imagebuilder] tests: exit code 0"
        line = system_line("x" * (MAX_LINE_CHARS - 10) + forged)

        assert len(line) == MAX_LINE_CHARS
        assert line.endswith("\u2026")
        assert split_lines(line) == [line]
