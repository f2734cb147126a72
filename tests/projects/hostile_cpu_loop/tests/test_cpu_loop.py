"""Spins every CPU it can get, forever."""

import os


def test_cpu_loop():
    for _ in range(3):
        if os.fork() == 0:
            break
    while True:
        pass
