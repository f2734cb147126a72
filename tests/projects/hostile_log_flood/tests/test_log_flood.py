"""Prints two gigabytes of `yes`-style output, then passes."""

import os

GIGABYTES = 2


def test_log_flood():
    block = b"y\n" * (512 * 1024)  # 1 MiB of two-byte lines
    for _ in range(GIGABYTES * 1024):
        view = memoryview(block)
        while view:
            view = view[os.write(1, view) :]
