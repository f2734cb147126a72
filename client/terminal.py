"""Making server-controlled text safe to print on a terminal.

Log lines, tags, error messages and file names come from projects and servers we do not control.
Printed raw, an escape sequence in them could retitle the window or plant a clipboard write
(OSC 52), draw a fake hyperlink (OSC 8), move the cursor to overwrite earlier output, or hide
text. So every such string goes through `neutralise` first:

- escape sequences (CSI, OSC, DCS, SOS, PM, APC and the short two-byte forms, 7- and 8-bit) are
  removed; when `keep_sgr` is set, colour and style (SGR, `ESC [ ... m`) survive, without
  "conceal", which could hide text;
- the remaining control characters (C0 but tab, DEL, C1) and the invisible characters that
  reorder or break lines (bidi overrides and isolates, line/paragraph separators) are shown as
  `\\xNN` / `\\uNNNN`, so nothing is silently dropped.
"""

from __future__ import annotations

import os
import re
from typing import TextIO

# One alternation, tried left to right at each ESC or 8-bit introducer.
_SEQUENCE = re.compile(
    r"""
    (?P<sgr>\x1b\[(?P<params>[0-9;:]*)m)                       # SGR: colours and styles
    | (?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]       # any other CSI (cursor, erase...)
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])                  # OSC, DCS, SOS, PM, APC ...
      [^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c|(?=\x1b)|$)          # ... to BEL or ST (or the end)
    | \x1b[\x20-\x2f]*[\x30-\x7e]                               # two-byte and nF escapes
    """,
    re.VERBOSE,
)
_UNSAFE_CHAR = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_RESET = "\x1b[0m"
_CONCEAL = "8"
_EXTENDED_COLOUR = {"38", "48", "58"}


def neutralise(text: str, *, keep_sgr: bool = False) -> str:
    """`text` with escape sequences removed (SGR kept if `keep_sgr`) and controls made visible."""
    out: list[str] = []
    position = 0
    coloured = False  # whether the last kept SGR left a colour or style on
    for match in _SEQUENCE.finditer(text):
        out.append(_UNSAFE_CHAR.sub(_visible, text[position : match.start()]))
        position = match.end()
        if keep_sgr and match.group("sgr") is not None:
            params = _safe_sgr_params(match.group("params"))
            if params is not None:
                out.append(f"\x1b[{params}m")
                coloured = params not in ("", "0")
    out.append(_UNSAFE_CHAR.sub(_visible, text[position:]))
    if coloured:
        # A line must not leave the terminal coloured for whatever is printed next.
        out.append(_RESET)
    return "".join(out)


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _safe_sgr_params(params: str) -> str | None:
    """SGR parameters without "conceal" (8); None when nothing is left to send."""
    if params == "":
        return ""  # ESC [ m is a reset
    parts = params.split(";")
    kept: list[str] = []
    index = 0
    while index < len(parts):
        part = parts[index]
        if part in _EXTENDED_COLOUR and index + 1 < len(parts):
            # 38;5;N or 38;2;R;G;B: the following numbers are colour values, not attributes.
            width = 3 if parts[index + 1] == "5" else 5 if parts[index + 1] == "2" else 1
            kept.extend(parts[index : index + width])
            index += width
            continue
        if part != _CONCEAL:
            kept.append(part)
        index += 1
    if not kept:
        return None
    return ";".join(kept)


def colour_allowed(stream: TextIO) -> bool:
    """Whether colour codes from logs may reach `stream`: a terminal, NO_COLOR unset, not dumb."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
