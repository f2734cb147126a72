"""Allocates (and touches) memory until something stops it."""


def test_memory_hog():
    hoard = []
    while True:
        hoard.append(b"\xff" * (16 * 1024 * 1024))
