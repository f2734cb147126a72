"""Greetings."""

__version__ = "0.2.0"


def greet(name: str) -> str:
    return f"hello, {name}"
