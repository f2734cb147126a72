"""Debian version ordering (Debian Policy 5.6.12), for matching Debian packages against the ranges
of Debian advisories: `[epoch:]upstream[-revision]`, where `~` sorts before anything, even the end
of the string, and digits compare as numbers."""

from __future__ import annotations

import functools
import re

_VALID = re.compile(r"^(?:(\d+):)?([0-9][A-Za-z0-9.+~:-]*?)(?:-([A-Za-z0-9.+~]+))?$")
_PARTS = re.compile(r"(\d+)|(\D+)")


class InvalidDebianVersion(ValueError):
    pass


def _order(char: str) -> int:
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_part(a: str, b: str) -> int:
    """Compare upstream versions or revisions: alternating non-digit and digit runs."""
    while a or b:
        a_text, a = _split_text(a)
        b_text, b = _split_text(b)
        for x, y in zip(a_text + "\0", b_text + "\0", strict=False):
            ox = 0 if x == "\0" else _order(x)
            oy = 0 if y == "\0" else _order(y)
            if ox != oy:
                return -1 if ox < oy else 1
            if x == "\0" or y == "\0":
                break
        a_digits, a = _split_digits(a)
        b_digits, b = _split_digits(b)
        if int(a_digits or 0) != int(b_digits or 0):
            return -1 if int(a_digits or 0) < int(b_digits or 0) else 1
    return 0


def _split_text(text: str) -> tuple[str, str]:
    index = 0
    while index < len(text) and not text[index].isdigit():
        index += 1
    return text[:index], text[index:]


def _split_digits(text: str) -> tuple[str, str]:
    index = 0
    while index < len(text) and text[index].isdigit():
        index += 1
    return text[:index], text[index:]


@functools.total_ordering
class DebianVersion:
    def __init__(self, text: str) -> None:
        match = _VALID.match(text.strip())
        if match is None:
            raise InvalidDebianVersion(text)
        self.text = text.strip()
        self.epoch = int(match.group(1) or 0)
        self.upstream = match.group(2)
        self.revision = match.group(3) or ""

    def _compare(self, other: DebianVersion) -> int:
        if self.epoch != other.epoch:
            return -1 if self.epoch < other.epoch else 1
        return _compare_part(self.upstream, other.upstream) or _compare_part(
            self.revision, other.revision
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DebianVersion) and self._compare(other) == 0

    def __lt__(self, other: DebianVersion) -> bool:
        return self._compare(other) < 0

    def __hash__(self) -> int:
        return hash(self.epoch)  # equal versions may be spelled differently ("1.0", "1.00")

    def __repr__(self) -> str:
        return f"DebianVersion({self.text!r})"
