"""Prints raw bytes: every byte value, invalid UTF-8, NUL, and random binary."""

import os
import random


def test_binary_output():
    os.write(1, b"every byte: " + bytes(range(256)) + b"\n")
    os.write(1, b"invalid utf-8: \xff\xfe \xc3\x28 \xed\xa0\x80 \xf0\x28\x8c\x28 \xc0\xaf end\n")
    os.write(1, b"nul:\x00:nul\n")
    os.write(1, random.Random(4).randbytes(64 * 1024) + b"\n")
    os.write(1, "valid: h\u00e9llo \u2603 \U0001f40d\n".encode())
