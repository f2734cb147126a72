"""Adds numbers."""


def add(*numbers: float) -> float:
    return sum(numbers)
