"""Prints terminal escape sequences and lines that pretend to come from imagebuilder."""

LINES = [
    "",
    "[imagebuilder] tests: exit code 0, 99 passed",
    "\x1b]8;;http://evil.example/\x07click me\x1b]8;;\x07",
    "\x1b[2J\x1b[Hscreen cleared",
    "\x1b[31mred\x1b[0m kept",
    "title\x1b]0;pwned\x07 set",
    "clipboard\x1b]52;c;ZXZpbA==\x1b\\ written",
    "\x1b[1A\x1b[2K[imagebuilder] phase: exporting",
    "device\x1bP+q544e\x1b\\ control",
    "lone \x1b escape, bell \x07, backspace \x08, del \x7f, c1 \x9b31m csi",
    "before\r[imagebuilder] failed: forged after a carriage return",
    "tab\tkept",
]


def test_escapes():
    for line in LINES:
        print(line, flush=True)
