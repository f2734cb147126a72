"""client.terminal: server-controlled text cannot drive the terminal."""

from __future__ import annotations

import io

import pytest

from client.terminal import colour_allowed, neutralise

ESC = "\x1b"


class TestNeutralise:
    @pytest.mark.parametrize(
        ("attack", "shown"),
        [
            ("\x1b]0;owned\x07title", "title"),  # window title (OSC 0, BEL)
            ("\x1b]52;c;Y3VybCBldmlsLnNo\x1b\\after", "after"),  # clipboard write (OSC 52, ST)
            ("\x1b]8;;https://evil\x1b\\click\x1b]8;;\x1b\\", "click"),  # hyperlink (OSC 8)
            ("\x1b[2J\x1b[Hclean", "clean"),  # clear screen, cursor home
            ("\x1b[1A\x1b[2Kfake line", "fake line"),  # move up and erase a line
            ("\x1b[?1049hscreen", "screen"),  # alternate screen (private CSI)
            ("\x1bPq#0;2;0;0;0\x1b\\x", "x"),  # DCS (sixel)
            ("\x9b2Jc1", "c1"),  # 8-bit CSI
            ("\x9d0;t\x07c1osc", "c1osc"),  # 8-bit OSC
            ("\x1b]0;unterminated", ""),  # an OSC that never ends eats the rest
            ("\x1bcreset", "reset"),  # RIS: full reset (two-byte escape)
            ("\x1b(0box", "box"),  # charset designation (nF escape)
        ],
    )
    def test_removes_escape_sequences(self, attack: str, shown: str) -> None:
        assert neutralise(attack) == shown
        assert neutralise(attack, keep_sgr=True) == shown

    @pytest.mark.parametrize(
        ("text", "shown"),
        [
            ("carriage\rreturn", "carriage\\x0dreturn"),
            ("back\bspace", "back\\x08space"),
            ("bell\x07", "bell\\x07"),
            ("line\nbreak", "line\\x0abreak"),
            ("lone\x1b", "lone\\x1b"),
            ("del\x7f", "del\\x7f"),
            ("c1\x85next", "c1\\x85next"),
            ("bidi\u202eevil", "bidi\\u202eevil"),
            ("isolate\u2066x\u2069", "isolate\\u2066x\\u2069"),
            ("sep\u2028x", "sep\\u2028x"),
        ],
    )
    def test_makes_other_controls_visible(self, text: str, shown: str) -> None:
        assert neutralise(text) == shown

    def test_leaves_ordinary_text_alone(self) -> None:
        text = "tab\there · ünïcödé 🐍 [bold]not markup[/bold] 100%"

        assert neutralise(text) == text

    def test_strips_colours_unless_asked_to_keep_them(self) -> None:
        line = "\x1b[1;31mFAILED\x1b[0m test_x"

        assert neutralise(line) == "FAILED test_x"
        assert neutralise(line, keep_sgr=True) == line

    def test_kept_colours_are_reset_at_the_end_of_the_line(self) -> None:
        assert neutralise("\x1b[32mgreen", keep_sgr=True) == "\x1b[32mgreen\x1b[0m"

    def test_conceal_is_dropped_from_kept_colours(self) -> None:
        assert neutralise("\x1b[8mhidden\x1b[0m", keep_sgr=True) == "hidden\x1b[0m"
        assert neutralise("\x1b[1;8;31mx\x1b[0m", keep_sgr=True) == "\x1b[1;31mx\x1b[0m"

    def test_extended_colour_values_are_not_mistaken_for_conceal(self) -> None:
        line = "\x1b[38;5;8mgrey\x1b[0m \x1b[48;2;8;8;8mbg\x1b[0m"

        assert neutralise(line, keep_sgr=True) == line

    def test_nothing_that_starts_a_sequence_survives(self) -> None:
        nasty = "".join(chr(code) for code in range(0x00, 0xA0)) * 3 + "\x1b[31mx"

        assert ESC not in neutralise(nasty)
        assert not any(0x80 <= ord(char) <= 0x9F for char in neutralise(nasty))
        assert ESC not in neutralise(nasty, keep_sgr=True).replace("\x1b[31m", "").replace(
            "\x1b[0m", ""
        )


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


class TestColourAllowed:
    def test_only_on_a_terminal(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("NO_COLOR", raising=False)
        monkeypatch.setenv("TERM", "xterm-256color")

        assert colour_allowed(_Stream(tty=True))
        assert not colour_allowed(_Stream(tty=False))

    def test_no_color_and_dumb_terminals_turn_it_off(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("NO_COLOR", "1")
        assert not colour_allowed(_Stream(tty=True))
        monkeypatch.delenv("NO_COLOR")
        monkeypatch.setenv("TERM", "dumb")
        assert not colour_allowed(_Stream(tty=True))
